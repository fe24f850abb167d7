"""counter rules and offline limits: tier points multipliers, categories that earn no points, signed leases

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # Plain ADD COLUMN with server defaults: existing tiers earn x1, categories earn, devices hold no lease.
    op.add_column("tier", sa.Column("points_bps", sa.Integer(), nullable=False, server_default="10000"))
    op.add_column("productcategory", sa.Column("earns_points", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("device", sa.Column("lease_version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "lease",
        sa.Column("device_id", STR(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("issued", sa.Integer(), nullable=False),
        sa.Column("expires_after_s", sa.Integer(), nullable=False),
        sa.Column("max_sv_per_sale", sa.Integer(), nullable=False),
        sa.Column("max_sv_per_card_day", sa.Integer(), nullable=False),
        sa.Column("max_sv_offline_total", sa.Integer(), nullable=False),
        sa.Column("doc", STR(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    op.drop_table("lease")
    with op.batch_alter_table("device", schema=None) as batch_op:
        batch_op.drop_column("lease_version")
    with op.batch_alter_table("productcategory", schema=None) as batch_op:
        batch_op.drop_column("earns_points")
    with op.batch_alter_table("tier", schema=None) as batch_op:
        batch_op.drop_column("points_bps")
