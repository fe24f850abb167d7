"""Journal records: what a handheld keeps on flash and sync carries to the hub.

Binary, big-endian, versioned by the first byte, closed by a CRC-32 of all the
bytes before it. Four kinds: a sale (written before the card is), the outcome
of a sale or a card action (committed or voided, once the card write is known),
an event (a refused card, a reader fault, a recovered journal), and a card action
HQ decided that the handheld writes to a card (written before the card is, like a
sale). docs/protocol.md has the field-by-field reference.
"""

import struct

from protocol.crypto import crc32

FORMAT_VERSION = 1
SALE = 1
OUTCOME = 2
EVENT = 3
ACTION = 4
KINDS = {SALE: "sale", OUTCOME: "outcome", EVENT: "event", ACTION: "action"}
KIND_CODES = {"sale": SALE, "outcome": OUTCOME, "event": EVENT, "action": ACTION}
COMMITTED = 1
VOIDED = 2
UNKNOWN = 3  # the handheld could not tell; the hub settles it from other devices' records
RESULTS = {COMMITTED: "committed", VOIDED: "voided", UNKNOWN: "unknown"}
RESULT_CODES = {"committed": COMMITTED, "voided": VOIDED, "unknown": UNKNOWN}

_HEAD = ">BBII"  # format version, kind, seq, time
_LINE = ">IHi"  # item id, quantity, unit price
_SALE_MONEY = ">iiiIiiiIiI"
_ACTION = ">IIiiBIIiI"  # action id, number, amount, points, tier, counter before, after, balance after, points after
ACTION_FIELDS = (
    "action",
    "number",
    "amount",
    "points",
    "tier",
    "counter_before",
    "counter_after",
    "balance_after",
    "points_after",
)
_MONEY_FIELDS = (
    "subtotal",
    "discount",
    "total",
    "points_redeemed",
    "points_value",
    "stored_value",
    "cash",
    "points_earned",
    "balance_after",
    "points_after",
)


_SALE_IDS = ("counter_before", "counter_after", "member_id", "tier", "discount_bps", "price_list_version")

_RANGES = {
    "B": (0, 0xFF),
    "H": (0, 0xFFFF),
    "I": (0, 0xFFFFFFFF),
    "i": (-0x80000000, 0x7FFFFFFF),
    "Q": (0, 0xFFFFFFFFFFFFFFFF),
}


class RecordError(ValueError):
    """Bytes that are not a valid record, or a record that cannot be encoded; .code says why."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class _Writer:
    def __init__(self):
        self.parts = []  # type: list[bytes]

    def pack(self, fmt: str, *values) -> None:
        # Check ranges ourselves: MicroPython's struct silently wraps what CPython refuses.
        for code, value in zip(fmt[1:], values):
            lo, hi = _RANGES[code]
            if type(value) is not int or value < lo or value > hi:
                raise RecordError("bad_field", "%r is not a whole number from %d to %d" % (value, lo, hi))
        self.parts.append(struct.pack(fmt, *values))

    def text(self, value: str, field: str) -> None:
        if not isinstance(value, str):
            raise RecordError("bad_field", "%s must be text, got %r" % (field, value))
        self.blob(value.encode(), field)

    def hex(self, value: str, field: str) -> None:
        try:
            self.blob(bytes.fromhex(value), field)
        except (ValueError, TypeError):
            raise RecordError("bad_field", "%s must be hex, got %r" % (field, value))

    def blob(self, value: bytes, field: str) -> None:
        if len(value) > 255:
            raise RecordError("bad_field", "%s is longer than 255 bytes" % field)
        self.parts.append(bytes([len(value)]) + value)


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data = data
        self.pos = 0
        self.end = end

    def unpack(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > self.end:
            raise RecordError("truncated", "record ends inside its fields")
        values = struct.unpack(fmt, self.data[self.pos : self.pos + size])
        self.pos += size
        return values

    def blob(self) -> bytes:
        (size,) = self.unpack(">B")
        if self.pos + size > self.end:
            raise RecordError("truncated", "record ends inside a text field")
        value = bytes(self.data[self.pos : self.pos + size])
        self.pos += size
        return value

    def text(self) -> str:
        try:
            return self.blob().decode()
        except UnicodeError:
            raise RecordError("bad_field", "text field is not UTF-8")


def encode(record: dict) -> bytes:
    """The record's bytes, checksum included; RecordError when a field does not fit."""
    kind = KIND_CODES.get(record.get("kind", ""))
    if kind is None:
        raise RecordError("unknown_kind", "unknown record kind %r" % (record.get("kind"),))
    out = _Writer()
    out.pack(_HEAD, FORMAT_VERSION, kind, record["seq"], record["time"])
    out.text(record["device"], "device")
    if kind == SALE:
        _encode_sale(out, record)
    elif kind == ACTION:
        _card(out, record)
        out.text(record["act"], "act")
        out.pack(_ACTION, *[record[name] for name in ACTION_FIELDS])
    elif kind == OUTCOME:
        result = RESULT_CODES.get(record["result"])
        if result is None:
            raise RecordError("bad_field", "outcome result must be committed, voided or unknown")
        out.pack(">IB", record["ref"], result)
        out.text(record.get("reason", ""), "reason")
    else:
        out.text(record["code"], "code")
        out.text(_clip(record.get("message", ""), 200), "message")
        out.hex(record.get("uid", ""), "uid")
    body = b"".join(out.parts)
    return body + struct.pack(">I", crc32(body))


