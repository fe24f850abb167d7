"""notifications delivered and read (the member's inbox), coupons marked expired by the coupons job

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    # Plain ADD COLUMN with server defaults: notifications queued so far are neither delivered nor read, and no
    # coupon is marked expired until the coupons job looks at it.
    op.add_column("notification", sa.Column("delivered", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("notification", sa.Column("read", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("notification", sa.Column("channel", STR(length=16), nullable=False, server_default=""))
    op.add_column("coupon", sa.Column("expired", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("coupon", schema=None) as batch_op:
        batch_op.drop_column("expired")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_column("channel")
        batch_op.drop_column("read")
        batch_op.drop_column("delivered")
