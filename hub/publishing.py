"""Prices published on time: every shop that publishes gets its prices again when what it sells has changed.

A price list can take effect later than it was made (a promotion's end, HQ's list for next
Monday); the handhelds only see what is published. The prices job asks publish_prices for
every shop that published before: it publishes only what differs from the shop's last
document, so asking hourly costs a comparison and publishes each change once. A shop that
never published (its handhelds got prices by hand) is left alone. docs/loyalty.md,
"The schedule".
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from hub.masterdata import publish_prices
from hub.models import PublishedPrices
from hub.refusal import Refusal


def publishing_shops(db: Session) -> list[str]:
    """The shops that have published prices at least once."""
    return sorted(set(db.exec(select(PublishedPrices.shop_id).distinct().order_by(col(PublishedPrices.shop_id)))))


def publish_changed(db: Session, actor: str, now: int) -> tuple[dict[str, int], dict[str, str]]:
    """Publish each publishing shop whose prices at now differ from its last document: ({shop: new version}, {shop: why not})."""
    published: dict[str, int] = {}
    refused: dict[str, str] = {}
    for shop in publishing_shops(db):
        try:
            row, new = publish_prices(db, actor, now, shop)
        except Refusal as exc:  # one shop's bad list (nothing left to sell) must not keep the others' changes back
            refused[shop] = exc.message
            continue
        if new:
            published[shop] = row.version
    db.flush()
    return published, refused
