"""The offer pages in Chromium: coupon templates, issuing, the coupons list; plans, their runs and re-runs; badges.

A hub on real SQLite served by uvicorn with a clock the test moves: Ana and Dan are Gold with
cards, Ben has a card, Cleo has none; a shop manager of north reads but may not change.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session, func, select

from hub import coupons
from hub.app import create_app
from hub.auth import ADMIN, SHOP_MANAGER, new_login
from hub.badges import award_badges, save_badge
from hub.masterdata import save_product
from hub.models import CardAction, Coupon, CouponTemplate, Member, Notification, Plan, PlanRun
from hub.web_offers import issue_notice, percent_bps, plan_json, template_value
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
        page.click("#plan-1")
        expect(page.locator("#plan-title")).to_have_text("Plan 1: Gold mornings")
        expect(page.locator("#run-now")).to_have_count(0)

        # The forms posted anyway (a saved page, a crafted request): refused, nothing written.
        for path, form in (("/admin/offers/templates", {"name": "Mine", "kind": "fixed", "value": "1.00"}),
                           ("/admin/offers/issue", {"template_id": "1", "members": str(ids["Ana"])}),
                           ("/admin/plans", {"name": "Mine", "plan": json.dumps(GOLD_PLAN)}),
                           ("/admin/plans/1/run", {}), ("/admin/plans/1/rerun", {})):
            answer = page.request.post(path, form=dict(form))
            assert answer.status == 403, path
            assert "a shop_manager may not use this; it is for: admin" in answer.text()
    assert counts(engine) == before
