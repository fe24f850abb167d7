"""The member card on MIFARE Classic 1K: layout v1, key diversification, MACs.

Sector 1 holds the identity (card number, member, tier, the blocked flag, the
highest card action applied) and its MAC; sectors 2
and 3 hold purse copies A and B (counter, balance, points, last writer's tag),
each with its own MAC. A sale writes the older copy, so a card pulled away
mid-write keeps the other one. docs/protocol.md is the byte-by-byte reference.
"""

import struct

from protocol import mifare
from protocol.crypto import crc32, equal, hmac_sha256

LAYOUT_VERSION = 1
MAGIC = b"MC"
MAC_LEN = 16  # HMAC-SHA256 truncated to one block

IDENTITY_SECTOR = 1
IDENTITY_BLOCKS = (4, 5, 6)  # header, member, MAC
PURSE_SECTORS = {"A": 2, "B": 3}
PURSE_BLOCKS = {"A": (8, 9), "B": (12, 13)}  # (data, MAC)
APP_SECTORS = (1, 2, 3)

# Data blocks: read with key A or B, write with key B only. Trailer: keys and
# access bits can be changed with key B only; key B is never readable.
# access.encode_access_bits([(1, 0, 0)] * 3 + [(0, 1, 1)]), written out so the handheld
# need not load protocol/access.py (tests/test_protocol_card.py checks the two agree).
APP_ACCESS = b"\x78\x77\x88"
GPB = 0x69

_HEADER = ">2sBBQI"  # magic, layout, flags, card number, member id
_MEMBER = ">BBHHI6s"  # tier, category, issued day, expiry day, highest card action applied, reserved
BLOCKED = 0x01  # header flag: a handheld refused the card as hotlisted
# Header flag 0x02: the card has coupons (protocol.coupon): sector 4 holds them, and each purse copy has a third
# block (its data block + 2) with their used marks. A number, not a name: each module global costs the handheld heap.
_PURSE = ">IiII"  # counter, balance, points, tag

MAX_BALANCE = 0x7FFFFFFF


class CardError(Exception):
    """A card the handheld must refuse; .code is the reason reported in the journal.

    One class with a code (blank_card, unknown_card, unknown_layout, bad_mac, purse_invalid)
    rather than a subclass each: every class costs the handheld's heap about 230 bytes.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _derive(master: bytes, label: bytes, uid: bytes) -> bytes:
    return hmac_sha256(master, label + bytes([len(uid)]) + uid)


def mac_key(master: bytes, uid: bytes) -> bytes:
    """The card's MAC key: diversified from the HQ master key and the UID."""
    return _derive(master, b"MAC", uid)


def lease_key(master: bytes, device_id: str) -> bytes:
    """The key that signs a handheld's offline lease: diversified from the master key and the device id."""
    return _derive(master, b"LEASE", device_id.encode())


def sector_keys(master: bytes, uid: bytes, sector: int) -> tuple:
    """(key A, key B) of one application sector, diversified per card and sector."""
    digest = _derive(master, b"KEY" + bytes([sector]), uid)
    return digest[:6], digest[6:12]


def card_number_str(number: int) -> str:
    return "%016d" % number


def card_number_int(card_no: str) -> int:
    if not isinstance(card_no, str) or len(card_no) != 16 or not card_no.isdigit():
        raise ValueError("card number must be 16 digits, got %r" % (card_no,))
    return int(card_no)


def encode_identity(master: bytes, uid: bytes, ident: dict) -> list:
    """The three identity blocks [header, member, MAC] for ident."""
    flags = (BLOCKED if ident.get("blocked") else 0) | (2 if ident.get("coupons") else 0)
    header = struct.pack(_HEADER, MAGIC, LAYOUT_VERSION, flags, card_number_int(ident["card_no"]), ident["member_id"])
    member = struct.pack(
        _MEMBER,
        ident["tier"],
        ident.get("category", 0),
        ident.get("issued_day", 0),
        ident.get("expiry_day", 0),
        ident.get("actions", 0),
        bytes(6),
    )
    return [header, member, _identity_mac(master, uid, header, member)]


def _identity_mac(master: bytes, uid: bytes, header: bytes, member: bytes) -> bytes:
    return hmac_sha256(mac_key(master, uid), b"ID" + uid + header + member)[:MAC_LEN]


