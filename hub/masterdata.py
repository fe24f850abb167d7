"""HQ's master data: shops, products and their categories, price lists, member categories, tiers, parameters.

Every change goes through these functions: each checks its input, writes the change
and its audit entry in the caller's session, and raises MasterDataError (nothing
written) when the input is wrong. The caller commits. Time and the actor are passed in.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from hub.models import (
    AuditEntry,
    MemberCategory,
    Param,
    PriceList,
    PriceListItem,
    Product,
    ProductCategory,
    PublishedPrices,
    Shop,
    Tier,
)
from hub.refusal import Refusal
from protocol.pricing import BPS, MAX_POINTS_BPS, PricingError
from protocol.pricing import PriceList as ProtocolPriceList

Row = TypeVar("Row", bound=SQLModel)

MAX_PRICE = 10_000_000  # cents; protocol.pricing refuses more for one item
MAX_ITEM_ID = 0xFFFFFFFF  # the sale record's item field is a u32
SHOP_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")

# Parameters HQ can set: key -> (default, lowest, highest, what it means). All whole numbers.
PARAMS: dict[str, tuple[int, int, int, str]] = {
    "points.earn_per_100": (1, 0, 1000, "points a member earns per 100 cents paid (stored value and cash)"),
    "points.point_value": (1, 1, 10000, "cents one point is worth when redeemed"),
    "lease.expires_after_s": (3 * 86400, 0, 30 * 86400, "seconds a handheld may take stored value after its last sync"),
    "lease.max_sv_per_sale": (10_000, 0, 0x7FFFFFFF, "cents of stored value one sale may take while offline"),
    "lease.max_sv_per_card_day": (20_000, 0, 0x7FFFFFFF, "cents of stored value one card may spend a day on a handheld offline"),
    "lease.max_sv_offline_total": (200_000, 0, 0x7FFFFFFF, "cents of stored value a handheld may take in all between syncs"),
    "points.validity_days": (365, 0, 3650, "days a lot of earned points lasts before the expiry job takes it (0: never)"),
    "points.referral_bps": (0, 0, 10000, "basis points of what a referred member's paid amount earns that their referrer gets"),
    # RFM cut points (hub.tags, read at each recompute): score 5, 4, 3, 2 at these marks, else 1.
    "rfm.window_days": (365, 1, 3660, "days back that RFM frequency and monetary count purchases"),
    "rfm.r5_days": (14, 1, 3660, "RFM recency 5: days since the last purchase, at most"),
    "rfm.r4_days": (30, 1, 3660, "RFM recency 4: days since the last purchase, at most"),
    "rfm.r3_days": (90, 1, 3660, "RFM recency 3: days since the last purchase, at most"),
    "rfm.r2_days": (180, 1, 3660, "RFM recency 2: days since the last purchase, at most (more: 1)"),
    "rfm.f5_purchases": (20, 1, 100_000, "RFM frequency 5: purchases in the window, at least"),
    "rfm.f4_purchases": (10, 1, 100_000, "RFM frequency 4: purchases in the window, at least"),
    "rfm.f3_purchases": (5, 1, 100_000, "RFM frequency 3: purchases in the window, at least"),
    "rfm.f2_purchases": (2, 1, 100_000, "RFM frequency 2: purchases in the window, at least (fewer: 1)"),
    "rfm.m5_cents": (100_000, 1, 0x7FFFFFFF, "RFM monetary 5: cents paid in the window, at least"),
    "rfm.m4_cents": (50_000, 1, 0x7FFFFFFF, "RFM monetary 4: cents paid in the window, at least"),
    "rfm.m3_cents": (20_000, 1, 0x7FFFFFFF, "RFM monetary 3: cents paid in the window, at least"),
    "rfm.m2_cents": (5_000, 1, 0x7FFFFFFF, "RFM monetary 2: cents paid in the window, at least (less: 1)"),
}
# Parameters that hold only together: each group's values rise strictly in this order (why, for the refusal).
RISING: tuple[tuple[tuple[str, ...], str], ...] = (
    (("rfm.r5_days", "rfm.r4_days", "rfm.r3_days", "rfm.r2_days"), "a higher recency score needs a more recent purchase"),
    (("rfm.f2_purchases", "rfm.f3_purchases", "rfm.f4_purchases", "rfm.f5_purchases"),
     "a higher frequency score needs more purchases"),
    (("rfm.m2_cents", "rfm.m3_cents", "rfm.m4_cents", "rfm.m5_cents"), "a higher monetary score needs more paid"),
)


class MasterDataError(Refusal):
    """A change HQ asked for that the rules refuse; status is the HTTP status that says so."""


SECRETS = {"password_hash", "token_hash"}  # never copied into the audit log


def snapshot(row: SQLModel | None) -> dict[str, Any] | None:
    return None if row is None else row.model_dump(exclude=SECRETS)


def audit(db: Session, actor: str, now: int, action: str, row: SQLModel, key: str, before: dict | None) -> None:
    """One audit entry: who did what to which row, and the row before and after."""
    db.add(
        AuditEntry(
            time=now,
            actor=actor,
            action=action,
            entity=type(row).__name__.lower(),
            entity_key=key,
            before=json.dumps(before, sort_keys=True) if before is not None else "",
            after=json.dumps(snapshot(row), sort_keys=True),
        )
    )


def _upsert(db: Session, actor: str, now: int, model: type[Row], key: dict[str, Any], fields: dict[str, Any],
            on_create: dict[str, Any] | None = None) -> Row:
    """Create the row with this primary key, or set its fields; audited either way."""
    row = db.get(model, tuple(key.values())[0])
    before = snapshot(row)
    if row is None:
        row = model(**key, **fields, **(on_create or {}))
    else:
        for name, value in fields.items():
            setattr(row, name, value)
    db.add(row)
    audit(db, actor, now, "create" if before is None else "update", row, str(tuple(key.values())[0]), before)
    return row


def _name(value: Any, what: str, longest: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MasterDataError("bad_name", f"{what} must be a non-empty text")
    value = value.strip()
    if len(value) > longest:
        raise MasterDataError("bad_name", f"{what} is longer than {longest} characters")
    return value


def _whole(value: Any, what: str, lo: int, hi: int) -> int:
    if type(value) is not int or not lo <= value <= hi:
        raise MasterDataError("bad_number", f"{what} must be a whole number from {lo} to {hi}, got {value!r}")
    return value


def parse_money(text: str) -> int:
    """'12.50', '12.5' or '12' -> cents; anything else (more than 2 decimals, a sign, letters) is refused."""
    raw = text.strip()
    whole, dot, frac = raw.partition(".")
    if not whole.isdigit() or (dot and not (frac.isdigit() and 1 <= len(frac) <= 2)):
        raise MasterDataError("bad_price", f"price {text!r} is not an amount like 12.50 (dot, at most 2 decimals)")
    cents = int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)
    if cents > MAX_PRICE:
        raise MasterDataError("bad_price", f"price {text} is over the highest price, {MAX_PRICE // 100}.00")
    return cents


# -- shops ---------------------------------------------------------------------------


def save_shop(db: Session, actor: str, now: int, shop_id: str, name: str, address: str = "", active: bool = True) -> Shop:
    """Create the shop, or change its name, address or whether it is open."""
    if not shop_id or len(shop_id) > 32 or not set(shop_id) <= SHOP_ID_CHARS:
        raise MasterDataError("bad_shop_id", f"shop id {shop_id!r} must be 1-32 of a-z, 0-9, - and _")
    name = _name(name, "shop name", 120)
    if len(address) > 200:
        raise MasterDataError("bad_address", "address is longer than 200 characters")
    fields = {"name": name, "address": address, "active": active}
    return _upsert(db, actor, now, Shop, {"id": shop_id}, fields, on_create={"created": now})


def get_shop(db: Session, shop_id: str) -> Shop:
    shop = db.get(Shop, shop_id)
    if shop is None:
        raise MasterDataError("no_shop", f"no shop {shop_id!r}", 404)
    return shop


# -- products --------------------------------------------------------------------------


def save_category(db: Session, actor: str, now: int, name: str, category_id: int | None = None,
                  earns_points: bool | None = None) -> ProductCategory:
    """Create a product category (category_id None) or rename one; earns_points False: its products earn no points.

    earns_points None keeps what the category had (a new one earns)."""
    name = _name(name, "category name", 80)
    clash = db.exec(select(ProductCategory).where(ProductCategory.name == name)).first()
    if clash is not None and clash.id != category_id:
        raise MasterDataError("duplicate", f"a product category named {name!r} exists (id {clash.id})", 409)
    if category_id is None:
        category = ProductCategory(name=name, earns_points=earns_points is not False)
        before = None
    else:
        found = db.get(ProductCategory, category_id)
        if found is None:
            raise MasterDataError("no_category", f"no product category {category_id}", 404)
        category, before = found, snapshot(found)
        category.name = name
        if earns_points is not None:
            category.earns_points = earns_points
    db.add(category)
    db.flush()  # the new row's id, for the audit entry
    audit(db, actor, now, "create" if before is None else "update", category, str(category.id), before)
    return category


def save_product(
    db: Session, actor: str, now: int, product_id: int, name: str, category_id: int | None = None,
    discountable: bool = True, active: bool = True, merchant_id: int | None = None,
) -> Product:
    """Create or change a product; its id is the item number on handhelds and in sale records.

    With merchant_id (a merchant acting), only that merchant's own products can change,
    and a new product becomes its own.
    """
    _whole(product_id, "product id", 1, MAX_ITEM_ID)
    name = _name(name, "product name", 80)
    if category_id is not None and db.get(ProductCategory, category_id) is None:
        raise MasterDataError("no_category", f"no product category {category_id}", 404)
    if merchant_id is not None and db.get(Product, product_id) is not None:
        check_merchant_owns(db, merchant_id, [product_id])
    fields = {"name": name, "category_id": category_id, "discountable": discountable, "active": active}
    return _upsert(db, actor, now, Product, {"id": product_id}, fields, on_create={"merchant_id": merchant_id})


def check_merchant_owns(db: Session, merchant_id: int, product_ids: list[int]) -> None:
    """Refuse a merchant's change to any product that is not its own."""
    for product_id in product_ids:
        product = db.get(Product, product_id)
        if product is None or product.merchant_id != merchant_id:
            raise MasterDataError("not_your_product", f"product {product_id} is not one of this merchant's products", 403)


