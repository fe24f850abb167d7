"""refunds take back referral awards, coupons move to a replacement card, per-device lease overrides

Revision ID: 0016
Revises: 0015

Awards made before this migration get the points.* rates in force now (or their defaults):
the rates they were made with were not kept.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referralaward", schema=None) as batch_op:
        batch_op.add_column(sa.Column("earn_per_100", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("referral_bps", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE referralaward SET"
        " earn_per_100 = COALESCE((SELECT value FROM param WHERE key = 'points.earn_per_100'), 1),"
        " referral_bps = COALESCE((SELECT value FROM param WHERE key = 'points.referral_bps'), 0)"
    )
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.add_column(sa.Column("referral_points", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("referral_action_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("coupon", schema=None) as batch_op:
        batch_op.add_column(sa.Column("moved_to", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("voided", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "leaseoverride",
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("expires_after_s", sa.Integer(), nullable=False),
        sa.Column("max_sv_per_sale", sa.Integer(), nullable=False),
        sa.Column("max_sv_per_card_day", sa.Integer(), nullable=False),
        sa.Column("max_sv_offline_total", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.Integer(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    op.drop_table("leaseoverride")
    with op.batch_alter_table("coupon", schema=None) as batch_op:
        batch_op.drop_column("voided")
        batch_op.drop_column("moved_to")
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.drop_column("referral_action_id")
        batch_op.drop_column("referral_points")
    with op.batch_alter_table("referralaward", schema=None) as batch_op:
        batch_op.drop_column("referral_bps")
        batch_op.drop_column("earn_per_100")
