"""HQ's master-data pages: shops, products, prices, settings (tiers, member categories, parameters), the audit log,
and the merchant's own page.

Forms post, then redirect with a notice, or show the page again with the error and nothing
changed. Roles and scoping follow hub.api_master: a shop manager sees and publishes only
their shop's prices; a merchant changes only its own products.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import calendar
import json
import re
import time
from collections.abc import Callable
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from hub import masterdata as md
from hub.auth import ADMIN, MERCHANT, SHOP_MANAGER, Gate, Principal
from hub.forms import back, checkbox, commit, dropdown, message, show, text_input
from hub.models import (
    AuditEntry,
    MemberCategory,
    Merchant,
    PriceList,
    PriceListItem,
    Product,
    ProductCategory,
    Shop,
    Tier,
)
from hub.pages import table, td
from protocol.pricing import BPS, format_money

EVERY_SHOP = "(every shop)"
AUDIT_ROWS = 200
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
PRICE_HINT = "one product a line: ITEM=PRICE, e.g. 101=2.50"
EFFECTIVE_HINT = 'placeholder="now or 2025-03-01 08:00"'


# -- reading form input (pure) ------------------------------------------------------------------


def parse_whole(text: str, what: str) -> int:
    """A whole number typed into a form; a clear error naming the field otherwise."""
    raw = text.strip()
    if not re.fullmatch(r"-?\d{1,12}", raw):
        raise md.MasterDataError("bad_number", f"{what} must be a whole number, got {text!r}")
    return int(raw)


def parse_when(text: str, now: int) -> int:
    """'now' (or nothing) -> now; a UTC date-time like '2025-03-01 08:00' -> unix seconds."""
    raw = text.strip()
    if raw.lower() in ("", "now"):
        return now
    for fmt in TIME_FORMATS:
        try:
            return calendar.timegm(time.strptime(raw, fmt))
        except ValueError:
            continue
    raise md.MasterDataError("bad_time", f"effective time {text!r} is not 'now' or a UTC date-time like 2025-03-01 08:00")


def parse_price_lines(text: str) -> dict[int, int]:
    """ITEM=PRICE lines -> {item: cents}; an error names the line that is wrong."""
    prices: dict[int, int] = {}
    seen: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item_text, sign, price_text = line.partition("=")
        try:
            if not sign:
                raise md.MasterDataError("bad_price_line", f"{line.strip()!r} is not ITEM=PRICE, e.g. 101=2.50")
            item = parse_whole(item_text, "the item number")
            if item in seen:
                raise md.MasterDataError("duplicate_item", f"item {item} is already priced on line {seen[item]}")
            cents = md.parse_money(price_text)
        except md.MasterDataError as exc:
            raise md.MasterDataError(exc.code, f"line {number}: {exc.message}", exc.status) from exc
        seen[item] = number
        prices[item] = cents
    if not prices:
        raise md.MasterDataError("empty_price_list", f"a price list needs at least one price ({PRICE_HINT})")
    return prices


def parse_percent(text: str) -> int:
    """'5' or '2.5' (per cent, at most 2 decimals, 0 to 100) -> basis points."""
    raw = text.strip().removesuffix("%").strip()
    if not re.fullmatch(r"\d{1,3}(\.\d{1,2})?", raw):
        raise md.MasterDataError("bad_percent", f"discount {text!r} is not a percentage like 5 or 2.5 (at most 2 decimals)")
    whole, _dot, frac = raw.partition(".")
    bps = int(whole) * 100 + int(frac.ljust(2, "0") or "0")
    if bps > BPS:
        raise md.MasterDataError("bad_percent", f"discount {text!r} is over 100 %")
    return bps


def percent(bps: int) -> str:
    """500 -> '5 %', 250 -> '2.5 %', 125 -> '1.25 %'."""
    text = f"{bps // 100}.{bps % 100:02d}".rstrip("0").rstrip(".")
    return f"{text} %"


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(field, before, after) for each field an audit entry changed; every field of a new row (before '')."""
    old, new = before or {}, after or {}
    rows = []
    for name in sorted(set(old) | set(new)):
        if before is not None and after is not None and old.get(name) == new.get(name):
            continue
        rows.append((name, _shown(old[name]) if name in old else "", _shown(new[name]) if name in new else ""))
    return rows


