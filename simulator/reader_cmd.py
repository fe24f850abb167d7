"""`sim reader`: serve a virtual PN532 with a MIFARE card on a pseudo-terminal."""

from __future__ import annotations

import os
import sys
import time

from simulator.mifare_card import MifareClassic1K
from simulator.pn532_device import FAULT_KINDS, VirtualPN532
from simulator.signals import on_stop_signals


def _random_uid() -> bytes:
    """A random 4-byte UID; 0x88 is the cascade tag, never a first UID byte."""
    while True:
        uid = os.urandom(4)
        if uid[0] != 0x88:
            return uid


def _parse_fault(text: str) -> tuple[str, int]:
    """'kind' or 'kind:count' -> (kind, count)."""
    kind, _, count = text.partition(":")
    try:
        n = int(count) if count else 1
    except ValueError:
        raise ValueError(f"fault count must be a number: {text!r}") from None
    if n < 1:
        raise ValueError(f"fault count must be at least 1: {text!r}")
    return kind.strip(), n


def _make_card(card_file: str | None, blank: bool) -> tuple[MifareClassic1K, str]:
    """The card to place and a word on where it came from."""
    if card_file is not None and not blank and os.path.exists(card_file):
        return MifareClassic1K.load(card_file), f"loaded from {card_file}"
    return MifareClassic1K.blank(_random_uid()), "blank"


def run_reader(card_file: str | None, blank: bool, wire_timing: bool, faults: list[str]) -> int:
    """Serve until SIGINT/SIGTERM; the device path is the first line printed.

    card_file: a card saved as JSON, loaded if it exists, created blank
    otherwise, and saved back on exit with the writes it received. blank (also
    the default without card_file): a new blank card with a random UID; with
    card_file it replaces the saved card. faults: 'kind' or 'kind:count' with a
    kind of FAULT_KINDS, applied to the first commands.
    """
    try:
        parsed = [_parse_fault(f) for f in faults]
        for kind, _ in parsed:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
        card, origin = _make_card(card_file, blank)
    except (ValueError, OSError, KeyError) as e:
        print(f"sim reader: {e}", file=sys.stderr)
        return 2
    device = VirtualPN532(card, wire_timing=wire_timing)
    for kind, count in parsed:
        device.inject(kind, count)
    stop: list[int] = []
    restore = on_stop_signals(stop)
    device.start()
    try:
        print(device.path, flush=True)
        print(f"card: MIFARE Classic 1K uid={card.uid.hex()} ({origin})", flush=True)
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        device.stop()
        if card_file is not None:
            card.save(card_file)
    return 0
