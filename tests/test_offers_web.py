"""The offer pages in Chromium: coupon templates, issuing, the coupons list; plans, their runs, re-runs and changes;
badges.

A hub on real SQLite served by uvicorn with a clock the test moves: Ana and Dan are Gold with
cards, Ben has a card, Cleo has none; a shop manager of north reads but may not change.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session, func, select

from hub import badges as badge_rules
from hub import coupons
from hub import plans as plan_rules
from hub.app import create_app
from hub.auth import ADMIN, SHOP_MANAGER, new_login
from hub.badges import award_badges, save_badge
from hub.masterdata import save_product
from hub.models import AuditEntry, Badge, CardAction, Coupon, CouponTemplate, Member, Notification, Plan, PlanRun
from hub.refusal import Refusal
from hub.web_offers import issue_notice, mark_text, percent_bps, plan_json, read_at_least, switch_to, template_value
from tests.browser import logged_in, needs_chromium, serve
from tests.plans_world import add_member, at, buy, hub_db

START = at("2025-06-01T09:00")
GOLD_PLAN = {"when": {"schedule": "monthly", "day": 1}, "audience": {"tiers": [2]},
             "actions": [{"notify": "Hello {name}, a Gold morning"}], "response_days": 14}


@pytest.fixture
def hq(tmp_path) -> Iterator[dict[str, Any]]:
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        save_product(db, "test", 0, 103, "Croissant")
        ids = {name: add_member(db, name, START - 86400 * 30, card=name != "Cleo") for name in ("Ana", "Ben", "Cleo", "Dan")}
        for name in ("Ana", "Dan"):
            member = db.get(Member, ids[name])
            assert member is not None
            member.tier = 2
            db.add(member)
        save_badge(db, "test", 0, "first-purchase", "First purchase", "purchases", 1)
        save_badge(db, "test", 0, "big-spender", "Big spender", "spend", 100_000)
        buy(db, ids["Ben"], 1250, START - 86400)
        award_badges(db, START - 3600)
        db.commit()
    clock = [float(START)]
    admin = new_login(engine, "hq", ADMIN, START)[0]
    manager = new_login(engine, "mgr", SHOP_MANAGER, START, shop_id="north")[0]
    with serve(create_app(engine, clock=lambda: clock[0])) as url:
        yield {"engine": engine, "url": url, "admin": admin, "manager": manager, "ids": ids, "clock": clock}
    engine.dispose()


def counts(engine: Any) -> tuple[int, ...]:
    """Templates, coupons, card actions, plans, runs, notifications: what a refused form must leave as it was."""
    with Session(engine) as db:
        return tuple(db.exec(select(func.count()).select_from(table)).one()
                     for table in (CouponTemplate, Coupon, CardAction, Plan, PlanRun, Notification))


# -- reading the forms (no browser) ----------------------------------------------------------------


def test_form_values_are_read_as_cents_basis_points_and_items():
    assert template_value("fixed", "3.00", "") == 300
    assert template_value("fixed", "12.5", "") == 1250
    assert template_value("percent", "15", "") == 1500
    assert template_value("percent", "12.5 %", "") == 1250
    assert template_value("gift", "", "103") == 103
    assert percent_bps("150") == 15000  # the range is hub.coupons' to refuse, with its reason
    for kind, value, gift, why in (("fixed", "3,00", "", "value: price '3,00' is not an amount like 12.50"),
                                   ("fixed", "-1", "", "is not an amount"),
                                   ("percent", "fifteen", "", "percent 'fifteen' is not a number like 15"),
                                   ("gift", "2.00", "103", "leave Value empty"),
                                   ("fixed", "", "", "needs a value")):
        with pytest.raises(coupons.CouponError, match=why):
            template_value(kind, value, gift)
    assert plan_json('{"a": 1}') == {"a": 1}
    with pytest.raises(ValueError, match="the plan is not JSON: Expecting ',' delimiter at line 1 column 9"):
        plan_json('{"a": 1 "b": 2}')
    done = {"got": [(1, 7)], "skipped": [{"member": 3, "code": "no_card", "reason": "member 3 has no active card"}]}
    assert issue_notice(4, done, {1: "Ana"}) == ("Template 4: issued 1 coupon to Ana (member 1, coupon 7). "
                                                 "Skipped: member 3: member 3 has no active card.")


def test_badge_marks_are_read_as_counts_or_cents_and_the_switch_as_on_or_off():
    assert read_at_least("visits", " 10 ") == 10
    assert read_at_least("spend", "500") == 50_000
    assert read_at_least("spend", "12.5") == 1250
    assert mark_text("spend", 50_000) == "500.00" and mark_text("purchases", 3) == "3"
    for fact, text, why in (("visits", "ten", "at least must be a whole number, got 'ten'"),
                            ("spend", "5,00", "at least: price '5,00' is not an amount like 12.50"),
                            ("tier", " ", "at least: give the mark the fact must reach")):
        with pytest.raises(Refusal, match=why):  # a refusal: the form shows its message
            read_at_least(fact, text)
    assert (switch_to("1"), switch_to("0")) == (True, False)
    with pytest.raises(Refusal, match="active must be 1 \\(on\\) or 0 \\(off\\), got 'yes'"):
        switch_to("yes")


# -- coupons ---------------------------------------------------------------------------------------


def add_template(page: Page, **fields: str) -> None:
    page.fill("#template-name", fields.get("name", ""))
    page.select_option("#template-kind", fields.get("kind", "fixed"))
    for name in ("value", "gift", "min-spend", "starts", "ends"):
        page.fill(f"#template-{name}", fields.get(name.replace("-", "_"), ""))
    page.fill("#template-days", fields.get("days", "30"))
    page.click("#add-template")


@needs_chromium
def test_admin_adds_a_template_issues_it_and_sees_the_coupon_issued(browser: Browser, hq: dict[str, Any]) -> None:
    engine, ids = hq["engine"], hq["ids"]
    with logged_in(browser, hq["url"], "hq", hq["admin"]) as page:
        page.click("nav >> text=Offers")
        expect(page.locator("#templates")).to_have_text("No coupon templates yet.")
        add_template(page, name="3 off 20", value="3.00", min_spend="20.00", days="30")
        expect(page.locator("#notice")).to_have_text("Template 1 added: 3 off 20.")
        row = page.locator("#templates tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("3.00 off")
        expect(row.locator("td").nth(4)).to_have_text("20.00")
        with Session(engine) as db:
            made = db.exec(select(CouponTemplate)).one()
            assert (made.kind, made.value, made.min_spend, made.valid_days) == ("fixed", 300, 2000, 30)

        before = counts(engine)
        add_template(page, name="Too much", kind="percent", value="150")
        expect(page.locator("#error")).to_have_text(
            "a percent coupon's value is basis points from 1 to 10000 (100 %), got 15000")
        expect(page.locator("#template-name")).to_have_value("Too much")  # what was typed, to correct it
        add_template(page, name="Backwards", value="1.00", starts="2025-07-01", ends="2025-06-15")
        expect(page.locator("#error")).to_have_text("ends 2025-06-15 is before starts 2025-07-01")
        add_template(page, name="Free thing", kind="gift", gift="999")
        expect(page.locator("#error")).to_have_text("gift item 999 is not a product")
        add_template(page, name="Comma", value="3,00")
        expect(page.locator("#error")).to_contain_text("value: price '3,00' is not an amount like 12.50")
        assert counts(engine) == before
        expect(page.locator("#templates tbody tr")).to_have_count(1)

        add_template(page, name="Free croissant", kind="gift", gift="103", days="7")
        expect(page.locator("#notice")).to_have_text("Template 2 added: Free croissant.")
        expect(page.locator("#templates tbody tr").nth(1)).to_contain_text("item 103 (Croissant)")

        # Issue to Ana, Cleo (no card) and a member who does not exist.
        page.select_option("#issue-template", "1")
        page.fill("#issue-members", f"{ids['Ana']} {ids['Cleo']} 99")
        page.click("#issue-button")
        expect(page.locator("#notice")).to_have_text(
            f"Template 1: issued 1 coupon to Ana (member {ids['Ana']}, coupon 1). Skipped: member {ids['Cleo']}: "
            f"member {ids['Cleo']} has no active card; member 99: no member 99.")
        coupon_rows = page.locator("#coupons tbody tr")
        expect(coupon_rows).to_have_count(1)
        expect(coupon_rows.first).to_contain_text(f"Ana ({ids['Ana']})")
        expect(coupon_rows.first.locator("td.state")).to_have_text("issued")
        expect(coupon_rows.first).to_contain_text("2025-06-01 .. 2025-06-30")
        with Session(engine) as db:
            listed = coupons.coupons(db)
            assert [(c["member_id"], c["state"], c["value"]) for c in listed] == [(ids["Ana"], "issued", 300)]
            assert db.exec(select(CardAction.kind, CardAction.card_no)).all() == [("coupon", listed[0]["card_no"])]

        # Nobody who can take one: nothing changes.
        before = counts(engine)
        page.select_option("#issue-template", "1")
        page.fill("#issue-members", "99")
        page.click("#issue-button")
        expect(page.locator("#notice")).to_have_text("Template 1: issued 0 coupons. Skipped: member 99: no member 99.")
        page.fill("#issue-members", "Ana")
        page.click("#issue-button")
        expect(page.locator("#error")).to_have_text("member must be a whole number, got 'Ana'")
        page.fill("#issue-members", "")
        page.click("#issue-button")
        expect(page.locator("#error")).to_have_text("name members, or a tier or a tag for a group")
        assert counts(engine) == before

        # A group: the Gold tier (Ana and Dan) with the gift; both have room on their cards.
        page.select_option("#issue-template", "2")
        page.fill("#issue-tiers", "2")
        page.click("#issue-button")
        expect(page.locator("#notice")).to_have_text(
            f"Template 2: issued 2 coupons to Ana (member {ids['Ana']}, coupon 2), Dan (member {ids['Dan']}, coupon 3).")
        expect(page.locator("#coupons tbody tr")).to_have_count(3)

        page.fill("#filter-member", str(ids["Dan"]))
        page.click("#filter-button")
        expect(page.locator("#coupons tbody tr")).to_have_count(1)
        expect(page.locator("#coupons tbody tr").first).to_contain_text("item 103 (Croissant)")
        page.fill("#filter-member", str(ids["Ben"]))
        page.click("#filter-button")
        expect(page.locator("#coupons")).to_have_text("No coupons.")
        page.goto("/admin/offers?member=99")
        expect(page.locator("#error")).to_have_text("no member 99")
        expect(page.locator("#coupons")).to_have_count(0)


# -- plans -----------------------------------------------------------------------------------------


def add_plan(page: Page, name: str, text: str) -> None:
    page.fill("#plan-name", name)
    page.fill("#plan-json", text)
    page.click("#add-plan")


@needs_chromium
def test_admin_creates_a_plan_runs_it_and_reruns_it_on_the_responders(browser: Browser, hq: dict[str, Any]) -> None:
    engine, ids, clock = hq["engine"], hq["ids"], hq["clock"]
    with logged_in(browser, hq["url"], "hq", hq["admin"]) as page:
        page.click("nav >> text=Plans")
        expect(page.locator("#plans")).to_have_text("No plans yet.")
        before = counts(engine)
        add_plan(page, "Gold mornings", '{"when": {"schedule": "monthly"} "audience": {}}')
        expect(page.locator("#error")).to_have_text("the plan is not JSON: Expecting ',' delimiter at line 1 column 34")
        expect(page.locator("#plan-name")).to_have_value("Gold mornings")
        add_plan(page, "Gold mornings", json.dumps(GOLD_PLAN | {"audience": {"tiers": [9]}}))
        expect(page.locator("#error")).to_have_text("audience names tier 9, which is not defined")
        add_plan(page, "Gold mornings", json.dumps(GOLD_PLAN | {"actions": []}))
        expect(page.locator("#error")).to_have_text("a plan needs at least one action")
        assert counts(engine) == before

        add_plan(page, "Gold mornings", json.dumps(GOLD_PLAN))
        expect(page.locator("#notice")).to_have_text("Plan 1 added.")
        expect(page.locator("#plan-title")).to_have_text("Plan 1: Gold mornings")
        expect(page.locator("#runs")).to_have_text("The plan has not run yet.")

        page.click("#run-now")
        expect(page.locator("#notice")).to_have_text("Run 1 (manual) reached 2: Ana, Dan.")
        first = page.locator("#runs tbody tr")
        expect(first).to_have_count(1)
        expect(first.locator("td.who")).to_have_text("Ana, Dan")
        expect(first).to_contain_text("2 notifications")

        # Ana buys an hour later; at noon (within the login's 12 hours) the re-runs reach the responders, then the others.
        with Session(engine) as db:
            buy(db, ids["Ana"], 900, START + 3600)
            db.commit()
        clock[0] = START + 3 * 3600
        page.reload()
        page.click("#rerun")
        expect(page.locator("#notice")).to_have_text("Run 2 (rerun of run 1) reached 1: Ana.")
        expect(page.locator("#rerun")).to_have_text("Re-run on the last run's responders (run 2)")
        page.click("#remind-1")  # run 1's others: a reminder
        expect(page.locator("#notice")).to_have_text("Run 3 (rerun of run 1) reached 1: Dan.")
        runs = page.locator("#runs tbody tr")
        expect(runs).to_have_count(3)
        expect(runs.nth(0).locator("td.who")).to_have_text("Dan")
        expect(runs.nth(1).locator("td.who")).to_have_text("Ana")
        expect(runs.nth(1)).to_contain_text("rerun of run 1")
        with Session(engine) as db:
            texts = sorted(n.text for n in db.exec(select(Notification)))
            assert texts == ["Hello Ana, a Gold morning"] * 2 + ["Hello Dan, a Gold morning"] * 2

        page.click("text=Plans")
        plan_row = page.locator("#plans tbody tr")
        expect(plan_row).to_have_count(1)
        expect(plan_row).to_contain_text("Gold mornings")
        expect(plan_row).to_contain_text("reached 1")
        badges = page.locator("#badges tbody tr")
        expect(badges).to_have_count(2)
        expect(badges.filter(has_text="First purchase").locator("td").nth(5)).to_have_text("1")  # Ben
        expect(badges.filter(has_text="Big spender").locator("td").nth(5)).to_have_text("0")

        page.goto("/admin/plans/7")
        expect(page.locator("#error")).to_have_text("no plan 7")


def plan_in_db(engine: Any, plan_id: int = 1) -> tuple[Any, ...]:
    """The plan's current version as the hub keeps it: version, name, on/off, document."""
    with Session(engine) as db:
        plan = plan_rules.current_plan(db, plan_id)
        return plan.version, plan.name, plan.active, json.loads(plan.body)


