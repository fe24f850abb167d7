"""Cards at HQ through the real desk reader (pyscard -> private pcscd -> vpcd -> virtual card) and real SQLite:
issue (resumable after a card is pulled away), lost, unfreeze, top-up, replace and its settlement, verify, passwords.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from hub import auth, cards, issuance
from hub.cards import CardOpError
from hub.cli_cards import make_card_batch
from hub.db import make_engine, migrate
from hub.ingest import Ingestor
from hub.models import AuditEntry, Card, CardAction, CardStock, Device, HotlistEntry, IssueAttempt, LedgerEntry, Member
from protocol import card as layout
from protocol import cardno
from protocol.sync import encode_batch
from simulator.handheld import VirtualHandheld
from simulator.mifare_card import MifareClassic1K
from simulator.shop import PRICE_LIST, master_key, read_card_directly
from simulator.shop import issue_card as factory_issue

MASTER = master_key(random.Random(606))
FIRST, SECOND, THIRD = (cardno.make("9000", n) for n in (1, 2, 3))
PASSWORD = "correct horse 1"
TABLES: list[type[SQLModel]] = [Card, CardStock, IssueAttempt, LedgerEntry, HotlistEntry, CardAction, AuditEntry]
ISSUE_WRITES = 10  # blocks 4 5 6 7 | 8 9 11 | 12 13 15: data, then each sector's trailer


@pytest.fixture
def engine(tmp_path: Any) -> Engine:
    eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(eng)
    with Session(eng) as db:
        db.add(Member(id=5, name="Ada Lovelace", created=0, tier=1))
        db.add(Member(id=6, name="Grace Hopper", created=0))
        db.commit()
    make_card_batch(eng, "9000", 1, 3, 0)
    return eng


def blank(uid: str) -> MifareClassic1K:
    return MifareClassic1K.blank(bytes.fromhex(uid))


def rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables card operations touch: to prove a refusal changed nothing."""
    with Session(engine) as db:
        return {t.__name__: [r.model_dump() for r in db.exec(select(t))] for t in TABLES}


def ledger(engine: Engine, card_no: str, account: str) -> int:
    with Session(engine) as db:
        total = db.exec(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.card_no == card_no, LedgerEntry.account == account
            )
        ).one()
        return int(total)


def get(engine: Engine, model: type[Any], key: Any) -> Any:
    with Session(engine) as db:
        row = db.get(model, key)
        assert row is not None
        return row


def change(engine: Engine, work: Any) -> Any:
    with Session(engine) as db:
        out = work(db)
        db.commit()
        if isinstance(out, SQLModel):
            db.refresh(out)
        return out


def issue(engine: Engine, reader: Any, **kw: Any) -> issuance.Issued:
    kw.setdefault("member_id", 5)
    return issuance.issue(engine, reader, MASTER, 1000, "test", **kw)


# -- the rules alone -----------------------------------------------------------------


def test_the_state_table() -> None:
    assert cards.next_state("9", "active", "lost") == "lost"
    assert cards.next_state("9", "lost", "unfreeze") == "active"
    assert cards.next_state("9", "active", "replace") == cards.next_state("9", "lost", "replace") == "replaced"
    for state, op, words in [
        ("active", "unfreeze", "is active, not lost: there is nothing to unfreeze"),
        ("lost", "lost", "is already reported lost"),
        ("replaced", "replace", "was replaced by 9001"),
        ("replaced", "unfreeze", "stays on the hotlist for good"),
        ("replaced", "lost", "was replaced by 9001"),
    ]:
        with pytest.raises(CardOpError, match=words) as e:
            cards.next_state("9", state, op, "9001")
        assert e.value.code == "illegal_state" and e.value.status == 409
    assert set(cards.STATES) == {s for pair in cards.TRANSITIONS for s in (pair[1], cards.TRANSITIONS[pair])}


@pytest.mark.parametrize("text, cents", [("12.50", 1250), ("12.5", 1250), ("12", 1200), (" 0.07 ", 7)])
def test_amounts(text: str, cents: int) -> None:
    assert cards.parse_amount(text) == cents


