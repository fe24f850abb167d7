"""logins, card states, hotlist, card actions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 14:33:59.092639
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cardaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_no", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("applied_device", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("applied_seq", sa.Integer(), nullable=False),
        sa.Column("applied_time", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("card_no", "number"),
    )
    with op.batch_alter_table("cardaction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cardaction_card_no"), ["card_no"], unique=False)
        batch_op.create_index(batch_op.f("ix_cardaction_state"), ["state"], unique=False)

    op.create_table(
        "hotlistentry",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("card_no", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("uid", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("time", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    with op.batch_alter_table("hotlistentry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hotlistentry_card_no"), ["card_no"], unique=False)

    op.create_table(
        "merchant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("shop_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchant.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "apitoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("apitoken", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apitoken_user_id"), ["user_id"], unique=False)

    op.create_table(
        "websession",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("card_no", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("expires", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("websession", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_websession_expires"), ["expires"], unique=False)

    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False, server_default="active")
        )
        batch_op.add_column(sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("replaced_by", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("issued", sa.Integer(), nullable=False, server_default="0"))

    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hotlist_version", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("actions_version", sa.Integer(), nullable=False, server_default="0"))

    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merchant_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_product_merchant_id", "merchant", ["merchant_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_constraint("fk_product_merchant_id", type_="foreignkey")
        batch_op.drop_column("merchant_id")

    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_column("actions_version")
        batch_op.drop_column("hotlist_version")

    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_column("issued")
        batch_op.drop_column("replaced_by")
        batch_op.drop_column("password_hash")
        batch_op.drop_column("state")

    with op.batch_alter_table("websession", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_websession_expires"))

    op.drop_table("websession")
    with op.batch_alter_table("apitoken", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apitoken_user_id"))

    op.drop_table("apitoken")
    op.drop_table("user")
    op.drop_table("merchant")
    with op.batch_alter_table("hotlistentry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hotlistentry_card_no"))

    op.drop_table("hotlistentry")
    with op.batch_alter_table("cardaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cardaction_state"))
        batch_op.drop_index(batch_op.f("ix_cardaction_card_no"))

    op.drop_table("cardaction")
