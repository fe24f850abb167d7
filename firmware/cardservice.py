"""The card service: read, verify and write a member card through any Reader.

The handheld holds key B of the application sectors (it must write the purse),
so it reads and writes with key B: one authentication per sector.

The identity has one copy: a card pulled away between its data blocks and its MAC
block fails its MAC. The service remembers the identity it last set out to write,
and a card that comes back torn that way is finished with it (docs/protocol.md, 8).
"""

from firmware.reader import AuthFailed, CardLost
from protocol import card as layout
from protocol import mifare


class CardService:
    """Member-card operations on top of a Reader and the HQ master key."""

    def __init__(self, reader, master_key: bytes):
        self.reader = reader
        self.master = master_key
        self._authed = -1  # sector the card is authenticated for, -1 for none
        self.intent = None  # type: tuple | None  # (uid, identity blocks) of an identity write not yet read back

    def present(self) -> bytes | None:
        """Select the card in the field; its UID or None."""
        self._authed = -1
        return self.reader.select()

    def _auth(self, uid: bytes, sector: int) -> None:
        if self._authed == sector:
            return
        self._authed = -1
        key = layout.sector_keys(self.master, uid, sector)[1]
        self.reader.authenticate(mifare.first_block(sector), "B", key, uid)
        self._authed = sector

    def _read(self, uid: bytes, blocks) -> list:
        self._auth(uid, mifare.sector_of(blocks[0]))
        return [self.reader.read_block(b) for b in blocks]

    def read(self, uid: bytes) -> dict:
        """The verified card: identity, current purse, the copy to write next, torn copies."""
        try:
            ident_blocks = self._read(uid, layout.IDENTITY_BLOCKS)
        except AuthFailed:
            raise self._classify_foreign(uid)
        intent = self.intent
        if intent is not None and intent[0] != uid:
            intent = None
        try:
            ident = layout.decode_identity(self.master, uid, ident_blocks)
        except layout.CardError as exc:
            if intent is None or exc.code != "bad_mac":
                raise
            self._write(uid, layout.IDENTITY_BLOCKS, intent[1])
            ident = layout.decode_identity(self.master, uid, intent[1])
        if intent is not None:
            self.intent = None  # whole again: a later tear is someone else's, never finished with this

        copies = {}
        torn = []
        coupons = ident.get("coupons")
        for copy in ("A", "B"):
            numbers = layout.PURSE_BLOCKS[copy]  # type: tuple
            blocks = self._read(uid, numbers + (numbers[0] + 2,) if coupons else numbers)
            copies[copy] = layout.decode_purse(self.master, uid, ident["card_no"], copy, blocks)
            if copies[copy] is None and not layout.is_empty_copy(blocks):
                torn.append(copy)
        purse, write_copy = layout.choose_purse(copies["A"], copies["B"])
        return {
            "uid": uid,
            "ident": ident,
            "purse": purse,
            "copies": copies,
            "write_copy": write_copy,
            "torn": torn,
            "slots": self._slots(uid) if coupons else None,
        }

    def _slots(self, uid: bytes) -> list:
        # Loaded only for a card with coupons: each module costs the handheld heap (tests/test_budget.py).
        from firmware.coupons import coupon_slots

        return coupon_slots(self, uid)[0]

    def _classify_foreign(self, uid: bytes) -> Exception:
        """Our keys failed: a factory-blank card, or a card of another system."""
        self._authed = -1
        if self.reader.select() != uid:
            return CardLost("card left the field")
        try:
            self.reader.authenticate(mifare.first_block(layout.IDENTITY_SECTOR), "A", mifare.DEFAULT_KEY, uid)
            blocks = [self.reader.read_block(b) for b in layout.IDENTITY_BLOCKS]
        except AuthFailed:
            return layout.CardError("unknown_card", "card of another system: our keys do not open it")
        if blocks[0] == bytes(16):
            return layout.CardError("blank_card", "blank card: not issued yet")
        return layout.CardError("unknown_card", "card with transport keys but foreign data")

    def _write(self, uid: bytes, blocks, data: list) -> None:
        """Write blocks of one sector in order (the MAC block last), then read them back."""
        self._auth(uid, mifare.sector_of(blocks[0]))
        for i in range(len(blocks)):
            self.reader.write_block(blocks[i], data[i])
        if [self.reader.read_block(b) for b in blocks] != data:
            raise CardLost("card did not read back as written")

    def write_purse(self, card: dict, purse: dict) -> None:
        """Write purse into the older copy, then read it back; CardLost when it did not stick."""
        uid = card["uid"]
        copy = card["write_copy"]
        if "ext" not in purse and "ext" in card["purse"]:
            purse["ext"] = card["purse"]["ext"]  # every purse write keeps the coupons' used marks
        data = layout.encode_purse(self.master, uid, card["ident"]["card_no"], copy, purse)
        blocks = layout.PURSE_BLOCKS[copy]  # type: tuple
        if card["ident"].get("coupons"):  # data, marks, then the MAC: the copy is valid only once all are in
            blocks = (blocks[0], layout.PURSE_BLOCKS[copy][0] + 2, blocks[1])
            data = [data[0], purse.get("ext") or bytes(16), data[1]]
        self._write(uid, blocks, data)

    def write_identity(self, card: dict, ident: dict) -> None:
        """Write a new identity (blocked flag, tier, actions applied): header, member, MAC; then read it back."""
        uid = card["uid"]
        data = layout.encode_identity(self.master, uid, ident)
        self.intent = (uid, data)
        self._write(uid, layout.IDENTITY_BLOCKS, data)
        self.intent = None
        card["ident"] = ident

    def issue(self, uid: bytes, ident: dict, balance: int, points: int) -> None:
        """Personalise a factory-blank card in the field (the transport key opens it)."""
        current = -1
        for block, data in layout.issue_writes(self.master, uid, ident, balance, points):
            sector = mifare.sector_of(block)
            if sector != current:
                self.reader.authenticate(mifare.first_block(sector), "A", mifare.DEFAULT_KEY, uid)
                current = sector
            self.reader.write_block(block, data)
        self._authed = -1
