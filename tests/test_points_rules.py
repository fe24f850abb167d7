"""The points and stored-value rules: docs/loyalty.md's worked examples (read from the doc) and bad input refused.

The hub-side refusals run on a real SQLite hub with a sale a real handheld made and synced.
"""

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from hub import points, refunds, stored_value
from hub.models import AuditEntry, CardAction, LedgerEntry, Member, Refund, TopupBonusRules
from hub.points import DAY, Move, project_lots
from tests.test_points_card import Shop

DOC = Path(__file__).resolve().parent.parent / "docs" / "loyalty.md"


def section(heading: str) -> str:
    text = DOC.read_text()
    part = text[text.index("## Points and stored value"):]
    start = part.index(f"### {heading}")
    end = part.find("\n### ", start + 1)
    return part[start : end if end > 0 else len(part)]


def table(heading: str) -> list[list[str]]:
    """The rows of the first table under a heading of the section, as cells."""
    rows = [ln for ln in section(heading).splitlines() if ln.startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]


# -- lots ------------------------------------------------------------------------------------------


def test_lots_expire_oldest_first_as_the_doc_says():
    moves = [Move(int(day) * DAY, int(pts), kind) for day, kind, pts in table("Lots and expiry")]
    lots, deficit = project_lots(moves, 30)
    assert [(lot.left, lot.expires // DAY) for lot in lots if lot.left] == [(2, 50), (12, 50), (5, 55)]
    assert points.due(lots, 51 * DAY) == 14 and points.due(lots, 50 * DAY - 1) == 0
    assert deficit == 0
    assert "**14 points are due**" in section("Lots and expiry")


def test_a_deficit_is_filled_before_a_new_lot_opens():
    lots, deficit = project_lots([Move(0, 5, "earned"), Move(1, -8, "reversal")], 30)
    assert deficit == 3 and lots[0].left == 0
    lots, deficit = project_lots([Move(0, 5, "earned"), Move(1, -8, "reversal"), Move(2, 10, "earned")], 30)
    assert deficit == 0 and [(lot.points, lot.left) for lot in lots] == [(5, 0), (7, 7)]
    assert project_lots([Move(0, 5, "earned")], 0)[0][0].expires == 0  # validity 0: never


def test_debt_changes_by_action_kind():
    assert points.debt_change("refund", -25, -2) == 23
    assert points.debt_change("refund", -25, -25) == 0
    assert points.debt_change("refund", 10, 10) == 0
    assert points.debt_change("expire", -14, -5) == 0  # points that are not there do not expire
    assert points.debt_change("debt", -23, -20) == -20
    assert points.applied_as_requested(-25, -2) and not points.applied_as_requested(-25, -30)
    assert not points.applied_as_requested(10, 0)


# -- refunds, referrals, bonuses: the doc's tables ---------------------------------------------------


DOC_SALE = {"subtotal": 2830, "stored_value": 2000, "cash": 430, "points_redeemed": 400, "points_value": 400,
            "points_earned": 24}


def test_refund_shares_as_the_doc_says():
    first, rest = table("Refunds")
    a = refunds.refund_split(DOC_SALE, 0, 1290)
    b = refunds.refund_split(DOC_SALE, 1290, 2830)
    for row, got in ((first, a), (rest, b)):
        assert [int(c) for c in row[1:]] == [got["stored_value"], got["cash"], got["points_redeemed"],
                                             got["points_earned"], got["total"]]
    assert a["total"] + b["total"] == 2830


def test_lines_to_refund_refuses_more_than_was_sold():
    sold = {301: (2, 1290), 101: (1, 250)}
    assert refunds.lines_to_refund(sold, {}, None) == {301: 2, 101: 1}
    assert refunds.lines_to_refund(sold, {301: 1}, [(301, 1)]) == {301: 1}
    for done, asked, code in [
        ({301: 1}, [(301, 2)], "too_much"),
        ({}, [(202, 1)], "not_sold"),
        ({}, [(301, 0)], "bad_lines"),
        ({}, [(301, 1), (301, 1)], "bad_lines"),
        ({301: 2, 101: 1}, None, "refunded"),
    ]:
        with pytest.raises(refunds.RefundError) as err:
            refunds.lines_to_refund(sold, done, asked)
        assert err.value.code == code


def test_referral_points_as_the_doc_says():
    for paid, earn, bps, expected in table("Referral points"):
        assert points.referral_points(int(paid), int(earn), int(bps)) == int(expected)


def test_bonuses_as_the_doc_says():
    rules = stored_value.check_thresholds([[50000, 5000], [20000, 1500]])
    assert "`200.00=15.00 500.00=50.00`" in section("Top-up bonuses")
    for paid, bonus in table("Top-up bonuses"):
        assert stored_value.bonus_of(rules, int(paid)) == int(bonus)


@pytest.mark.parametrize("rules, code", [
    ([[50000, -5000]], "bad_bonus"),
    ([[500, 600]], "bad_bonus"),
    ([[0, 0]], "bad_bonus"),
    ([[20000, 1500], [20000, 2000]], "overlapping_bonus"),
    ([[20000, 1500], [50000, 1000]], "overlapping_bonus"),
    ([[20000, 1.5]], "bad_bonus"),
    ("pay 500 get 50", "bad_bonus"),
])
def test_contradictory_bonus_rules_are_refused(rules, code):
    with pytest.raises(stored_value.StoredValueError) as err:
        stored_value.check_thresholds(rules)
    assert err.value.code == code


# -- at the hub: refused means nothing changed ---------------------------------------------------------


@pytest.fixture
def shop(tmp_path):
    s = Shop(tmp_path)
    yield s
    s.close()


def snapshot(db):
    return {model.__name__: len(db.exec(select(model)).all())
            for model in (Refund, CardAction, LedgerEntry, AuditEntry, TopupBonusRules)}


def test_refunds_and_rules_refused_change_nothing(shop):
    card = shop.card(1, balance=5000)
    assert shop.hh.sell(card, [(301, 2), (101, 1)]) == "receipt"
    shop.sync()
    device, seq = shop.last_sale()
    with Session(shop.engine) as db:
        refunds.refund_sale(db, "alice", shop.now, device, seq, [(301, 1)])
        db.commit()
        before = snapshot(db)
        for call, code in [
            (lambda: refunds.refund_sale(db, "alice", shop.now, device, seq, [(301, 2)]), "too_much"),
            (lambda: refunds.refund_sale(db, "alice", shop.now, device, seq + 99), "no_sale"),
            (lambda: stored_value.save_bonus_rules(db, "alice", shop.now, [[500, -1]]), "bad_bonus"),
            (lambda: stored_value.save_bonus_rules(db, "alice", shop.now, [[500, 50]], 1000, 999), "bad_period"),
            (lambda: points.set_referrer(db, "alice", shop.now, 1, 1), "bad_referrer"),
        ]:
            with pytest.raises(Exception) as err:
                call()
            assert getattr(err.value, "code", "") == code, err.value
            db.rollback()
            assert snapshot(db) == before
        refunds.refund_sale(db, "alice", shop.now, device, seq)  # the rest: 1 bean bag and the espresso
        db.commit()
        with pytest.raises(refunds.RefundError) as again:
            refunds.refund_sale(db, "alice", shop.now, device, seq)
        assert again.value.code == "refunded"
        got = db.exec(select(Refund)).all()
        assert sum(r.total for r in got) == 2830 and sum(r.stored_value for r in got) == 2830


def test_a_referral_is_set_once_and_never_loops(shop):
    with Session(shop.engine) as db:
        db.add(Member(id=3, name="Member 3", created=0))
        points.set_referrer(db, "alice", shop.now, 2, 1)
        points.set_referrer(db, "alice", shop.now, 3, 2)
        db.commit()
        for member, referrer, code in [(2, 3, "referrer_set"), (1, 3, "bad_referrer"), (1, 99, "no_member")]:
            with pytest.raises(Exception) as err:
                points.set_referrer(db, "alice", shop.now, member, referrer)
            assert getattr(err.value, "code", "") == code
            db.rollback()
        assert db.get(Member, 1).referrer_id is None  # type: ignore[union-attr]


def test_bonus_rule_versions_apply_by_time(shop):
    with Session(shop.engine) as db:
        stored_value.save_bonus_rules(db, "alice", 100, [[20000, 1500]], effective_from=1000, until=2000)
        stored_value.save_bonus_rules(db, "alice", 100, [[20000, 1000]], effective_from=1500)
        db.commit()
        assert stored_value.bonus_for(db, 20000, 999) == (0, 0)
        assert stored_value.bonus_for(db, 20000, 1000) == (1500, 1)
        assert stored_value.bonus_for(db, 20000, 1500) == (1000, 2)  # the newest version in force wins
        assert [r["thresholds"] for r in stored_value.list_rules(db)] == [[[20000, 1500]], [[20000, 1000]]]
        assert json.loads(db.get(TopupBonusRules, 1).body) == [[20000, 1500]]  # type: ignore[union-attr]
