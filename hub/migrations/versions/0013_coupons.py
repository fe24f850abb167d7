"""coupons: templates, issued coupons, the coupon a sale redeemed

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coupontemplate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('min_spend', sa.Integer(), nullable=False),
    sa.Column('valid_days', sa.Integer(), nullable=False),
    sa.Column('starts', sa.Integer(), nullable=False),
    sa.Column('ends', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('coupon',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('card_no', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('min_spend', sa.Integer(), nullable=False),
    sa.Column('valid_from', sa.Integer(), nullable=False),
    sa.Column('valid_until', sa.Integer(), nullable=False),
    sa.Column('issued', sa.Integer(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=True),
    sa.Column('action_id', sa.Integer(), nullable=True),
    sa.Column('redeemed_device', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('redeemed_seq', sa.Integer(), nullable=False),
    sa.Column('redeemed', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['member.id'], ),
    sa.ForeignKeyConstraint(['template_id'], ['coupontemplate.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('grant_id')
    )
    with op.batch_alter_table('coupon', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coupon_action_id'), ['action_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupon_card_no'), ['card_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupon_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_coupon_template_id'), ['template_id'], unique=False)
    with op.batch_alter_table('sale', schema=None) as batch_op:
        batch_op.add_column(sa.Column('coupon', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('coupon_value', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('sale', schema=None) as batch_op:
        batch_op.drop_column('coupon_value')
        batch_op.drop_column('coupon')
    with op.batch_alter_table('coupon', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coupon_template_id'))
        batch_op.drop_index(batch_op.f('ix_coupon_member_id'))
        batch_op.drop_index(batch_op.f('ix_coupon_card_no'))
        batch_op.drop_index(batch_op.f('ix_coupon_action_id'))
    op.drop_table('coupon')
    op.drop_table('coupontemplate')
