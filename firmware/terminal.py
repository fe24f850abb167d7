"""The handheld application: runs the sale flow against the HAL, one poll at a time.

All decisions are in sale.py, protocol/ and screens.py; this module reads keys
and cards, writes the journal and the card, and shows screens. What the hub sends
down (a new price list, hotlist changes, card actions, the offline lease) comes in
through downlink(). Stored value is taken only within the lease (firmware/downlinks.py).
"""

import json

from firmware import sale, screens
from firmware.cardservice import CardService
from firmware.downlinks import Downlinks
from firmware.journal import Journal
from firmware.outbox import Outbox
from firmware.reader import ReaderError
from firmware.version import FIRMWARE_VERSION
from protocol import card as layout
from protocol import downlink as dl
from protocol.pricing import PriceList, PricingError, quote, settle
from protocol.sync import SyncError

PRICES = "prices.json"
CONFIG = "config.json"
DIGITS = "0123456789*"
READER_FAULT = "Card reader fault"
FLASH_FULL = "Flash full: sync!"


def load_config(flash) -> dict:
    """The per-device configuration kept on flash apart from the code."""
    raw = flash.read(CONFIG)
    if raw is None:
        raise ValueError("no %s on flash: provision the device first" % CONFIG)
    config = json.loads(raw)
    for key in ("device_id", "master_key"):
        if key not in config:
            raise ValueError("%s lacks %r" % (CONFIG, key))
    return config


