"""A small world for the tier, RFM, plan and badge tests: a real SQLite hub, tiers, members with cards, sales at set days."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import members
from hub.db import make_engine, migrate
from hub.masterdata import save_shop, save_tier
from hub.models import Card, Sale

DOC = Path(__file__).resolve().parent.parent / "docs" / "loyalty.md"


def at(day: str) -> int:
    """Unix seconds of a UTC day ('2025-03-01') or time ('2025-03-01T10:00')."""
    text = day if "T" in day else day + "T00:00"
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def hub_db(tmp_path: Path) -> Engine:
    """A migrated hub database with shops north and south and tiers 0 Member, 1 Silver, 2 Gold."""
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    with Session(engine) as db:
        for shop in ("north", "south"):
            save_shop(db, "test", 0, shop, shop.title())
        save_tier(db, "test", 0, 0, "Member", 0)
        save_tier(db, "test", 0, 1, "Silver", 300)
        save_tier(db, "test", 0, 2, "Gold", 500)
        db.commit()
    return engine


def card_no(member_id: int) -> str:
    return f"91000000{member_id:08d}"


def add_member(db: Session, name: str, joined: int, card: bool = True, birthday: str = "") -> int:
    """A member who joined then, with one active card (card_no(id)) unless card is False."""
    member = members.add_member(db, "test", joined, name, birthday=birthday)
    assert member.id is not None
    if card:
        give_card(db, member.id, joined)
    db.flush()
    return member.id


def give_card(db: Session, member_id: int, issued: int) -> str:
    number = card_no(member_id)
    db.add(Card(card_no=number, uid=number[-8:], member_id=member_id, tier=0, issued=issued))
    db.flush()
    return number


_seq = [0]


def buy(db: Session, member_id: int, cents: int, when: int, shop: str = "north", state: str = "committed") -> None:
    """A sale on the member's card, paid from stored value (spend = cents, points earned = cents // 100)."""
    _seq[0] += 1
    seq = _seq[0]
    db.add(Sale(
        device_id=f"hh-{shop}", seq=seq, shop=shop, time=when, state=state, card_no=card_no(member_id), uid="04a1b2c3",
        member_id=member_id, tier=0, counter_before=seq - 1, counter_after=seq, price_list_version=1, firmware="0.1.0",
        subtotal=cents, discount=0, total=cents, points_redeemed=0, points_value=0, stored_value=cents, cash=0,
        points_earned=cents // 100, balance_after=0, points_after=0,
    ))
    db.flush()


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")