@pytest.mark.parametrize("text", ["-5", "1.234", "12,50", "ten", "", "1e3", ".5"])
def test_bad_amounts_say_what_an_amount_looks_like(text: str) -> None:
    with pytest.raises(CardOpError, match="is not an amount like 12.50"):
        cards.parse_amount(text)


def test_card_numbers_as_typed() -> None:
    assert cards.check_card_no("9000 0000 0000 0019") == "9000000000000019"
    with pytest.raises(CardOpError, match="a card number is 16 digits"):
        cards.check_card_no("9000-0000")


def test_generated_passwords_are_readable_aloud_and_long_enough() -> None:
    made = {cards.new_password() for _ in range(50)}
    assert len(made) == 50
    assert all(len(p) >= auth.MIN_PASSWORD and set(p) <= set(cards.PASSWORD_ALPHABET) for p in made)


def test_a_replacement_carries_balance_points_and_pending_actions_never_below_zero() -> None:
    pending = [CardAction(card_no="x", number=1, kind="topup", amount=1000, created=0),
               CardAction(card_no="x", number=2, kind="transfer", amount=-300, points=-5, created=0)]
    assert cards.carried_values(2500, 40, pending) == (3200, 35)
    assert cards.carried_values(-900, 0, pending[1:]) == (0, 0)


# -- batches ----------------------------------------------------------------------------


def test_a_batch_with_one_duplicate_adds_nothing(engine: Engine) -> None:
    before = rows(engine)
    with Session(engine) as db, pytest.raises(CardOpError, match="1 of these card numbers exist already") as e:
        cards.make_batch(db, "test", 5, "9000", 3, 10)
    assert e.value.code == "duplicate_numbers" and e.value.status == 409
    assert rows(engine) == before
    for prefix, start, count, words in [
        ("90x", 1, 1, "prefix must be 1 to 14 digits"),
        ("9000", 1, 0, "a batch holds 1 to 10000"),
        ("9000", -1, 5, "the first serial must be"),
        ("9" * 14, 10, 1, "does not fit"),
    ]:
        with Session(engine) as db, pytest.raises(CardOpError, match=words):
            cards.make_batch(db, "test", 5, prefix, start, count)
    assert rows(engine) == before
    made = change(engine, lambda db: cards.make_batch(db, "hq-ann", 7, "9000", 4, 2))
    assert made == [cardno.make("9000", 4), cardno.make("9000", 5)]
    with Session(engine) as db:
        assert [(b["count"], b["stock"]) for b in cards.batches(db)] == [(3, 3), (2, 2)]
        entries = db.exec(select(AuditEntry).where(AuditEntry.entity == "cardstock").order_by(col(AuditEntry.id))).all()
        assert [(e.actor, e.entity_key) for e in entries] == [("cli", "9000:1+3@0"), ("hq-ann", "9000:4+2@7")]


# -- issuing at the desk ------------------------------------------------------------------


def test_issue_writes_the_card_and_records_it_with_the_password(engine: Engine, desk: Any, reader: Any) -> None:
    card = blank("0a1b2c3d")
    desk.insert(card)
    done = issue(engine, reader, password=PASSWORD, balance=2500, points=40)
    assert done.password is None and not done.resumed  # chosen, so not shown back
    assert done.card["card_no"] == FIRST and done.card["tier"] == 1  # the member's tier
    on_card = read_card_directly(card, MASTER)
    assert (on_card["ident"]["card_no"], on_card["ident"]["member_id"], on_card["ident"]["tier"]) == (FIRST, 5, 1)
    assert (on_card["purse"]["balance"], on_card["purse"]["points"], on_card["purse"]["counter"]) == (2500, 40, 0)
    hub_card = get(engine, Card, FIRST)
    assert (hub_card.state, hub_card.uid, hub_card.issued, hub_card.balance) == ("active", "0a1b2c3d", 1000, 2500)
    assert auth.check_password(hub_card.password_hash, PASSWORD) and PASSWORD not in hub_card.password_hash
    assert get(engine, CardStock, FIRST).state == "issued"
    assert ledger(engine, FIRST, "stored_value") == 2500 and ledger(engine, FIRST, "points") == 40
    with Session(engine) as db:
        attempt = db.exec(select(IssueAttempt)).one()
        assert (attempt.state, attempt.card_no, attempt.tries) == ("written", FIRST, 1)
        audit = db.exec(select(AuditEntry).where(AuditEntry.action == "issue")).one()
        assert audit.entity_key == FIRST and "password" not in audit.after


