"""MIFARE Classic 1K access conditions: trailer bytes 6-8 and what each condition allows.

Only card issuance (HQ) and the virtual cards need these; the handheld does not
load them. Source: NXP MF1S50yyX/V1 product data sheet, section 8.7. Access
conditions are (c1, c2, c3) tuples of 0/1.
"""

from protocol.mifare import BLOCKS_PER_SECTOR

# Data-block permissions (data sheet table "Access conditions for data blocks"):
# condition -> (who may read, who may write). Increment/decrement are not modelled:
# the card layout stores records, not value blocks.
_DATA_TABLE = {
    (0, 0, 0): ("AB", "AB"),
    (0, 1, 0): ("AB", ""),
    (1, 0, 0): ("AB", "B"),
    (1, 1, 0): ("AB", "B"),
    (0, 0, 1): ("AB", ""),
    (0, 1, 1): ("B", "B"),
    (1, 0, 1): ("B", ""),
    (1, 1, 1): ("", ""),
}

# Trailer permissions (data sheet table "Access conditions for the sector trailer"):
# condition -> {part: (who may read, who may write)}. Key A is never readable.
_TRAILER_TABLE = {
    (0, 0, 0): {"key_a": ("", "A"), "access": ("A", ""), "key_b": ("A", "A")},
    (0, 1, 0): {"key_a": ("", ""), "access": ("A", ""), "key_b": ("A", "")},
    (1, 0, 0): {"key_a": ("", "B"), "access": ("AB", ""), "key_b": ("", "B")},
    (1, 1, 0): {"key_a": ("", ""), "access": ("AB", ""), "key_b": ("", "")},
    (0, 0, 1): {"key_a": ("", "A"), "access": ("A", "A"), "key_b": ("A", "A")},
    (0, 1, 1): {"key_a": ("", "B"), "access": ("AB", "B"), "key_b": ("", "B")},
    (1, 0, 1): {"key_a": ("", ""), "access": ("AB", "B"), "key_b": ("", "")},
    (1, 1, 1): {"key_a": ("", ""), "access": ("AB", ""), "key_b": ("", "")},
}

# Trailer conditions under which key B is readable (grey rows of the data sheet):
# key B is then plain data and the card refuses memory access after a key B auth.
_KEY_B_READABLE = ((0, 0, 0), (0, 1, 0), (0, 0, 1))


def _cond(cond: tuple) -> tuple:
    """cond as a tuple of three 0/1 ints, or ValueError."""
    t = tuple(cond)
    if len(t) != 3 or any(c not in (0, 1) for c in t):
        raise ValueError("access condition must be three 0/1 bits: %r" % (cond,))
    return t


def _key_ok(allowed: str, key_type: str) -> bool:
    """Whether key_type ('A' or 'B') is among allowed ('', 'A', 'B', 'AB')."""
    if key_type not in ("A", "B"):
        raise ValueError("key_type must be 'A' or 'B': %r" % (key_type,))
    return key_type in allowed


def _op_index(op: str) -> int:
    """0 for 'read', 1 for 'write'."""
    if op == "read":
        return 0
    if op == "write":
        return 1
    raise ValueError("op must be 'read' or 'write': %r" % (op,))


def encode_access_bits(conds: list) -> bytes:
    """Trailer bytes 6-8 for the four (c1, c2, c3) conditions of blocks 0-3."""
    if len(conds) != BLOCKS_PER_SECTOR:
        raise ValueError("need 4 access conditions, got %d" % len(conds))
    c1 = c2 = c3 = 0
    for i in range(BLOCKS_PER_SECTOR):
        b1, b2, b3 = _cond(conds[i])
        c1 |= b1 << i
        c2 |= b2 << i
        c3 |= b3 << i
    # Each bit is stored twice, once inverted, so a torn trailer write is detectable.
    byte6 = ((~c2 & 0xF) << 4) | (~c1 & 0xF)
    byte7 = (c1 << 4) | (~c3 & 0xF)
    byte8 = (c3 << 4) | c2
    return bytes([byte6, byte7, byte8])


def decode_access_bits(b: bytes) -> list:
    """The four (c1, c2, c3) conditions of blocks 0-3 from trailer bytes 6-8."""
    if len(b) != 3:
        raise ValueError("access bits are 3 bytes, got %d" % len(b))
    byte6, byte7, byte8 = b[0], b[1], b[2]
    c1 = byte7 >> 4
    c2 = byte8 & 0xF
    c3 = byte8 >> 4
    # A real card blocks the whole sector when the copies disagree; callers must too.
    if (byte6 & 0xF) != (~c1 & 0xF) or (byte6 >> 4) != (~c2 & 0xF) or (byte7 & 0xF) != (~c3 & 0xF):
        raise ValueError("access bits inconsistent")
    return [((c1 >> i) & 1, (c2 >> i) & 1, (c3 >> i) & 1) for i in range(BLOCKS_PER_SECTOR)]


def data_allowed(cond: tuple, op: str, key_type: str) -> bool:
    """Whether key_type may op ('read'/'write') a data block under cond."""
    return _key_ok(_DATA_TABLE[_cond(cond)][_op_index(op)], key_type)


def trailer_allowed(cond: tuple, what: str, op: str, key_type: str) -> bool:
    """Whether key_type may op the trailer part what ('key_a'/'access'/'key_b') under cond."""
    parts = _TRAILER_TABLE[_cond(cond)]
    if what not in parts:
        raise ValueError("what must be 'key_a', 'access' or 'key_b': %r" % (what,))
    return _key_ok(parts[what][_op_index(op)], key_type)


def key_b_readable(trailer_cond: tuple) -> bool:
    """Whether key B is readable under trailer_cond (then it cannot authenticate)."""
    return _cond(trailer_cond) in _KEY_B_READABLE