@needs_chromium
def test_admin_switches_a_plan_off_and_on_and_edits_it(browser: Browser, hq: dict[str, Any]) -> None:
    engine = hq["engine"]
    with logged_in(browser, hq["url"], "hq", hq["admin"]) as page:
        page.goto("/admin/plans")
        add_plan(page, "Gold mornings", json.dumps(GOLD_PLAN))
        expect(page.locator("#notice")).to_have_text("Plan 1 added.")

        # Off: the plan is due (monthly on day 1, never run), yet the due-plans run skips it.
        expect(page.locator("#switch-plan")).to_have_text("Switch off")
        page.click("#switch-plan")
        expect(page.locator("#notice")).to_have_text("Plan 1 switched off (version 2).")
        expect(page.locator("#plan td.off")).to_have_text("off")
        expect(page.locator("#switch-plan")).to_have_text("Switch on")
        shown = page.request.get("/api/v1/plans/1").json()
        assert (shown["version"], shown["active"]) == (2, False)
        due = page.request.post("/api/v1/plans/run-due")
        assert due.status == 200 and due.json() == []
        page.reload()
        page.click("#run-now")
        expect(page.locator("#error")).to_have_text("plan 1 is switched off; switch it on to run it")
        expect(page.locator("#runs")).to_have_text("The plan has not run yet.")
        page.goto("/admin/plans")
        expect(page.locator("#plans tbody tr td.off")).to_have_text("off")

        # On again: the same due-plans run now runs it.
        page.click("#plan-1")
        page.click("#switch-plan")
        expect(page.locator("#notice")).to_have_text("Plan 1 switched on (version 3).")
        due = page.request.post("/api/v1/plans/run-due")
        assert [(r["plan_id"], r["plan_version"], r["reached"]) for r in due.json()] == [(1, 3, 2)]
        page.reload()
        expect(page.locator("#runs tbody tr")).to_have_count(1)

        # Edit: the textarea holds the plan as saved; a new text and name make version 4.
        assert json.loads(page.input_value("#edit-json")) == plan_in_db(engine)[3]
        expect(page.locator("#edit-name")).to_have_value("Gold mornings")
        page.fill("#edit-name", "Gold coffee")
        page.fill("#edit-json", json.dumps(GOLD_PLAN | {"actions": [{"notify": "Hello {name}, Gold coffee"}]}))
        page.click("#save-plan")
        expect(page.locator("#notice")).to_have_text("Plan 1 saved as version 4.")
        expect(page.locator("#plan-title")).to_have_text("Plan 1: Gold coffee")
        expect(page.locator("#plan-body")).to_contain_text("Hello {name}, Gold coffee")
        saved = plan_in_db(engine)
        assert saved[:3] == (4, "Gold coffee", True)
        assert saved[3]["actions"] == [{"notify": "Hello {name}, Gold coffee"}]

        # Bad edits: the reason, what was typed kept to correct, and nothing saved.
        before = counts(engine), plan_in_db(engine)
        page.fill("#edit-json", '{"when": {"schedule": "monthly"} "audience": {}}')
        page.click("#save-plan")
        expect(page.locator("#error")).to_have_text("the plan is not JSON: Expecting ',' delimiter at line 1 column 34")
        expect(page.locator("#edit-json")).to_have_value('{"when": {"schedule": "monthly"} "audience": {}}')
        page.fill("#edit-json", json.dumps(GOLD_PLAN | {"audience": {"tiers": [9]}}))
        page.click("#save-plan")
        expect(page.locator("#error")).to_have_text("audience names tier 9, which is not defined")
        page.fill("#edit-name", "   ")
        page.fill("#edit-json", json.dumps(GOLD_PLAN))
        page.click("#save-plan")
        expect(page.locator("#error")).to_have_text("a plan name is 1-80 characters")
        expect(page.locator("#plan-title")).to_have_text("Plan 1: Gold coffee")
        assert (counts(engine), plan_in_db(engine)) == before
        assert page.request.get("/api/v1/plans/1").json()["version"] == 4

        # The same plan again makes no version.
        page.goto("/admin/plans/1")
        page.click("#save-plan")
        expect(page.locator("#notice")).to_have_text("Plan 1 unchanged: it is as version 4 already.")
        page.click("#run-now")
        expect(page.locator("#runs tbody tr").first.locator("td").nth(3)).to_have_text("4")
        with Session(engine) as db:
            texts = sorted(n.text for n in db.exec(select(Notification)))
            assert texts == ["Hello Ana, Gold coffee", "Hello Ana, a Gold morning",
                             "Hello Dan, Gold coffee", "Hello Dan, a Gold morning"]