def test_a_generated_password_is_handed_back_once_and_lets_the_member_log_in(engine: Engine, desk: Any, reader: Any) -> None:
    desk.insert(blank("0a0b0c0d"))
    done = issue(engine, reader)
    assert done.password is not None and len(done.password) == cards.PASSWORD_LENGTH
    who, _cookie = auth.Gate(engine).login(FIRST, done.password)
    assert who.role == auth.MEMBER and who.card_no == FIRST and who.member_id == 5


@pytest.mark.parametrize(
    "nth, landed",
    [(1, False), (3, True), (4, False), (4, True), (5, True), (7, True), (9, False), (ISSUE_WRITES, False),
     (ISSUE_WRITES, True)],
)
def test_a_card_pulled_away_mid_write_is_finished_by_the_next_tap(
    engine: Engine, desk: Any, reader: Any, nth: int, landed: bool
) -> None:
    card = blank("11223344")
    desk.insert(card)
    desk.remove_at_write(nth, landed=landed)
    with pytest.raises(CardOpError, match=f"left the reader before it was written and checked \\(card number {FIRST} "
                       "stays reserved for it\\)") as e:
        issue(engine, reader, password=PASSWORD, balance=700, points=3)
    assert e.value.code == "card_pulled"
    with Session(engine) as db:
        assert db.exec(select(Card)).all() == [] and db.exec(select(LedgerEntry)).all() == []
        assert db.get(CardStock, FIRST).state == "reserved"  # type: ignore[union-attr]
        attempt = db.exec(select(IssueAttempt)).one()
        assert (attempt.uid, attempt.state) == ("11223344", "writing")
    # Someone else's blank card meanwhile takes the next number, not the reserved one.
    desk.insert(blank("55667788"))
    assert issue(engine, reader, member_id=6, password=PASSWORD).card["card_no"] == SECOND
    desk.insert(card)
    done = issue(engine, reader, password=PASSWORD, balance=700, points=3)
    assert done.resumed and done.card["card_no"] == FIRST
    on_card = read_card_directly(card, MASTER)
    assert on_card["ident"]["card_no"] == FIRST and (on_card["purse"]["balance"], on_card["purse"]["points"]) == (700, 3)
    for sector in layout.APP_SECTORS:  # every trailer holds the card's own keys now
        assert card.blocks[sector * 4 + 3][:6] == layout.sector_keys(MASTER, card.uid, sector)[0]
    assert get(engine, Card, FIRST).state == "active" and ledger(engine, FIRST, "stored_value") == 700
    with Session(engine) as db:
        attempt = db.exec(select(IssueAttempt).where(IssueAttempt.uid == "11223344")).one()
        assert (attempt.state, attempt.tries) == ("written", 2)


def test_a_resumed_card_may_go_to_another_member_since_nothing_was_recorded(engine: Engine, desk: Any, reader: Any) -> None:
    card = blank("21222324")
    desk.insert(card)
    desk.remove_at_write(6, landed=True)
    with pytest.raises(CardOpError):
        issue(engine, reader, password=PASSWORD)
    desk.insert(card)
    done = issue(engine, reader, member_id=6, password=PASSWORD)
    assert (done.card["card_no"], done.card["member_id"]) == (FIRST, 6)
    assert read_card_directly(card, MASTER)["ident"]["member_id"] == 6


