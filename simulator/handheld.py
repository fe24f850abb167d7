"""A virtual handheld: the real firmware, a virtual PN532 on a pty, flash in a folder."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from firmware import sale
from firmware.downlinks import LEASE
from firmware.journal import Journal
from firmware.pn532 import PN532
from firmware.sync import SyncLoop
from firmware.terminal import CONFIG, PRICES, Terminal
from protocol.downlink import lease_mac
from simulator.mifare_card import MifareClassic1K
from simulator.network import SimNetwork
from simulator.pn532_device import VirtualPN532
from simulator.power import PowerCut, PowerSwitch
from simulator.serial_uart import SerialUart
from simulator.shop import read_card_directly
from simulator.vhal import SimClock, SimDisplay, SimFlash, SimKeypad

MAX_POLLS = 200
# The offline lease a simulated handheld leaves HQ with: a month offline, generous caps on stored value.
PROVISIONED_LEASE = {"version": 0, "issued": 0, "expires_after_s": 30 * 86400, "max_sv_per_sale": 100_000,
                     "max_sv_per_card_day": 500_000, "max_sv_offline_total": 10_000_000}


def provision(flash: SimFlash, device_id: str, master: bytes, price_list: dict | None, mqtt: dict | None) -> dict:
    """Put a new handheld's configuration and price list on its flash (once); its configuration.

    price_list None: a handheld fresh from the box, waiting for its shop's list from the hub.
    """
    if flash.size(CONFIG) < 0:
        config = {"device_id": device_id, "master_key": master.hex(), **(mqtt or {})}
        flash.provision(CONFIG, json.dumps(config).encode())
        if price_list is not None:
            flash.provision(PRICES, json.dumps(price_list).encode())
        # HQ provisions a handheld with a first lease (version 0: any lease the hub sends replaces it).
        lease = dict(PROVISIONED_LEASE, device=device_id)
        flash.provision(LEASE, json.dumps(dict(lease, mac=lease_mac(master, lease))).encode())
    return json.loads(flash.read(CONFIG) or b"{}")


def coupon_presses(slots: list, coupon_id: int) -> int:
    """COUPON presses on the confirm screen that pick the coupon coupon_id (0: it is not in slots).

    Each press picks the next slot that holds a coupon, as the firmware does (terminal._confirm_key).
    """
    held = [c[0] for c in slots if c is not None]
    return held.index(coupon_id) + 1 if coupon_id in held else 0


class LinkSwitch(Protocol):
    """The shop's network as a handheld sees it: up or down."""

    up: bool


class Handheld:
    """What every virtual handheld offers a scenario, whichever interpreter runs its firmware."""

    device_id: str
    pn532: VirtualPN532
    switch: PowerSwitch
    clock: SimClock
    network: LinkSwitch
    master: bytes  # HQ's master key: the driver reads a card's coupon slots as the handheld does
    # What the last sell() saw: the confirm screen's coupon line after its COUPON presses ("" when none), and
    # the screen the sale ended on before the card was taken away (the receipt: "PAID 12.34 #57").
    coupon_said: str = ""
    ended_on: tuple[str, ...] = ()

    @property
    def state(self) -> str:
        raise NotImplementedError

    @property
    def lines(self) -> list[str]:
        """What the display shows now."""
        raise NotImplementedError

    @property
    def backlog(self) -> int:
        raise NotImplementedError

    def boot(self, cut: tuple[int, str] | None = None) -> None:
        raise NotImplementedError

    def sync_step(self) -> None:
        raise NotImplementedError

    def journal(self) -> Journal:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def tap(self, card: MifareClassic1K) -> None:
        self.pn532.place_card(card)

    def remove_card(self) -> None:
        self.pn532.remove_card()

    def press(self, *keys: str) -> None:
        raise NotImplementedError

    def run(self, max_polls: int = MAX_POLLS) -> None:
        raise NotImplementedError

    def sell(
        self,
        card: MifareClassic1K,
        lines: list[tuple[int, int]],
        redeem_points: bool = False,
        pay_cash: bool = False,
        cancel: bool = False,
        coupon: int = 0,
    ) -> str:
        """Ring up a sale as staff would; the state the handheld ends in (receipt when sold).

        coupon: the id of the card's coupon to use: COUPON is pressed until it is picked (none when the card,
        as read at this tap, does not hold it: a coupon action applied at the tap may have taken its slot).
        """
        self.coupon_said, self.ended_on = "", ()
        self.tap(card)
        self.run()
        if self.state != sale.ITEMS:
            self.remove_card()
            self.run()
            return self.state
        presses = coupon_presses(read_card_directly(card, self.master)["slots"], coupon) if coupon else 0
        for item, qty in lines:
            self.press(*(f"{qty}*{item}" if qty != 1 else str(item)), "ENTER")
        self.press("CANCEL" if cancel else "OK")
        if not cancel:
            if redeem_points:
                self.press("POINTS")
            if pay_cash:
                self.press("CASH")
            if presses:
                self.press(*["COUPON"] * presses)
                self.run()  # the confirm screen's last line says what the picked coupon does, or why it is refused
                self.coupon_said = self.lines[-1] if self.lines else ""
            self.press("OK")
        self.run()
        final = self.state
        self.ended_on = tuple(self.lines)
        self.remove_card()
        self.run()
        return final



