"""member profiles: birthday, category, current tier, tags, photo, tier history; one member per phone

Revision ID: 0009
Revises: 0008
"""

import re

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The separators hub.members.normalise_phone drops; kept here so this migration never changes with that module.
_SEPARATORS = re.compile(r"[\s\-./()]")


def _normalised(phone: str) -> str:
    compact = _SEPARATORS.sub("", phone)
    return "+" + compact[2:] if compact.startswith("00") else compact


def upgrade() -> None:
    conn = op.get_bind()
    members = conn.execute(sa.text("SELECT id, phone FROM member WHERE phone != ''")).fetchall()
    owner: dict[str, int] = {}
    for member_id, phone in members:
        clean = _normalised(phone)
        if clean in owner:
            raise RuntimeError(
                f"members {owner[clean]} and {member_id} have the same phone {clean!r}; a phone now belongs to one "
                "member: change one of them in the database, then upgrade again"
            )
        owner[clean] = member_id
        if clean != phone:
            conn.execute(sa.text("UPDATE member SET phone = :p WHERE id = :i"), {"p": clean, "i": member_id})

    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("birthday", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("category_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tier", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_foreign_key("fk_member_category_id_membercategory", "membercategory", ["category_id"], ["id"])
        batch_op.create_index(
            "ix_member_phone", ["phone"], unique=True,
            sqlite_where=sa.text("phone != ''"), postgresql_where=sa.text("phone != ''"),
        )
    # A member's current tier starts as the highest tier among their active cards.
    conn.execute(sa.text(
        "UPDATE member SET tier = (SELECT max(card.tier) FROM card WHERE card.member_id = member.id AND card.state = 'active')"
        " WHERE EXISTS (SELECT 1 FROM card WHERE card.member_id = member.id AND card.state = 'active')"
    ))

    op.create_table(
        "membertag",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("tag", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("member_id", "source", "tag"),
    )
    with op.batch_alter_table("membertag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_membertag_tag"), ["tag"], unique=False)

    op.create_table(
        "memberphoto",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("uploaded", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("member_id"),
    )

    op.create_table(
        "tierchange",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.Integer(), nullable=False),
        sa.Column("from_tier", sa.Integer(), nullable=False),
        sa.Column("to_tier", sa.Integer(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["member.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tierchange", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tierchange_member_id"), ["member_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tierchange", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tierchange_member_id"))
    op.drop_table("tierchange")
    op.drop_table("memberphoto")
    with op.batch_alter_table("membertag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_membertag_tag"))
    op.drop_table("membertag")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_index("ix_member_phone")
        batch_op.drop_constraint("fk_member_category_id_membercategory", type_="foreignkey")
        batch_op.drop_column("tier")
        batch_op.drop_column("category_id")
        batch_op.drop_column("birthday")