def test_refusals_change_nothing(engine: Engine, desk: Any, reader: Any) -> None:
    before = rows(engine)
    with pytest.raises(CardOpError, match="no card on the desk reader: put a blank card on it") as e:
        issue(engine, reader, password=PASSWORD)
    assert e.value.code == "no_card"
    desk.insert(blank("31323334"))
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"member_id": 99}, "unknown_member", "no member 99"),
        ({"password": "short"}, "weak_password", "at least 8 characters"),
        ({"balance": -1}, "bad_amount", "the opening balance must be 0 to"),
        ({"tier": 300}, "bad_tier", "a tier is 0 to 255"),
        ({"replaces": SECOND}, "unknown_card", f"no card {SECOND} on the hub"),
    ]
    for kw, code, words in cases:
        with pytest.raises(CardOpError, match=words) as e:
            issue(engine, reader, **kw)
        assert e.value.code == code
    assert rows(engine) == before


def test_a_card_of_another_system_reserves_no_number(engine: Engine, desk: Any, reader: Any) -> None:
    other = blank("41424344")
    factory_issue(other, b"\x01" * 32, {"card_no": "1234567812345670", "member_id": 1, "tier": 0}, 0, 0)
    desk.insert(other)
    before = rows(engine)
    with pytest.raises(CardOpError, match="is not blank: neither the transport key nor this hub's keys open sector 1") as e:
        issue(engine, reader, password=PASSWORD)
    assert e.value.code == "not_blank"
    assert rows(engine) == before


def test_an_issued_card_is_not_issued_twice(engine: Engine, desk: Any, reader: Any) -> None:
    desk.insert(blank("51525354"))
    issue(engine, reader, password=PASSWORD)
    before = rows(engine)
    with pytest.raises(CardOpError, match=f"card 51525354 is issued already, as card {FIRST} \\(active\\)") as e:
        issue(engine, reader, member_id=6, password=PASSWORD)
    assert e.value.code == "already_issued" and rows(engine) == before


def test_no_stock_left(engine: Engine, desk: Any, reader: Any) -> None:
    for uid in ("61000001", "61000002", "61000003"):
        desk.insert(blank(uid))
        issue(engine, reader, password=PASSWORD)
    desk.insert(blank("61000004"))
    before = rows(engine)
    with pytest.raises(CardOpError, match="no card numbers in stock"):
        issue(engine, reader, password=PASSWORD)
    assert rows(engine) == before


# -- lost, unfreeze, top-up, passwords ------------------------------------------------------


@pytest.fixture
def issued(engine: Engine, desk: Any, reader: Any) -> MifareClassic1K:
    """Card FIRST for member 5 with 25.00 and 40 points, on the desk reader."""
    card = blank("0c0d0e0f")
    desk.insert(card)
    issue(engine, reader, password=PASSWORD, balance=2500, points=40)
    return card


def test_lost_and_unfreeze_move_the_card_on_and_off_the_hotlist(engine: Engine, issued: Any) -> None:
    change(engine, lambda db: cards.mark_lost(db, "hq-ann", 2000, FIRST))
    assert get(engine, Card, FIRST).state == "lost"
    with Session(engine) as db:
        assert cards.is_hotlisted(db, FIRST)
        assert [(e["card_no"], e["reason"]) for e in cards.hotlist_now(db)] == [(FIRST, "lost")]
        assert cards.card_detail(db, db.get(Card, FIRST))["hotlisted"]  # type: ignore[arg-type]
    with pytest.raises(auth.AuthError):  # a lost card does not log in
        auth.Gate(engine).login(FIRST, PASSWORD)
    before = rows(engine)
    with Session(engine) as db, pytest.raises(CardOpError, match="already reported lost"):
        cards.mark_lost(db, "hq-ann", 2001, FIRST)
    assert rows(engine) == before
    change(engine, lambda db: cards.unfreeze(db, "hq-ann", 2002, FIRST))
    with Session(engine) as db:
        assert not cards.is_hotlisted(db, FIRST) and cards.hotlist_now(db) == []
        history = db.exec(select(HotlistEntry).where(HotlistEntry.card_no == FIRST).order_by(col(HotlistEntry.version))).all()
        assert [(h.listed, h.reason, h.uid) for h in history] == [(True, "lost", "0c0d0e0f"), (False, "found", "0c0d0e0f")]
        assert [a.action for a in db.exec(select(AuditEntry).where(AuditEntry.entity == "card"))] == [
            "issue", "lost", "unfreeze"]
    before = rows(engine)
    with Session(engine) as db, pytest.raises(CardOpError, match="is active, not lost"):
        cards.unfreeze(db, "hq-ann", 2003, FIRST)
    with Session(engine) as db, pytest.raises(CardOpError, match=f"no card {SECOND} on the hub") as e:
        cards.mark_lost(db, "hq-ann", 2003, SECOND)
    assert e.value.status == 404
    with Session(engine) as db, pytest.raises(CardOpError, match="its check digit is wrong: a typo"):
        cards.mark_lost(db, "hq-ann", 2003, FIRST[:-1] + "0")
    assert rows(engine) == before