class Terminal:
    """One handheld: boot() once, then poll() in the main loop."""

    def __init__(self, reader, flash, clock, display, keypad, config: dict):
        self.reader = reader
        self.flash = flash
        self.clock = clock
        self.display = display
        self.keypad = keypad
        self.device_id = config["device_id"]
        self.journal = Journal(flash, self.device_id)
        self.outbox = Outbox(self.journal, self._synced)
        master = bytes.fromhex(config["master_key"])
        self.cards = CardService(reader, master)
        self.price_list = None  # type: PriceList | None
        self.downlinks = Downlinks(flash, master, self.device_id)
        self.state = sale.IDLE
        self.ctx = {}  # type: dict
        self.last_uid = None  # type: bytes | None
        self.reader_ok = None  # type: bool | None  # None until the reader first answers
        self.notice = ""

    # -- start-up -------------------------------------------------------------

    def boot(self) -> None:
        """Recover the journal, load prices, wake the reader, show the idle screen."""
        for code, message in self.journal.open():
            self.event(code, message)
        self._load_prices()
        self.downlinks.load(self.journal)
        self._start_reader()
        if self.journal.pending_sales:
            self.notice = "Unfinished sale: tap"
        self.show()

    def _load_prices(self) -> None:
        raw = self.flash.read(PRICES)
        try:
            if raw is None:
                raise PricingError("no_price_list", "no price list on this handheld")
            self.price_list = PriceList(json.loads(raw))
        except (ValueError, PricingError) as exc:
            self.price_list = None
            self.event("bad_price_list", str(exc))

    def _start_reader(self) -> None:
        try:
            self.reader.start()
            self.reader_ok = True
        except ReaderError as exc:
            self._reader_fault(exc)

    def status(self) -> dict:
        """What the handheld runs, for its status message: firmware and the downlink versions it holds."""
        d = self.downlinks
        return {
            "firmware": FIRMWARE_VERSION,
            "prices": self.price_list.version if self.price_list else 0,
            "hotlist": d.hotlist_version,
            "actions": d.actions_version,
            "lease": d.lease[0] if d.lease else 0,
        }

    def downlink(self, topic: str, payload: bytes) -> bool:
        """Take a message from the hub; True when a version moved. A bad one is an event and changes nothing."""
        kind = dl.kind_of(topic)
        try:
            if kind == dl.PRICES:
                prices = dl.decode_prices(payload)
                if self.price_list is not None and prices.version <= self.price_list.version:
                    return False
                self.flash.replace(PRICES, payload)  # atomically: a cut leaves the old list or the new one
                self.price_list = prices  # a sale under way keeps the list it started with
                if self.state == sale.IDLE:
                    self.show()
                return True
            if kind:
                return self.downlinks.take(kind, payload)
        except SyncError as exc:
            self.event("bad_downlink", str(exc))
        except OSError as exc:
            self.event("downlink_not_stored", "%s: %s" % (kind, exc))
        return False

    def _synced(self) -> None:
        self.downlinks.synced(self.clock.time())

    def _reader_fault(self, exc: Exception) -> None:
        # Journal a fault once when it starts, not on every poll while it lasts.
        if self.reader_ok is not False:
            self.event("reader_fault", "%s: %s" % (type(exc).__name__, exc))
        self.reader_ok = False
        self.notice = READER_FAULT
        self.show()

    # -- the main loop ----------------------------------------------------------

    def poll(self) -> bool:
        """Handle one key or one card tap; False when there was nothing to do."""
        key = self.keypad.get_key()
        if key is not None:
            self.on_key(key)
            return True
        if self.state in (sale.IDLE, sale.RECEIPT, sale.CANCELLED, sale.ERROR, sale.UNFINISHED):
            return self._check_card()
        return False

    def _check_card(self) -> bool:
        if not self.reader_ok:
            self._start_reader()
            if not self.reader_ok:
                return False
        try:
            uid = self.cards.present()
        except ReaderError as exc:
            self._reader_fault(exc)
            return False
        if self.notice == READER_FAULT:
            self.notice = ""
        if uid is None or uid == self.last_uid:
            # A card left on the reader after its sale does not start another one.
            self.last_uid = uid
            return False
        self.last_uid = uid
        self.on_card(uid)
        return True

    def go(self, event: str) -> None:
        self.state = sale.next_state(self.state, event)
        self.show()

    def show(self) -> None:
        info = {
            "prices": self.price_list.version if self.price_list else "-",
            "backlog": self.outbox.backlog(),
            "notice": self.notice,
        }
        self.display.show(screens.render(self.state, self.ctx, info))

    def event(self, code: str, message: str, uid: bytes = b"") -> None:
        """Journal an event (a refused card, a fault, a repair) for HQ to see."""
        try:
            self.journal.append({"kind": "event", "code": code, "message": message, "uid": uid.hex()}, self.clock.time())
        except OSError:
            # Flash full: an event is not worth stopping the till for; sales refuse on their own.
            self.notice = FLASH_FULL

    def refuse(self, message: str) -> None:
        self.ctx = {"error": message}
        self.go("refused")

    # -- a card is tapped --------------------------------------------------------

    def on_card(self, uid: bytes) -> None:
        if self.state == sale.UNFINISHED:
            self._finish(uid)
            return
        self.go("card")
        try:
            card = self.cards.read(uid)
        except layout.CardError as exc:
            self.event(exc.code, exc.message, uid)
            self.refuse(exc.message)
            return
        except ReaderError as exc:
            self.event("card_read_failed", "%s: %s" % (type(exc).__name__, exc), uid)
            self.refuse("Card read failed, tap again")
            self.last_uid = None
            return
        if card["torn"]:
            self.event("torn_purse", "purse copy %s was torn; copy %s used" % (card["torn"][0], card["write_copy"]), uid)
        if self._resolve_pending(card) or self._blocked(card):
            return
        message = self._apply_actions(card)
        if message is None:
            return
        if self.price_list is None:
            self.refuse("No price list: sync first")
            return
        self.ctx = {
            "card": card,
            "prices": self.price_list,
            "lines": [],
            "entry": "",
            "message": message,
            "redeem": False,
            "use_stored_value": True,
            "coupon": -1,  # the slot staff picked with COUPON
            "tier_name": self.price_list.tier_name(card["ident"]["tier"]),
        }
        self.go("read_ok")

    def _blocked(self, card: dict) -> bool:
        """Refuse a hotlisted card and mark it blocked on the card; True when refused."""
        ident = card["ident"]
        uid = card["uid"]
        reason = self.downlinks.hotlist.get(ident["card_no"])
        if reason:
            self.event("card_hotlisted", "card %s is on the hotlist: %s" % (ident["card_no"], reason), uid)
            if not ident["blocked"]:
                self._mark(card, True)  # refused all the same if the card leaves first
            self.refuse("Card blocked:\n%s" % ("reported lost" if reason == "lost" else reason))
            return True
        if not ident["blocked"]:
            return False
        if reason == "":  # HQ took it off the hotlist after a handheld blocked it
            self.event("card_unblocked", "card %s is off the hotlist" % ident["card_no"], uid)
            if self._mark(card, False):
                return False
            self.refuse("Card read failed, tap again")
            self.last_uid = None
            return True
        self.event("card_blocked", "card %s is marked blocked" % ident["card_no"], uid)
        self.refuse("Card blocked:\nsee HQ")
        return True

    def _mark(self, card: dict, blocked: bool) -> bool:
        """Set or clear the card's blocked flag; False (and an event) when the card left."""
        ident = dict(card["ident"])
        ident["blocked"] = blocked
        try:
            self.cards.write_identity(card, ident)
            return True
        except ReaderError as exc:
            self.event("card_lost", "marking the card: %s" % exc, card["uid"])
            return False

    def _apply_actions(self, card: dict) -> str | None:
        """Write HQ's pending actions for this card (record, card, outcome); a note for staff, None when the card left."""
        note = ""
        for action in self.downlinks.due(card["ident"]["card_no"], card["ident"]["actions"]):
            record = sale.action_record(card, action)
            if record is None:
                self.event("bad_action", "action %d does not fit the card's purse" % action[0], card["uid"])
                self.downlinks.done(action)
                continue
            try:
                self.journal.append(record, self.clock.time())
            except OSError:
                return note  # flash full: the action waits, the sale refuses on its own
            ident = dict(card["ident"])
            ident["actions"] = record["number"]
            ident["tier"] = record["tier"]
            try:
                if len(action) > 7:
                    # A coupon goes into its slot before the number: a cut leaves it due, and it is not put twice.
                    from firmware.coupons import put_coupon

                    if not put_coupon(self.cards, card, action[7], record["time"] // 86400):
                        self._settle(record, "voided", "no free coupon slot")
                        self.event("bad_action", "action %d: no free coupon slot" % action[0], card["uid"])
                        self.downlinks.done(action)
                        continue
                    ident["coupons"] = True
                # The number first: no handheld applies the action again, even if the purse write is cut.
                self.cards.write_identity(card, ident)
                if record["counter_after"] != record["counter_before"] and not self._write_action_purse(card, record):
                    return None
            except ReaderError as exc:
                self._card_lost(card, record, exc)
                return None
            self._settle(record, "committed", "")
            self.downlinks.done(action)
            note = "Card updated by HQ"
        return note

    def _write_action_purse(self, card: dict, record: dict) -> bool:
        purse = sale.purse_after(record, layout.txn_tag(self.device_id, record["seq"]))
        try:
            self.cards.write_purse(card, purse)
        except ReaderError as exc:
            self._card_lost(card, record, exc)
            return False
        sale.wrote_purse(card, purse)
        return True

    def _card_lost(self, card: dict, record: dict, exc: Exception) -> None:
        """The card left during a write: whether it landed is known when the card is back."""
        self.event("card_lost", "%s %d: %s" % (record["kind"], record["seq"], exc), card["uid"])
        self.ctx = {"card": card, "pending": record}
        self.last_uid = None
        self.go("card_lost")

    def _resolve_pending(self, card: dict) -> bool:
        """Finish sales a power cut or a pulled card left open; True when one was shown."""
        shown = False
        for seq in sorted(self.journal.pending_sales):
            pending = self.journal.pending_sales[seq]
            if pending["card_no"] != card["ident"]["card_no"]:
                continue
            tag = layout.txn_tag(self.device_id, seq)
            if pending["kind"] == "action":
                # Settled quietly: the flow goes on and applies whatever is still due.
                result = sale.resolve_action(pending, card, tag)
                if result == "finish":
                    if not self._write_action_purse(card, pending):
                        return True
                    result = "committed"
                self._settle(pending, result or "unknown", "resolved on re-tap" if result else "card used elsewhere since")
                continue
            result = sale.resolve(pending, card, tag)
            if result is None:
                self._settle(pending, "unknown", "card used elsewhere since: left to the hub")
                continue
            self._settle(pending, result, "resolved on re-tap")
            self.ctx = {"receipt": self._receipt(pending, result)}
            shown = True
        if shown:
            self.notice = ""
            self.go("resolved")
        return shown

    def _settle(self, pending: dict, result: str, reason: str) -> None:
        """Journal the outcome of a pending sale: committed, voided or unknown (left to the hub)."""
        record = {"kind": "outcome", "ref": pending["seq"], "result": result, "reason": reason}
        self.journal.append(record, self.clock.time())

    def _receipt(self, pending: dict, result: str) -> list:
        if result == "committed":
            return screens.receipt(pending)
        return ["Sale #%d NOT charged" % pending["seq"], "Card unchanged", "Ring it up again"]

    def _finish(self, uid: bytes) -> None:
        """The card of an unfinished sale is back: find out whether its write landed."""
        pending = self.ctx["pending"]
        try:
            card = self.cards.read(uid)
        except (ReaderError, layout.CardError) as exc:
            self.last_uid = None
            self.event("card_read_failed", "finishing sale %d: %s" % (pending["seq"], exc), uid)
            self.show()
            return
        if card["ident"]["card_no"] != pending["card_no"]:
            self.show()
            return
        if not self._resolve_pending(card):
            self.go("abandon")
            if pending["kind"] == "action":
                self.last_uid = None  # the card is read again at the next poll and its sale goes on

    # -- keys ----------------------------------------------------------------------

    def on_key(self, key: str) -> None:
        if self.state == sale.ITEMS:
            self._items_key(key)
        elif self.state == sale.CONFIRM:
            self._confirm_key(key)
        elif self.state == sale.UNFINISHED and key == "CANCEL":
            self._settle(self.ctx["pending"], "unknown", "card did not come back: left to the hub")
            self.go("abandon")
        elif self.state in (sale.RECEIPT, sale.CANCELLED, sale.ERROR):
            self.ctx = {}
            self.go("done")

    def _items_key(self, key: str) -> None:
        ctx = self.ctx
        ctx["message"] = ""
        if key in DIGITS:
            ctx["entry"] += key
            self.show()
        elif key == "ENTER":
            self._add_entry()
        elif key == "CLEAR":
            if ctx["entry"]:
                ctx["entry"] = ""
            else:
                ctx["lines"] = ctx["lines"][:-1]
            self._reprice()
            self.go("remove")
        elif key == "OK" and ctx["lines"]:
            self._reprice()
            self.go("ok")
        elif key == "CANCEL":
            self.event("sale_cancelled", "cancelled with %d lines" % len(ctx["lines"]), ctx["card"]["uid"])
            self.go("cancel")

    def _add_entry(self) -> None:
        ctx = self.ctx
        entry = ctx["entry"]
        ctx["entry"] = ""
        try:
            item_id, qty = sale.parse_entry(entry)
            lines = sale.add_line(ctx["lines"], item_id, qty)
            ctx["subtotal"] = quote(ctx["prices"], lines, ctx["card"]["ident"]["tier"])["subtotal"]
        except (ValueError, PricingError) as exc:
            code = getattr(exc, "code", "bad_entry")
            ctx["message"] = "Unknown item %s" % entry if code == "unknown_item" else "Bad entry %s" % entry
            self.event(code, str(exc), ctx["card"]["uid"])
            self.go("bad_item")
            return
        ctx["lines"] = lines
        self.go("add")

    def _reprice(self) -> None:
        ctx = self.ctx
        if not ctx["lines"]:
            ctx["subtotal"] = 0
            return
        purse = ctx["card"]["purse"]
        ctx["quote"] = quote(ctx["prices"], ctx["lines"], ctx["card"]["ident"]["tier"])
        ctx["subtotal"] = ctx["quote"]["subtotal"]
        redeem = purse["points"] if ctx["redeem"] else 0
        q = ctx["quote"]
        i = ctx["coupon"]
        if i >= 0:  # the coupon staff picked, or why the card refuses it (the sale goes on without it)
            from protocol.coupon import apply

            try:
                q = apply(ctx["prices"], q, ctx["card"]["slots"][i], purse.get("ext"), i, self.clock.time() // 86400)
            except PricingError as exc:
                q = dict(q)
                q["coupon_value"] = exc.message
            ctx["quote"] = q
        ctx["split"] = settle(
            ctx["prices"], q["total"], purse["balance"], purse["points"], redeem, ctx["use_stored_value"],
            ctx["card"]["ident"]["tier"], q.get("excluded", 0),
        )

    def _confirm_key(self, key: str) -> None:
        self.ctx["message"] = ""
        if key == "POINTS":
            self.ctx["redeem"] = not self.ctx["redeem"]
        elif key == "CASH":
            self.ctx["use_stored_value"] = not self.ctx["use_stored_value"]
        elif key == "COUPON":  # the next coupon on the card, then none
            slots = self.ctx["card"]["slots"] or []
            i = self.ctx["coupon"] + 1
            while i < len(slots) and slots[i] is None:
                i += 1
            self.ctx["coupon"] = i if i < len(slots) else -1
        elif key == "CANCEL":
            self.go("back")
            return
        elif key == "OK":
            self._commit()
            return
        else:
            return
        self._reprice()
        self.go("toggle")

    def _commit(self) -> None:
        """Journal the sale, write the card, journal the outcome, show the receipt."""
        ctx = self.ctx
        card = ctx["card"]
        card_no = card["ident"]["card_no"]
        stored_value = ctx["split"]["stored_value"]
        why = self.downlinks.refusal(card_no, stored_value, self.clock.time())
        if why:
            # Staff can switch to cash (CASH) and go on; HQ sees why the card was not used.
            self.event("lease_limit", why, card["uid"])
            ctx["message"] = why  # the confirm screen says it instead of its prompt
            self.show()
            return
        # The version of the list this sale was priced with, even if a newer one arrived meanwhile.
        record = sale.sale_record(card, ctx["quote"], ctx["split"], ctx["prices"].version, FIRMWARE_VERSION)
        try:
            self.journal.append(record, self.clock.time())
        except OSError as exc:
            self.refuse("Journal full: sync first (%s)" % exc)
            return
        self.downlinks.spent(card_no, stored_value, record["time"])
        purse = sale.purse_after(record, layout.txn_tag(self.device_id, record["seq"]))
        if "coupon" in record:  # used in the same copy as the money (docs/coupons.md)
            from protocol.coupon import mark

            purse["ext"] = mark(card["purse"].get("ext"), ctx["coupon"], record["coupon"])
        try:
            self.cards.write_purse(card, purse)
        except ReaderError as exc:
            self._card_lost(card, record, exc)
            return
        self.go("written")
        self._settle(record, "committed", "")
        self.ctx = {"receipt": self._receipt(record, "committed")}
        self.go("journaled")
        self.go("printed")