class VirtualHandheld(Handheld):
    """One handheld with its card reader, flash, keypad and display; power can be cut."""

    network: SimNetwork

    def __init__(
        self,
        device_id: str,
        root: Path,
        master: bytes,
        price_list: dict | None,
        clock: SimClock | None = None,
        wire_timing: bool = False,
        echo: Callable[[list[str]], None] | None = None,
        mqtt: dict | None = None,
        network_up: bool = True,
    ) -> None:
        self.device_id = device_id
        self.master = master
        self.switch = PowerSwitch()
        self.flash = SimFlash(Path(root) / device_id, self.switch)
        self.network = SimNetwork(up=network_up)
        self.rng = random.Random(device_id)
        self.config = provision(self.flash, device_id, master, price_list, mqtt)
        self.clock = clock or SimClock()
        self.display = SimDisplay(echo)
        self.keypad = SimKeypad()
        self.pn532 = VirtualPN532(wire_timing=wire_timing)
        self.pn532.card_write_guard = lambda block, data: self.switch.next_write(f"card:write:{block}")
        self.pn532.start()
        self.uart = SerialUart(self.pn532.path, check=self.switch.check)
        self.reader = PN532(self.uart, self.clock)
        self.terminal = Terminal(self.reader, self.flash, self.clock, self.display, self.keypad, self.config)
        self.sync: SyncLoop | None = None
        self.boots = 0

    # -- power -----------------------------------------------------------------

    def boot(self, cut: tuple[int, str] | None = None) -> None:
        """Power on: a fresh firmware instance on the same flash, as after a reset.

        cut=(n, mode) arms the power switch at the n-th write from this boot on.
        """
        self.switch.restore()
        self.switch.reset_count()
        if cut is not None:
            self.switch.arm(*cut)
        self.pn532.power_on()
        self.uart.flush_input()
        self.keypad.queue.clear()
        if self.sync is not None:
            self.sync.client.close()  # the power went: the link drops without a goodbye
        self.terminal = Terminal(self.reader, self.flash, self.clock, self.display, self.keypad, self.config)
        self.boots += 1
        self.terminal.boot()
        self.sync = None
        if self.config.get("mqtt_password"):
            terminal = self.terminal
            self.sync = SyncLoop(
                terminal.outbox,
                self.network,
                self.clock,
                self.config,
                terminal.status,
                self.rng.random,
                terminal.event,
                terminal.downlink,
            )

    @property
    def state(self) -> str:
        return self.terminal.state

    @property
    def lines(self) -> list[str]:
        return self.display.lines

    # -- the world around the handheld --------------------------------------------

    def press(self, *keys: str) -> None:
        self.keypad.press(*keys)

    def run(self, max_polls: int = MAX_POLLS) -> None:
        """Poll the firmware until it has nothing more to do (PowerCut escapes)."""
        for _ in range(max_polls):
            busy = self.terminal.poll()
            if self.sync is not None:
                self.sync.step()
            if not busy:
                return

    @property
    def backlog(self) -> int:
        return self.terminal.outbox.backlog()

    def sync_step(self) -> None:
        """One turn of the main loop for the sync side only (the shop is quiet)."""
        if self.sync is not None:
            self.sync.step()

    def journal(self) -> Journal:
        """The journal as it stands on flash (opened read-only, without repairs)."""
        return self.terminal.journal

    def close(self) -> None:
        """Switch the handheld off: its link drops without an MQTT goodbye (the broker sends the will)."""
        if self.sync is not None:
            self.sync.client.close()
        self.uart.close()
        self.pn532.stop()


def committed_sales(journal: Journal) -> list[dict]:
    """The sales in a journal whose outcome is committed, in seq order."""
    sales: dict[int, dict] = {}
    committed: list[int] = []
    for record in journal.records():
        if record["kind"] == "sale":
            sales[record["seq"]] = record
        elif record["kind"] == "outcome" and record["result"] == "committed":
            committed.append(record["ref"])
    return [sales[seq] for seq in committed if seq in sales]  # outcomes settle card actions too


__all__ = ["VirtualHandheld", "committed_sales", "coupon_presses", "PowerCut"]
