"""`hub shop|product|price|prices|tier|member-category|param|audit`: HQ's master data from the command line."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub import masterdata as md
from hub.models import MemberCategory, Product, ProductCategory, Shop, Tier
from hub.refusal import Refusal

COMMANDS = ("shop", "product", "price", "prices", "tier", "member-category", "param", "audit")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    shop = sub.add_parser("shop", help="shops").add_subparsers(dest="action", required=True)
    s = shop.add_parser("set", help="add a shop or change it")
    s.add_argument("id", help="a short code: a-z, 0-9, - and _")
    s.add_argument("--name", required=True)
    s.add_argument("--address", default="")
    s.add_argument("--closed", action="store_true", help="the shop no longer trades")
    shop.add_parser("list")

    product = sub.add_parser("product", help="products and their categories").add_subparsers(dest="action", required=True)
    p = product.add_parser("set", help="add a product or change it")
    p.add_argument("id", type=int, help="the item number the handhelds show and record")
    p.add_argument("--name", required=True)
    p.add_argument("--category", help="category name (made when new)")
    p.add_argument("--no-discount", action="store_true", help="tier discounts do not apply (gift cards, tobacco...)")
    p.add_argument("--inactive", action="store_true", help="no longer sold")
    product.add_parser("list")
    pc = product.add_parser("category", help="add a product category or set whether its products earn points")
    pc.add_argument("name")
    pc.add_argument("--no-points", action="store_true", help="what is paid for its products earns no points")

    price = sub.add_parser("price", help="price lists").add_subparsers(dest="action", required=True)
    a = price.add_parser("add", help="a new price list: ITEM=PRICE ... (e.g. 101=2.50)")
    a.add_argument("prices", nargs="+", metavar="ITEM=PRICE")
    a.add_argument("--shop", default="", help="one shop's own prices (default: every shop)")
    a.add_argument("--from", dest="effective_from", type=int, help="effective from (unix seconds; default now)")
    a.add_argument("--note", default="")

    prices = sub.add_parser("prices", help="what a shop's handhelds are given").add_subparsers(dest="action", required=True)
    pub = prices.add_parser("publish", help="publish the shop's current prices as a new version (if changed)")
    pub.add_argument("shop")
    show = prices.add_parser("show", help="the newest published version")
    show.add_argument("shop")

    tier = sub.add_parser("tier", help="member tiers").add_subparsers(dest="action", required=True)
    t = tier.add_parser("set", help="add a tier or change it")
    t.add_argument("number", type=int, help="0-255, written on the card")
    t.add_argument("--name", required=True)
    t.add_argument("--discount-bps", type=int, required=True, help="basis points: 500 is 5 %%")
    t.add_argument("--points-bps", type=int, default=10000, help="points multiplier in basis points: 10000 earns x1")
    tier.add_parser("list")

    category = sub.add_parser("member-category", help="member categories (card types)")
    csub = category.add_subparsers(dest="action", required=True)
    c = csub.add_parser("set", help="add a member category or change it")
    c.add_argument("number", type=int, help="0-255, written on the card")
    c.add_argument("--name", required=True)
    c.add_argument("--description", default="")
    csub.add_parser("list")

    param = sub.add_parser("param", help="system parameters").add_subparsers(dest="action", required=True)
    ps = param.add_parser("set")
    ps.add_argument("key", choices=sorted(md.PARAMS))
    ps.add_argument("value", type=int)
    param.add_parser("list")

    audit = sub.add_parser("audit", help="who changed what, newest first")
    audit.add_argument("--entity", help="shop, product, pricelist, tier, param, ...")
    audit.add_argument("--key")
    audit.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Run one master-data command; a refused change prints why and exits 2, with nothing written."""
    return run_change(args, engine, _run)


def run_change(
    args: argparse.Namespace, engine: Engine, work: Callable[[argparse.Namespace, Session, str, int], list[str]]
) -> int:
    """One CLI change in one transaction, as cli:<unix user>: its lines printed, or why it was refused (exit 2).

    It acts at --at (unix seconds) where the command has one (replaying a day), else now.
    """
    actor = f"cli:{getpass.getuser()}"
    now = args.at if getattr(args, "at", None) is not None else int(time.time())
    said = " ".join(w for w in (args.command, getattr(args, "action", None)) if w)
    with Session(engine) as db:
        try:
            out = work(args, db, actor, now)
            db.commit()
        except Refusal as exc:
            db.rollback()
            print(f"hub {said}: {exc.message}", file=sys.stderr)
            return 2
        except OSError as exc:  # a file the command reads (a plan's JSON, an import): nothing was written
            db.rollback()
            print(f"hub {said}: {exc}", file=sys.stderr)
            return 2
    for line in out:
        print(line)
    return 0