# -- price lists -------------------------------------------------------------------------


def add_price_list(
    db: Session, actor: str, now: int, prices: dict[int, int], shop_id: str = "", effective_from: int | None = None,
    note: str = "",
) -> PriceList:
    """A new price list (never edited afterwards): global when shop_id is '', else that shop's own prices.

    prices maps product id -> cents. From effective_from on, a shop sells each product
    at the price of the newest list of its own that has it, else of the newest global one.
    """
    if shop_id:
        get_shop(db, shop_id)
    if not prices:
        raise MasterDataError("empty_price_list", "a price list needs at least one price")
    known = set(db.exec(select(Product.id).where(col(Product.id).in_(list(prices)))))
    for product_id, cents in sorted(prices.items()):
        if product_id not in known:
            raise MasterDataError("no_product", f"no product {product_id}: add it before pricing it", 404)
        _whole(cents, f"price of product {product_id} (cents)", 0, MAX_PRICE)
    if len(note) > 200:
        raise MasterDataError("bad_note", "note is longer than 200 characters")
    price_list = PriceList(shop_id=shop_id, effective_from=now if effective_from is None else effective_from,
                           created=now, note=note)
    db.add(price_list)
    db.flush()
    assert price_list.id is not None
    for product_id, cents in sorted(prices.items()):
        db.add(PriceListItem(price_list_id=price_list.id, product_id=product_id, price=cents))
    db.add(
        AuditEntry(
            time=now, actor=actor, action="create", entity="pricelist", entity_key=str(price_list.id), before="",
            after=json.dumps({**price_list.model_dump(), "prices": {str(k): v for k, v in sorted(prices.items())}},
                             sort_keys=True),
        )
    )
    return price_list


