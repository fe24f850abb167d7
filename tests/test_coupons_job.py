"""The coupons job: a plan's coupon grants become coupons that night, and coupons past their last day show as expired.

Real SQLite and the real scheduler on a virtual clock.
"""

from sqlmodel import Session, select

from hub import coupons, plans, scheduler
from hub.models import Coupon, CouponGrant
from tests.plans_world import add_member, at, buy, hub_db


def test_grants_become_coupons_at_night_and_unused_ones_expire_after_their_last_day(tmp_path):
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        ana = add_member(db, "Ana", at("2025-01-01"))
        ben = add_member(db, "Ben", at("2025-01-01"))
        add_member(db, "Cleo", at("2025-01-01"), card=False)  # no card yet: her grant waits
        for member in (ana, ben):
            buy(db, member, 1000, at("2025-05-20"))
        t = coupons.add_template(db, "hq", 0, "3.00 off", "fixed", 300, valid_days=7)
        plans.add_plan(db, "hq", at("2025-05-01"), "Come back", {
            "when": {"schedule": "monthly", "day": 1}, "actions": [{"coupon": t.id}]})
        db.commit()

    night = at("2025-06-01T22:00")
    runs = {r.job: r for r in scheduler.run_due(engine, night)}
    assert runs["plans"].ok and runs["coupons"].ok
    assert runs["coupons"].summary == "2 grants issued as coupons, 1 waiting; 0 coupons expired"
    with Session(engine) as db:
        assert len(db.exec(select(CouponGrant)).all()) == 3
        listed = {c["member_id"]: (c["state"], c["from"], c["until"]) for c in coupons.coupons(db)}
        assert listed == {ana: ("issued", "2025-06-01", "2025-06-07"), ben: ("issued", "2025-06-01", "2025-06-07")}
        # Ben spends his on its last day (the sale syncs and the hub marks it redeemed).
        bens = db.exec(select(Coupon).where(Coupon.member_id == ben)).one()
        bens.redeemed, bens.redeemed_device, bens.redeemed_seq = at("2025-06-07T18:00"), "hh-north", 99
        db.add(bens)
        db.commit()

    # On its last day a coupon is still good; the night after, Ana's unused one is expired. Ben's stays redeemed.
    assert "0 coupons expired" in scheduler.run_job(engine, scheduler.job_named("coupons"), at("2025-06-07T22:00")).summary
    assert "1 coupons expired" in scheduler.run_job(engine, scheduler.job_named("coupons"), at("2025-06-08T22:00")).summary
    assert "0 coupons expired" in scheduler.run_job(engine, scheduler.job_named("coupons"), at("2025-06-09T22:00")).summary
    with Session(engine) as db:
        states = {c["member_id"]: c["state"] for c in coupons.coupons(db)}
        assert states == {ana: "expired", ben: "redeemed"}
        anas = db.exec(select(Coupon).where(Coupon.member_id == ana)).one()
        assert anas.expired == at("2025-06-08T22:00")
