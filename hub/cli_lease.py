"""`hub lease ...`: a device's offline lease terms, and HQ's override of them (docs/loyalty.md, "The offline lease").

    hub lease show DEVICE
    hub lease set DEVICE [--hours H] [--max-sale M] [--max-card-day M] [--max-total M]
    hub lease clear DEVICE

Amounts are money (50.00); limits left out of `set` stay as the device's next lease would hold them.
"""

from __future__ import annotations

import argparse

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub import lease
from hub.cards import parse_amount
from hub.cli_master import run_change
from protocol.pricing import format_money

COMMANDS = ("lease",)
HOUR = 3600


def add_parsers(sub: argparse._SubParsersAction) -> None:
    cmd = sub.add_parser("lease", help="a handheld's offline lease terms, and HQ's override of them")
    ls = cmd.add_subparsers(dest="action", required=True)
    ls.add_parser("show", help="the terms the device's next lease holds, and where they come from").add_argument("device")
    ls.add_parser("clear", help="drop the device's override: its lease follows the lease.* parameters").add_argument("device")
    put = ls.add_parser("set", help="override the device's terms (the limits left out stay as they are now)")
    put.add_argument("device")
    put.add_argument("--hours", help="hours after its last sync it may take stored value")
    put.add_argument("--max-sale", help="most stored value one sale may take offline, e.g. 50.00")
    put.add_argument("--max-card-day", help="most stored value one card may spend a day on it offline")
    put.add_argument("--max-total", help="most stored value it may take in all between syncs")


def describe(terms: dict) -> list[str]:
    """The terms as HQ reads them."""
    return [f"device {terms['device_id']}: lease from the {terms['source']} (last issued: v{terms['issued_version']})",
            f"  offline for {terms['expires_after_s'] // HOUR}h{terms['expires_after_s'] % HOUR // 60:02d} after its last sync",
            f"  {format_money(terms['max_sv_per_sale'])} a sale, {format_money(terms['max_sv_per_card_day'])} a card a day, "
            f"{format_money(terms['max_sv_offline_total'])} in all"]


def _hours(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.strip().isdigit():
        raise lease.LeaseError("bad_lease", f"--hours is a whole number of hours, got {text!r}")
    return int(text) * HOUR


def _run(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    if args.action == "show":
        return describe(lease.device_terms(db, args.device))
    if args.action == "clear":
        lease.clear_override(db, actor, now, args.device)
        return ["override cleared; the next lease follows the parameters"] + describe(lease.device_terms(db, args.device))
    given = {"expires_after_s": _hours(args.hours)}
    for key, text in (("max_sv_per_sale", args.max_sale), ("max_sv_per_card_day", args.max_card_day),
                      ("max_sv_offline_total", args.max_total)):
        given[key] = None if text is None else parse_amount(text)
    lease.set_override(db, actor, now, args.device, given)
    db.flush()
    return ["override set; the device gets a lease with it at its next sync"] + describe(lease.device_terms(db, args.device))


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Run one lease command; a refused change prints why and exits 2, with nothing written."""
    return run_change(args, engine, _run)