def decode_identity(master: bytes, uid: bytes, blocks: list) -> dict:
    """Verify and decode the identity blocks; CardError blank_card, unknown_layout or bad_mac."""
    header, member, mac = blocks
    if header == bytes(16) and member == bytes(16):
        raise CardError("blank_card", "blank card: no member data")
    magic, layout, flags, number, member_id = struct.unpack(_HEADER, header)
    if magic != MAGIC:
        raise CardError("unknown_layout", "not a member card (no MC header)")
    if layout != LAYOUT_VERSION:
        raise CardError("unknown_layout", "card layout v%d, this handheld reads v%d" % (layout, LAYOUT_VERSION))
    if not equal(mac, _identity_mac(master, uid, header, member)):
        raise CardError("bad_mac", "card data failed its MAC check")
    tier, category, issued, expiry, actions, _ = struct.unpack(_MEMBER, member)
    out = {
        "card_no": card_number_str(number),
        "member_id": member_id,
        "tier": tier,
        "category": category,
        "issued_day": issued,
        "expiry_day": expiry,
        "blocked": bool(flags & BLOCKED),
        "actions": actions,
    }
    if flags & 2:
        out["coupons"] = True
    return out


def _purse_mac(master: bytes, uid: bytes, card_no: str, copy: str, data: bytes, ext=None) -> bytes:
    msg = b"PU" + copy.encode() + uid + struct.pack(">Q", card_number_int(card_no)) + data
    if ext and ext != bytes(16):  # a copy without coupon marks MACs as before coupons existed
        msg += ext
    return hmac_sha256(mac_key(master, uid), msg)[:MAC_LEN]


def encode_purse(master: bytes, uid: bytes, card_no: str, copy: str, purse: dict) -> list:
    """[data block, MAC block] of one purse copy ('A' or 'B'); the MAC covers purse["ext"] (coupon marks) when set."""
    if purse["balance"] < 0 or purse["balance"] > MAX_BALANCE:
        raise ValueError("balance out of range: %r" % purse["balance"])
    data = struct.pack(_PURSE, purse["counter"], purse["balance"], purse["points"], purse["tag"])
    return [data, _purse_mac(master, uid, card_no, copy, data, purse.get("ext"))]


def decode_purse(master: bytes, uid: bytes, card_no: str, copy: str, blocks: list) -> dict | None:
    """The purse in one copy (blocks: data, MAC[, the third block]), or None when it is empty or fails its MAC (torn)."""
    data = blocks[0]
    ext = blocks[2] if len(blocks) > 2 and blocks[2] != bytes(16) else None
    if not equal(blocks[1], _purse_mac(master, uid, card_no, copy, data, ext)):
        return None
    counter, balance, points, tag = struct.unpack(_PURSE, data)
    if balance < 0:
        return None
    out = {"counter": counter, "balance": balance, "points": points, "tag": tag}
    if ext:
        out["ext"] = ext
    return out


def is_empty_copy(blocks: list) -> bool:
    """An unwritten copy (all zeros), as opposed to a torn one."""
    return blocks[0] == bytes(16) and blocks[1] == bytes(16)


def choose_purse(copy_a: dict | None, copy_b: dict | None) -> tuple:
    """(current purse, copy to write next): the newest valid copy wins.

    The next write goes to the other copy, so the current one survives a tear.
    """
    if copy_a is None and copy_b is None:
        raise CardError("purse_invalid", "both purse copies are invalid")
    if copy_b is None or (copy_a is not None and copy_a["counter"] >= copy_b["counter"]):
        return copy_a, "B"
    return copy_b, "A"


def txn_tag(device_id: str, seq: int) -> int:
    """The 32-bit tag a sale leaves in the purse, to tell later whether its write landed."""
    return crc32(device_id.encode() + struct.pack(">I", seq))


def issue_writes(master: bytes, uid: bytes, ident: dict, balance: int, points: int) -> list:
    """[(block, 16 bytes)] that personalise a factory-blank card, trailers last.

    Data blocks are written under the transport key; each trailer write then
    switches its sector to the diversified keys and the application access bits.
    """
    purse = {"counter": 0, "balance": balance, "points": points, "tag": 0}
    writes = list(zip(IDENTITY_BLOCKS, encode_identity(master, uid, ident)))
    writes += list(zip(PURSE_BLOCKS["A"], encode_purse(master, uid, ident["card_no"], "A", purse)))
    writes += [(block, bytes(16)) for block in PURSE_BLOCKS["B"]]
    for sector in APP_SECTORS:
        key_a, key_b = sector_keys(master, uid, sector)
        writes.append((mifare.trailer_of(sector), mifare.make_trailer(key_a, APP_ACCESS, GPB, key_b)))
    return writes
