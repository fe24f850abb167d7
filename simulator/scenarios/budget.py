"""shift-budget: a shift of sales with sync, on MicroPython with a 96 KiB heap, measured.

Figures: heap_peak_bytes (peak gc.mem_alloc() during the shift, target 48 KiB),
flash_bytes_per_sale (every byte the firmware wrote to flash, journal, acks and
compaction included, per sale; target 256) and bundle_bytes (the deployable
bundle that `make firmware` builds: .mpy files, main.py, the config example;
romfs_bytes is its ROMFS image). The firmware runs in place from a ROMFS image
mapped outside the heap, as on a board with a ROM partition (simulator/mapped_flash.py).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from firmware import sale
from simulator.micro import MPY, ROOT, MicroHandheld
from simulator.scenarios import Outcome, Say
from simulator.scenarios.hubcheck import sync_all
from simulator.shop import PRICE_LIST, master_key, member_card
from simulator.stack import Stack

SALES = 40
HEAP = "96k"  # the budget; SIM_MICROPYTHON_HEAP overrides it
FALLBACK_HEAP = "256k"  # where the figures are measured when the budget heap is too small
HEAP_TARGET = 48 * 1024
FLASH_TARGET = 256


def build_bundle(out: Path, *extra: str) -> tuple[Path, dict]:
    """Build the firmware bundle into out (extra: --with NAME=FILE.py); its folder and manifest."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_firmware.py"), "--out", str(out), *extra],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the firmware bundle failed:\n{done.stdout}\n{done.stderr}")
    [bundle] = sorted(out.glob("firmware-*"))
    return bundle, json.loads((bundle / "manifest.json").read_text())


def build_sim_image(out: Path) -> Path:
    """The ROMFS image a virtual handheld boots from: the board's modules plus the simulator's HAL."""
    bundle, _ = build_bundle(
        out, "--with", f"unixhal={MPY / 'unixhal.py'}", "--with", f"handheld_main={MPY / 'handheld_main.py'}"
    )
    return bundle / "firmware.romfs"


def _shift(tmp: Path, image: Path, heap: str, stack: Stack, device_id: str, sales: int, seed: int, say: Say) -> dict:
    """One metered shift at this heap size; its figures, or the error that stopped it."""
    rng = random.Random(seed)
    master = master_key(rng)
    cards = [member_card(rng, master, n + 1, 20000, 100, n % 3) for n in range(6)]
    mqtt = stack.register(device_id, "shop-1")
    handheld = MicroHandheld(device_id, tmp, master, PRICE_LIST, mqtt=mqtt, heap=heap, romfs=image)
    try:
        handheld.boot(meter=True)
        code = int(handheld.command("state")["heap_peak"])
        sold = 0
        for n in range(sales):
            lines = [(rng.choice([101, 102, 103, 201, 202, 301]), rng.randint(1, 3)) for _ in range(rng.randint(1, 4))]
            if handheld.sell(rng.choice(cards), lines, redeem_points=n % 5 == 0) == sale.RECEIPT:
                sold += 1
            handheld.clock.advance(60)
            for _ in range(5):
                handheld.sync_step()
        took = sync_all([handheld], 60, say)
        report = handheld.command("state")
    except RuntimeError as exc:
        return {"error": str(exc)}
    finally:
        handheld.close()
    return {
        "sold": sold,
        "synced": took >= 0,
        "heap_peak": int(report["heap_peak"]),
        "boot_heap": code,
        "flash_per_sale": round(report["flash_bytes"] / max(1, sold), 1),
    }


def run(devices: int = 1, seed: int = 1, say: Say = print, runtime: str = "micropython", sales: int = SALES) -> Outcome:
    out = Outcome("shift-budget")
    if runtime != "micropython":
        out.check("runs_on_micropython", False, "the budgets are MicroPython's: run with --runtime micropython")
        return out
    heap = os.environ.get("SIM_MICROPYTHON_HEAP", HEAP)
    # The shift's master key (its first draw from the seed), so the hub's lease verifies on the handheld.
    master = master_key(random.Random(seed))
    with tempfile.TemporaryDirectory(prefix="sim-budget-") as tmp, Stack(Path(tmp) / "stack", master) as stack:
        bundle, manifest = build_bundle(Path(tmp) / "build")
        bundle_bytes = manifest["files_size"]
        romfs_bytes = (bundle / "firmware.romfs").stat().st_size
        image = build_sim_image(Path(tmp) / "sim")
        say(f"bundle {bundle.name}: {bundle_bytes} bytes, ROMFS image {romfs_bytes} bytes;"
            f" a shift of {sales} sales with sync at heap {heap}")
        first = _shift(Path(tmp) / "a", image, heap, stack, "hh-01", sales, seed, say)
        out.check(
            f"shift_completes_in_{heap}_heap",
            "error" not in first and first["sold"] == sales,
            first.get("error", f"{first.get('sold')} of {sales} sales"),
        )
        measured, at = first, heap
        if "error" in first:
            say(f"the shift does not fit in {heap}: {first['error'][-160:]}")
            say(f"measuring the figures at {FALLBACK_HEAP} instead")
            measured, at = _shift(Path(tmp) / "b", image, FALLBACK_HEAP, stack, "hh-02", sales, seed, say), FALLBACK_HEAP
    if "error" in measured:
        out.check("measured", False, measured["error"])
        return out
    out.check("synced", measured["synced"], "records left unacknowledged")
    out.check("heap_within_target", measured["heap_peak"] <= HEAP_TARGET, f"{measured['heap_peak']} bytes")
    out.check("flash_within_target", measured["flash_per_sale"] <= FLASH_TARGET, f"{measured['flash_per_sale']} bytes per sale")
    out.figures.update(
        {
            "heap_peak_bytes": measured["heap_peak"],
            "heap_after_boot_bytes": measured["boot_heap"],
            "flash_bytes_per_sale": measured["flash_per_sale"],
            "bundle_bytes": bundle_bytes,
            "romfs_bytes": romfs_bytes,
            "heap_size_bytes": _bytes(at),
            "sales": measured["sold"],
        }
    )
    say(
        f"at heap {at}: heap peak {measured['heap_peak']} B ({measured['boot_heap']} B after boot),"
        f" flash {measured['flash_per_sale']} B per sale, bundle {bundle_bytes} B"
    )
    return out


def _bytes(size: str) -> int:
    return int(size[:-1]) * 1024 if size[-1] in "kK" else int(size[:-1]) * 1024 * 1024 if size[-1] in "mM" else int(size)