def test_a_top_up_at_hq_is_pending_until_a_handheld_applies_it(engine: Engine, issued: Any) -> None:
    action = change(engine, lambda db: cards.topup(db, "hq-ann", 3000, FIRST, 2000))
    assert (action.kind, action.amount, action.state, action.number) == ("topup", 2000, "pending", 1)
    hub_card = get(engine, Card, FIRST)
    assert hub_card.balance == 2500  # what the card holds until a handheld writes the top-up
    assert ledger(engine, FIRST, "stored_value") == 2500 and ledger(engine, FIRST, "cash") == 2000
    with Session(engine) as db:
        detail = cards.card_detail(db, db.get(Card, FIRST))  # type: ignore[arg-type]
    assert detail["pending_topups"] == 2000 and [a["number"] for a in detail["pending"]] == [1]
    assert cards.applied_action_entries(action) == [("stored_value", 2000, "topup #1")]
    before = rows(engine)
    for amount, words in [(0, "a top-up is 0.01 to"), (cards.MAX_TOPUP + 1, "a top-up is 0.01 to")]:
        with Session(engine) as db, pytest.raises(CardOpError, match=words):
            cards.topup(db, "hq-ann", 3001, FIRST, amount)
    change(engine, lambda db: cards.mark_lost(db, "hq-ann", 3002, FIRST))
    before = rows(engine)
    with Session(engine) as db, pytest.raises(CardOpError, match="is lost: no handheld would take it"):
        cards.topup(db, "hq-ann", 3003, FIRST, 500)
    assert rows(engine) == before


def test_passwords_member_changes_their_own_hq_resets(engine: Engine, issued: Any) -> None:
    before = rows(engine)
    for own, old, new, code in [
        (FIRST, "not it at all", "a new one 22", "wrong_password"),
        (SECOND, PASSWORD, "a new one 22", "not_your_card"),
        (FIRST, PASSWORD, "short", "weak_password"),
    ]:
        with Session(engine) as db, pytest.raises(CardOpError) as e:
            cards.change_password(db, f"card:{own}", 4000, own, FIRST, old, new)
        assert e.value.code == code
    assert rows(engine) == before
    change(engine, lambda db: cards.change_password(db, f"card:{FIRST}", 4000, FIRST, FIRST, PASSWORD, "a new one 22"))
    assert auth.Gate(engine).login(FIRST, "a new one 22")[0].card_no == FIRST
    generated = change(engine, lambda db: cards.reset_password(db, "hq-ann", 4001, FIRST))
    assert auth.check_password(get(engine, Card, FIRST).password_hash, generated)
    assert not auth.check_password(get(engine, Card, FIRST).password_hash, "a new one 22")


# -- replacement and its settlement ------------------------------------------------------------


