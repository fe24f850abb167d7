"""Targeted plans on a virtual clock: whom a run reaches and its log, events, re-runs on responders, promotions; badges."""

import json

import pytest
from sqlmodel import Session, col, select

from hub import badges, members, plans
from hub.masterdata import add_price_list, save_product, shop_prices
from hub.models import CouponGrant, MemberBadge, Notification, PlanRun, PlanRunMember
from tests.plans_world import add_member, at, buy, doc_text, hub_db

WIN_BACK = {
    "when": {"schedule": "monthly", "day": 1},
    "audience": {"tiers": [1, 2], "not_bought_within_days": 30},
    "actions": [{"coupon": 7}, {"notify": "Hello {name}, we miss you"}],
    "response_days": 14,
}


def world(tmp_path):
    """Ana (Gold, bought lately), Ben (Silver, bought in March), Cleo (Gold, never bought), Dan (tier 0, not lately)."""
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        ids = {}
        for name, tier in (("Ana", 2), ("Ben", 1), ("Cleo", 2), ("Dan", 0)):
            ids[name] = add_member(db, name, at("2025-01-01"))
            if tier:
                members.set_tier(db, "hq", at("2025-01-02"), ids[name], tier, "by hand")
        buy(db, ids["Ana"], 4000, at("2025-05-20"))
        buy(db, ids["Ben"], 2500, at("2025-03-01"), shop="south")
        buy(db, ids["Dan"], 1000, at("2025-02-01"))
        db.commit()
    return engine, ids


def names(db: Session, ids: dict[str, int], run: PlanRun) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return sorted(by_id[m] for m in plans.reached(db, run.id or 0))


def test_a_scheduled_plan_reaches_exactly_the_filtered_members_and_logs_it(tmp_path):
    engine, ids = world(tmp_path)
    doc = doc_text()
    with Session(engine) as db:
        plan = plans.add_plan(db, "hq", at("2025-05-15"), "Win back", WIN_BACK)
        db.commit()
        june = plans.run_due_plans(db, at("2025-06-01"))
        db.commit()
        assert len(june) == 1
        run = june[0]
        assert (run.plan_id, run.plan_version, run.trigger, run.reached) == (plan.id, 1, "schedule", 2)
        assert names(db, ids, run) == ["Ben", "Cleo"]
        assert json.loads(run.summary) == {"coupons": 2, "notifications": 2, "price_lists": []}
        grants = db.exec(select(CouponGrant).where(CouponGrant.source == "plan", CouponGrant.source_id == run.id)).all()
        assert sorted((g.member_id, g.template_id) for g in grants) == [(ids["Ben"], 7), (ids["Cleo"], 7)]
        texts = sorted(n.text for n in db.exec(select(Notification).where(Notification.run_id == run.id)))
        assert texts == ["Hello Ben, we miss you", "Hello Cleo, we miss you"]
        assert "| 2025-06-01 | schedule | Ben, Cleo |" in doc

        # Not due again this month; due again in July.
        assert plans.run_due_plans(db, at("2025-06-01")) == []
        assert plans.run_due_plans(db, at("2025-06-20")) == []
        db.commit()
        assert len(plans.runs(db, plan.id)) == 1

        # Ben answers: he buys on 2025-06-05. A re-run on the responders reaches him only.
        buy(db, ids["Ben"], 1500, at("2025-06-05"), shop="south")
        db.commit()
        again = plans.rerun(db, "hq", at("2025-06-20"), plan.id)
        db.commit()
        assert (again.trigger, again.rerun_of, names(db, ids, again)) == ("rerun", run.id, ["Ben"])
        assert "| 2025-06-20 | rerun of the 2025-06-01 run, responders | Ben |" in doc
        quiet = plans.rerun(db, "hq", at("2025-06-20"), plan.id, run_id=run.id, non_responders=True)
        db.commit()
        assert names(db, ids, quiet) == ["Cleo"]
        assert "| 2025-06-20 | rerun of the 2025-06-01 run, non-responders | Cleo |" in doc

        # Redeeming the run's coupon is a response too.
        cleo_coupon = db.exec(select(CouponGrant).where(CouponGrant.member_id == ids["Cleo"],
                                                        CouponGrant.source_id == run.id)).one()
        cleo_coupon.redeemed = at("2025-06-10")
        db.add(cleo_coupon)
        db.commit()
        assert plans.responders(db, run, 14) == {ids["Ben"], ids["Cleo"]}

        # July: Ben bought within 30 days; Ana did not any more.
        july = plans.run_due_plans(db, at("2025-07-01"))
        db.commit()
        assert [names(db, ids, r) for r in july] == [["Ana", "Cleo"]]
        assert "| 2025-07-01 | schedule | Ana, Cleo |" in doc


