"""HQ's master-data pages in a real browser (Debian's Chromium via Playwright) over a real uvicorn server.

One hub for the module: shops north and south, HQ's espresso, an approved merchant Acme with its soap,
a rival merchant's cake, an unapproved merchant; a global list and one list for each shop.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlmodel import Session, select

from hub import masterdata as md
from hub.api_auth import approve_merchant, new_merchant
from hub.app import create_app
from hub.auth import ADMIN, MERCHANT, SHOP_MANAGER, new_login
from hub.db import make_engine, migrate
from hub.models import PriceList, Product, PublishedPrices
from hub.web_master import changes, parse_percent, parse_price_lines, parse_when, percent
from tests.browser import logged_in, needs_chromium, serve

PAGES = ["/admin/shops", "/admin/products", "/admin/prices", "/admin/settings", "/admin/audit", "/merchant"]
LOGIN: dict[str, str] = {}  # user name -> password, made by the hub fixture


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('web_master') / 'hub.db'}")
    migrate(engine)
    with Session(engine) as db:
        md.save_shop(db, "seed", 0, "north", "North street")
        md.save_shop(db, "seed", 0, "south", "South square")
        acme = new_merchant(db, "seed", 0, "Acme")
        rival = new_merchant(db, "seed", 0, "Rival")
        late = new_merchant(db, "seed", 0, "Latecomer")  # never approved
        approve_merchant(db, "seed", 0, acme.id or 0)
        approve_merchant(db, "seed", 0, rival.id or 0)
        md.save_product(db, "seed", 0, 101, "Espresso")
        md.save_product(db, "seed", 0, 201, "Acme soap", merchant_id=acme.id)
        md.save_product(db, "seed", 0, 301, "Rival cake", merchant_id=rival.id)
        md.save_tier(db, "seed", 0, 0, "Member", 0)
        md.save_tier(db, "seed", 0, 1, "Silver", 500)
        md.add_price_list(db, "seed", 0, {101: 200, 201: 300, 301: 400}, effective_from=0)
        md.add_price_list(db, "seed", 0, {101: 220}, "north", 0, note="north espresso")
        md.add_price_list(db, "seed", 0, {101: 250}, "south", 0, note="south special")
        db.commit()
        ids = {"acme": acme.id, "late": late.id}
    LOGIN["hq"] = new_login(engine, "hq", ADMIN, 0)[0]
    LOGIN["mgr"] = new_login(engine, "mgr", SHOP_MANAGER, 0, shop_id="north")[0]
    LOGIN["acme"] = new_login(engine, "acme", MERCHANT, 0, merchant_id=ids["acme"])[0]
    LOGIN["late"] = new_login(engine, "late", MERCHANT, 0, merchant_id=ids["late"])[0]
    with serve(create_app(engine)) as url:
        yield url, engine
    engine.dispose()


def row(page: Page, table: str, has_text: str) -> Locator:
    """The cells of the one row of table (by id) that contains has_text."""
    found = page.locator(f"#{table} tbody tr").filter(has_text=has_text)
    expect(found).to_have_count(1)
    return found.locator("td")


def price_lists(engine: Any) -> int:
    with Session(engine) as db:
        return len(db.exec(select(PriceList)).all())


# -- the form readers, without a browser ---------------------------------------------------------------


def test_price_lines_are_read_as_cents_and_a_bad_line_is_named() -> None:
    assert parse_price_lines("101=2.50\n\n 102 = 12 \n103=0.5") == {101: 250, 102: 1200, 103: 50}
    for text, says in [
        ("101=2.50\n102=2,50", "line 2: price '2,50' is not an amount like 12.50"),
        ("101=2.505", "line 1: price '2.505'"),
        ("101=2.50\n101=3", "line 2: item 101 is already priced on line 1"),
        ("espresso=2.50", "line 1: the item number must be a whole number"),
        ("101 2.50", "line 1: '101 2.50' is not ITEM=PRICE"),
        ("\n", "a price list needs at least one price"),
    ]:
        with pytest.raises(md.MasterDataError, match=says):
            parse_price_lines(text)


def test_times_are_now_or_utc_and_discounts_are_percent() -> None:
    assert parse_when("now", 123) == 123 and parse_when("", 123) == 123
    assert parse_when("2025-03-01 08:00", 0) == 1740816000
    assert parse_when("2025-03-01T08:00", 0) == 1740816000
    with pytest.raises(md.MasterDataError, match="not 'now' or a UTC date-time"):
        parse_when("tomorrow", 0)
    assert [parse_percent(t) for t in ("5", "2.5", "7.25 %", "100")] == [500, 250, 725, 10000]
    for bad in ("5,5", "-1", "101", "1.234"):
        with pytest.raises(md.MasterDataError, match="discount"):
            parse_percent(bad)
    assert [percent(b) for b in (500, 250, 725, 0)] == ["5 %", "2.5 %", "7.25 %", "0 %"]


def test_an_audit_change_lists_only_what_changed() -> None:
    before = {"id": 1, "name": "Silver", "discount_bps": 500}
    assert changes(before, {**before, "discount_bps": 750}) == [("discount_bps", "500", "750")]
    assert changes(None, {**before, "note": ""}) == [
        ("discount_bps", "", "500"), ("id", "", "1"), ("name", "", "Silver"), ("note", "", "(empty)")
    ]


# -- in the browser ----------------------------------------------------------------------------------


@needs_chromium
def test_admin_sets_up_a_shop_and_publishes_its_prices(browser: Browser, hub: tuple[str, Any]) -> None:
    url, engine = hub
    with logged_in(browser, url, "hq", LOGIN["hq"]) as page:
        page.goto("/admin/shops")
        page.fill("#shop_id", "east")
        page.fill("#name", "East market")
        page.fill("#address", "1 Harbour road")
        page.click("#save-shop")
        expect(page.locator("#notice")).to_have_text("Shop east added.")
        cells = row(page, "shops", "east")
        expect(cells.nth(1)).to_have_text("East market")
        expect(cells.nth(3)).to_have_text("open")

        page.fill("#shop_id", "East!")  # a bad id: said why, nothing added
        page.fill("#name", "Bad")
        page.click("#save-shop")
        expect(page.locator("#error")).to_contain_text("shop id 'East!' must be 1-32 of a-z, 0-9")
        expect(page.locator("#shops tbody tr")).to_have_count(3)

        page.goto("/admin/products")
        page.fill("#category_name", "Bakery")
        page.click("#save-category")
        expect(page.locator("#notice")).to_have_text("Category 'Bakery' saved.")
        row(page, "categories", "Bakery")
        page.fill("#product_id", "501")
        page.fill("#name", "Croissant")
        page.select_option("#category_id", label="Bakery")
        page.click("#save-product")
        expect(page.locator("#notice")).to_have_text("Product 501 saved.")
        page.fill("#product_id", "502")
        page.fill("#name", "Gift voucher")
        page.uncheck("#discountable")
        page.click("#save-product")
        cells = row(page, "products", "Croissant")
        expect(cells.nth(2)).to_have_text("Bakery")
        expect(cells.nth(3)).to_have_text("yes")
        expect(cells.nth(5)).to_have_text("HQ")
        expect(row(page, "products", "Gift voucher").nth(3)).to_have_text("no")
        expect(row(page, "products", "Acme soap").nth(5)).to_have_text("Acme")

        page.goto("/admin/prices")
        lists_before = price_lists(engine)
        page.select_option("#shop_id", "east")
        page.fill("#lines", "501=1.80\n502=ten")
        page.click("#add-price-list")
        expect(page.locator("#error")).to_have_text("line 2: price 'ten' is not an amount like 12.50 (dot, at most 2 decimals)")
        expect(page.locator("#lines")).to_have_value("501=1.80\n502=ten")  # kept to be corrected
        assert price_lists(engine) == lists_before
        page.fill("#lines", "501=1.80\n502=10")
        page.fill("#note", "east opening")
        page.click("#add-price-list")
        expect(page.locator("#notice")).to_contain_text("added for east")
        assert price_lists(engine) == lists_before + 1
        cells = row(page, "price-lists", "east opening")
        expect(cells.nth(1)).to_have_text("east")
        expect(cells.nth(5)).to_have_text("501 Croissant 1.80; 502 Gift voucher 10.00")

        # The preview: east's own prices and the global ones.
        expect(page.locator("#published")).to_contain_text("Not published yet")
        expect(row(page, "preview", "Croissant").nth(3)).to_have_text("1.80")
        expect(row(page, "preview", "Espresso").nth(3)).to_have_text("2.00")
        page.click("#publish-button")
        expect(page.locator("#notice")).to_have_text("Published version 1 for shop east.")
        expect(page.locator("#published")).to_contain_text("Published: version 1 on")
        # A list from a later time is listed as upcoming and changes nothing today.
        page.select_option("#shop_id", "east")
        page.fill("#effective", "2030-01-01 09:30")
        page.fill("#lines", "501=2.00")
        page.click("#add-price-list")
        expect(row(page, "price-lists", "2030").nth(2)).to_have_text("2030-01-01 09:30:00 (upcoming)")
        expect(row(page, "preview", "Croissant").nth(3)).to_have_text("1.80")
        page.click("#publish-button")
        expect(page.locator("#notice")).to_contain_text("Unchanged: shop east still has version 1")
        with Session(engine) as db:
            assert [p.version for p in db.exec(select(PublishedPrices).where(PublishedPrices.shop_id == "east"))] == [1]

        page.goto("/admin/settings")
        expect(row(page, "tiers", "Silver").nth(2)).to_have_text("5 %")
        page.click("#edit-tier-1")
        expect(page.locator("#discount")).to_have_value("5")
        page.fill("#discount", "7,5")
        page.click("#save-tier")
        expect(page.locator("#error")).to_contain_text("discount '7,5' is not a percentage")
        expect(row(page, "tiers", "Silver").nth(2)).to_have_text("5 %")
        page.fill("#discount", "7.5")
        page.click("#save-tier")
        expect(page.locator("#notice")).to_have_text("Tier 1 (Silver) saved: 7.5 % discount.")
        expect(row(page, "tiers", "Silver").nth(2)).to_have_text("7.5 %")
        expect(row(page, "params", "points.earn_per_100").nth(1)).to_contain_text("points a member earns")
        page.fill("#param-points-earn_per_100", "5000")
        page.click("#set-points-earn_per_100")
        expect(page.locator("#error")).to_contain_text("points.earn_per_100 must be a whole number from 0 to 1000")

        page.goto("/admin/audit")
        page.select_option("#entity", "tier")
        page.click("#filter")
        expect(page.locator("#audit tbody tr")).to_have_count(3)  # two tiers made by the seed, one change
        change = page.locator("#audit tbody tr").first.locator("td")
        expect(change.nth(1)).to_have_text("hq")
        expect(change.nth(2)).to_have_text("update")
        expect(change.nth(4)).to_have_text("1")
        expect(change.nth(5)).to_have_text("discount_bps: 500 → 750")


@needs_chromium
def test_a_shop_manager_sees_and_publishes_only_their_shop(browser: Browser, hub: tuple[str, Any]) -> None:
    url, engine = hub
    with logged_in(browser, url, "mgr", LOGIN["mgr"]) as page:
        page.goto("/admin/prices")
        expect(page.locator("#my-shop")).to_have_text("north")
        expect(page.locator("#shop-picker")).to_have_count(0)
        expect(row(page, "preview", "Espresso").nth(3)).to_have_text("2.20")  # north's own list wins
        notes = page.locator("#price-lists tbody tr td:nth-child(5)").all_inner_texts()
        assert "north espresso" in notes and "south special" not in notes
        expect(page.locator("#shop_id option")).to_have_text(["north"])

        page.click("#publish-button")
        expect(page.locator("#notice")).to_have_text("Published version 1 for shop north.")

        page.goto("/admin/prices?shop=south")
        expect(page.locator("#error")).to_have_text("a shop manager of 'north' may not see or change shop 'south'")
        expect(page.locator("#preview")).to_have_count(0)

        # A tampered form: the publish button pointed at south.
        page.goto("/admin/prices")
        page.locator("#publish input[name=shop_id]").evaluate("input => input.value = 'south'")
        page.click("#publish-button")
        expect(page.locator("#error")).to_have_text("a shop manager of 'north' may not see or change shop 'south'")
        with Session(engine) as db:
            assert db.exec(select(PublishedPrices).where(PublishedPrices.shop_id == "south")).first() is None

        page.goto("/admin/shops")
        expect(page.locator("#error")).to_contain_text("a shop_manager may not use this; it is for: admin")


@needs_chromium
def test_a_merchant_edits_its_own_products_only(browser: Browser, hub: tuple[str, Any]) -> None:
    url, engine = hub
    with logged_in(browser, url, "acme", LOGIN["acme"]) as page:
        expect(page).to_have_url(f"{url}/merchant")
        expect(page.locator("#my-products tbody tr")).to_have_count(1)
        page.click("#edit-product-201")
        expect(page.locator("#name")).to_have_value("Acme soap")
        page.fill("#name", "Acme soap XL")
        page.uncheck("#discountable")
        page.click("#save-product")
        expect(page.locator("#notice")).to_have_text("Product 201 saved.")
        cells = row(page, "my-products", "Acme soap XL")
        expect(cells.nth(3)).to_have_text("no")

        page.goto("/merchant?edit=301")
        expect(page.locator("#error")).to_have_text("product 301 is not one of your products: a merchant may change only its own")
        expect(page.locator("#name")).to_have_value("")  # the rival's product is not shown
        page.fill("#product_id", "301")
        page.fill("#name", "Taken over")
        page.click("#save-product")
        expect(page.locator("#error")).to_have_text("product 301 is not one of your products: a merchant may change only its own")

        page.fill("#lines", "201=3.50\n301=1.00")
        page.click("#add-price-list")
        expect(page.locator("#error")).to_contain_text("product 301 is not one of this merchant's products")
        page.fill("#lines", "201=3.50")
        page.select_option("#shop_id", "north")
        page.click("#add-price-list")
        expect(page.locator("#notice")).to_contain_text("added for north")
        expect(row(page, "price-lists", "3.50").nth(5)).to_have_text("201 Acme soap XL 3.50")
        expect(row(page, "price-lists", "3.00").nth(5)).to_have_text("201 Acme soap XL 3.00")  # only its own items

        page.goto("/admin/products")
        expect(page.locator("#error")).to_contain_text("a merchant may not use this")
    with Session(engine) as db:
        rival = db.get(Product, 301)
        assert rival is not None and rival.name == "Rival cake"


@needs_chromium
def test_an_unapproved_merchant_is_refused(browser: Browser, hub: tuple[str, Any]) -> None:
    url, _engine = hub
    context = browser.new_context(base_url=url)
    page = context.new_page()
    try:
        page.goto("/login")
        page.fill("input[name=username]", "late")
        page.fill("input[name=password]", LOGIN["late"])
        page.click("#login button")
        expect(page.locator("#error")).to_have_text("this merchant is not approved by HQ yet")
        expect(page.locator("#my-products")).to_have_count(0)
    finally:
        context.close()


@needs_chromium
def test_every_page_without_a_login_goes_to_the_login_form(browser: Browser, hub: tuple[str, Any]) -> None:
    url, _engine = hub
    context = browser.new_context(base_url=url)
    page = context.new_page()
    try:
        for path in PAGES:
            page.goto(path)
            expect(page).to_have_url(f"{url}/login?next={path}")
            expect(page.locator("#login")).to_be_visible()
    finally:
        context.close()