def _run(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    command, action = args.command, getattr(args, "action", None)
    if command == "shop" and action == "set":
        shop = md.save_shop(db, actor, now, args.id, args.name, args.address, not args.closed)
        return [f"shop {shop.id}: {shop.name}"]
    if command == "shop":
        return [f"{s.id}\t{s.name}\t{'open' if s.active else 'closed'}" for s in db.exec(select(Shop).order_by(col(Shop.id)))]
    if command == "product" and action == "set":
        category_id = None
        if args.category:
            found = db.exec(select(ProductCategory).where(ProductCategory.name == args.category.strip())).first()
            category_id = (found or md.save_category(db, actor, now, args.category)).id
        product = md.save_product(db, actor, now, args.id, args.name, category_id, not args.no_discount, not args.inactive)
        return [f"product {product.id}: {product.name}"]
    if command == "product" and action == "category":
        found = db.exec(select(ProductCategory).where(ProductCategory.name == args.name.strip())).first()
        saved = md.save_category(db, actor, now, args.name, found.id if found else None, not args.no_points)
        return [f"category {saved.id}: {saved.name}, {'earns points' if saved.earns_points else 'earns no points'}"]
    if command == "product":
        names = {c.id: c.name for c in db.exec(select(ProductCategory))}
        return [
            f"{p.id}\t{p.name}\t{names.get(p.category_id, '')}\t{'' if p.active else 'inactive'}"
            for p in db.exec(select(Product).order_by(col(Product.id)))
        ]
    if command == "price":
        prices: dict[int, int] = {}
        for pair in args.prices:
            item, sep, text = pair.partition("=")
            if not sep or not item.strip().isdigit():
                raise md.MasterDataError("bad_price", f"{pair!r} is not ITEM=PRICE, e.g. 101=2.50")
            if int(item) in prices:
                raise md.MasterDataError("bad_price", f"item {item} is priced twice")
            prices[int(item)] = md.parse_money(text)
        made = md.add_price_list(db, actor, now, prices, args.shop, args.effective_from, args.note)
        return [f"price list {made.id}: {len(prices)} prices for {args.shop or 'every shop'} from {made.effective_from}"]
    if command == "prices" and action == "publish":
        published, changed = md.publish_prices(db, actor, now, args.shop)
        return [f"shop {args.shop}: price list version {published.version}" + ("" if changed else " (unchanged)")]
    if command == "prices":
        latest = md.latest_prices(db, args.shop)
        if latest is None:
            raise md.MasterDataError("not_published", f"no price list published for shop {args.shop!r}")
        return [json.dumps(json.loads(latest.doc), indent=2)]
    if command == "tier" and action == "set":
        tier = md.save_tier(db, actor, now, args.number, args.name, args.discount_bps, args.points_bps)
        return [f"tier {tier.id}: {tier.name}, {tier.discount_bps} bps, points x{tier.points_bps / 10000:g}"]
    if command == "tier":
        return [f"{t.id}\t{t.name}\t{t.discount_bps} bps" for t in db.exec(select(Tier).order_by(col(Tier.id)))]
    if command == "member-category" and action == "set":
        category = md.save_member_category(db, actor, now, args.number, args.name, args.description)
        return [f"member category {category.id}: {category.name}"]
    if command == "member-category":
        return [f"{c.id}\t{c.name}\t{c.description}" for c in db.exec(select(MemberCategory).order_by(col(MemberCategory.id)))]
    if command == "param" and action == "set":
        param = md.set_param(db, actor, now, args.key, args.value)
        return [f"{param.key} = {param.value}"]
    if command == "param":
        values = md.params(db)
        return [f"{key} = {values[key]}\t({spec[3]})" for key, spec in sorted(md.PARAMS.items())]
    entries = md.audit_log(db, args.entity, args.key, args.limit)
    return [f"{e.time}\t{e.actor}\t{e.action}\t{e.entity} {e.entity_key}\t{e.before or '-'} -> {e.after or '-'}" for e in entries]
