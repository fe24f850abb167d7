"""Issuing a member card at the HQ desk: the next stock number, the card written and read back, the ledger opened."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from firmware.cardservice import CardService
from firmware.reader import AuthFailed, Reader, ReaderError
from hub.models import Card, CardStock, LedgerEntry, Member
from protocol import card as layout


class IssueError(ValueError):
    """Why a card could not be issued; nothing was recorded on the hub."""


def issue_card(
    engine: Engine, reader: Reader, master: bytes, member_id: int, balance: int, points: int, tier: int, now: int
) -> dict[str, Any]:
    """Write a blank card in the desk reader for member_id; the card as the hub now holds it.

    The card is written and verified first; only then does one transaction record
    it, open its ledger (balance and points) and take its number out of stock.
    """
    if balance < 0 or points < 0:
        raise IssueError("balance and points cannot be negative")
    with Session(engine) as db:
        if db.get(Member, member_id) is None:
            raise IssueError(f"no member {member_id}: add one with `hub member add`")
        stock = db.exec(select(CardStock).where(CardStock.state == "stock").order_by(col(CardStock.card_no))).first()
        if stock is None:
            raise IssueError("no card numbers in stock: make some with `hub card batch`")
        card_no = stock.card_no
    service = CardService(reader, master)
    uid = service.present()
    if uid is None:
        raise IssueError("no card on the desk reader: put a blank card on it")
    with Session(engine) as db:
        if db.exec(select(Card).where(Card.uid == uid.hex())).first() is not None:
            raise IssueError(f"card {uid.hex()} is issued already")
    ident = {"card_no": card_no, "member_id": member_id, "tier": tier}
    try:
        service.issue(uid, ident, balance, points)
        written = service.read(service.present() or uid)
    except AuthFailed as exc:
        raise IssueError(f"card {uid.hex()} is not blank (its transport key was refused): {exc}") from exc
    except (ReaderError, layout.CardError) as exc:
        raise IssueError(f"writing card {uid.hex()} failed: {exc}; nothing was recorded") from exc
    if written["ident"]["card_no"] != card_no or (written["purse"]["balance"], written["purse"]["points"]) != (balance, points):
        raise IssueError(f"card {uid.hex()} did not read back as written; nothing was recorded")
    with Session(engine) as db:
        db.add(
            Card(
                card_no=card_no,
                uid=uid.hex(),
                member_id=member_id,
                tier=tier,
                balance=balance,
                points=points,
                opening_counter=0,
                opening_balance=balance,
                opening_points=points,
            )
        )
        for account, amount in (("stored_value", balance), ("points", points)):
            if amount:
                db.add(
                    LedgerEntry(time=now, device_id="hq", seq=0, card_no=card_no, account=account, amount=amount, memo="issued")
                )
        row = db.get(CardStock, card_no)
        assert row is not None
        row.state = "issued"
        db.add(row)
        db.commit()
    return {"card_no": card_no, "uid": uid.hex(), "member_id": member_id, "tier": tier, "balance": balance, "points": points}
