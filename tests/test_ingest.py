"""Hub ingest on a real SQLite database, fed with journals made by the real firmware."""

import random
import time

import pytest
from sqlmodel import Session, select

from hub.db import make_engine, migrate
from hub.ingest import Ingestor
from hub.models import Anomaly, Card, Device, LedgerEntry, Sale
from protocol import record as rec
from protocol.sync import encode_batch
from simulator.handheld import VirtualHandheld, committed_sales
from simulator.shop import PRICE_LIST, master_key, member_card, read_card_directly


@pytest.fixture(scope="module")
def shift(tmp_path_factory):
    """Two handhelds, five cards, a morning of sales; the journals' records and the cards."""
    rng = random.Random(11)
    master = master_key(rng)
    cards = [member_card(rng, master, n, balance=3000, points=50, tier=n % 3) for n in range(1, 6)]
    root = tmp_path_factory.mktemp("shift")
    journals = {}
    for name in ("hh-a", "hh-b"):
        hh = VirtualHandheld(name, root, master, PRICE_LIST)
        hh.boot()
        journals[name] = hh
    for i in range(30):
        hh = journals["hh-a" if i % 3 else "hh-b"]
        hh.sell(rng.choice(cards), [(rng.choice([101, 102, 201, 301]), rng.randint(1, 2))], redeem_points=i % 4 == 0)
    out = {name: [data for _seq, data in hh.journal().entries()] for name, hh in journals.items()}
    sold = {name: len(committed_sales(hh.journal())) for name, hh in journals.items()}
    for hh in journals.values():
        hh.close()
    return {"records": out, "cards": cards, "master": master, "sold": sold}


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(eng)
    with Session(eng) as s:
        for name in ("hh-a", "hh-b"):
            s.add(Device(id=name, shop="shop-1", password_hash="x", created=0))
        s.commit()
    return eng


def acked(session, device_id):
    device = session.get(Device, device_id)
    assert device is not None
    return device.acked_seq


def batches(records, size=5):
    return [encode_batch(records[i : i + size]) for i in range(0, len(records), size)]


def check_ledger(engine, shift):
    with Session(engine) as s:
        sales = s.exec(select(Sale).where(Sale.state == "committed")).all()
        assert len(sales) == sum(shift["sold"].values())
        for card in shift["cards"]:
            on_card = read_card_directly(card, shift["master"])
            hub = s.get(Card, on_card["ident"]["card_no"])
            if on_card["purse"]["counter"] == 0:
                assert hub is None  # never sold to: the hub has not heard of it
                continue
            assert hub is not None
            assert (hub.balance, hub.points, hub.last_counter) == (
                on_card["purse"]["balance"], on_card["purse"]["points"], on_card["purse"]["counter"]
            )
            entries = s.exec(select(LedgerEntry).where(LedgerEntry.card_no == hub.card_no)).all()
            assert sum(e.amount for e in entries if e.account == "stored_value") == hub.balance
            assert sum(e.amount for e in entries if e.account == "points") == hub.points


def test_in_order_batches_build_the_ledger(engine, shift):
    ingest = Ingestor(engine)
    for device, records in shift["records"].items():
        for payload in batches(records):
            result = ingest.ingest([(device, payload)])
        assert result.acks[device] == len(records)
    check_ledger(engine, shift)
    with Session(engine) as s:
        assert s.exec(select(Anomaly)).all() == []
        assert acked(s, "hh-a") == len(shift["records"]["hh-a"])


def test_every_message_twice_and_out_of_order(engine, shift):
    ingest = Ingestor(engine)
    messages = [(d, p) for d, records in shift["records"].items() for p in batches(records, 3)] * 2
    random.Random(3).shuffle(messages)
    for i in range(0, len(messages), 4):
        ingest.ingest(messages[i : i + 4])
    check_ledger(engine, shift)
    with Session(engine) as s:
        codes = {a.code for a in s.exec(select(Anomaly)).all()}
        assert codes <= {"seq_gap"}  # gaps while out of order, nothing else
        assert acked(s, "hh-b") == len(shift["records"]["hh-b"])


def test_a_gap_holds_everything_behind_it(engine, shift):
    ingest = Ingestor(engine)
    records = shift["records"]["hh-a"]
    result = ingest.ingest([("hh-a", encode_batch(records[:3] + records[4:]))])
    assert result.acks["hh-a"] == 3
    with Session(engine) as s:
        gap = s.exec(select(Anomaly).where(Anomaly.code == "seq_gap")).one()
        assert gap.seq == 4 and gap.device_id == "hh-a"
    result = ingest.ingest([("hh-a", encode_batch([records[3]]))])
    assert result.acks["hh-a"] == len(records)


def test_bad_input_is_an_anomaly_and_disturbs_nothing(engine, shift):
    ingest = Ingestor(engine)
    good = shift["records"]["hh-a"]
    bad_crc = bytearray(good[1])
    bad_crc[-1] ^= 1
    forged = rec.encode(dict(rec.decode(good[0]), device="hh-b"))
    changed = rec.encode(dict(rec.decode(good[0]), time=1))
    result = ingest.ingest([
        ("hh-a", b"\x07garbage"),
        ("hh-a", encode_batch([good[0], bytes(bad_crc), forged])),
        ("hh-zz", encode_batch([good[0]])),
        ("hh-a", encode_batch([changed])),
        ("hh-a", encode_batch(good[1:])),
    ])
    assert result.acks["hh-a"] == len(good)
    with Session(engine) as s:
        codes = sorted(a.code for a in s.exec(select(Anomaly)).all())
    assert codes == ["bad_batch", "device_mismatch", "record_bad_checksum", "replay_mismatch", "unknown_device"]


def test_a_cloned_card_is_flagged(engine, shift):
    ingest = Ingestor(engine)
    records = shift["records"]["hh-a"]
    ingest.ingest([("hh-a", encode_batch(records))])
    sale = next(rec.decode(r) for r in records if rec.decode(r)["kind"] == "sale")
    n = len(records)
    clone_sale = dict(sale, device="hh-b", seq=1, time=int(time.time()))
    outcome = {"kind": "outcome", "seq": 2, "time": 0, "device": "hh-b", "ref": 1, "result": "committed", "reason": ""}
    ingest.ingest([("hh-b", encode_batch([rec.encode(clone_sale), rec.encode(outcome)]))])
    with Session(engine) as s:
        flagged = s.exec(select(Anomaly).where(Anomaly.code == "counter_repeat")).one()
        assert flagged.card_no == sale["card_no"] and flagged.device_id == "hh-b"
        assert acked(s, "hh-a") == n


def test_duplicates_in_one_transaction_are_counted_and_dropped(engine, shift):
    records = shift["records"]["hh-a"]
    payload = encode_batch(records[:4])
    result = Ingestor(engine).ingest([("hh-a", payload), ("hh-a", payload)])
    assert result.duplicates == 4 and result.acks["hh-a"] == 4 and result.anomalies == 0