# -- member categories, tiers, parameters -------------------------------------------------------


def save_member_category(db: Session, actor: str, now: int, category_id: int, name: str, description: str = "") -> MemberCategory:
    """A card type (its number is written on the card, 0-255)."""
    _whole(category_id, "member category", 0, 255)
    name = _name(name, "member category name", 80)
    if len(description) > 200:
        raise MasterDataError("bad_description", "description is longer than 200 characters")
    return _upsert(db, actor, now, MemberCategory, {"id": category_id}, {"name": name, "description": description})


def save_tier(db: Session, actor: str, now: int, tier: int, name: str, discount_bps: int, points_bps: int = BPS) -> Tier:
    """A member tier (its number is on the card, 0-255), its discount and its points multiplier in basis points."""
    _whole(tier, "tier", 0, 255)
    name = _name(name, "tier name", 40)
    _whole(discount_bps, "discount (basis points)", 0, BPS)
    _whole(points_bps, "points multiplier (basis points, 10000 = x1)", 0, MAX_POINTS_BPS)
    return _upsert(db, actor, now, Tier, {"id": tier}, {"name": name, "discount_bps": discount_bps, "points_bps": points_bps})


def set_param(db: Session, actor: str, now: int, key: str, value: int) -> Param:
    """Set one of PARAMS."""
    if key not in PARAMS:
        raise MasterDataError("no_param", f"no parameter {key!r}; there are: {', '.join(sorted(PARAMS))}", 404)
    _default, lo, hi, _what = PARAMS[key]
    _whole(value, key, lo, hi)
    _check_rising(params(db) | {key: value}, key)
    return _upsert(db, actor, now, Param, {"key": key}, {"value": value})