def test_replace_moves_balance_points_and_pending_top_ups_to_the_new_card(
    engine: Engine, issued: Any, desk: Any, reader: Any
) -> None:
    change(engine, lambda db: cards.topup(db, "hq-ann", 3000, FIRST, 1000))
    change(engine, lambda db: cards.mark_lost(db, "hq-ann", 3001, FIRST))
    new_card = blank("71727374")
    desk.insert(new_card)
    done = issuance.replace(engine, reader, MASTER, 5000, "hq-ann", FIRST)
    assert done.card["card_no"] == SECOND and done.password is None
    on_card = read_card_directly(new_card, MASTER)
    assert on_card["ident"]["member_id"] == 5 and (on_card["purse"]["balance"], on_card["purse"]["points"]) == (3500, 40)
    old, new = get(engine, Card, FIRST), get(engine, Card, SECOND)
    assert (old.state, old.replaced_by, old.balance, old.points) == ("replaced", SECOND, 0, 0)
    assert (new.state, new.balance, new.points, new.member_id) == ("active", 3500, 40, 5)
    assert ledger(engine, FIRST, "stored_value") == 0 and ledger(engine, FIRST, "points") == 0
    assert ledger(engine, SECOND, "stored_value") == 3500 and ledger(engine, SECOND, "points") == 40
    with Session(engine) as db:
        assert [(e["card_no"], e["reason"]) for e in cards.hotlist_now(db)] == [(FIRST, "replaced")]
        topup = db.exec(select(CardAction).where(CardAction.card_no == FIRST)).one()
        assert topup.state == "cancelled" and f"carried to {SECOND}" in topup.note
        assert cards.pending_actions(db, SECOND) == []
    # The member keeps their password, now with the new card number; the old card no longer logs in.
    assert auth.Gate(engine).login(SECOND, PASSWORD)[0].card_no == SECOND
    with pytest.raises(auth.AuthError):
        auth.Gate(engine).login(FIRST, PASSWORD)
    before = rows(engine)
    desk.insert(blank("75767778"))
    with pytest.raises(CardOpError, match=f"card {FIRST} was replaced by {SECOND}") as e:
        issuance.replace(engine, reader, MASTER, 5001, "hq-ann", FIRST)
    assert e.value.code == "illegal_state" and rows(engine) == before


def test_offline_sales_of_the_old_card_synced_later_are_taken_off_the_new_card(
    engine: Engine, issued: Any, desk: Any, reader: Any, tmp_path: Any
) -> None:
    old_card = issued
    desk.remove()
    handheld = VirtualHandheld("hh-late", tmp_path / "hh", MASTER, PRICE_LIST)
    handheld.boot()
    handheld.clock.now = 2_000_000_000
    assert handheld.sell(old_card, [(102, 1)]) == "receipt"  # offline, before HQ hears the card is lost
    records = [data for _seq, data in handheld.journal().entries()]
    handheld.close()
    spent = 2500 - read_card_directly(old_card, MASTER)["purse"]["balance"]
    assert spent > 0
    desk.insert(blank("81828384"))
    issuance.replace(engine, reader, MASTER, 6000, "hq-ann", FIRST)
    with Session(engine) as db:
        db.add(Device(id="hh-late", shop="north", password_hash="x", created=0))
        db.commit()
    # The handheld syncs a week later; ingest settles the old card onto its replacement by itself.
    Ingestor(engine).ingest([("hh-late", encode_batch(records))])
    with Session(engine) as db:
        moved = db.exec(select(CardAction).where(CardAction.kind == "transfer")).all()
        assert [(a.card_no, a.amount, a.state, a.actor) for a in moved] == [(SECOND, -spent, "pending", "ingest")]
    old = get(engine, Card, FIRST)
    assert (old.balance, old.state) == (0, "replaced") and ledger(engine, FIRST, "stored_value") == 0
    assert get(engine, Card, SECOND).balance == 2500  # the card holds this until the transfer reaches it
    assert change(engine, lambda db: cards.settle_replaced(db, "settle", 7001)) == []  # settled once


# -- verify ------------------------------------------------------------------------------------


def levels(report: dict[str, Any]) -> dict[str, str]:
    return {f["code"]: f["level"] for f in report["findings"]}


