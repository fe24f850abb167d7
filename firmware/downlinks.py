"""What the hub told this handheld, kept on flash: the hotlist and the pending card actions.

Each is one JSON file, replaced atomically when a downlink changes it, with the
version the handheld reports in its status (the price list lives in prices.json,
kept by the terminal). A card's own number of applied actions decides what is
still due, so an action another handheld applied first is dropped at the tap.
"""

import json

from protocol import downlink as dl

HOTLIST = "hotlist.json"
ACTIONS = "actions.json"


class Downlinks:
    """The hotlist (card_no -> reason; '' once HQ took the card off) and the actions, with their versions."""

    def __init__(self, flash):
        self.flash = flash
        self.hotlist_version = 0
        self.hotlist = {}  # type: dict[str, str]
        self.actions_version = 0
        self.actions = []  # type: list[list]  # [id, card_no, number, kind, amount, points, tier]

    def load(self) -> None:
        """Read both files (a missing or unreadable one counts as version 0: the hub sends it all again)."""
        for name in (HOTLIST, ACTIONS):
            raw = self.flash.read(name)
            try:
                doc = json.loads(raw) if raw else None
                if doc:
                    if name == HOTLIST:
                        self.hotlist_version, self.hotlist = doc["v"], doc["c"]
                    else:
                        self.actions_version, self.actions = doc["v"], doc["a"]
            except (ValueError, KeyError, TypeError):
                pass

    def take(self, kind: str, payload) -> bool:
        """Apply a hotlist or actions downlink; True when it moved a version. SyncError for a bad one."""
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
        held = [a[0] for a in self.actions]
        for a in actions:
            if a[0] not in held:
                self.actions.append(a)
        self.actions_version = to
        self._save(ACTIONS)
        return True

    def due(self, card_no: str, applied: int) -> list:
        """The card's actions not applied yet, in order; forgets those the card already holds."""
        mine = [a for a in self.actions if a[1] == card_no]
        if not mine:
            return []
        stale = [a for a in mine if a[2] <= applied]
        if stale:
            self.actions = [a for a in self.actions if a not in stale]
            self._save(ACTIONS)
        return sorted([a for a in mine if a[2] > applied], key=lambda a: a[2])

    def done(self, action: list) -> None:
        """The action is on the card: forget it."""
        if action in self.actions:
            self.actions.remove(action)
            self._save(ACTIONS)

    def _save(self, name: str) -> None:
        if name == HOTLIST:
            doc = {"v": self.hotlist_version, "c": self.hotlist}  # type: dict
        else:
            doc = {"v": self.actions_version, "a": self.actions}
        self.flash.replace(name, json.dumps(doc).encode())