def test_event_plans_reach_whom_the_event_happened_to_once(tmp_path):
    engine, ids = world(tmp_path)
    with Session(engine) as db:
        welcome = plans.add_plan(db, "hq", at("2025-06-01"), "Welcome",
                                 {"when": {"event": "joined"}, "actions": [{"notify": "Welcome, {name}"}, {"coupon": 3}]})
        upgraded = plans.add_plan(db, "hq", at("2025-06-01"), "Congratulations",
                                  {"when": {"event": "tier_upgraded"}, "audience": {"tiers": [2]},
                                   "actions": [{"notify": "You are Gold now"}]})
        db.commit()
        assert plans.run_due_plans(db, at("2025-06-02")) == []  # nothing happened since the plans were made
        eve = add_member(db, "Eve", at("2025-06-03"))
        members.set_tier(db, "hq", at("2025-06-03"), ids["Ben"], 2, "by hand")
        members.set_tier(db, "hq", at("2025-06-03"), ids["Dan"], 1, "by hand")  # an upgrade, but not to the audience's tier
        db.commit()
        done = plans.run_due_plans(db, at("2025-06-04"))
        db.commit()
        by_plan = {r.plan_id: plans.reached(db, r.id or 0) for r in done}
        assert by_plan == {welcome.id: [eve], upgraded.id: [ids["Ben"]]}
        assert all(r.trigger == "event" for r in done)
        assert plans.run_due_plans(db, at("2025-06-04")) == []
        assert plans.run_due_plans(db, at("2025-06-05")) == []


def test_a_birthday_month_plan_runs_once_a_month(tmp_path):
    engine, _ids = world(tmp_path)
    with Session(engine) as db:
        june_child = add_member(db, "Faye", at("2025-01-01"), birthday="1990-06-17")
        add_member(db, "Gil", at("2025-01-01"), birthday="1990-07-17")
        plans.add_plan(db, "hq", at("2025-05-01"), "Birthday", {"when": {"event": "birthday_month"},
                                                                "actions": [{"coupon": 9}]})
        db.commit()
        done = plans.run_due_plans(db, at("2025-06-01"))
        db.commit()
        assert [plans.reached(db, r.id or 0) for r in done] == [[june_child]]
        assert plans.run_due_plans(db, at("2025-06-02")) == []


def test_a_promotional_price_holds_for_its_days_then_the_old_price_returns(tmp_path):
    engine, ids = world(tmp_path)
    with Session(engine) as db:
        save_product(db, "hq", 0, 101, "Espresso")
        add_price_list(db, "hq", 0, {101: 250})
        plan = plans.add_plan(db, "hq", at("2025-06-01"), "Espresso week", {
            "when": {"schedule": "weekly", "weekday": 0},
            "audience": {"shop": "north"},
            "actions": [{"price": {"shop": "north", "prices": {"101": 199}, "days": 7}}, {"notify": "Espresso 1.99 this week"}],
        })
        db.commit()
        run = plans.run_plan(db, "hq", at("2025-06-02"), plan.id)
        db.commit()
        assert names(db, ids, run) == ["Ana", "Dan"]  # bought at north; Ben bought at south, Cleo never
        price = {i["id"]: i["price"] for i in shop_prices(db, "north", at("2025-06-08"))["items"]}
        assert price[101] == 199
        assert {i["id"]: i["price"] for i in shop_prices(db, "north", at("2025-06-09"))["items"]}[101] == 250
        assert {i["id"]: i["price"] for i in shop_prices(db, "south", at("2025-06-03"))["items"]}[101] == 250
        assert len(json.loads(run.summary)["price_lists"]) == 2


