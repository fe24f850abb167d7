"""The points identity, for random sequences of sales, refunds, expiries and debt settlements (issue 7, item 8).

Each example is a fresh member and card on one virtual handheld (the real firmware) and
one hub (real ingest, real SQLite). After every step what HQ queued is delivered and the
card tapped, so the card, the hub and the ledger must agree, and:

    points on the card = earned - redeemed - expired + reversals   (never below zero)
    points - debt      = earned - redeemed - expired + what the refunds asked (given back - taken back)
"""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from hub import points, refunds
from hub.masterdata import set_param
from hub.models import CardAction, Member, Refund, Sale
from tests.test_points_card import DAY, Shop

ITEMS = [101, 102, 103, 201, 301]
step = st.one_of(
    st.tuples(st.just("sale"), st.sampled_from(ITEMS), st.integers(1, 3), st.booleans(), st.booleans()),
    st.tuples(st.just("refund"), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("expire"), st.integers(1, 12)),
    st.tuples(st.just("settle")),
)
numbers = itertools.count(10)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    s = Shop(tmp_path_factory.mktemp("points-property"))
    with Session(s.engine) as db:
        set_param(db, "alice", s.now, "points.validity_days", 7)
        db.commit()
    yield s
    s.close()


def settle_actions(shop, card, card_no):
    """Deliver whatever HQ queued and tap until the card has applied it all."""
    for _ in range(3):
        with Session(shop.engine) as db:
            if db.exec(select(CardAction).where(CardAction.state == "pending", CardAction.card_no == card_no)).first() is None:
                return
        shop.deliver()
        shop.tap(card)
        shop.sync()
    raise AssertionError("actions still pending after three taps")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_points_equal_earned_minus_redeemed_minus_expired_plus_reversals(shop, steps):
    number = next(numbers)
    shop.handheld(f"hh-{number}")  # each example on a handheld of its own, its offline lease fresh
    card_no = f"9{number:015d}"
    with Session(shop.engine) as db:
        db.add(Member(id=number, name=f"Member {number}", created=0))
        db.commit()
    card = shop.card(number, balance=3000, points=40)
    assert shop.hh.sell(card, [(103, 1)], pay_cash=True) == "receipt"  # the hub learns the card (and its 40 points)
    shop.sync()
    for s in steps:
        if s[0] == "sale":
            _kind, item, qty, redeem, cash = s
            assert shop.hh.sell(card, [(item, qty)], redeem_points=redeem, pay_cash=cash) == "receipt"
            shop.sync()
        elif s[0] == "refund":
            _kind, pick, whole = s
            with Session(shop.engine) as db:
                sales = db.exec(select(Sale).where(Sale.card_no == card_no, Sale.state == "committed")
                                .order_by(Sale.id)).all()  # type: ignore[arg-type]
                sale = sales[pick % len(sales)]
                lines = None if whole else [next(iter(refunds.sold_lines(db, sale).items()))[0:1] + (1,)]
                try:
                    refunds.refund_sale(db, "alice", shop.now, sale.device_id, sale.seq, lines)
                    db.commit()
                except refunds.RefundError:
                    db.rollback()  # refunded already: refused, nothing written
        elif s[0] == "expire":
            shop.hh.clock.advance(s[1] * DAY)
            shop.job(points.expire_due)
        else:
            shop.job(points.settle_debts)
        settle_actions(shop, card, card_no)
        assert shop.on_card(card)["points"] >= 0

    on_card = shop.on_card(card)["points"]
    assert shop.hub(card_no)[1] == on_card
    with Session(shop.engine) as db:
        st_ = points.statement(db, number, shop.now)
        t = st_["totals"]
        assert t["other"] == 0
        assert on_card == t["earned"] - t["redeemed"] - t["expired"] + t["reversals"]
        # The same from the records themselves, and the debt: what the card could not give is owed.
        sales = db.exec(select(Sale).where(Sale.card_no == card_no, Sale.state == "committed")).all()
        asked = db.exec(select(Refund).where(Refund.card_no == card_no)).all()
        expired = db.exec(select(CardAction).where(CardAction.card_no == card_no, CardAction.kind == "expire")).all()
        earned = 40 + sum(s.points_earned for s in sales)
        redeemed = sum(s.points_redeemed for s in sales)
        assert t["earned"] == earned and t["redeemed"] == redeemed
        assert t["expired"] <= -sum(a.points for a in expired)
        assert on_card - st_["debt"] == earned - redeemed - t["expired"] + sum(r.points_back - r.points_taken for r in asked)
        assert st_["debt"] >= 0
