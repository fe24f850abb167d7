"""The loyalty pages in Chromium: HQ saves tier rules and bonus rules (a contradicting version is refused with the reason and
changes nothing), sees the parameters, the liability and the jobs, runs a job now; a shop manager is refused.
Real uvicorn, SQLite and the hub's own rules; the hub's clock is a fixed virtual time."""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session, func, select

from hub import cards
from hub.app import create_app
from hub.auth import ADMIN, SHOP_MANAGER, new_login
from hub.masterdata import save_tier
from hub.models import AuditEntry, JobRun, Member, TierRules, TopupBonusRules
from tests.browser import logged_in, needs_chromium, serve
from tests.plans_world import add_member, at, buy, card_no, hub_db

pytestmark = needs_chromium

NOW = at("2027-03-01T09:00")


@pytest.fixture
def hq(tmp_path: Any) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """Tiers 1 Silver and 2 Gold (x1.5 points), Ana who paid 70.00 last month and Ben who never paid; an admin, a manager."""
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        save_tier(db, "test", 0, 2, "Gold", 500, 15000)
        ana = add_member(db, "Ana", at("2027-01-05"))
        add_member(db, "Ben", at("2027-01-06"))
        buy(db, ana, 7000, at("2027-02-10"))
        db.commit()
    passwords = {"hq": new_login(engine, "hq", ADMIN, NOW)[0],
                 "boss": new_login(engine, "boss", SHOP_MANAGER, NOW, shop_id="north")[0]}
    with serve(create_app(engine, clock=lambda: NOW)) as base:
        yield engine, base, passwords
    engine.dispose()


def count(engine: Any, model: Any) -> int:
    with Session(engine) as db:
        return int(db.exec(select(func.count()).select_from(model)).one())


def fill_tier_rules(page: Page, silver: str, gold: str, validity: str = "60") -> None:
    page.goto("/admin/loyalty/tiers")
    page.select_option("#measure", "spend")
    page.fill("#window_days", "60")
    page.fill("#validity_days", validity)
    page.select_option("#review", "monthly")
    page.fill("#threshold-1", silver)
    page.fill("#gift-points-1", "50")
    page.fill("#threshold-2", gold)
    page.fill("#gift-points-2", "200")
    page.click("#save-tier-rules")


def test_hq_saves_tier_rules_and_a_contradicting_version_changes_nothing(browser: Browser, hq: Any) -> None:
    engine, base, passwords = hq
    with logged_in(browser, base, "hq", passwords["hq"]) as page:
        page.click("nav >> text=Loyalty")
        expect(page.locator("#tier-rules-version")).to_contain_text("No tier rules yet")
        expect(page.locator("#offers-link")).to_have_attribute("href", "/admin/offers")
        page.click("#tiers-link")
        expect(page.locator("#tier-rule-versions")).to_have_text("No tier rules yet.")

        fill_tier_rules(page, "60.00", "150.00")
        expect(page.locator("#notice")).to_have_text("Tier rules v1 saved.")
        expect(page.locator("#threshold-2")).to_have_value("150.00")  # the form starts from the newest rules
        page.goto("/admin/loyalty")
        expect(page.locator("#tier-rules-version")).to_contain_text("Version 1, saved 2027-03-01 09:00:00 UTC by hq")
        expect(page.locator("#tier-rules-terms")).to_contain_text("spend")
        expect(page.locator("#tier-rules-terms")).to_contain_text("over the last 60 days; reviewed monthly; a tier holds 60 days")
        silver, gold = page.locator("#tier-rules tbody tr").nth(1), page.locator("#tier-rules tbody tr").nth(2)
        for cell, text in zip(silver.locator("td").all(), ["1", "Silver", "60.00", "50 points", "3 %", "x1"], strict=True):
            expect(cell).to_have_text(text)
        for cell, text in zip(gold.locator("td").all(), ["2", "Gold", "150.00", "200 points", "5 %", "x1.5"], strict=True):
            expect(cell).to_have_text(text)

        # Gold no dearer than Silver: refused with the hub's reason, the typed form kept, nothing saved or audited.
        audited = count(engine, AuditEntry)
        fill_tier_rules(page, "60.00", "50.00")
        expect(page.locator("#error")).to_have_text(
            "tier 2 needs 5000, not more than tier 1's 6000: a higher tier must need strictly more")
        expect(page.locator("#threshold-2")).to_have_value("50.00")
        expect(page.locator("#tier-rule-versions tbody tr")).to_have_count(1)
        answer = page.request.get("/api/v1/tiers/rules")
        assert [v["version"] for v in answer.json()] == [1]
        assert answer.json()[0]["rules"]["tiers"][1]["threshold"] == 15000
        assert count(engine, TierRules) == 1 and count(engine, AuditEntry) == audited

        fill_tier_rules(page, "6O.00", "150.00")  # a letter O for a zero
        expect(page.locator("#error")).to_have_text(
            "tier 1's threshold '6O.00' is not an amount like 60.00 (dot, at most 2 decimals)")
        fill_tier_rules(page, "60.00", "150.00")
        expect(page.locator("#notice")).to_have_text("Unchanged: these are the rules of v1 already.")
        fill_tier_rules(page, "60.00", "150.00", validity="90")
        expect(page.locator("#notice")).to_have_text("Tier rules v2 saved.")
        versions = page.locator("#tier-rule-versions tbody tr")
        expect(versions).to_have_count(2)
        expect(versions.nth(0)).to_contain_text("now (the newest applies)")
        expect(versions.nth(1)).to_contain_text("2027-03-01 09:00:00 to 2027-03-01 09:00:00")
        expect(versions.nth(1)).to_contain_text("tier 2 from 150.00 (gift: 200 points)")

        # Run the review now: Ana's 70.00 reaches Silver; the job's summary is on the page and its review is listed.
        page.goto("/admin/loyalty")
        expect(page.locator("#last-tier-review")).to_have_text("never")
        page.click("#run-tier-review")
        expect(page.locator("#notice")).to_have_text(
            "tier-review: reviewed 2 members (rules v2): 1 upgraded, 0 downgraded, 0 renewed")
        expect(page.locator("#last-tier-review")).to_have_text("2027-03-01 09:00:00")
        expect(page.locator("#ok-tier-review")).to_have_text("ok")
        expect(page.locator("#summary-tier-review")).to_contain_text("1 upgraded")
        page.click("#tiers-link")
        expect(page.locator("#tier-reviews tbody tr")).to_have_count(1)
        expect(page.locator("#tier-reviews tbody tr").nth(0)).to_contain_text("2027-03")
    with Session(engine) as db:
        tiers_now = {m.name: m.tier for m in db.exec(select(Member))}
        runs = list(db.exec(select(JobRun)))
    assert tiers_now == {"Ana": 1, "Ben": 0}
    assert [(r.job, r.ok) for r in runs] == [("tier-review", True)]


