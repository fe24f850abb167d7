"""Points and stored value end to end: a virtual handheld running the real firmware, the hub's ingest on real SQLite.

HQ's decisions (a refund, an expiry, a debt settlement, a referral award, a top-up
bonus) reach the card as card actions at its next tap, and the ledger follows what the
card got. The numbers are docs/loyalty.md's worked examples ("Points and stored value").
"""

import random
import re
from pathlib import Path

import pytest
from sqlmodel import Session, select

from hub import points, refunds, stored_value
from hub.cards import topup
from hub.db import make_engine, migrate
from hub.downlinks import actions_messages
from hub.ingest import Ingestor
from hub.masterdata import set_param
from hub.models import Anomaly, Card, CardAction, Device, LedgerEntry, Member, ReferralAward, Refund, Sale
from protocol import downlink as dl
from protocol.sync import encode_batch
from simulator.handheld import VirtualHandheld
from simulator.shop import PRICE_LIST, master_key, member_card, read_card_directly

MASTER = master_key(random.Random(7))
DAY = 86_400
CARD_1, CARD_2 = "9000000000000001", "9000000000000002"


class Shop:
    """One handheld, its cards, and the hub it syncs with (ingest called directly, downlinks handed over)."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
        migrate(self.engine)
        self.hh = self.handheld("hh-a")
        self.rng = random.Random(5)
        with Session(self.engine) as db:
            for n in (1, 2):
                db.add(Member(id=n, name=f"Member {n}", created=0))
            db.commit()

    def handheld(self, device_id: str) -> VirtualHandheld:
        """A new handheld in the shop (registered on the hub), fresh from HQ with its offline lease."""
        if hasattr(self, "hh"):
            self.hh.close()
        self.hh = VirtualHandheld(device_id, self.tmp_path, MASTER, PRICE_LIST)
        self.hh.boot()
        with Session(self.engine) as db:
            db.add(Device(id=device_id, shop="shop-1", password_hash="x", created=0))
            db.commit()
        return self.hh

    @property
    def now(self) -> int:
        return self.hh.clock.time()

    def card(self, number, balance=5000, points=0):
        return member_card(self.rng, MASTER, number, balance=balance, points=points, tier=0)

    def sync(self):
        entries = [data for _seq, data in self.hh.journal().entries()]
        messages = [(self.hh.device_id, encode_batch(entries[i : i + 20])) for i in range(0, len(entries), 20)]
        Ingestor(self.engine, now=lambda: self.now).ingest(messages)

    def deliver(self):
        """The pending card actions, as the bridge would send them to this handheld."""
        have = self.hh.terminal.status()["actions"]
        with Session(self.engine) as db:
            pending = list(db.exec(select(CardAction).where(CardAction.state == "pending")))
            newest = max([a.id or 0 for a in pending] + [have])
        for _to, payload in actions_messages(have, newest, pending):
            self.hh.terminal.downlink(dl.topic(self.hh.device_id, dl.ACTIONS), payload)

    def tap(self, card):
        """The member taps the card and walks away: pending actions are written, no sale."""
        self.hh.sell(card, [(101, 1)], cancel=True)

    def on_card(self, card):
        return read_card_directly(card, MASTER)["purse"]

    def hub(self, card_no):
        with Session(self.engine) as db:
            card = db.get(Card, card_no)
            assert card is not None
            entries = db.exec(select(LedgerEntry).where(LedgerEntry.card_no == card_no)).all()
            # The hub's mirror is the ledger's sum, always.
            assert card.balance == sum(e.amount for e in entries if e.account == "stored_value")
            assert card.points == sum(e.amount for e in entries if e.account == "points")
            return card.balance, card.points

    def last_sale(self):
        with Session(self.engine) as db:
            sale = db.exec(select(Sale).order_by(Sale.id.desc())).first()  # type: ignore[union-attr]
            assert sale is not None
            return sale.device_id, sale.seq

    def job(self, fn):
        """Run a points job now: the actions it queued, as (card, kind, points)."""
        with Session(self.engine) as db:
            out = [(a.card_no, a.kind, a.points) for a in fn(db, self.now)]
            db.commit()
            return out

    def close(self):
        self.hh.close()


@pytest.fixture
def shop(tmp_path):
    s = Shop(tmp_path)
    yield s
    s.close()


def test_a_refund_beyond_the_cards_points_leaves_a_debt_that_later_earnings_settle(shop):
    card = shop.card(1, balance=5000)
    # Two bags of beans by card: 25.80 from the stored value, 25 points earned.
    assert shop.hh.sell(card, [(301, 2)]) == "receipt"
    sale_a = None
    shop.sync()
    sale_a = shop.last_sale()
    # An espresso paid with those 25 points and 2.25 stored value: 2 points earned.
    shop.hh.clock.advance(60)
    assert shop.hh.sell(card, [(101, 1)], redeem_points=True) == "receipt"
    shop.sync()
    assert (shop.on_card(card)["balance"], shop.on_card(card)["points"]) == (5000 - 2580 - 225, 2)
    assert shop.hub(CARD_1) == (2195, 2)

    # HQ refunds the beans: 25.80 back on the card, the 25 points earned taken back. The card holds 2.
    with Session(shop.engine) as db:
        refund = refunds.refund_sale(db, "alice", shop.now, *sale_a)
        db.commit()
        assert (refund.total, refund.stored_value, refund.cash, refund.points_taken, refund.points_back) == (2580, 2580, 0, 25, 0)
    shop.deliver()
    shop.tap(card)
    shop.sync()
    assert (shop.on_card(card)["balance"], shop.on_card(card)["points"]) == (4775, 0)
    assert shop.hub(CARD_1) == (4775, 0)
    with Session(shop.engine) as db:
        assert points.debt_of(db, 1) == 23
        assert db.exec(select(Anomaly)).all() == []  # a deduction stopped at zero is no mismatch
        sale = db.exec(select(Sale).where(Sale.seq == sale_a[1])).one()
        assert refunds.refunded_total(db, [sale.id or 0]) == {sale.id: {"total": 2580, "paid": 2580}}

    # Twice the beans again (no stored value this time): 25 points, of which the debt takes 23.
    shop.hh.clock.advance(60)
    assert shop.hh.sell(card, [(301, 2)], pay_cash=True) == "receipt"
    shop.sync()
    assert shop.job(points.settle_debts) == [(CARD_1, "debt", -23)]
    assert shop.job(points.settle_debts) == []  # one settlement at a time
    shop.deliver()
    shop.tap(card)
    shop.sync()
    assert shop.on_card(card)["points"] == 2 and shop.hub(CARD_1) == (4775, 2)
    with Session(shop.engine) as db:
        assert points.debt_of(db, 1) == 0
        st = points.statement(db, 1, shop.now)
        assert st["totals"] == {"earned": 52, "redeemed": 25, "expired": 0, "reversals": -25, "other": 0}
        assert st["points"] == 52 - 25 - 0 - 25 == 2


def test_points_expire_by_lots_once_and_the_card_learns_it(shop):
    card = shop.card(2, balance=0)
    with Session(shop.engine) as db:
        set_param(db, "alice", shop.now, "points.validity_days", 30)
        db.commit()
    day0 = shop.now
    assert shop.hh.sell(card, [(301, 1)], pay_cash=True) == "receipt"  # 12 points, lot 1 (day 0)
    shop.hh.clock.advance(10 * DAY)
    assert shop.hh.sell(card, [(202, 1)], pay_cash=True) == "receipt"  # 6 points, lot 2 (day 10)
    shop.hh.clock.advance(10 * DAY)
    # Day 20: an espresso (2.50) with all 18 points (lots 1 and 2 used up) and 2.32 cash: 2 points, lot 3.
    assert shop.hh.sell(card, [(101, 1)], redeem_points=True) == "receipt"
    shop.sync()
    with Session(shop.engine) as db:
        st = points.statement(db, 2, shop.now)
        assert st["points"] == 2 and [(lot["points"], lot["left"]) for lot in st["lots"]] == [(2, 2)]
    assert shop.hh.sell(card, [(301, 1)], pay_cash=True) == "receipt"  # day 20: 12 points, lot 4
    shop.hh.clock.advance(5 * DAY)
    assert shop.hh.sell(card, [(201, 1)], pay_cash=True) == "receipt"  # day 25: 5 points, lot 5
    shop.sync()
    shop.hh.clock.advance(26 * DAY)  # day 51: lots 3 and 4 (expiring day 50) are due, lot 5 (day 55) is not
    with Session(shop.engine) as db:
        st = points.statement(db, 2, shop.now)
        assert [(lot["points"], lot["left"], lot["expires"]) for lot in st["lots"]] == [
            (2, 2, day0 + 50 * DAY), (12, 12, day0 + 50 * DAY), (5, 5, day0 + 55 * DAY)]
        assert st["due"] == 14
    assert shop.job(points.expire_due) == [(CARD_2, "expire", -14)]
    assert shop.job(points.expire_due) == []  # run twice: nothing expires twice
    shop.deliver()
    shop.tap(card)
    shop.sync()
    assert shop.on_card(card)["points"] == 5 and shop.hub(CARD_2)[1] == 5
    assert shop.job(points.expire_due) == []
    with Session(shop.engine) as db:
        st = points.statement(db, 2, shop.now)
        assert st["totals"] == {"earned": 37, "redeemed": 18, "expired": 14, "reversals": 0, "other": 0}
        assert [(lot["left"]) for lot in st["lots"]] == [5]


def test_a_referrer_earns_on_the_referred_members_sales_once(shop):
    referrer, referred = shop.card(1, balance=0), shop.card(2, balance=0)
    with Session(shop.engine) as db:
        set_param(db, "alice", shop.now, "points.referral_bps", 1000)  # 10% of what the spend earns
        points.set_referrer(db, "alice", shop.now, 2, 1)
        db.commit()
    assert shop.hh.sell(referrer, [(101, 1)], pay_cash=True) == "receipt"  # the referrer's card is on the hub
    assert shop.hh.sell(referred, [(301, 10)], pay_cash=True) == "receipt"  # 129.00: 129 points, the referrer 12
    shop.sync()
    assert shop.job(points.award_referrals) == [(CARD_1, "referral", 12)]
    assert shop.job(points.award_referrals) == []
    shop.deliver()
    shop.tap(referrer)
    shop.sync()
    assert shop.on_card(referrer)["points"] == 2 + 12 and shop.hub(CARD_1)[1] == 14


def referral_refund_steps():
    """docs/loyalty.md's table "Refunds take referral points back": {step: (kept, taken, card, debt)}."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "loyalty.md").read_text()
    table = doc[doc.index("### Refunds take referral points back"):doc.index("### Top-up bonuses")]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in re.findall(r"^\| \d \|.*$", table, re.M)]
    assert len(rows) == 5, rows
    return {int(r[0]): tuple(int(c) if c else None for c in r[2:]) for r in rows}


