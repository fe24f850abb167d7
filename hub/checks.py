"""The hub checks the handheld: every synced sale is recomputed with the rules it names.

A sale names its rule set by (shop, price_list_version): the price list document HQ
published (prices, tier discounts and points multipliers, the points rate, the
categories that earn none). protocol.salecheck.recompute gives the figures; any that
differ from the record makes one anomaly "sale_mismatch" for the sale, each with both figures. A sale naming a version
the hub never published for its shop is "unknown_rules_version". A shop HQ never
published any rules for (price lists provisioned by hand) has nothing to check against.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from hub.coupons import sale_terms
from hub.models import PublishedPrices
from protocol.pricing import PriceList, PricingError
from protocol.salecheck import recompute

PUBLISHED: Table = PublishedPrices.__table__  # type: ignore[attr-defined]


class RuleBook:
    """Published rule sets by (shop, version), parsed once: published documents never change."""

    def __init__(self) -> None:
        self.parsed: dict[tuple[str, int], PriceList] = {}

    def rules(self, conn: Connection, shop: str, version: int) -> PriceList | None:
        key = (shop, version)
        if key not in self.parsed:
            doc = conn.execute(
                select(PUBLISHED.c.doc).where(PUBLISHED.c.shop_id == shop, PUBLISHED.c.version == version)
            ).scalar()
            if doc is None:
                return None
            self.parsed[key] = PriceList(json.loads(doc))
        return self.parsed[key]

    def check(self, conn: Connection, shop: str, sale: dict[str, Any], published: dict[str, bool]) -> list[tuple[str, str]]:
        """[(anomaly code, detail)] for one sale record; published caches whether a shop has any rules (per transaction)."""
        version = sale["price_list_version"]
        rules = self.parsed.get((shop, version))
        if rules is None:
            if shop not in published:  # one query per shop and transaction, not one per sale
                any_version = select(PUBLISHED.c.version).where(PUBLISHED.c.shop_id == shop).limit(1)
                published[shop] = conn.execute(any_version).first() is not None
            if not published[shop]:
                return []
            try:
                rules = self.rules(conn, shop, version)
            except (ValueError, PricingError) as exc:
                return [("unknown_rules_version", f"rules {shop} v{version} do not parse: {exc}")]
            if rules is None:
                return [("unknown_rules_version", f"sale names rules {shop} v{version}, which the hub never published")]
        differences = recompute(rules, sale, sale_terms(conn, sale["coupon"]) if sale.get("coupon") else None)
        if not differences:
            return []
        return [("sale_mismatch", "; ".join(f"{field}: handheld {got}, rules v{version} give {want}"
                                            for field, got, want in differences))]