def test_hq_saves_bonus_rules_sees_the_liability_and_parameters(browser: Browser, hq: Any) -> None:
    engine, base, passwords = hq
    with logged_in(browser, base, "hq", passwords["hq"]) as page:
        page.goto("/admin/loyalty")
        expect(page.locator("#bonus-current")).to_contain_text("No top-up bonus in force")
        page.click("#bonus-link")
        page.fill("#bonus-rules", "500.00=10.00\n200.00=15.00")
        page.click("#save-bonus")
        expect(page.locator("#error")).to_have_text("paying 50000 would get less (1000) than paying 20000 (1500)")
        expect(page.locator("#bonus-rules")).to_have_value("500.00=10.00\n200.00=15.00")
        assert count(engine, TopupBonusRules) == 0
        assert page.request.get("/api/v1/loyalty/bonus-rules").json() == []

        page.fill("#bonus-rules", "200.00=15.00\n500.00=50,00")
        page.click("#save-bonus")
        expect(page.locator("#error")).to_have_text(
            "line 2: bonus '50,00' is not an amount like 60.00 (dot, at most 2 decimals)")
        page.fill("#bonus-rules", "200.00=15.00\n500.00=50.00")
        page.click("#save-bonus")
        expect(page.locator("#notice")).to_have_text("Bonus rules v1 saved: pay 200.00 get 15.00; pay 500.00 get 50.00.")
        expect(page.locator("#bonus-versions tbody tr").nth(0)).to_contain_text("in force")
        assert [r["thresholds"] for r in page.request.get("/api/v1/loyalty/bonus-rules").json()] == [
            [[20000, 1500], [50000, 5000]]]

        # HQ takes 200.00 for Ana's card: the card gets 215.00 at its next tap, and the hub owes it now.
        with Session(engine) as db:
            cards.topup(db, "hq", NOW, card_no(1), 20000)
            db.commit()
        page.goto("/admin/loyalty")
        expect(page.locator("#bonus-current")).to_have_text(
            "Version 1 (2027-03-01 09:00:00 to open-ended UTC): pay 200.00 get 15.00; pay 500.00 get 50.00.")
        expect(page.locator("#liability-total")).to_have_text("215.00")
        expect(page.locator("#liability-cards")).to_have_text("0.00")
        expect(page.locator("#liability-pending")).to_have_text("215.00")
        expect(page.locator("#liability-card-count")).to_have_text("0 of 2")
        expect(page.locator("#liability-balanced")).to_contain_text("yes")

        params = page.locator("#loyalty-params")
        expect(params).to_contain_text("points.validity_days")
        expect(params).to_contain_text("lease.max_sv_per_sale")
        page.click("#params-link")  # parameters are changed where they always were, audited
        page.fill("#param-points-validity_days", "90")
        page.click("#set-points-validity_days")
        expect(page.locator("#notice")).to_have_text("points.validity_days set to 90.")
        page.click("nav >> text=Loyalty")
        expect(params.locator("tr", has_text="points.validity_days")).to_contain_text("90")


def test_a_shop_manager_is_refused_and_nothing_runs(browser: Browser, hq: Any) -> None:
    engine, base, passwords = hq
    with logged_in(browser, base, "boss", passwords["boss"]) as page:
        expect(page.locator("nav >> text=Loyalty")).to_have_count(0)
        for path in ("/admin/loyalty", "/admin/loyalty/tiers", "/admin/loyalty/bonus"):
            answer = page.goto(path)
            assert answer is not None and answer.status == 403
            expect(page.locator("#error")).to_contain_text("a shop_manager may not use this")
        forged = page.request.post("/admin/loyalty/jobs", form={"job": "tier-review"}, max_redirects=0)
        assert forged.status == 403
    assert count(engine, JobRun) == 0
