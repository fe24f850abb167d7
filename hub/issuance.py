"""The HQ desk: writing a member card (issue, replace) and reading one back to verify it, over any Reader.

Issuing is resumable. Before the first write, an IssueAttempt reserves the next stock
number for the tapped card's UID; a card pulled away mid-write keeps that reservation,
and the next tap of the same UID finishes it, opening each sector with whichever key it
has by then (the transport key, or this card's own key once its trailer is written).
Nothing is recorded as issued until the card reads back as written; then one
transaction records it (hub.cards.record_issue).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from firmware.cardservice import CardService
from firmware.hal import Reader
from firmware.reader import AuthFailed, CardLost, ReaderError, ReaderTimeout
from hub import auth, cards
from hub.cards import CardOpError
from hub.models import Card, CardStock, IssueAttempt, Member
from protocol import card as layout
from protocol import mifare

DESK_WAIT_MS = 1500  # how long a page or API request waits for a card on the reader
_desk_lock = threading.Lock()  # one desk operation at a time per hub process


class IssueError(CardOpError):
    """Why a card could not be issued; nothing was recorded as issued on the hub."""


@dataclass
class Issued:
    """A card written, verified and recorded; password is set when it was generated (show it once)."""

    card: dict[str, Any]
    password: str | None
    resumed: bool


@contextmanager
def open_desk(name: str | None, wait_ms: int = DESK_WAIT_MS, lock_timeout: float = 30.0) -> Iterator[Reader]:
    """The desk reader by PC/SC name (the first one when None), one user at a time; CardOpError when there is none."""
    from hub.desk_reader import DeskReader, ReaderNotFound

    if not _desk_lock.acquire(timeout=lock_timeout):
        raise CardOpError("desk_busy", "the desk reader is busy with another request; try again", 409)
    try:
        try:
            reader = DeskReader(name or None, wait_ms=wait_ms)
        except ReaderNotFound as exc:
            raise CardOpError("unknown_reader" if name else "no_reader", str(exc), 404) from exc
        except ReaderTimeout as exc:
            raise CardOpError("reader_unavailable", str(exc), 503) from exc
        with reader:
            yield reader
    finally:
        _desk_lock.release()


def readers() -> list[str]:
    """The PC/SC readers there are now; CardOpError when pcscd cannot be reached."""
    from hub.desk_reader import list_readers

    try:
        return list_readers()
    except ReaderError as exc:
        raise CardOpError("reader_unavailable", str(exc), 503) from exc


# -- the card side --------------------------------------------------------------------


def _select_same(reader: Reader, uid: bytes) -> None:
    """Re-activate the card after a refused key; CardLost when it is gone or another card is there."""
    if reader.select() != uid:
        raise CardLost("the card left the reader")


def probe_sectors(reader: Reader, master: bytes, uid: bytes) -> dict[int, str]:
    """Which key opens each application sector now: 'transport' (blank), 'own' (written), or IssueError(not_blank)."""
    found: dict[int, str] = {}
    for sector in layout.APP_SECTORS:
        block = mifare.first_block(sector)
        try:
            reader.authenticate(block, "A", mifare.DEFAULT_KEY, uid)
            found[sector] = "transport"
            continue
        except AuthFailed:
            _select_same(reader, uid)
        try:
            reader.authenticate(block, "B", layout.sector_keys(master, uid, sector)[1], uid)
            found[sector] = "own"
        except AuthFailed as exc:
            raise IssueError(
                "not_blank",
                f"card {uid.hex()} is not blank: neither the transport key nor this hub's keys open sector {sector} "
                "(a card of another system?); nothing was written",
                409,
            ) from exc
    return found


def write_card(reader: Reader, master: bytes, uid: bytes, keys: dict[int, str], ident: dict[str, Any],
               balance: int, points: int) -> None:
    """Personalise the card sector by sector: data blocks, then (still under the transport key) the trailer."""
    writes = layout.issue_writes(master, uid, ident, balance, points)
    for sector in layout.APP_SECTORS:
        if keys[sector] == "transport":
            reader.authenticate(mifare.first_block(sector), "A", mifare.DEFAULT_KEY, uid)
        else:
            reader.authenticate(mifare.first_block(sector), "B", layout.sector_keys(master, uid, sector)[1], uid)
        for block, data in writes:
            if mifare.sector_of(block) != sector:
                continue
            if mifare.is_trailer(block) and keys[sector] == "own":
                continue  # its keys are set already
            reader.write_block(block, data)


def written_as(read: dict[str, Any], ident: dict[str, Any], balance: int, points: int) -> bool:
    """Whether a card read back holds exactly the identity and opening purse that issuing writes."""
    got = read["ident"]
    purse = read["purse"]
    return (
        (got["card_no"], got["member_id"], got["tier"]) == (ident["card_no"], ident["member_id"], ident["tier"])
        and (purse["counter"], purse["balance"], purse["points"]) == (0, balance, points)
        and read["copies"]["B"] is None
        and not read["torn"]
    )


def read_card(reader: Reader, master: bytes, uid: bytes) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """(the card as read, None) or (None, (error code, message)); CardLost passes through."""
    service = CardService(reader, master)
    try:
        return service.read(uid), None
    except layout.CardError as exc:
        return None, (exc.code, exc.message)
    except AuthFailed as exc:
        return None, ("unknown_card", str(exc))


# -- issuing --------------------------------------------------------------------------


def issue(
    engine: Engine,
    reader: Reader,
    master: bytes,
    now: int,
    actor: str,
    member_id: int | None = None,
    tier: int | None = None,
    balance: int = 0,
    points: int = 0,
    password: str | None = None,
    replaces: str = "",
) -> Issued:
    """Write the blank card on the reader for a member (or as the replacement of card `replaces`), verify, record.

    password: the member's card password; None generates one (returned, to show once),
    except for a replacement, which keeps the old card's password.
    """
    member_id, tier, balance, points = _check_request(engine, member_id, tier, balance, points, password, replaces)
    generated = password is None and not replaces
    if generated:
        password = cards.new_password()
    uid = reader.select()
    if uid is None:
        raise IssueError("no_card", "no card on the desk reader: put a blank card on it", 409)
    uid_hex = uid.hex()
    with Session(engine) as db:
        known = cards.card_by_uid(db, uid_hex)
        if known is not None:
            raise IssueError("already_issued", f"card {uid_hex} is issued already, as card {known.card_no} ({known.state})",
                             409)
        resuming = cards.open_attempt(db, uid_hex) is not None
    try:
        already: dict[str, Any] | None = None
        read: dict[str, Any] | None
        error: tuple[str, str] | None
        keys: dict[int, str] = {}
        if resuming:
            already, _error = read_card(reader, master, uid)
            _select_same(reader, uid)  # a refused key halts the card: wake it for what follows
        else:
            keys = probe_sectors(reader, master, uid)  # before reserving: a foreign card holds no number
        attempt = _reserve(engine, uid_hex, member_id, tier, balance, points, replaces, actor, now)
        ident = {"card_no": attempt.card_no, "member_id": member_id, "tier": tier}
        if already is not None and written_as(already, ident, balance, points):
            read, error = already, None  # pulled away after its last write landed: only the record is missing
        else:
            if already is not None and already["purse"]["counter"] > 0:
                raise IssueError("card_in_use", f"card {uid_hex} was written as {already['ident']['card_no']} and has "
                                 "been used at a handheld since; it cannot be issued again", 409)
            if resuming:
                keys = probe_sectors(reader, master, uid)
            write_card(reader, master, uid, keys, ident, balance, points)
            _select_same(reader, uid)
            read, error = read_card(reader, master, uid)
    except CardLost as exc:
        number = _reserved_number(engine, uid_hex)
        held = f" (card number {number} stays reserved for it)" if number else ""
        raise IssueError(
            "card_pulled",
            f"card {uid_hex} left the reader before it was written and checked{held}: put it back and issue again to "
            "finish; nothing was recorded as issued",
            409,
        ) from exc
    except ReaderTimeout as exc:
        raise IssueError("reader_unavailable", f"the desk reader stopped answering: {exc}; nothing was recorded", 503) from exc
    except ReaderError as exc:
        raise IssueError("write_failed", f"writing card {uid_hex} failed: {exc}; issue again to finish; nothing was "
                         "recorded", 409) from exc
    if read is None or not written_as(read, ident, balance, points):
        why = error[1] if error else "it holds something else"
        raise IssueError("verify_failed", f"card {uid_hex} did not read back as written ({why}): issue again to finish; "
                         "nothing was recorded", 409)
    return _record(engine, attempt, password, generated, actor, now, resumed=resuming)


def issue_card(
    engine: Engine, reader: Reader, master: bytes, member_id: int, balance: int, points: int, tier: int, now: int,
    password: str | None = None, actor: str = "desk",
) -> dict[str, Any]:
    """issue() for one member with a given tier, opening balance and points; the card as the hub now holds it."""
    return issue(engine, reader, master, now, actor, member_id=member_id, tier=tier, balance=balance, points=points,
                 password=password).card


def replace(engine: Engine, reader: Reader, master: bytes, now: int, actor: str, card_no: str,
            password: str | None = None) -> Issued:
    """Write the blank card on the reader as the replacement of card_no: its balance, points and pending actions move."""
    return issue(engine, reader, master, now, actor, password=password, replaces=card_no)


def _check_request(engine: Engine, member_id: int | None, tier: int | None, balance: int, points: int,
                   password: str | None, replaces: str) -> tuple[int, int, int, int]:
    """(member, tier, balance, points) to write, or IssueError before the card is touched."""
    if password is not None:
        cards.check_password_rule(password)
    with Session(engine) as db:
        if replaces:
            old, tier, balance, points = cards.plan_replacement(db, replaces)
            return old.member_id, tier, balance, points
        if member_id is None:
            raise IssueError("no_member", "say which member the card is for")
        member = db.get(Member, member_id)
        if member is None:
            raise IssueError("unknown_member", f"no member {member_id}: add one first", 404)
        for value, what in ((balance, "the opening balance"), (points, "the opening points")):
            if type(value) is not int or not 0 <= value <= cards.MAX_OPENING:
                raise IssueError("bad_amount", f"{what} must be 0 to {cards.MAX_OPENING}, got {value!r}")
        tier = member.tier if tier is None else tier
        if type(tier) is not int or not 0 <= tier <= 255:
            raise IssueError("bad_tier", f"a tier is 0 to 255, got {tier!r}")
        if db.exec(select(CardStock).where(CardStock.state == "stock")).first() is None:
            raise IssueError("no_stock", "no card numbers in stock: make a batch first", 409)
        return member_id, tier, balance, points


def _reserve(engine: Engine, uid: str, member_id: int, tier: int, balance: int, points: int, replaces: str,
             actor: str, now: int) -> IssueAttempt:
    """The attempt that holds a card number for uid: the unfinished one (updated to this request) or a new one."""
    with Session(engine) as db:
        attempt = cards.open_attempt(db, uid)
        if attempt is None:
            stock = db.exec(select(CardStock).where(CardStock.state == "stock").order_by(col(CardStock.card_no))).first()
            if stock is None:
                raise IssueError("no_stock", "no card numbers in stock: make a batch first", 409)
            stock.state = "reserved"
            db.add(stock)
            attempt = IssueAttempt(uid=uid, card_no=stock.card_no, member_id=member_id, tier=tier, balance=balance,
                                   points=points, replaces=replaces, actor=actor, started=now, updated=now)
        else:
            # Nothing of it is recorded yet, so this request's member and values win.
            attempt.member_id, attempt.tier, attempt.balance, attempt.points = member_id, tier, balance, points
            attempt.replaces, attempt.actor, attempt.updated = replaces, actor, now
            attempt.tries += 1
        db.add(attempt)
        try:
            db.commit()
        except IntegrityError as exc:
            raise IssueError("desk_busy", "another desk took that card number at the same moment; try again", 409) from exc
        db.refresh(attempt)
        return attempt


def _reserved_number(engine: Engine, uid: str) -> str:
    with Session(engine) as db:
        attempt = cards.open_attempt(db, uid)
        return attempt.card_no if attempt is not None else ""


def _record(engine: Engine, attempt: IssueAttempt, password: str | None, generated: bool, actor: str, now: int,
            resumed: bool) -> Issued:
    with Session(engine) as db:
        fresh = db.get(IssueAttempt, attempt.id)
        assert fresh is not None
        try:
            card = cards.record_issue(db, actor, now, fresh, auth.hash_password(password) if password else "")
            db.commit()
        except CardOpError:
            db.rollback()
            raise
        db.refresh(card)
        out = card.model_dump(exclude={"password_hash"})
    return Issued(card=out, password=password if generated else None, resumed=resumed)


# -- verifying ------------------------------------------------------------------------


def verify(engine: Engine, reader: Reader, master: bytes) -> dict[str, Any]:
    """Read the card on the reader and compare it with the hub: findings, and the card's anomalies on record."""
    uid = reader.select()
    if uid is None:
        raise CardOpError("no_card", "no card on the desk reader: put the card to check on it", 409)
    try:
        read, error = read_card(reader, master, uid)
    except CardLost as exc:
        raise CardOpError("card_pulled", f"card {uid.hex()} left the reader while it was read: put it back", 409) from exc
    except ReaderError as exc:
        raise CardOpError("read_failed", f"reading card {uid.hex()} failed: {exc}", 409) from exc
    with Session(engine) as db:
        card = cards.card_by_uid(db, uid.hex())
        if card is None and read is not None:
            card = db.get(Card, read["ident"]["card_no"])
        hub = cards.hub_view(db, card) if card is not None else None
        attempt = cards.open_attempt(db, uid.hex())
        detail = cards.card_detail(db, card) if card is not None else None
    findings = cards.compare(uid.hex(), read, error, hub, attempt.model_dump() if attempt else None)
    on_card = None
    if read is not None:
        on_card = {**read["ident"], **{k: read["purse"][k] for k in ("counter", "balance", "points")}, "torn": read["torn"]}
    return {
        "uid": uid.hex(),
        "ok": not any(f["level"] == "bad" for f in findings),
        "card": on_card,
        "read_error": {"code": error[0], "message": error[1]} if error else None,
        "hub": hub,
        "findings": findings,
        "anomalies": detail["anomalies"] if detail else [],
    }