def test_a_refund_takes_back_the_referral_award_in_proportion_and_never_twice(shop):
    steps = referral_refund_steps()
    referrer, referred = shop.card(1, balance=0), shop.card(2, balance=0)
    with Session(shop.engine) as db:
        set_param(db, "alice", shop.now, "points.referral_bps", 1000)
        points.set_referrer(db, "alice", shop.now, 2, 1)
        db.commit()

    def tap_referrer():
        shop.deliver()
        shop.tap(referrer)
        shop.sync()

    def refund(sale, lines):
        with Session(shop.engine) as db:
            r = refunds.refund_sale(db, "alice", shop.now, sale[0], sale[1], lines)
            db.commit()
            return r.referral_points

    def check(step, kept, taken_now, award_sale):
        want_kept, want_taken, want_card, want_debt = steps[step]
        with Session(shop.engine) as db:
            award = db.get(ReferralAward, award_sale)
            taken = sum(r.referral_points for r in db.exec(select(Refund).where(Refund.sale_id == award_sale)))
            assert award is not None and award.points - taken == want_kept == kept, step
            assert points.debt_of(db, 1) == want_debt, step
        assert taken_now == (want_taken or 0), step
        assert shop.on_card(referrer)["points"] == want_card == shop.hub(CARD_1)[1], step

    def sale_id():
        with Session(shop.engine) as db:
            return db.exec(select(Sale.id).order_by(Sale.id.desc())).first()  # type: ignore[union-attr]

    assert shop.hh.sell(referrer, [(101, 1)], pay_cash=True) == "receipt"  # the referrer's own 2 points
    # 1: sale A, 10 beans in cash; the award job gives the referrer 12.
    assert shop.hh.sell(referred, [(301, 10)], pay_cash=True) == "receipt"
    shop.sync()
    sale_a, id_a = shop.last_sale(), sale_id()
    assert shop.job(points.award_referrals) == [(CARD_1, "referral", 12)]
    tap_referrer()
    check(1, 12, 0, id_a)
    # 2: the referrer spends them.
    assert shop.hh.sell(referrer, [(101, 1)], redeem_points=True, pay_cash=True) == "receipt"
    shop.sync()
    assert shop.on_card(referrer)["points"] == steps[2][2]
    # 3: 3 beans of A refunded: the award keeps 9, 3 are taken back from a card holding 2: a debt of 1.
    taken = refund(sale_a, [(301, 3)])
    tap_referrer()
    check(3, 9, taken, id_a)
    # 4: sale B, 2 of its 5 beans refunded before the award job: the job awards on what is left, nothing is taken back.
    assert shop.hh.sell(referred, [(301, 5)], pay_cash=True) == "receipt"
    shop.sync()
    sale_b, id_b = shop.last_sale(), sale_id()
    taken = refund(sale_b, [(301, 2)])
    assert shop.job(points.award_referrals) == [(CARD_1, "referral", 3)]
    tap_referrer()
    check(4, 3, taken, id_b)
    # 5: the rest of A: the last 9 of its award, from a card holding 3.
    taken = refund(sale_a, None)
    tap_referrer()
    check(5, 0, taken, id_a)
    with Session(shop.engine) as db:
        assert sum(r.referral_points for r in db.exec(select(Refund).where(Refund.sale_id == id_a))) == 12
        took = db.exec(select(CardAction).where(CardAction.card_no == CARD_1, CardAction.kind == "refund")).all()
        assert [(a.points, a.state) for a in took] == [(-3, "applied"), (-9, "applied")]
        st = points.statement(db, 1, shop.now)
        assert st["points"] - st["debt"] == 2 + 12 + 2 - 14 + 3 - 12  # earned - redeemed - what the refunds asked


def test_a_top_up_with_its_bonus_reaches_the_card_and_the_liability_adds_up(shop):
    card = shop.card(1, balance=1000)
    assert shop.hh.sell(card, [(101, 1)], pay_cash=True) == "receipt"
    shop.sync()
    with Session(shop.engine) as db:
        stored_value.save_bonus_rules(db, "alice", shop.now, [[50000, 5000], [20000, 1500]])
        action = topup(db, "alice", shop.now, CARD_1, 50000)
        db.commit()
        assert action.amount == 55000
        report = stored_value.liability(db)
        assert report == {"cards": 1000, "pending": 55000, "pending_topups": 55000, "liability": 56000,
                          "ledger": 1000, "balanced": True}
    shop.deliver()
    shop.tap(card)
    shop.sync()
    assert shop.on_card(card)["balance"] == 56000
    with Session(shop.engine) as db:
        assert stored_value.liability(db)["liability"] == 56000 == stored_value.liability(db)["ledger"]
        cash = db.exec(select(LedgerEntry).where(LedgerEntry.account == "cash", LedgerEntry.card_no == CARD_1)).all()
        assert sum(e.amount for e in cash) == 50000 + 250  # HQ took 500.00; the bonus is no cash