def fill_badge(page: Page, code: str, name: str, fact: str, mark: str, description: str = "", active: bool = True) -> None:
    page.fill("#badge-code", code)
    page.fill("#badge-name", name)
    page.fill("#badge-description", description)
    page.select_option("#badge-fact", fact)
    page.fill("#badge-at-least", mark)
    page.set_checked("#badge-active", active)
    page.click("#save-badge")


def badges_in_db(engine: Any) -> tuple[list[dict[str, Any]], int]:
    with Session(engine) as db:
        audited = db.exec(select(func.count()).select_from(AuditEntry)).one()
        return [b.model_dump() for b in badge_rules.all_badges(db)], audited


@needs_chromium
def test_admin_defines_and_changes_badges_on_the_plans_page(browser: Browser, hq: dict[str, Any]) -> None:
    engine = hq["engine"]
    with logged_in(browser, hq["url"], "hq", hq["admin"]) as page:
        page.goto("/admin/plans")
        rows = page.locator("#badges tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.filter(has_text="Big spender")).to_contain_text("spend at least 1000.00")

        fill_badge(page, "regular", "Regular", "visits", "10", "Ten days with a purchase")
        expect(page.locator("#notice")).to_have_text("Badge regular saved: visits at least 10.")
        expect(rows).to_have_count(3)
        regular = rows.filter(has_text="Regular")
        expect(regular).to_contain_text("visits at least 10")
        expect(regular).to_contain_text("Ten days with a purchase")
        expect(regular.locator("td.on")).to_have_text("yes")

        # Change one: its form comes filled in, the mark in money for spend.
        page.click("#edit-badge-big-spender")
        expect(page.locator("#badge-code")).to_have_value("big-spender")
        expect(page.locator("#badge-at-least")).to_have_value("1000.00")
        expect(page.locator("#badge-fact")).to_have_value("spend")
        fill_badge(page, "big-spender", "Big spender", "spend", "500.00", active=False)
        expect(page.locator("#notice")).to_have_text("Badge big-spender saved: spend at least 500.00 (inactive).")
        expect(rows.filter(has_text="Big spender").locator("td.off")).to_have_text("no")
        with Session(engine) as db:
            big = db.get(Badge, "big-spender")
            assert big is not None and (big.at_least, big.active) == (50_000, False)

        # Refused: the reason, the fields as typed, nothing saved (nor audited).
        before = badges_in_db(engine)
        for fields, why in ((("Bad Code", "Bad", "visits", "3"),
                             "badge code 'Bad Code' must be 1-32 of a-z, 0-9 and -, starting with a letter or digit"),
                            (("loyal", "Loyal", "visits", "ten"), "at least must be a whole number, got 'ten'"),
                            (("loyal", "Loyal", "spend", "5,00"),
                             "at least: price '5,00' is not an amount like 12.50 (dot, at most 2 decimals)"),
                            (("loyal", "Loyal", "purchases", "0"),
                             "at_least must be a whole number from 1 to 1000000000000, got 0"),
                            (("loyal", "   ", "purchases", "3"), "a badge name is 1-80 characters")):
            fill_badge(page, *fields)
            expect(page.locator("#error")).to_have_text(why)
            expect(page.locator("#badge-code")).to_have_value(fields[0])
            expect(page.locator("#badge-at-least")).to_have_value(fields[3])
        expect(rows).to_have_count(3)
        answer = page.request.post("/admin/badges", form={"code": "loyal", "name": "Loyal", "fact": "height",
                                                          "at_least": "3", "active": "1"})
        assert answer.status == 400 and "fact must be one of purchases, visits, spend, tier, member_days, got" in answer.text()
        assert badges_in_db(engine) == before
        listed = page.request.get("/api/v1/badges").json()
        assert [b["code"] for b in listed] == ["big-spender", "first-purchase", "regular"]


@needs_chromium
def test_a_shop_manager_reads_offers_and_plans_but_is_refused_the_forms(browser: Browser, hq: dict[str, Any]) -> None:
    engine, ids = hq["engine"], hq["ids"]
    with Session(engine) as db:
        made = coupons.add_template(db, "test", START, "3 off", "fixed", 300)
        coupons.issue(db, "test", START, made.id or 0, ids["Ben"])
        db.commit()
    with logged_in(browser, hq["url"], "hq", hq["admin"]) as page:
        page.goto("/admin/plans")
        add_plan(page, "Gold mornings", json.dumps(GOLD_PLAN))
        expect(page.locator("#notice")).to_have_text("Plan 1 added.")
    before = counts(engine)
    with logged_in(browser, hq["url"], "mgr", hq["manager"]) as page:
        page.click("nav >> text=Offers")
        expect(page.locator("#templates tbody tr")).to_have_count(1)
        expect(page.locator("#coupons tbody tr")).to_have_count(1)
        expect(page.locator("#coupons tbody tr").first.locator("td.state")).to_have_text("issued")
        for form_id in ("#template-form", "#issue-form"):
            expect(page.locator(form_id)).to_have_count(0)
        page.click("nav >> text=Plans")
        expect(page.locator("#plan-form")).to_have_count(0)
        expect(page.locator("#badge-form")).to_have_count(0)
        expect(page.locator("#edit-badge-first-purchase")).to_have_count(0)
        page.click("#plan-1")
        expect(page.locator("#plan-title")).to_have_text("Plan 1: Gold mornings")
        for control in ("#run-now", "#switch-plan", "#edit-form"):
            expect(page.locator(control)).to_have_count(0)

        # The forms posted anyway (a saved page, a crafted request): refused, nothing written.
        for path, form in (("/admin/offers/templates", {"name": "Mine", "kind": "fixed", "value": "1.00"}),
                           ("/admin/offers/issue", {"template_id": "1", "members": str(ids["Ana"])}),
                           ("/admin/plans", {"name": "Mine", "plan": json.dumps(GOLD_PLAN)}),
                           ("/admin/plans/1/run", {}), ("/admin/plans/1/rerun", {}),
                           ("/admin/plans/1/active", {"active": "0"}),
                           ("/admin/plans/1/edit", {"name": "Mine", "plan": json.dumps(GOLD_PLAN)}),
                           ("/admin/badges", {"code": "mine", "name": "Mine", "fact": "visits", "at_least": "1"})):
            answer = page.request.post(path, form=dict(form))
            assert answer.status == 403, path
            assert "a shop_manager may not use this; it is for: admin" in answer.text()
    assert counts(engine) == before
    assert plan_in_db(engine)[:3] == (1, "Gold mornings", True)
    with Session(engine) as db:
        assert db.get(Badge, "mine") is None
