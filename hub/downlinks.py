"""What each handheld must hear from the hub, decided from versions (docs/protocol.md, section 8).

A device reports the versions it holds (its status message; hub.bridge stores them
on Device). Against the newest ones: a shop's price list newer than the device's
goes down whole; hotlist changes after the device's version go down as a delta
(only each card's last change, in chunks); pending card actions with an id after
the device's version go down as a delta too; the device's offline lease (hub.lease)
goes down whole when the hub issued a newer one. The functions that decide are pure;
messages() and latest_versions() read the database; hub.bridge publishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from hub.coupons import action_terms
from hub.models import CardAction, Device, HotlistEntry, Lease, PublishedPrices
from protocol import downlink as dl

log = logging.getLogger("hub.downlinks")

# Small messages: a handheld parses each one whole in a heap of under 100 KiB.
HOTLIST_CHUNK = 50  # cards per hotlist message (about 30 bytes each)
ACTIONS_CHUNK = 25  # actions per message (about 50 bytes each)
# ...and at most this many bytes: a coupon action is ~90, and the handheld needs a free block the size of a message.
ACTIONS_BYTES = 512


@dataclass
class Latest:
    """The newest version of each downlink: per shop for prices, per device for leases, one for the hotlist and the actions."""

    prices: dict[str, int] = field(default_factory=dict)
    hotlist: int = 0
    actions: int = 0
    leases: dict[str, int] = field(default_factory=dict)

    def of(self, kind: str, shop: str, device: str = "") -> int:
        if kind == dl.LEASE:
            return self.leases.get(device, 0)
        return self.prices.get(shop, 0) if kind == dl.PRICES else self.hotlist if kind == dl.HOTLIST else self.actions


def held(device: Device) -> dict[str, int]:
    """The versions the device last said it holds."""
    return {dl.PRICES: device.prices_version, dl.HOTLIST: device.hotlist_version, dl.ACTIONS: device.actions_version,
            dl.LEASE: device.lease_version}


def behind(device: Device, latest: Latest) -> dict[str, list[int]]:
    """kind -> [version held, newest version] for each downlink the device lacks the newest of."""
    out = {}
    for kind, have in held(device).items():
        newest = latest.of(kind, device.shop, device.id)
        if have < newest:
            out[kind] = [have, newest]
    return out


def hotlist_messages(have: int, newest: int, entries: list[HotlistEntry]) -> list[tuple[int, bytes]]:
    """(version reached, payload) of the hotlist delta from have to newest, given the entries after have.

    Only each card's last change goes down: a device offline for a week gets what
    changed, not every change. Chunks follow version order, the last one ends at newest.
    """
    last: dict[str, HotlistEntry] = {}
    for entry in sorted(entries, key=lambda e: e.version or 0):
        last.pop(entry.card_no, None)
        last[entry.card_no] = entry
    final = list(last.values())
    out = []
    frm = have
    for i in range(0, max(len(final), 1), HOTLIST_CHUNK):
        chunk = final[i : i + HOTLIST_CHUNK]
        to = newest if i + HOTLIST_CHUNK >= len(final) else int(chunk[-1].version or 0)
        cards = [[e.card_no, (e.reason or "hotlisted") if e.listed else ""] for e in chunk]
        out.append((to, dl.encode_hotlist(frm, to, cards)))
        frm = to
    return out


def action_row(a: CardAction, coupons: dict[int, list[int]] | None = None) -> list[Any]:
    """One action as the downlink carries it; a coupon action with its coupon (hub.coupons.action_terms) last."""
    row = [a.id, a.card_no, a.number, a.kind, a.amount, a.points, a.tier if a.kind == "tier" else -1]
    return row + [coupons[a.id]] if coupons and a.id in coupons else row


def actions_messages(have: int, newest: int, pending: list[CardAction],
                     coupons: dict[int, list[int]] | None = None) -> list[tuple[int, bytes]]:
    """(version reached, payload) of the actions delta: the still-pending actions with ids in (have, newest]."""
    rows = sorted((a for a in pending if a.id is not None and have < a.id <= newest), key=lambda a: a.id or 0)
    chunks: list[list[list[Any]]] = [[]]
    for a in rows:
        row = action_row(a, coupons)
        chunk = chunks[-1]
        if chunk and (len(chunk) >= ACTIONS_CHUNK or len(dl.encode_actions(newest, newest, chunk + [row])) > ACTIONS_BYTES):
            chunks.append([])
        chunks[-1].append(row)
    out = []
    frm = have
    for i, chunk in enumerate(chunks):
        to = newest if i == len(chunks) - 1 else int(chunk[-1][0])
        out.append((to, dl.encode_actions(frm, to, chunk)))
        frm = to
    return out


# -- reading the database -------------------------------------------------------------------


def latest_versions(db: Session) -> Latest:
    """The newest published price list per shop, the newest hotlist version, the highest action id."""
    prices = db.exec(select(PublishedPrices.shop_id, func.max(PublishedPrices.version)).group_by(PublishedPrices.shop_id))
    return Latest(
        prices={shop: int(version) for shop, version in prices},
        hotlist=int(db.exec(select(func.max(HotlistEntry.version))).one() or 0),
        actions=int(db.exec(select(func.max(CardAction.id))).one() or 0),
        leases={device: int(version) for device, version in db.exec(select(Lease.device_id, Lease.version))},
    )


def messages(db: Session, device: Device, kind: str, have: int, newest: int) -> list[tuple[int, bytes]]:
    """(version reached, payload) of what brings the device from have to newest for one downlink kind."""
    if kind == dl.PRICES:
        doc = db.exec(
            select(PublishedPrices).where(PublishedPrices.shop_id == device.shop, PublishedPrices.version == newest)
        ).first()
        if doc is None:
            return []
        if len(doc.doc) > dl.MAX_MESSAGE:
            # The handheld would drop the connection on it, again at every redelivery: never send it.
            log.error("price list %s v%d is %d bytes, over the %d a handheld takes: not sent",
                      device.shop, doc.version, len(doc.doc), dl.MAX_MESSAGE)
            return []
        return [(doc.version, doc.doc.encode())]
    if kind == dl.LEASE:
        lease = db.get(Lease, device.id)
        return [] if lease is None or lease.version != newest else [(lease.version, lease.doc.encode())]
    if kind == dl.HOTLIST:
        entries = db.exec(select(HotlistEntry).where(col(HotlistEntry.version) > have)).all()
        return hotlist_messages(have, newest, list(entries))
    pending = db.exec(
        select(CardAction).where(col(CardAction.id) > have, col(CardAction.id) <= newest, CardAction.state == "pending")
    ).all()
    coupons = action_terms(db, [a.id for a in pending if a.kind == "coupon" and a.id is not None])
    return actions_messages(have, newest, list(pending), coupons)


def devices_behind(db: Session) -> list[dict[str, Any]]:
    """Every device with the versions it holds and, per downlink it lags on, [held, newest] (for the dashboard)."""
    latest = latest_versions(db)
    return [
        {"device": d.id, "shop": d.shop, "online": d.online, "versions": held(d), "behind": behind(d, latest)}
        for d in db.exec(select(Device).order_by(col(Device.id)))
    ]
