"""card-reader: the firmware's PN532 driver through a pseudo-terminal at 115200 baud wire timing.

Figures: frames_per_sale and ms_per_sale for the card side of a sale (select,
read and verify the card, write the purse, read it back).
"""

from __future__ import annotations

import random
import time

from firmware.cardservice import CardService
from firmware.pn532 import PN532
from firmware.reader import AuthFailed
from protocol import mifare
from simulator.pn532_device import VirtualPN532
from simulator.scenarios import Outcome, Say
from simulator.serial_uart import SerialUart
from simulator.shop import master_key, member_card, read_card_directly
from simulator.vhal import SimClock

SALES = 10
TARGET_MS_PER_SALE = 250
FREE_BLOCK = 60  # sector 15 keeps its transport keys on a member card


def run(devices: int = 1, seed: int = 1, say: Say = print, sales: int = SALES) -> Outcome:
    rng = random.Random(seed)
    out = Outcome("card-reader")
    master = master_key(rng)
    card = member_card(rng, master, 7, balance=10_000, points=0, tier=0)
    with VirtualPN532(wire_timing=True) as device:
        device.place_card(card)
        uart = SerialUart(device.path)
        try:
            reader = PN532(uart, SimClock())
            reader.start()
            ic, ver, rev, _support = reader.get_firmware_version()
            say(f"PN5{ic:02x} firmware {ver}.{rev} on {device.path}")
            out.check("firmware_version", ic == 0x32, f"IC 0x{ic:02x}")
            uid = reader.select()
            say(f"card detected: UID {uid.hex() if uid else None}")
            out.check("card_detected", uid == card.uid, f"got {uid!r}")
            _raw_block(out, reader, card.uid, rng)
            _timed_sales(out, reader, master, card, sales, say)
        finally:
            uart.close()
    return out


def _raw_block(out: Outcome, reader: PN532, uid: bytes, rng: random.Random) -> None:
    """Authenticate, write and read back a free block; a wrong key is refused."""
    try:
        reader.authenticate(FREE_BLOCK, "A", bytes(6), uid)
        out.check("wrong_key_refused", False, "a zero key opened sector 15")
    except AuthFailed:
        out.check("wrong_key_refused", True)
    reader.select()
    reader.authenticate(FREE_BLOCK, "A", mifare.DEFAULT_KEY, uid)
    data = bytes(rng.getrandbits(8) for _ in range(16))
    reader.write_block(FREE_BLOCK, data)
    out.check("authenticate_write_read", reader.read_block(FREE_BLOCK) == data, "block did not read back")


def _timed_sales(out: Outcome, reader: PN532, master: bytes, card, sales: int, say: Say) -> None:
    service = CardService(reader, master)
    start = read_card_directly(card, master)["purse"]
    frames = reader.frames_sent
    began = time.perf_counter()
    for _ in range(sales):
        uid = service.present()
        if uid is None:
            raise RuntimeError("the card left the reader")
        current = service.read(uid)
        purse = current["purse"]
        service.write_purse(
            current,
            {"counter": purse["counter"] + 1, "balance": purse["balance"] - 100, "points": purse["points"] + 1, "tag": 0},
        )
    elapsed_ms = (time.perf_counter() - began) * 1000
    frames_per_sale = (reader.frames_sent - frames) / sales
    ms_per_sale = elapsed_ms / sales
    final = read_card_directly(card, master)["purse"]
    out.check(
        "purse_written_through_reader",
        final["counter"] == start["counter"] + sales and final["balance"] == start["balance"] - 100 * sales,
        f"card holds {final}",
    )
    out.check("ms_per_sale_within_target", ms_per_sale <= TARGET_MS_PER_SALE, f"{ms_per_sale:.1f} ms")
    out.figures.update({"frames_per_sale": round(frames_per_sale, 1), "ms_per_sale": round(ms_per_sale, 1), "baud": 115200})
    say(f"{sales} card transactions: {frames_per_sale:.1f} frames and {ms_per_sale:.1f} ms each at 115200 baud")
