"""`sim desk-reader`: a virtual HQ desk reader (PC/SC, ACR122-class) with a MIFARE Classic 1K card.

Starts its own pcscd with vsmartcard's vpcd reader (simulator/pcsc.py: a private socket,
free ports, and a private mount namespace when the machine allows one), puts the card
in the reader (simulator/desk_card.py) and serves until SIGINT/SIGTERM. The PC/SC
reader name is the first line of stdout; the second is the environment setting that
points a PC/SC client at this pcscd (hub, pcsc_scan, opensc-tool, pyscard):

    Virtual PCD 00 00
    PCSCLITE_CSOCK_NAME=/tmp/membercard-pcsc-socket-1234/pcscd.comm
    card: MIFARE Classic 1K uid=0badcafe (blank)
"""

from __future__ import annotations

import sys
import time

from simulator.desk_card import DeskCard
from simulator.mifare_card import MifareClassic1K
from simulator.pcsc import PcscUnavailable, PrivatePcscd
from simulator.reader_cmd import _make_card
from simulator.signals import on_stop_signals


def run_desk_reader(card_file: str | None, blank: bool) -> int:
    """Serve until SIGINT/SIGTERM; the PC/SC reader name is the first line printed.

    card_file: a card saved as JSON, loaded if it exists, created blank otherwise, and
    saved back on exit with the writes it received. blank (also the default without
    card_file): a new blank card with a random UID; with card_file it replaces the
    saved card. Exit status 2 when the card file is unreadable or pcscd/vpcd are
    missing (the message says what to install).
    """
    try:
        card, origin = _make_card(card_file, blank)
    except (ValueError, OSError, KeyError) as e:
        print(f"sim desk-reader: {e}", file=sys.stderr)
        return 2
    pcscd = PrivatePcscd()
    desk: DeskCard | None = None
    stop: list[int] = []
    restore = on_stop_signals(stop)
    try:
        try:
            pcscd.start()
            desk = DeskCard(pcscd.vpcd_port).start()
            desk.insert(card)
        except (PcscUnavailable, TimeoutError, OSError) as e:
            print(f"sim desk-reader: {e}", file=sys.stderr)
            return 2
        print(pcscd.reader_name, flush=True)
        print(f"PCSCLITE_CSOCK_NAME={pcscd.socket_path}", flush=True)
        print(f"card: MIFARE Classic 1K uid={card.uid.hex()} ({origin}); pcscd isolation: {pcscd.isolation}", flush=True)
        while not stop:
            time.sleep(0.2)
            if not stop and not pcscd.running:
                print("sim desk-reader: pcscd exited; its log ends with:\n" + pcscd.log_tail(), file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        if desk is not None:
            desk.stop()
        pcscd.stop()
        _save(card, card_file)
    return 0


def _save(card: MifareClassic1K, card_file: str | None) -> None:
    if card_file is None:
        return
    try:
        card.save(card_file)
    except OSError as e:
        print(f"sim desk-reader: could not save the card to {card_file}: {e}", file=sys.stderr)


if __name__ == "__main__":  # python -m simulator.desk_reader_cmd [--blank | --card FILE]
    args = sys.argv[1:]
    file = args[args.index("--card") + 1] if "--card" in args else None
    sys.exit(run_desk_reader(file, "--blank" in args))