def test_plan_changes_are_new_versions_and_runs_record_the_version(tmp_path):
    engine, ids = world(tmp_path)
    with Session(engine) as db:
        plan = plans.add_plan(db, "hq", at("2025-05-15"), "Win back", WIN_BACK)
        v2 = plans.change_plan(db, "hq", at("2025-05-20"), plan.id, doc={**WIN_BACK, "audience": {"tiers": [2]}})
        db.commit()
        assert v2.version == 2
        run = plans.run_plan(db, "hq", at("2025-06-01"), plan.id)
        db.commit()
        assert (run.plan_version, names(db, ids, run)) == (2, ["Ana", "Cleo"])
        off = plans.change_plan(db, "hq", at("2025-06-02"), plan.id, active=False)
        db.commit()
        assert off.version == 3
        with pytest.raises(plans.PlanError) as refused:
            plans.run_plan(db, "hq", at("2025-06-03"), plan.id)
        assert refused.value.code == "inactive_plan"
        assert plans.run_due_plans(db, at("2025-07-01")) == []


@pytest.mark.parametrize(
    ("doc", "code", "words"),
    [
        ({"when": {"event": "joined"}, "actions": [{"price": {"shop": "north", "prices": {"101": 1}, "days": 7}}]},
         "bad_action", "only a schedule plan may set one"),
        ({"when": {"schedule": "monthly"}, "audience": {"bought_within_days": 30, "not_bought_within_days": 30},
          "actions": [{"coupon": 1}]}, "bad_audience", "not_bought_within_days must be fewer"),
        ({"when": {"schedule": "monthly"}, "audience": {"shop": "east"}, "actions": [{"coupon": 1}]}, "no_shop",
         "no shop 'east'"),
        ({"when": {"schedule": "monthly"}, "actions": []}, "bad_action", "at least one action"),
        ({"when": {"schedule": "yearly"}, "actions": [{"coupon": 1}]}, "bad_when", "when must be"),
        ({"when": {"schedule": "monthly"}, "audience": {"rfm": ["vip"]}, "actions": [{"coupon": 1}]}, "bad_audience",
         "segments from champion"),
        ({"when": {"schedule": "monthly"}, "audience": {"tiers": [9]}, "actions": [{"coupon": 1}]}, "no_tier", "tier 9"),
    ],
)
def test_bad_plans_are_refused_with_the_reason_and_nothing_saved(tmp_path, doc, code, words):
    engine, _ids = world(tmp_path)
    with Session(engine) as db:
        with pytest.raises(plans.PlanError) as refused:
            plans.add_plan(db, "hq", at("2025-06-01"), "Bad", doc)
        db.rollback()
        assert refused.value.code == code and words in refused.value.message
        assert plans.plans(db) == []


def test_a_rerun_needs_an_earlier_run(tmp_path):
    engine, _ids = world(tmp_path)
    with Session(engine) as db:
        plan = plans.add_plan(db, "hq", at("2025-05-15"), "Win back", WIN_BACK)
        with pytest.raises(plans.PlanError) as refused:
            plans.rerun(db, "hq", at("2025-06-01"), plan.id)
        assert refused.value.code == "never_ran"
        assert db.exec(select(PlanRunMember)).all() == []


