"""Tier reviews on a virtual clock: upgrades with their gift pack once, downgrades after validity, history, bad rules refused.

The numbers are docs/loyalty.md's worked example ("Tiers, tags and plans"); the test
checks the reasons it prints there, word for word.
"""

import json

import pytest
from sqlmodel import Session, col, select

from hub import tiers
from hub.activity import activity
from hub.models import Card, CardAction, CouponGrant, Member, TierChange, TierGift, TierRules
from tests.plans_world import add_member, at, buy, card_no, doc_text, give_card, hub_db

RULES = {
    "measure": "spend", "window_days": 365, "validity_days": 365, "review": "monthly",
    "tiers": [
        {"tier": 1, "threshold": 20000, "gift_points": 100},
        {"tier": 2, "threshold": 50000, "gift_points": 500, "gift_coupons": [7]},
    ],
}


def world(tmp_path):
    """Ana buys 300.00 and 250.00 before the March review; Ben 210.00 and has no card yet."""
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        tiers.save_rules(db, "hq", at("2025-01-01"), RULES, "the first rules")
        ana = add_member(db, "Ana", at("2025-01-01"))
        ben = add_member(db, "Ben", at("2025-01-01"), card=False)
        buy(db, ana, 30000, at("2025-01-20"))
        buy(db, ana, 25000, at("2025-02-10"))
        buy(db, ana, 25000, at("2025-09-15"))
        db.commit()
    return engine, ana, ben


def tier_of(db: Session, member_id: int) -> int:
    member = db.get(Member, member_id)
    assert member is not None
    return member.tier


def snapshot(db: Session) -> tuple:
    return (
        [(m.id, m.tier) for m in db.exec(select(Member).order_by(col(Member.id)))],
        len(db.exec(select(TierChange)).all()),
        len(db.exec(select(TierGift)).all()),
        len(db.exec(select(CardAction)).all()),
        len(db.exec(select(CouponGrant)).all()),
    )


def test_upgrade_grants_the_gift_pack_once_and_downgrade_waits_for_validity(tmp_path):
    engine, ana, ben = world(tmp_path)
    doc = doc_text()
    with Session(engine) as db:
        give_card(db, ben, at("2025-02-01"))
        buy(db, ben, 21000, at("2025-02-15"))
        # Ben's card is lost before the review: his gift points wait for a card.
        card = db.get(Card, card_no(ben))
        assert card is not None
        card.state = "lost"
        db.add(card)
        db.commit()

        march = tiers.review_tiers(db, at("2025-03-01"))
        db.commit()
        assert march is not None and (march.upgrades, march.downgrades, march.rules_version) == (2, 0, 1)
        assert tier_of(db, ana) == 2 and tier_of(db, ben) == 1
        ana_up = tiers.history(db, ana)[-1]
        assert (ana_up.from_tier, ana_up.to_tier, ana_up.rules_version) == (0, 2, 1)
        assert ana_up.reason == "spend 550.00 in the last 365 days reaches tier 2's 500.00 (rules v1)"
        assert ana_up.reason in doc
        # Ana's gift pack: 500 points on her card (a card action) and coupon template 7; tier 1's is not given too.
        gifts = db.exec(select(TierGift).where(TierGift.member_id == ana)).all()
        assert [(g.tier, g.points, g.card_no) for g in gifts] == [(2, 500, card_no(ana))]
        points = db.exec(select(CardAction).where(CardAction.card_no == card_no(ana), CardAction.kind == "transfer")).all()
        assert [(a.points, a.amount, a.state) for a in points] == [(500, 0, "pending")]
        assert [c.template_id for c in db.exec(select(CouponGrant).where(CouponGrant.member_id == ana))] == [7]
        tier_actions = db.exec(select(CardAction).where(CardAction.card_no == card_no(ana), CardAction.kind == "tier")).all()
        assert [a.tier for a in tier_actions] == [2]
        ben_gift = db.exec(select(TierGift).where(TierGift.member_id == ben)).one()
        assert (ben_gift.points, ben_gift.action_id) == (100, None)

        # The same review again at the same time changes nothing; later in March it is not due.
        before = snapshot(db)
        again = tiers.review_tiers(db, at("2025-03-01"), force=True)
        db.commit()
        assert again is not None and (again.upgrades, again.downgrades, again.renewals) == (0, 0, 0)
        assert snapshot(db) == before
        assert tiers.review_tiers(db, at("2025-03-20")) is None

        # Ben gets a new card: the next review delivers his waiting gift points to it.
        db.add(Card(card_no="9100000099999999", uid="99999999", member_id=ben, tier=1, issued=at("2025-03-10")))
        db.commit()
        assert tiers.review_tiers(db, at("2025-04-01")) is not None
        db.commit()
        ben_gift = db.exec(select(TierGift).where(TierGift.member_id == ben)).one()
        assert ben_gift.card_no == "9100000099999999" and ben_gift.action_id is not None

        # Mid-February 2026: Ana's spend in the window is 250.00 (below Gold), but Gold holds until 2026-03-01.
        feb = at("2026-02-15")
        rules = tiers.current_rules(db)
        assert rules is not None
        assert tiers.growth(rules, activity(db, feb - 365 * 86400, feb, [ana])[ana]) == 25000
        assert "| 2026-02-15 | 250.00 | stays Gold: its validity lasts |" in doc
        assert tiers.review_tiers(db, feb) is not None
        db.commit()
        assert tier_of(db, ana) == 2

        # March 2026: validity is over; 250.00 in the window keeps Silver only.
        review = tiers.review_tiers(db, at("2026-03-01"))
        db.commit()
        assert review is not None and review.downgrades >= 1
        assert tier_of(db, ana) == 1
        down = tiers.history(db, ana)[-1]
        assert (down.from_tier, down.to_tier, down.rules_version) == (2, 1, 1)
        assert down.reason == "tier 2 held until 2026-03-01; spend 250.00 in the last 365 days is below its 500.00 (rules v1)"
        assert down.reason in doc
        # A downgrade grants nothing; Ana never got Silver's gift, and never gets Gold's twice.
        assert [g.tier for g in db.exec(select(TierGift).where(TierGift.member_id == ana))] == [2]

        # Up again to Gold under the same rules: no second gift pack.
        buy(db, ana, 30000, at("2026-03-05"))
        db.commit()
        assert tiers.review_tiers(db, at("2026-04-01")) is not None
        db.commit()
        assert tier_of(db, ana) == 2
        assert [g.tier for g in db.exec(select(TierGift).where(TierGift.member_id == ana))] == [2]
        history = [(h.from_tier, h.to_tier) for h in tiers.history(db, ana)]
        assert history == [(0, 2), (2, 1), (1, 2)]