def test_verify_a_good_card_a_lost_one_and_one_with_unsynced_sales(
    engine: Engine, issued: Any, desk: Any, reader: Any, tmp_path: Any
) -> None:
    report = issuance.verify(engine, reader, MASTER)
    assert report["ok"] and report["uid"] == "0c0d0e0f" and report["card"]["card_no"] == FIRST
    assert levels(report) == {"mac": "ok", "state": "ok", "counter": "ok", "balance": "ok", "points": "ok"}
    change(engine, lambda db: cards.mark_lost(db, "hq-ann", 2000, FIRST))
    lost = issuance.verify(engine, reader, MASTER)
    assert not lost["ok"] and levels(lost)["lost"] == "bad"
    change(engine, lambda db: cards.unfreeze(db, "hq-ann", 2001, FIRST))
    desk.remove()
    handheld = VirtualHandheld("hh-v", tmp_path / "hh", MASTER, PRICE_LIST)
    handheld.boot()
    assert handheld.sell(issued, [(101, 2)]) == "receipt"
    handheld.close()
    desk.insert(issued)
    ahead = issuance.verify(engine, reader, MASTER)
    assert ahead["ok"] and levels(ahead)["not_synced"] == "warn" and levels(ahead)["balance"] == "warn"
    assert "1 card transaction(s) not synced yet" in " ".join(f["message"] for f in ahead["findings"])


def test_verify_blank_foreign_and_unfinished_cards(engine: Engine, desk: Any, reader: Any) -> None:
    desk.insert(blank("91929394"))
    report = issuance.verify(engine, reader, MASTER)
    assert report["ok"] and levels(report) == {"blank": "ok"} and report["card"] is None
    other = blank("95969798")
    factory_issue(other, b"\x02" * 32, {"card_no": "1234567812345670", "member_id": 1, "tier": 0}, 0, 0)
    desk.insert(other)
    assert levels(issuance.verify(engine, reader, MASTER)) == {"foreign": "bad"}
    torn = blank("99887766")
    desk.insert(torn)
    desk.remove_at_write(2)
    with pytest.raises(CardOpError):
        issue(engine, reader, password=PASSWORD)
    desk.insert(torn)
    unfinished = issuance.verify(engine, reader, MASTER)
    assert levels(unfinished) == {"unfinished": "warn"}
    assert f"was writing this card as {FIRST}" in unfinished["findings"][0]["message"]
    desk.remove()
    with pytest.raises(CardOpError, match="no card on the desk reader"):
        issuance.verify(engine, reader, MASTER)


def test_a_carried_top_up_applied_to_the_old_card_anyway_is_not_paid_twice(
    engine: Engine, issued: Any, desk: Any, reader: Any
) -> None:
    change(engine, lambda db: cards.topup(db, "hq-ann", 3000, FIRST, 1000))
    desk.insert(blank("a5a6a7a8"))
    issuance.replace(engine, reader, MASTER, 5000, "hq-ann", FIRST)
    assert get(engine, Card, SECOND).balance == 3500  # 25.00 + the top-up, written on the new card
    with Session(engine) as db:
        # What ingest does when a handheld that had not heard of the replacement applies the
        # cancelled top-up to the old card and then sells 3.00 on it: posts both to the old card.
        topup = db.exec(select(CardAction).where(CardAction.card_no == FIRST)).one()
        topup.state, topup.applied_device, topup.applied_seq = "applied", "hh-x", 7
        old = db.get(Card, FIRST)
        assert old is not None
        old.balance += 1000 - 300
        db.add_all([topup, old, LedgerEntry(time=5100, device_id="hh-x", seq=7, card_no=FIRST, account="stored_value",
                                            amount=1000, memo="topup"),
                    LedgerEntry(time=5100, device_id="hh-x", seq=8, card_no=FIRST, account="stored_value", amount=-300,
                                memo="sale")])
        db.commit()
    moved = change(engine, lambda db: [(a.card_no, a.amount) for a in cards.settle_replaced(db, "settle", 6000)])
    assert moved == [(SECOND, -300)]  # only the sale: the top-up is on the new card already
    assert get(engine, Card, FIRST).balance == 0 and ledger(engine, FIRST, "stored_value") == 0
    assert change(engine, lambda db: cards.settle_replaced(db, "settle", 6001)) == []