def _check_rising(values: dict[str, int], key: str) -> None:
    """Refuse a value that would break the order of its group in RISING (its neighbours as they are now)."""
    for keys, why in RISING:
        if key not in keys:
            continue
        at = keys.index(key)
        if at > 0 and values[keys[at - 1]] >= values[key]:
            below = keys[at - 1]
            raise MasterDataError("bad_order", f"{key} must be more than {below} ({values[below]}), got {values[key]}: {why}")
        if at + 1 < len(keys) and values[keys[at + 1]] <= values[key]:
            above = keys[at + 1]
            raise MasterDataError("bad_order", f"{key} must be less than {above} ({values[above]}), got {values[key]}: {why}")


def params(db: Session) -> dict[str, int]:
    """Every parameter's value (its default when HQ never set it)."""
    values = {key: spec[0] for key, spec in PARAMS.items()}
    values.update({p.key: p.value for p in db.exec(select(Param))})
    return values


# -- what a shop's handhelds get -----------------------------------------------------------------


def shop_prices(db: Session, shop_id: str, at: int) -> dict[str, Any]:
    """The price list document (protocol.pricing's format, without a version) a shop sells from at time at."""
    get_shop(db, shop_id)
    lists = db.exec(
        select(PriceList)
        .where(col(PriceList.shop_id).in_(["", shop_id]), PriceList.effective_from <= at)
        .order_by(col(PriceList.effective_from), col(PriceList.id))
    ).all()
    # Later lists win; a shop's own list wins over any global one.
    ranked = sorted(lists, key=lambda pl: (pl.shop_id == shop_id, pl.effective_from, pl.id or 0))
    price: dict[int, int] = {}
    if ranked:
        rank = {pl.id: n for n, pl in enumerate(ranked)}
        items = db.exec(select(PriceListItem).where(col(PriceListItem.price_list_id).in_(list(rank)))).all()
        for item in sorted(items, key=lambda i: rank[i.price_list_id]):
            price[item.product_id] = item.price
    category_rows = list(db.exec(select(ProductCategory)))
    categories = {c.id: c.name for c in category_rows}
    products = db.exec(select(Product).where(Product.active == True).order_by(col(Product.id))).all()  # noqa: E712
    values = params(db)
    sold_items: list[dict[str, Any]] = [
        {"id": p.id, "name": p.name, "price": price[p.id], "category": categories.get(p.category_id, ""),
         "discountable": p.discountable}
        for p in products if p.id in price
    ]
    # The counter rules go in only where they differ from the defaults (x1, every category earns): a list
    # that uses none of them reads as it did before they existed, and is not published again for them.
    sold = {item["category"] for item in sold_items}
    excluded = sorted(c.name for c in category_rows if not c.earns_points and c.name in sold)
    points: dict[str, Any] = {"earn_per_100": values["points.earn_per_100"], "point_value": values["points.point_value"]}
    if excluded:
        points["excluded"] = excluded
    return {
        "currency": "EUR",
        "items": sold_items,
        "tiers": [{"tier": t.id, "name": t.name, "discount_bps": t.discount_bps}
                  | ({"points_bps": t.points_bps} if t.points_bps != BPS else {})
                  for t in db.exec(select(Tier).order_by(col(Tier.id)))],
        "points": points,
    }


def publish_prices(db: Session, actor: str, now: int, shop_id: str) -> tuple[PublishedPrices, bool]:
    """Publish what the shop sells from now as the next version, unless it is what was last published."""
    doc = shop_prices(db, shop_id, now)
    if not doc["items"]:
        raise MasterDataError("nothing_to_sell", f"shop {shop_id!r} has no priced, active product yet")
    body = json.dumps(doc, sort_keys=True)
    digest = hashlib.sha256(body.encode()).hexdigest()
    last = latest_prices(db, shop_id)
    if last is not None and last.sha256 == digest:
        return last, False
    version = (last.version + 1) if last else 1
    full = {"version": version, **doc}
    try:
        ProtocolPriceList(full)  # what the handhelds will be given must be what they accept
    except PricingError as exc:
        raise MasterDataError("bad_price_list", f"shop {shop_id}: {exc.message}") from exc
    published = PublishedPrices(shop_id=shop_id, version=version, published=now, sha256=digest,
                                doc=json.dumps(full, sort_keys=True))
    db.add(published)
    audit(db, actor, now, "publish", published, f"{shop_id}@{version}", None)
    return published, True


def latest_prices(db: Session, shop_id: str) -> PublishedPrices | None:
    return db.exec(
        select(PublishedPrices).where(PublishedPrices.shop_id == shop_id).order_by(col(PublishedPrices.version).desc())
    ).first()


def audit_log(db: Session, entity: str | None = None, key: str | None = None, limit: int = 100) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if key:
        query = query.where(AuditEntry.entity_key == key)
    return list(db.exec(query))


def count(db: Session, table: type[SQLModel]) -> int:
    return int(db.exec(select(func.count()).select_from(table)).one())