def _shown(value: Any, longest: int = 120) -> str:
    if value == "":
        return "(empty)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= longest else text[: longest - 1] + "…"


# -- HTML pieces ---------------------------------------------------------------------------------


def utc(ts: int) -> str:
    """A time as UTC; unlike pages.when, 0 is a real time here (a list effective since the epoch)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))






def link_cell(href: str, text: str, link_id: str) -> str:
    return f'<td><a href="{escape(href)}" id="{escape(link_id)}">{escape(text)}</a></td>'


def yes(flag: bool) -> str:
    return "yes" if flag else "no"





# -- what the pages show (reads) -------------------------------------------------------------------


def shop_options(db: Session) -> list[tuple[str, str]]:
    return [(s.id, f"{s.id}: {s.name}" + ("" if s.active else " (closed)")) for s in db.exec(select(Shop).order_by(col(Shop.id)))]


def category_options(db: Session) -> list[tuple[str, str]]:
    cats = db.exec(select(ProductCategory).order_by(col(ProductCategory.name)))
    return [("", "(none)")] + [(str(c.id), c.name) for c in cats]


def price_lists_table(db: Session, lists: list[PriceList], now: int, only: set[int] | None = None) -> str:
    """The price lists, newest first, with their prices (only the products in `only` when given)."""
    names = {p.id: p.name for p in db.exec(select(Product))}
    items: dict[int, list[PriceListItem]] = {}
    ids = [pl.id for pl in lists]
    query = select(PriceListItem).where(col(PriceListItem.price_list_id).in_(ids))
    for item in db.exec(query.order_by(col(PriceListItem.product_id))):
        if only is None or item.product_id in only:
            items.setdefault(item.price_list_id, []).append(item)
    rows = []
    for pl in sorted(lists, key=lambda p: p.id or 0, reverse=True):
        start = utc(pl.effective_from) + (" (upcoming)" if pl.effective_from > now else "")
        listed = items.get(pl.id or 0, [])
        prices = "; ".join(f"{i.product_id} {names.get(i.product_id, '?')} {format_money(i.price)}" for i in listed)
        rows.append([td(pl.id, True), td(pl.shop_id or EVERY_SHOP), td(start), td(utc(pl.created)), td(pl.note), td(prices)])
    head = ["List", "For", "Effective from (UTC)", "Added (UTC)", "Note", "Prices"]
    return table("price-lists", head, rows, "No price lists yet.")


def price_form(action: str, shops: list[tuple[str, str]], form: dict[str, str]) -> str:
    return f"""<form method="post" action="{action}" id="price-form">
{dropdown("For", "shop_id", shops, form.get("shop_id", ""))}
{text_input("Effective from (UTC date-time, or now)", "effective", form.get("effective", "now"), EFFECTIVE_HINT)}
{text_input("Note", "note", form.get("note", ""))}
<label>Prices ({escape(PRICE_HINT)})<br><textarea name="lines" id="lines" rows="6" cols="40"
 placeholder="101=2.50">{escape(form.get("lines", ""))}</textarea></label>
