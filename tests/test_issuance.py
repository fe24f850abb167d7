"""Issuing a member card at the HQ desk, through the real PC/SC stack, into the hub's ledger."""

import random

import pytest
from sqlmodel import Session, select

from firmware.cardservice import CardService
from hub.cli import make_card_batch
from hub.db import make_engine, migrate
from hub.issuance import IssueError, issue_card
from hub.models import Card, CardStock, LedgerEntry, Member
from simulator.mifare_card import MifareClassic1K
from simulator.shop import master_key, read_card_directly

MASTER = master_key(random.Random(77))


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(eng)
    with Session(eng) as db:
        db.add(Member(id=5, name="Ada Lovelace", created=0))
        db.commit()
    make_card_batch(eng, "9000", 1, 3, 0)
    return eng


def test_issue_writes_the_card_and_opens_its_ledger(engine, desk, reader):
    card = MifareClassic1K.blank(bytes.fromhex("0a1b2c3d"))
    desk.insert(card)
    issued = issue_card(engine, reader, MASTER, 5, balance=2500, points=40, tier=1, now=100)
    assert issued["card_no"] == "9000000000000019" and issued["uid"] == "0a1b2c3d"
    on_card = read_card_directly(card, MASTER)
    assert on_card["ident"] == {**on_card["ident"], "card_no": "9000000000000019", "member_id": 5, "tier": 1}
    assert (on_card["purse"]["balance"], on_card["purse"]["points"], on_card["purse"]["counter"]) == (2500, 40, 0)
    with Session(engine) as db:
        hub_card = db.get(Card, "9000000000000019")
        assert hub_card is not None and (hub_card.balance, hub_card.points, hub_card.member_id) == (2500, 40, 5)
        entries = db.exec(select(LedgerEntry).where(LedgerEntry.card_no == "9000000000000019")).all()
        assert sorted((e.account, e.amount, e.memo) for e in entries) == [
            ("points", 40, "issued"),
            ("stored_value", 2500, "issued"),
        ]
        stock = db.get(CardStock, "9000000000000019")
        assert stock is not None and stock.state == "issued"
    # A handheld with the same master key reads the card the hub issued.
    assert CardService(reader, MASTER).read(bytes.fromhex("0a1b2c3d"))["ident"]["card_no"] == "9000000000000019"


def test_an_issued_card_cannot_be_issued_again(engine, desk, reader):
    card = MifareClassic1K.blank(bytes.fromhex("01020304"))
    desk.insert(card)
    issue_card(engine, reader, MASTER, 5, balance=0, points=0, tier=0, now=100)
    with pytest.raises(IssueError, match="issued already"):
        issue_card(engine, reader, MASTER, 5, balance=0, points=0, tier=0, now=101)
    with Session(engine) as db:
        assert len(db.exec(select(Card)).all()) == 1
        assert len(db.exec(select(CardStock).where(CardStock.state == "stock")).all()) == 2


def test_a_card_of_another_system_is_refused_and_nothing_recorded(engine, desk, reader):
    other = MifareClassic1K.blank(bytes.fromhex("05060708"))
    from simulator.shop import issue_card as factory_issue

    factory_issue(other, b"\x01" * 32, {"card_no": "1234567812345670", "member_id": 1, "tier": 0}, 0, 0)
    desk.insert(other)
    with pytest.raises(IssueError, match="not blank"):
        issue_card(engine, reader, MASTER, 5, balance=100, points=0, tier=0, now=100)
    with Session(engine) as db:
        assert db.exec(select(Card)).all() == []
        assert db.exec(select(LedgerEntry)).all() == []


@pytest.mark.parametrize("member, words", [(99, "no member 99")])
def test_bad_requests_change_nothing(engine, desk, reader, member, words):
    desk.insert(MifareClassic1K.blank(bytes.fromhex("0d0e0f10")))
    with pytest.raises(IssueError, match=words):
        issue_card(engine, reader, MASTER, member, balance=100, points=0, tier=0, now=100)
    with Session(engine) as db:
        assert db.exec(select(Card)).all() == []


def test_no_card_on_the_reader(engine, desk, reader):
    with pytest.raises(IssueError, match="no card on the desk reader"):
        issue_card(engine, reader, MASTER, 5, balance=0, points=0, tier=0, now=100)
