"""points ledger: referrals (member.referrer_id), points debts, referral awards, refunds, top-up bonus rules

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("referrer_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("referred_at", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_foreign_key("fk_member_referrer_id_member", "member", ["referrer_id"], ["id"])
    op.create_table(
        "pointsdebt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("card_no", STR(length=16), nullable=False),
        sa.Column("time", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column("memo", STR(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_pointsdebt_member_id"), "pointsdebt", ["member_id"], unique=False)
    op.create_table(
        "referralaward",
        sa.Column("sale_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("sale_id"),
    )
    op.create_index(op.f("ix_referralaward_referrer_id"), "referralaward", ["referrer_id"], unique=False)
    op.create_table(
        "refund",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.Integer(), nullable=False),
        sa.Column("actor", STR(length=64), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("stored_value", sa.Integer(), nullable=False),
        sa.Column("cash", sa.Integer(), nullable=False),
        sa.Column("points_value", sa.Integer(), nullable=False),
        sa.Column("points_back", sa.Integer(), nullable=False),
        sa.Column("points_taken", sa.Integer(), nullable=False),
        sa.Column("card_no", STR(length=16), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_refund_sale_id"), "refund", ["sale_id"], unique=False)
    op.create_table(
        "refundline",
        sa.Column("refund_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["refund_id"], ["refund.id"]),
        sa.PrimaryKeyConstraint("refund_id", "item"),
    )
    op.create_table(
        "topupbonusrules",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("effective_from", sa.Integer(), nullable=False),
        sa.Column("until", sa.Integer(), nullable=False),
        sa.Column("body", STR(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("actor", STR(length=64), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "topupbonus",
        sa.Column("action_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("card_no", STR(length=16), nullable=False),
        sa.Column("time", sa.Integer(), nullable=False),
        sa.Column("paid", sa.Integer(), nullable=False),
        sa.Column("bonus", sa.Integer(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("action_id"),
    )
    op.create_index(op.f("ix_topupbonus_card_no"), "topupbonus", ["card_no"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_topupbonus_card_no"), table_name="topupbonus")
    op.drop_table("topupbonus")
    op.drop_table("topupbonusrules")
    op.drop_table("refundline")
    op.drop_index(op.f("ix_refund_sale_id"), table_name="refund")
    op.drop_table("refund")
    op.drop_index(op.f("ix_referralaward_referrer_id"), table_name="referralaward")
    op.drop_table("referralaward")
    op.drop_index(op.f("ix_pointsdebt_member_id"), table_name="pointsdebt")
    op.drop_table("pointsdebt")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_constraint("fk_member_referrer_id_member", type_="foreignkey")
        batch_op.drop_column("referred_at")
        batch_op.drop_column("referrer_id")