<button id="add-price-list">Add price list</button></form>"""


def product_form(action: str, form: dict[str, Any], categories: list[tuple[str, str]], editing: bool) -> str:
    readonly = " readonly" if editing else ""
    return f"""<form method="post" action="{action}" id="product-form">
{text_input("Item number", "product_id", form.get("product_id", ""), f"required{readonly}")}
{text_input("Name", "name", form.get("name", ""), "required")}
{dropdown("Category", "category_id", categories, str(form.get("category_id") or ""))}
{checkbox("Tier discount applies", "discountable", bool(form.get("discountable", True)))}
{checkbox("On sale (active)", "active", bool(form.get("active", True)))}
<button id="save-product">{"Save product" if editing else "Add product"}</button>
{'<a href="?">New product instead</a>' if editing else ""}</form>"""


def product_fields(product: Product | None) -> dict[str, Any]:
    if product is None:
        return {}
    return {"product_id": product.id, "name": product.name, "category_id": product.category_id or "",
            "discountable": product.discountable, "active": product.active}


def category_id_of(text: str) -> int | None:
    return parse_whole(text, "category") if text.strip() else None


# -- the routes ----------------------------------------------------------------------------------


def master_pages(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The pages /admin/shops, /admin/products, /admin/prices, /admin/settings, /admin/audit and /merchant."""
    web = APIRouter(include_in_schema=False)
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Staff = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER))]
    MerchantUser = Annotated[Principal, Depends(gate.require(MERCHANT))]
    Text = Annotated[str, Form()]
    Flag = Annotated[bool, Form()]

    def now() -> int:
        return int(gate.clock())

    # -- shops --

    def shops_page(db: Session, who: Principal, form: dict[str, Any], editing: bool, notice: str = "",
                   error: str = "", status: int = 200) -> HTMLResponse:
        rows = [
            [td(s.id), td(s.name), td(s.address), td("open" if s.active else "closed", cls="on" if s.active else "off"),
             link_cell(f"/admin/shops?edit={s.id}", "Edit", f"edit-shop-{s.id}")]
            for s in db.exec(select(Shop).order_by(col(Shop.id)))
        ]
        readonly = " readonly" if editing else ""
        body = f"""<h1>Shops</h1>{message(notice, error)}
{table("shops", ["Shop", "Name", "Address", "State", ""], rows, "No shops yet: add the first one below.")}
<h2>{"Edit shop " + escape(str(form.get("shop_id", ""))) if editing else "Add a shop"}</h2>
<form method="post" action="/admin/shops" id="shop-form">
{text_input("Shop id (a-z, 0-9, - and _)", "shop_id", form.get("shop_id", ""), f"required{readonly}")}
{text_input("Name", "name", form.get("name", ""), "required")}
{text_input("Address", "address", form.get("address", ""))}
{checkbox("Open", "active", bool(form.get("active", True)))}
<button id="save-shop">{"Save shop" if editing else "Add shop"}</button></form>"""
        return show("Shops", body, who, status)

    @web.get("/admin/shops", response_class=HTMLResponse)
    def shops(db: Db, who: Admin, edit: str = "", notice: str = "") -> HTMLResponse:
        shop = db.get(Shop, edit) if edit else None
        if edit and shop is None:
            return shops_page(db, who, {}, False, error=f"no shop {edit!r}", status=404)
        form = {"shop_id": shop.id, "name": shop.name, "address": shop.address, "active": shop.active} if shop else {}
        return shops_page(db, who, form, shop is not None, notice)

    @web.post("/admin/shops")
    def save_shop(db: Db, who: Admin, shop_id: Text = "", name: Text = "", address: Text = "",
                  active: Flag = False) -> Response:
        shop_id = shop_id.strip()
        existed = bool(shop_id) and db.get(Shop, shop_id) is not None
        _out, error = commit(db, lambda: md.save_shop(db, who.name, now(), shop_id, name, address.strip(), active))
        if error:
            form = {"shop_id": shop_id, "name": name, "address": address, "active": active}
            return shops_page(db, who, form, existed, error=error.message, status=error.status)
        return back("/admin/shops", f"Shop {shop_id} {'saved' if existed else 'added'}.")

    # -- products and their categories --

    def products_page(db: Session, who: Principal, form: dict[str, Any], category: dict[str, Any], editing: bool,
                      notice: str = "", error: str = "", status: int = 200) -> HTMLResponse:
        categories = {c.id: c.name for c in db.exec(select(ProductCategory))}
        merchants = {m.id: m.name for m in db.exec(select(Merchant))}
        rows = [
            [td(p.id, True), td(p.name), td(categories.get(p.category_id, "-")), td(yes(p.discountable)),
             td(yes(p.active), cls="on" if p.active else "off"),
             td(merchants.get(p.merchant_id, "?") if p.merchant_id is not None else "HQ"),
             link_cell(f"/admin/products?edit={p.id}", "Edit", f"edit-product-{p.id}")]
            for p in db.exec(select(Product).order_by(col(Product.id)))
        ]
        cat_rows = [
            [td(c.id, True), td(c.name), link_cell(f"/admin/products?category={c.id}", "Rename", f"edit-category-{c.id}")]
            for c in db.exec(select(ProductCategory).order_by(col(ProductCategory.name)))
        ]
        cat_id = str(category.get("category_id", ""))
        cat_label = f"Rename category {cat_id} to" if cat_id else "New category"
        head = ["Item", "Name", "Category", "Discountable", "Active", "Merchant", ""]
        body = f"""<h1>Products</h1>{message(notice, error)}
{table("products", head, rows, "No products yet.")}
<h2>{"Edit product " + escape(str(form.get("product_id"))) if editing else "Add a product"}</h2>
{product_form("/admin/products", form, category_options(db), editing)}
<h2>Categories</h2>
{table("categories", ["Id", "Name", ""], cat_rows, "No categories yet.")}
<form method="post" action="/admin/categories" id="category-form">
<input type="hidden" name="category_id" value="{escape(cat_id)}">
{text_input(cat_label, "category_name", category.get("name", ""), "required")}
<button id="save-category">{"Rename" if cat_id else "Add category"}</button></form>"""
        return show("Products", body, who, status)

    @web.get("/admin/products", response_class=HTMLResponse)
    def products(db: Db, who: Admin, edit: str = "", category: str = "", notice: str = "") -> HTMLResponse:
        product = db.get(Product, int(edit)) if edit.isdigit() else None
        found = db.get(ProductCategory, int(category)) if category.isdigit() else None
        cat = {"category_id": found.id, "name": found.name} if found else {}
        if (edit and product is None) or (category and found is None):
            missing = f"no product {edit!r}" if edit and product is None else f"no product category {category!r}"
            return products_page(db, who, {}, {}, False, error=missing, status=404)
        return products_page(db, who, product_fields(product), cat, product is not None, notice)

    @web.post("/admin/products")
    def save_product(db: Db, who: Admin, product_id: Text = "", name: Text = "", category_id: Text = "",
                     discountable: Flag = False, active: Flag = False) -> Response:
        form = {"product_id": product_id, "name": name, "category_id": category_id, "discountable": discountable,
                "active": active}
        saved, error = commit(db, lambda: md.save_product(
            db, who.name, now(), parse_whole(product_id, "item number"), name, category_id_of(category_id),
            discountable, active))
        if error:
            editing = product_id.strip().isdigit() and db.get(Product, int(product_id)) is not None
            return products_page(db, who, form, {}, editing, error=error.message, status=error.status)
        return back("/admin/products", f"Product {saved.id} saved.")

    @web.post("/admin/categories")
    def save_category(db: Db, who: Admin, category_id: Text = "", category_name: Text = "") -> Response:
        def work() -> ProductCategory:
            return md.save_category(db, who.name, now(), category_name, category_id_of(category_id))

        saved, error = commit(db, work)
        if error:
            cat = {"category_id": category_id.strip(), "name": category_name}
            return products_page(db, who, {}, cat, False, error=error.message, status=error.status)
        return back("/admin/products", f"Category {saved.name!r} saved.")

    # -- prices --

    def own_shop(who: Principal, shop_id: str) -> None:
        if not who.may_see_shop(shop_id):
            raise md.MasterDataError(
                "not_your_shop", f"a shop manager of {who.shop_id!r} may not see or change shop {shop_id or EVERY_SHOP!r}", 403)

    def prices_page(db: Session, who: Principal, shop_id: str, form: dict[str, str], notice: str = "",
                    error: str = "", status: int = 200) -> HTMLResponse:
        at = now()
        shops = shop_options(db)
        preview = ""
        if who.role == ADMIN:
            picker = f"""<form method="get" action="/admin/prices" id="shop-picker">
{dropdown("Shop", "shop", [("", "(choose a shop)"), *shops], shop_id)} <button id="show-shop">Show</button></form>"""
        else:
            picker = f'<p>Shop <b id="my-shop">{escape(who.shop_id)}</b></p>'
        if shop_id:
            try:
                own_shop(who, shop_id)
                doc = md.shop_prices(db, shop_id, at)
                rows = [[td(i["id"], True), td(i["name"]), td(i["category"] or "-"), td(format_money(i["price"]), True),
                         td(yes(i["discountable"]))] for i in doc["items"]]
                last = md.latest_prices(db, shop_id)
                published = (f"Published: version {last.version} on {utc(last.published)} UTC." if last
                             else "Not published yet: its handhelds have no price list from the hub.")
                preview = f"""<p class="muted">What shop {escape(shop_id)} sells now ({utc(at)} UTC):</p>
{table("preview", ["Item", "Name", "Category", "Price", "Discountable"], rows, "Nothing priced for this shop yet.")}
<p id="published">{escape(published)}</p>
<form method="post" action="/admin/prices/publish" id="publish">
<input type="hidden" name="shop_id" value="{escape(shop_id)}">
<button id="publish-button">Publish to the shop's handhelds</button></form>"""
            except md.MasterDataError as exc:
                error = error or exc.message
                status = status if status != 200 else exc.status
        lists = [pl for pl in db.exec(select(PriceList)) if not pl.shop_id or who.may_see_shop(pl.shop_id)]
        targets = [("", EVERY_SHOP), *shops] if who.role == ADMIN else [(who.shop_id, who.shop_id)]
        body = f"""<h1>Prices</h1>{message(notice, error)}
<h2>What a shop sells now</h2>
{picker}
{preview}
<h2>Price lists</h2>
<p class="muted">A shop sells each product at the price of its own newest list that has it, else of the newest
list for every shop, from their effective times. A list is never changed: add a new one.</p>
{price_lists_table(db, lists, at)}
<h2>Add a price list</h2>
{price_form("/admin/prices", targets, form)}"""
        return show("Prices", body, who, status)

    @web.get("/admin/prices", response_class=HTMLResponse)
    def prices(db: Db, who: Staff, shop: str = "", notice: str = "") -> HTMLResponse:
        return prices_page(db, who, shop or who.shop_id, {"shop_id": shop}, notice)

    @web.post("/admin/prices")
    def add_prices(db: Db, who: Staff, shop_id: Text = "", effective: Text = "now", note: Text = "",
                   lines: Text = "") -> Response:
        def work() -> PriceList:
            if who.role == SHOP_MANAGER:
                own_shop(who, shop_id)
            at = now()
            return md.add_price_list(db, who.name, at, parse_price_lines(lines), shop_id, parse_when(effective, at), note.strip())

        made, error = commit(db, work)
        if error:
            form = {"shop_id": shop_id, "effective": effective, "note": note, "lines": lines}
            shown = shop_id if who.may_see_shop(shop_id) else who.shop_id
            return prices_page(db, who, shown, form, error=error.message, status=error.status)
        return back("/admin/prices", f"Price list {made.id} added for {shop_id or EVERY_SHOP}.", shop=shop_id)

    @web.post("/admin/prices/publish")
    def publish(db: Db, who: Staff, shop_id: Text = "") -> Response:
        def work() -> tuple[Any, bool]:
            own_shop(who, shop_id)
            return md.publish_prices(db, who.name, now(), shop_id)

        done, error = commit(db, work)
        if error:
            shown = shop_id if who.may_see_shop(shop_id) else who.shop_id
            return prices_page(db, who, shown, {}, error=error.message, status=error.status)
        published, changed = done
        notice = (f"Published version {published.version} for shop {shop_id}." if changed
                  else f"Unchanged: shop {shop_id} still has version {published.version}; nothing new to publish.")
        return back("/admin/prices", notice, shop=shop_id)

    # -- settings: tiers, member categories, parameters --

    def settings_page(db: Session, who: Principal, forms: dict[str, dict[str, str]], notice: str = "",
                      error: str = "", status: int = 200) -> HTMLResponse:
        tier_rows = [[td(t.id, True), td(t.name), td(percent(t.discount_bps), True),
                      link_cell(f"/admin/settings?tier={t.id}", "Edit", f"edit-tier-{t.id}")]
                     for t in db.exec(select(Tier).order_by(col(Tier.id)))]
        cat_rows = [[td(c.id, True), td(c.name), td(c.description),
                     link_cell(f"/admin/settings?category={c.id}", "Edit", f"edit-member-category-{c.id}")]
                    for c in db.exec(select(MemberCategory).order_by(col(MemberCategory.id)))]
        values = md.params(db)
        param_rows = []
        for key, (default, lo, hi, meaning) in md.PARAMS.items():
            slug = key.replace(".", "-")
            param_rows.append([
                td(key), td(meaning), td(values[key], True), td(default, True), td(f"{lo} to {hi}"),
                f"""<td><form method="post" action="/admin/settings/params" class="inline" id="param-form-{slug}">
<input type="hidden" name="key" value="{escape(key)}"><input name="value" id="param-{slug}" size="6"
 value="{escape(forms.get("param", {}).get(key, str(values[key])))}"> <button id="set-{slug}">Set</button></form></td>""",
            ])
        tier, cat = forms.get("tier", {}), forms.get("category", {})
        body = f"""<h1>Settings</h1>{message(notice, error)}
<h2>Tiers</h2>
<p class="muted">A member's tier is written on their card; its discount applies to discountable products.</p>
{table("tiers", ["Tier", "Name", "Discount", ""], tier_rows, "No tiers yet.")}
<form method="post" action="/admin/settings/tiers" id="tier-form">
{text_input("Tier number (0-255)", "tier", tier.get("tier", ""), "required size=4")}
{text_input("Name", "tier_name", tier.get("name", ""), "required")}
{text_input("Discount in % (e.g. 5 or 2.5)", "discount", tier.get("discount", ""), "required size=6")}
<button id="save-tier">Save tier</button></form>
<h2>Member categories</h2>
<p class="muted">Card types; the number is written on the card.</p>
{table("member-categories", ["Number", "Name", "Description", ""], cat_rows, "No member categories yet.")}
<form method="post" action="/admin/settings/member-categories" id="member-category-form">
{text_input("Number (0-255)", "category_id", cat.get("category_id", ""), "required size=4")}
{text_input("Name", "category_name", cat.get("name", ""), "required")}
{text_input("Description", "description", cat.get("description", ""))}
<button id="save-member-category">Save member category</button></form>
<h2>Parameters</h2>
{table("params", ["Parameter", "Meaning", "Value", "Default", "Allowed", "Change"], param_rows, "No parameters.")}"""
        return show("Settings", body, who, status)

    @web.get("/admin/settings", response_class=HTMLResponse)
    def settings(db: Db, who: Admin, tier: str = "", category: str = "", notice: str = "") -> HTMLResponse:
        forms: dict[str, dict[str, str]] = {}
        found_tier = db.get(Tier, int(tier)) if tier.isdigit() else None
        if found_tier:
            forms["tier"] = {"tier": str(found_tier.id), "name": found_tier.name,
                             "discount": percent(found_tier.discount_bps).removesuffix(" %")}
        found_cat = db.get(MemberCategory, int(category)) if category.isdigit() else None
        if found_cat:
            forms["category"] = {"category_id": str(found_cat.id), "name": found_cat.name, "description": found_cat.description}
        return settings_page(db, who, forms, notice)

    @web.post("/admin/settings/tiers")
    def save_tier(db: Db, who: Admin, tier: Text = "", tier_name: Text = "", discount: Text = "") -> Response:
        saved, error = commit(db, lambda: md.save_tier(
            db, who.name, now(), parse_whole(tier, "tier number"), tier_name, parse_percent(discount)))
        if error:
            forms = {"tier": {"tier": tier, "name": tier_name, "discount": discount}}
            return settings_page(db, who, forms, error=error.message, status=error.status)
        return back("/admin/settings", f"Tier {saved.id} ({saved.name}) saved: {percent(saved.discount_bps)} discount.")

    @web.post("/admin/settings/member-categories")
    def save_member_category(db: Db, who: Admin, category_id: Text = "", category_name: Text = "",
                             description: Text = "") -> Response:
        saved, error = commit(db, lambda: md.save_member_category(
            db, who.name, now(), parse_whole(category_id, "member category number"), category_name, description.strip()))
        if error:
            forms = {"category": {"category_id": category_id, "name": category_name, "description": description}}
            return settings_page(db, who, forms, error=error.message, status=error.status)
        return back("/admin/settings", f"Member category {saved.id} ({saved.name}) saved.")

    @web.post("/admin/settings/params")
    def save_param(db: Db, who: Admin, key: Text = "", value: Text = "") -> Response:
        saved, error = commit(db, lambda: md.set_param(db, who.name, now(), key, parse_whole(value, key or "value")))
        if error:
            return settings_page(db, who, {"param": {key: value}}, error=error.message, status=error.status)
        return back("/admin/settings", f"{saved.key} set to {saved.value}.")

    # -- the audit log --

    @web.get("/admin/audit", response_class=HTMLResponse)
    def audit(db: Db, who: Admin, entity: str = "", key: str = "") -> HTMLResponse:
        entities = sorted(db.exec(select(AuditEntry.entity).distinct()))
        rows = []
        for entry in md.audit_log(db, entity or None, key.strip() or None, AUDIT_ROWS):
            before = json.loads(entry.before) if entry.before else None
            after = json.loads(entry.after) if entry.after else None
            listed = changes(before, after)
            items = "".join(
                f"<li><b>{escape(name)}</b>: "
                + (f'<span class="before">{escape(old)}</span> → ' if before is not None else "")
                + f'<span class="after">{escape(new)}</span></li>'
                for name, old, new in listed
            ) or "<li class=\"muted\">no field changed</li>"
            rows.append([td(utc(entry.time)), td(entry.actor), td(entry.action), td(entry.entity), td(entry.entity_key),
                         f'<td><ul class="change">{items}</ul></td>'])
        picker = dropdown("What", "entity", [("", "(everything)"), *[(e, e) for e in entities]], entity)
        body = f"""<h1>Audit log</h1>
<p class="muted">Every change to master data: who, when (UTC), and each field before → after. Newest first,
at most {AUDIT_ROWS}.</p>
<form method="get" action="/admin/audit" id="audit-filter">{picker}
{text_input("Key", "key", key, "size=12")} <button id="filter">Show</button></form>
{table("audit", ["Time (UTC)", "Who", "Action", "What", "Key", "Change"], rows, "Nothing in the audit log matches.")}"""
        return show("Audit log", body, who)

    # -- the merchant's own products and prices --

    def merchant_page(db: Session, who: Principal, form: dict[str, Any], prices: dict[str, str], editing: bool,
                      notice: str = "", error: str = "", status: int = 200) -> HTMLResponse:
        mine = list(db.exec(select(Product).where(Product.merchant_id == who.merchant_id).order_by(col(Product.id))))
        categories = {c.id: c.name for c in db.exec(select(ProductCategory))}
        rows = [[td(p.id, True), td(p.name), td(categories.get(p.category_id, "-")), td(yes(p.discountable)),
                 td(yes(p.active), cls="on" if p.active else "off"),
                 link_cell(f"/merchant?edit={p.id}", "Edit", f"edit-product-{p.id}")] for p in mine]
        ids = {p.id for p in mine}
        listed = select(PriceListItem.price_list_id).where(col(PriceListItem.product_id).in_(ids))
        lists = list(db.exec(select(PriceList).where(col(PriceList.id).in_(listed)))) if ids else []
        merchant = db.get(Merchant, who.merchant_id) if who.merchant_id is not None else None
        body = f"""<h1>My products{": " + escape(merchant.name) if merchant else ""}</h1>{message(notice, error)}
{table("my-products", ["Item", "Name", "Category", "Discountable", "Active", ""], rows, "No products yet.")}
<h2>{"Edit product " + escape(str(form.get("product_id"))) if editing else "Add a product"}</h2>
{product_form("/merchant/products", form, category_options(db), editing)}
<h2>My price lists</h2>
{price_lists_table(db, lists, now(), only=ids)}
<h2>Add a price list for my products</h2>
{price_form("/merchant/prices", [("", EVERY_SHOP), *shop_options(db)], prices)}"""
        return show("My products", body, who, status)

    def not_yours(product_id: int) -> str:
        return f"product {product_id} is not one of your products: a merchant may change only its own"

    @web.get("/merchant", response_class=HTMLResponse)
    def merchant_home(db: Db, who: MerchantUser, edit: str = "", notice: str = "") -> HTMLResponse:
        if not edit:
            return merchant_page(db, who, {}, {}, False, notice)
        product = db.get(Product, int(edit)) if edit.isdigit() else None
        if product is None or product.merchant_id != who.merchant_id:
            return merchant_page(db, who, {}, {}, False, error=not_yours(int(edit)) if edit.isdigit() else f"no product {edit!r}",
                                 status=403 if product is not None else 404)
        return merchant_page(db, who, product_fields(product), {}, True, notice)

    @web.post("/merchant/products")
    def merchant_product(db: Db, who: MerchantUser, product_id: Text = "", name: Text = "", category_id: Text = "",
                         discountable: Flag = False, active: Flag = False) -> Response:
        form = {"product_id": product_id, "name": name, "category_id": category_id, "discountable": discountable,
                "active": active}
        saved, error = commit(db, lambda: md.save_product(
            db, who.name, now(), parse_whole(product_id, "item number"), name, category_id_of(category_id),
            discountable, active, who.merchant_id or 0))
        if error:
            theirs = error.code == "not_your_product"
            text = not_yours(int(product_id)) if theirs else error.message
            editing = not theirs and product_id.strip().isdigit() and db.get(Product, int(product_id)) is not None
            return merchant_page(db, who, form, {}, editing, error=text, status=error.status)
        return back("/merchant", f"Product {saved.id} saved.")

    @web.post("/merchant/prices")
    def merchant_prices(db: Db, who: MerchantUser, shop_id: Text = "", effective: Text = "now", note: Text = "",
                        lines: Text = "") -> Response:
        def work() -> PriceList:
            at = now()
            prices = parse_price_lines(lines)
            md.check_merchant_owns(db, who.merchant_id or 0, list(prices))
            return md.add_price_list(db, who.name, at, prices, shop_id, parse_when(effective, at), note.strip())

        made, error = commit(db, work)
        if error:
            form = {"shop_id": shop_id, "effective": effective, "note": note, "lines": lines}
            return merchant_page(db, who, {}, form, False, error=error.message, status=error.status)
        return back("/merchant", f"Price list {made.id} added for {shop_id or EVERY_SHOP}.")

    return web