def test_badges_are_granted_once_and_carry_no_money(tmp_path):
    engine, ids = world(tmp_path)
    with Session(engine) as db:
        badges.save_badge(db, "hq", 0, "first-purchase", "First purchase", "purchases", 1)
        badges.save_badge(db, "hq", 0, "regular-3", "Three visits", "visits", 3)
        badges.save_badge(db, "hq", 0, "gold", "Gold reached", "tier", 2)
        db.commit()
        first = badges.award_badges(db, at("2025-06-01"))
        db.commit()
        got = sorted((g.member_id, g.code) for g in first)
        assert got == sorted([(ids["Ana"], "first-purchase"), (ids["Ben"], "first-purchase"), (ids["Dan"], "first-purchase"),
                              (ids["Ana"], "gold"), (ids["Cleo"], "gold")])
        assert badges.award_badges(db, at("2025-06-01")) == []
        buy(db, ids["Dan"], 500, at("2025-06-02"))
        buy(db, ids["Dan"], 500, at("2025-06-02T18:00"))  # the same day: one visit
        db.commit()
        assert badges.award_badges(db, at("2025-06-03")) == []
        buy(db, ids["Dan"], 500, at("2025-06-04"))
        db.commit()
        assert [(g.member_id, g.code) for g in badges.award_badges(db, at("2025-06-05"))] == [(ids["Dan"], "regular-3")]
        # Ana drops to tier 0; her badge stays.
        members.set_tier(db, "hq", at("2025-06-06"), ids["Ana"], 0, "by hand")
        db.commit()
        badges.award_badges(db, at("2025-06-07"))
        assert [b["code"] for b in badges.badges_of(db, ids["Ana"])] == ["first-purchase", "gold"]
        assert len(db.exec(select(MemberBadge).where(col(MemberBadge.member_id) == ids["Ana"])).all()) == 2
        assert set(badges.badges_of(db, ids["Ana"])[0]) == {"code", "name", "description", "earned"}
        with pytest.raises(badges.BadgeError) as refused:
            badges.save_badge(db, "hq", 0, "rich", "Rich", "balance", 100)
        assert refused.value.code == "bad_fact"


def test_the_api_runs_plans_and_reviews_as_hq_and_shows_members_their_badges(tmp_path):
    from fastapi.testclient import TestClient

    from hub import auth
    from hub.app import create_app
    from hub.auth import ADMIN, SHOP_MANAGER, new_login
    from hub.models import Card

    engine, ids = world(tmp_path)
    clock = [float(at("2025-06-01"))]
    app = create_app(engine, clock=lambda: clock[0])
    with Session(engine) as db:
        card = db.get(Card, f"91000000{ids['Ana']:08d}")
        assert card is not None
        card.password_hash = auth.hash_password("ana's secret")
        db.add(card)
        db.commit()
    _p, admin_token = new_login(engine, "hq", ADMIN, 0)
    _p, manager_token = new_login(engine, "north-boss", SHOP_MANAGER, 0, shop_id="north")
    hq = TestClient(app, headers={"Authorization": f"Bearer {admin_token}"})
    manager = TestClient(app, headers={"Authorization": f"Bearer {manager_token}"})

    steps: list[dict[str, int]] = [{"tier": 1, "threshold": 2000}, {"tier": 2, "threshold": 1000}]
    rules = {"measure": "spend", "window_days": 365, "validity_days": 365, "tiers": steps}
    bad = hq.post("/api/v1/tiers/rules", json={"rules": rules})
    assert bad.status_code == 400 and bad.json()["code"] == "overlapping_tiers"
    steps[1]["threshold"] = 3000
    saved = hq.post("/api/v1/tiers/rules", json={"rules": rules, "note": "first"})
    assert saved.status_code == 201 and saved.json()["version"] == 1
    assert [r["version"] for r in manager.get("/api/v1/tiers/rules").json()] == [1]
    assert manager.post("/api/v1/tiers/review", json={}).status_code == 403
    review = hq.post("/api/v1/tiers/review", json={}).json()
    assert review["ran"] is True and review["review"]["rules_version"] == 1
    assert hq.post("/api/v1/tiers/review", json={}).json() == {"ran": False, "review": None}

    added = hq.post("/api/v1/plans", json={"name": "Win back", "plan": WIN_BACK})
    assert added.status_code == 201
    plan_id = added.json()["id"]
    refused = hq.post("/api/v1/plans", json={"name": "Bad", "plan": {"when": {"schedule": "monthly"}, "actions": []}})
    assert refused.status_code == 400 and "at least one action" in refused.json()["detail"]
    assert manager.post(f"/api/v1/plans/{plan_id}/run").status_code == 403
    ran = hq.post(f"/api/v1/plans/{plan_id}/run")
    assert ran.status_code == 200
    body = ran.json()
    assert body["trigger"] == "manual" and sorted(body["members"]) == sorted([ids["Ben"], ids["Cleo"]])
    assert manager.get(f"/api/v1/plans/runs/{body['id']}").json()["members"] == body["members"]
    assert [r["id"] for r in manager.get(f"/api/v1/plans/{plan_id}/runs").json()] == [body["id"]]
    assert hq.post(f"/api/v1/plans/{plan_id}/rerun", json={}).json()["reached"] == 0  # nobody bought since

    badge = {"name": "First purchase", "fact": "purchases", "at_least": 1}
    assert hq.put("/api/v1/badges/first-purchase", json=badge).status_code == 200
    assert hq.post("/api/v1/badges/award").json() == {"granted": 3}
    member = TestClient(app)
    login = {"username": f"91000000{ids['Ana']:08d}", "password": "ana's secret"}
    assert member.post("/api/v1/login", json=login).status_code == 200
    mine = member.get("/api/v1/members/me/badges").json()
    assert [(b["code"], b["name"]) for b in mine] == [("first-purchase", "First purchase")]
    assert member.get(f"/api/v1/members/{ids['Ben']}/badges").status_code == 403
    assert member.get("/api/v1/plans").status_code == 403