def _clip(text: str, limit: int) -> str:
    # Event messages are for people; a long one is cut (at a character boundary) rather than refused.
    data = text.encode()
    if len(data) <= limit:
        return text
    while limit > 0 and data[limit] & 0xC0 == 0x80:
        limit -= 1
    return data[:limit].decode()


def _card(out: _Writer, record: dict) -> None:
    from protocol.card import card_number_int  # the card number rules live with the card

    try:
        number = card_number_int(record["card_no"])
    except ValueError as exc:
        raise RecordError("bad_field", str(exc))
    out.pack(">Q", number)
    out.hex(record["uid"], "uid")


def _encode_sale(out: _Writer, record: dict) -> None:
    _card(out, record)
    out.pack(
        ">IIIBHI",
        record["counter_before"],
        record["counter_after"],
        record["member_id"],
        record["tier"],
        record["discount_bps"],
        record["price_list_version"],
    )
    out.text(record["firmware"], "firmware")
    lines = record["lines"]
    if len(lines) > 255:
        raise RecordError("bad_field", "a sale holds at most 255 lines")
    out.pack(">B", len(lines))
    for line in lines:
        out.pack(_LINE, line["item"], line["qty"], line["price"])
    out.pack(_SALE_MONEY, *[record[name] for name in _MONEY_FIELDS])
    if record.get("coupon"):  # only a sale with a coupon has these, so every other record is as before
        out.pack(">Ii", record["coupon"], record["coupon_value"])


def decode(data: bytes) -> dict:
    """The record in data (exactly one); RecordError for anything else."""
    if len(data) < struct.calcsize(_HEAD) + 1 + 4:
        raise RecordError("truncated", "record shorter than its header (%d bytes)" % len(data))
    (stored,) = struct.unpack(">I", data[-4:])
    if crc32(data[:-4]) != stored:
        raise RecordError("bad_checksum", "record checksum does not match")
    rd = _Reader(data, len(data) - 4)
    version, kind, seq, time = rd.unpack(_HEAD)
    if version != FORMAT_VERSION:
        raise RecordError("unknown_version", "record format v%d, this code reads v%d" % (version, FORMAT_VERSION))
    if kind not in KINDS:
        raise RecordError("unknown_kind", "unknown record kind %d" % kind)
    record = {"kind": KINDS[kind], "seq": seq, "time": time, "device": rd.text()}
    if kind == SALE:
        _decode_sale(rd, record)
    elif kind == ACTION:
        _decode_card(rd, record)
        record["act"] = rd.text()
        _decode_fields(rd, _ACTION, ACTION_FIELDS, record)
    elif kind == OUTCOME:
        ref, result = rd.unpack(">IB")
        if result not in RESULTS:
            raise RecordError("bad_field", "unknown outcome result %d" % result)
        record["ref"] = ref
        record["result"] = RESULTS[result]
        record["reason"] = rd.text()
    else:
        record["code"] = rd.text()
        record["message"] = rd.text()
        record["uid"] = rd.blob().hex()
    if rd.pos != rd.end:
        raise RecordError("bad_field", "%d unexpected bytes after the fields" % (rd.end - rd.pos))
    return record


def _decode_card(rd: _Reader, record: dict) -> None:
    (number,) = rd.unpack(">Q")
    if number >= 10**16:
        raise RecordError("bad_field", "card number has more than 16 digits")
    record["card_no"] = "%016d" % number
    record["uid"] = rd.blob().hex()


def _decode_fields(rd: _Reader, fmt: str, names: tuple, record: dict) -> None:
    values = rd.unpack(fmt)
    for i in range(len(names)):
        record[names[i]] = values[i]


def _decode_sale(rd: _Reader, record: dict) -> None:
    _decode_card(rd, record)
    _decode_fields(rd, ">IIIBHI", _SALE_IDS, record)
    record["firmware"] = rd.text()
    (count,) = rd.unpack(">B")
    lines = []
    for _ in range(count):
        item, qty, price = rd.unpack(_LINE)
        lines.append({"item": item, "qty": qty, "price": price})
    record["lines"] = lines
    _decode_fields(rd, _SALE_MONEY, _MONEY_FIELDS, record)
    if rd.pos < rd.end:
        record["coupon"], record["coupon_value"] = rd.unpack(">Ii")