def test_a_tier_still_reached_at_the_end_of_its_validity_is_renewed(tmp_path):
    engine, ana, _ben = world(tmp_path)
    with Session(engine) as db:
        tiers.review_tiers(db, at("2025-03-01"))
        buy(db, ana, 60000, at("2026-02-01"))
        db.commit()
        review = tiers.review_tiers(db, at("2026-03-01"))
        db.commit()
        assert review is not None and review.renewals == 1
        assert tier_of(db, ana) == 2
        assert [(h.from_tier, h.to_tier) for h in tiers.history(db, ana)] == [(0, 2)]


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"tiers": [{"tier": 1, "threshold": 50000}, {"tier": 2, "threshold": 50000}]}, "overlapping_tiers",
         "tier 2 needs 50000, not more than tier 1's 50000"),
        ({"tiers": [{"tier": 1, "threshold": 60000}, {"tier": 2, "threshold": 50000}]}, "overlapping_tiers",
         "a higher tier must need strictly more"),
        ({"tiers": [{"tier": 1, "threshold": -5}]}, "bad_number", "tier 1's threshold must be a whole number"),
        ({"window_days": 0}, "bad_number", "window_days must be a whole number from 1"),
        ({"measure": "visits"}, "bad_measure", "measure must be one of spend, points, topup"),
        ({"tiers": [{"tier": 1, "threshold": 100, "gift_points": -1}]}, "bad_number", "gift_points"),
        ({"tiers": [{"tier": 3, "threshold": 100}]}, "no_tier", "no tier 3: define it first"),
    ],
)
def test_contradicting_rules_are_refused_and_nothing_changes(tmp_path, change, code, words):
    engine, _ana, _ben = world(tmp_path)
    with Session(engine) as db:
        with pytest.raises(tiers.TierRuleError) as refused:
            tiers.save_rules(db, "hq", at("2025-02-01"), {**RULES, **change})
        db.rollback()
        assert refused.value.code == code and words in refused.value.message
        assert [r.version for r in db.exec(select(TierRules))] == [1]
        assert json.loads(tiers.rules_version(db, 1).body)["tiers"][1]["threshold"] == 50000


def test_rules_are_versioned_and_a_review_records_the_version_it_used(tmp_path):
    engine, ana, _ben = world(tmp_path)
    with Session(engine) as db:
        same, new = tiers.save_rules(db, "hq", at("2025-02-01"), RULES)
        assert (same.version, new) == (1, False)
        cheaper = {**RULES, "tiers": [{"tier": 1, "threshold": 10000}, {"tier": 2, "threshold": 40000, "gift_points": 800}]}
        row, new = tiers.save_rules(db, "hq", at("2025-02-02"), cheaper, "cheaper gold")
        db.commit()
        assert (row.version, new) == (2, True)
        assert [r.version for r in db.exec(select(TierRules).order_by(col(TierRules.version)))] == [1, 2]
        tiers.review_tiers(db, at("2025-03-01"))
        db.commit()
        assert tiers.history(db, ana)[-1].rules_version == 2
        assert db.exec(select(TierGift).where(TierGift.member_id == ana)).one().points == 800


def test_review_decisions_are_a_pure_function():
    rules = tiers.parse_rules(RULES, 1)
    now = at("2025-03-01")
    assert tiers.review(0, 0, 19999, rules, now).kind == "keep"
    up = tiers.review(0, 0, 20000, rules, now)
    assert (up.kind, up.tier, up.until) == ("upgrade", 1, now + 365 * 86400)
    assert tiers.review(2, now + 1, 0, rules, now).kind == "keep"  # validity not over
    down = tiers.review(2, now, 0, rules, now)
    assert (down.kind, down.tier, down.until) == ("downgrade", 0, 0)
    assert tiers.review(5, 0, 0, rules, now).kind == "keep"  # a tier the rules do not name: set by hand