def test_the_cli_saves_rules_reviews_and_runs_plans(tmp_path, monkeypatch, capsys):
    from hub.cli import main

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "hub"))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    assert main(["db", "upgrade"]) == 0
    from hub.db import make_engine
    from hub.masterdata import save_tier

    engine = make_engine(f"sqlite:///{tmp_path / 'hub' / 'hub.db'}")
    with Session(engine) as db:
        save_tier(db, "test", 0, 1, "Silver", 300)
        ana = add_member(db, "Ana", at("2025-01-01"))
        buy(db, ana, 30000, at("2025-02-01"))
        db.commit()
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"measure": "spend", "window_days": 365, "validity_days": 365,
                                 "tiers": [{"tier": 1, "threshold": 20000, "gift_points": 100}]}))
    assert main(["tiers", "rules", "--set", str(rules)]) == 0
    assert "tier rules v1 saved" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"measure": "spend", "window_days": -1, "validity_days": 365, "tiers": []}))
    assert main(["tiers", "rules", "--set", str(bad)]) == 2
    assert "window_days must be a whole number from 1" in capsys.readouterr().err
    assert main(["tiers", "review", "--at", str(at("2025-03-01"))]) == 0
    assert "1 upgraded" in capsys.readouterr().out
    assert main(["tiers", "review", "--at", str(at("2025-03-02"))]) == 0
    assert "ran in this period already" in capsys.readouterr().out
    assert main(["tags", "rfm", "--at", str(at("2025-03-01"))]) == 0
    assert "changed\t1" in capsys.readouterr().out
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"when": {"schedule": "monthly"}, "audience": {"rfm": ["new"]}, "actions": [{"coupon": 4}]}))
    assert main(["plan", "add", "New ones", "--file", str(plan)]) == 0
    assert main(["plan", "run-due", "--at", str(at("2025-03-01"))]) == 0
    out = capsys.readouterr().out
    assert "plan 1 run 1" in out and "reached 1" in out
    assert main(["plan", "runs", "1", "--run", "1"]) == 0
    assert f"members: {ana}" in capsys.readouterr().out
    assert main(["badges", "set", "first", "--name", "First", "--fact", "purchases", "--at-least", "1"]) == 0
    assert main(["badges", "award", "--at", str(at("2025-03-01"))]) == 0
    assert "1 badges granted" in capsys.readouterr().out
    engine.dispose()
