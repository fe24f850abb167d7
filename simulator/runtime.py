"""Which interpreter runs a virtual handheld's firmware: CPython in-process, or a MicroPython process."""

from __future__ import annotations

from pathlib import Path

from simulator.handheld import Handheld, VirtualHandheld
from simulator.vhal import SimClock

RUNTIMES = ("cpython", "micropython")


def make_handheld(
    runtime: str,
    device_id: str,
    root: Path,
    master: bytes,
    price_list: dict | None,
    clock: SimClock | None = None,
    mqtt: dict | None = None,
    network_up: bool = True,
    count_writes: bool = False,
) -> Handheld:
    """A virtual handheld; count_writes makes a MicroPython one report every flash write to the power switch."""
    if runtime == "cpython":
        return VirtualHandheld(device_id, root, master, price_list, clock, mqtt=mqtt, network_up=network_up)
    if runtime == "micropython":
        from simulator.micro import MicroHandheld

        handheld = MicroHandheld(device_id, root, master, price_list, clock, mqtt=mqtt, network_up=network_up)
        handheld.count_writes = count_writes
        return handheld
    raise ValueError(f"unknown runtime {runtime!r}; runtimes: {', '.join(RUNTIMES)}")
