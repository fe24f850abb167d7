"""What the hub told this handheld, kept on flash: the hotlist, the pending card actions, the offline lease.

Each is one JSON file, replaced atomically when a downlink changes it, with the
version the handheld reports in its status (the price list lives in prices.json,
kept by the terminal). A card's own number of applied actions decides what is
still due, so an action another handheld applied first is dropped at the tap.

The lease (protocol.downlink.decode_lease; hub.lease makes it) is kept as the hub sent it and verified again at boot.
Against it count the stored value taken since the last sync (every sale journaled
since, in total and per card today) and the time since that sync: the counts come
from the journal's unacknowledged records at boot, and the sync time from
synced.json (written once per 5 minutes at most, so a reboot only ever makes it older).
"""

import json

from protocol import downlink as dl
from protocol import record as rec
from protocol.pricing import format_money
from protocol.sync import SyncError

HOTLIST = "hotlist.json"
ACTIONS = "actions.json"
LEASE = "lease.json"
SYNCED = "synced.json"


def _id(text: str) -> int:
    """The id of a held action, from its JSON text "[id, ...]"."""
    return int(text[1 : text.find(",")])


class Downlinks:
    """The hotlist (card_no -> reason; '' once HQ took the card off), the actions, the lease, with their versions."""

    def __init__(self, flash, master: bytes = b"", device_id: str = ""):
        self.flash = flash
        self.master = master
        self.device_id = device_id
        self.lease = None  # type: list | None  # [version, expires_after_s, per sale, per card a day, in total]
        self.synced_at = 0  # the device's time of the last sync (every record acknowledged)
        self.sv_total = 0  # stored value taken since the last sync
        self.sv_day = -1
        self.sv_cards = {}  # type: dict[str, int]  # card_no -> stored value taken today since the last sync
        self.hotlist_version = 0
        self.hotlist = {}  # type: dict[str, str]
        self.actions_version = 0
        # The held actions ([id, card_no, number, kind, amount, points, tier(, coupon)]), each as its JSON text,
        # decoded only when a tapped card has some: decoded, an action takes ~280 bytes of heap, as text ~110.
        # A text each, not one for all: no change needs a free block the size of them all in a nearly full heap.
        self.held = []  # type: list[str]

    def load(self, journal=None) -> None:
        """Read the files (a missing or unreadable one counts as version 0: the hub sends it all again).

        With the journal, also count the stored value its unacknowledged sales took."""
        for name in (HOTLIST, ACTIONS):
            raw = self.flash.read(name)
            try:
                doc = json.loads(raw) if raw else None
                if doc:
                    if name == HOTLIST:
                        self.hotlist_version, self.hotlist = doc["v"], doc["c"]
                    else:
                        self.actions_version, self.held = doc["v"], [json.dumps(a) for a in doc["a"]]
            except (ValueError, KeyError, TypeError):
                pass
        raw = self.flash.read(LEASE)
        try:
            self.lease = dl.decode_lease(self.master, self.device_id, raw) if raw else None
        except SyncError:
            self.lease = None  # a lease file that no longer verifies counts as none
        raw = self.flash.read(SYNCED)
        try:
            self.synced_at = json.loads(raw)["t"] if raw else 0
        except (ValueError, KeyError, TypeError):
            self.synced_at = 0
        if journal is None:
            return
        # What the hub has not acknowledged was taken since the last sync: count it again.
        for _seq, data, _next in journal.entries_from(journal.acked_offset):
            if data[1] == rec.SALE:  # decode only sale records
                sale = rec.decode(data)
                self.spent(sale["card_no"], sale["stored_value"], sale["time"])

    def refusal(self, card_no: str, amount: int, now: int) -> str:
        """Why the lease does not let this card pay amount from stored value now ('' when it does); fits a line.

        No lease: none. Then, in this order: offline too long (a clock gone back before the
        last sync counts as that; a handheld that never synced has no time to count from, so only
        the amounts hold it), over the most per sale, per card today, in total since the sync.
        """
        if amount <= 0:
            return ""
        if self.lease is None:
            return "no offline lease"
        _version, expires, per_sale, per_card_day, total = self.lease
        today = self.sv_cards.get(card_no, 0) if now // 86400 == self.sv_day else 0
        if self.synced_at and (now < self.synced_at or now - self.synced_at > expires):
            return "offline too long"
        if amount > per_sale:
            return "card pay max %s" % format_money(per_sale)
        if today + amount > per_card_day:
            return "card max %s/day" % format_money(per_card_day)
        if self.sv_total + amount > total:
            return "offline max %s" % format_money(total)
        return ""

    def spent(self, card_no: str, amount: int, at: int) -> None:
        """A sale journaled at time at took amount of stored value (not synced yet)."""
        if amount <= 0:
            return
        day = at // 86400  # UTC days of the handheld's clock
        if day > self.sv_day:
            self.sv_day = day
            self.sv_cards = {}
        self.sv_total += amount
        if day == self.sv_day:
            self.sv_cards[card_no] = self.sv_cards.get(card_no, 0) + amount

    def synced(self, now: int) -> None:
        """The hub acknowledged every record: the offline counts start again."""
        # On flash once per 5 minutes at most (syncs come every few seconds while online).
        save = now // 300 != self.synced_at // 300
        self.synced_at = now
        self.sv_total = 0
        self.sv_cards = {}
        if save:
            try:
                self.flash.replace(SYNCED, json.dumps({"t": now}).encode())
            except OSError:
                pass  # flash full: the older time stays, which only shortens the lease

    def take(self, kind: str, payload) -> bool:
        """Apply a hotlist, actions or lease downlink; True when it moved a version. SyncError for a bad one."""
        if kind == dl.LEASE:
            lease = dl.decode_lease(self.master, self.device_id, payload)
            if self.lease is not None and lease[0] <= self.lease[0]:
                return False
            self.flash.replace(LEASE, payload)
            self.lease = lease
            return True
        if kind == dl.HOTLIST:
            frm, to, cards = dl.decode_hotlist(payload)
            if frm > self.hotlist_version or to <= self.hotlist_version:
                return False
            for card_no, reason in cards:
                self.hotlist[card_no] = reason
            self.hotlist_version = to
            self._save(HOTLIST)
            return True
        frm, to, actions = dl.decode_actions(payload)
        if frm > self.actions_version or to <= self.actions_version:
            return False
        ids = [_id(t) for t in self.held]
        for a in actions:
            if a[0] not in ids:
                self.held.append(json.dumps(a))
        self.actions_version = to
        self._save(ACTIONS)
        return True

    @property
    def actions(self) -> list:
        """The actions held, decoded."""
        return [json.loads(t) for t in self.held]

    def due(self, card_no: str, applied: int) -> list:
        """The card's actions not applied yet, in order; forgets those the card already holds."""
        tag = '"%s"' % card_no
        mine = [json.loads(t) for t in self.held if tag in t]  # most taps: none, nothing decoded
        stale = [a[0] for a in mine if a[2] <= applied]
        if stale:
            self._forget(stale)
        return sorted([a for a in mine if a[2] > applied], key=lambda a: a[2])

    def done(self, action: list) -> None:
        """The action is on the card: forget it."""
        self._forget([action[0]])

    def _forget(self, ids: list) -> None:
        kept = [t for t in self.held if _id(t) not in ids]
        if len(kept) < len(self.held):
            self.held = kept
            self._save(ACTIONS)

    def _save(self, name: str) -> None:
        if name == HOTLIST:
            self.flash.replace(name, json.dumps({"v": self.hotlist_version, "c": self.hotlist}).encode())
        else:
            self.flash.replace(name, self._actions_file())

    def _actions_file(self):
        """The actions file, an action's text at a time: a nearly full heap may have no block for all of it."""
        yield ('{"v": %d, "a": [' % self.actions_version).encode()
        for i, text in enumerate(self.held):
            yield (", " + text if i else text).encode()
        yield b"]}"
