"""card operations: issue attempts at the desk (resumable), cards found by UID

Revision ID: 0008
Revises: 0006
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issueattempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("card_no", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("replaces", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("card_no"),
    )
    with op.batch_alter_table("issueattempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issueattempt_uid"), ["uid"], unique=False)
        batch_op.create_index(batch_op.f("ix_issueattempt_state"), ["state"], unique=False)
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_uid"), ["uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("card", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_uid"))
    with op.batch_alter_table("issueattempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issueattempt_state"))
        batch_op.drop_index(batch_op.f("ix_issueattempt_uid"))
    op.drop_table("issueattempt")
