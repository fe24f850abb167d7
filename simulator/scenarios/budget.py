"""shift-budget: a shift of sales with sync, on MicroPython with a 96 KiB heap, measured.

Two shifts, each on its own Mosquitto and hub: a plain one, and one in which HQ has issued
every card two coupons (delivered as card actions over the downlink, put on the card at its
first tap) and about a quarter of the sales use one (docs/coupons.md, "Heap on the handheld").
Figures: heap_peak_bytes (peak gc.mem_alloc() during the shift, target 48 KiB),
heap_peak_coupons_bytes (the same for the coupon shift; its budget is the heap itself),
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

from sqlmodel import Session, col, select

from firmware import sale
from hub import cards as hq_cards
from hub import coupons
from hub.downlinks import latest_versions
from hub.issuance import issue
from hub.members import add_member
from hub.models import Coupon
from simulator.direct_reader import DirectReader
from simulator.micro import MPY, ROOT, MicroHandheld
from simulator.mifare_card import MifareClassic1K
from simulator.scenarios import Outcome, Say
from simulator.scenarios.hubcheck import sync_all
from simulator.shop import PRICE_LIST, blank_card, master_key, member_card
from simulator.stack import Stack
from simulator.vhal import SimClock

SALES = 40
HEAP = "96k"  # the issue's budget; SIM_MICROPYTHON_HEAP overrides it
FALLBACK_HEAP = "256k"  # where the figures are measured when the budget heap is too small
HEAP_TARGET = 48 * 1024
FLASH_TARGET = 256
COUPON_EVERY = 4  # a quarter of the coupon shift's sales use a coupon


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


def _hq_issues_cards_with_coupons(
    stack: Stack, rng: random.Random, master: bytes, now: int
) -> tuple[list[MifareClassic1K], dict[int, list[int]]]:
    """HQ issues six members their cards at the desk (hub.issuance) and each card two coupons (card actions).

    The cards, and {id(card): its coupon ids in the order they fill its slots}.
    """
    desk = DirectReader()
    chips = []
    held: dict[int, list[int]] = {}
    with Session(stack.engine) as db:
        hq_cards.make_batch(db, "hq", now, "9000", 1, 6)
        fixed = coupons.add_template(db, "hq", now, "3.00 off", "fixed", 300)
        percent = coupons.add_template(db, "hq", now, "10 % off", "percent", 1000)
        db.commit()
        templates = [fixed.id or 0, percent.id or 0]
    for n in range(6):
        with Session(stack.engine) as db:
            member = add_member(db, "hq", now, f"Member {n + 1}")
            db.commit()
            member_id = member.id or 0
        chip = blank_card(rng)
        desk.insert(chip)
        issue(stack.engine, desk, master, now, "hq", member_id=member_id, tier=n % 3, balance=20000, points=100,
              password="budget-shift-1")
        desk.remove()
        with Session(stack.engine) as db:
            held[id(chip)] = [coupons.issue(db, "hq", now, t, member_id).id or 0 for t in templates]
            db.commit()
        chips.append(chip)
    return chips, held


def _shift(tmp: Path, image: Path, heap: str, device_id: str, sales: int, seed: int, say: Say,
           with_coupons: bool = False) -> dict:
    """One metered shift at this heap size on its own Mosquitto and hub; its figures, or the error that stopped it."""
    rng = random.Random(seed)
    master = master_key(rng)
    clock = SimClock()
    with Stack(tmp / "stack", master) as stack:
        held: dict[int, list[int]] = {}
        if with_coupons:
            cards, held = _hq_issues_cards_with_coupons(stack, rng, master, clock.time())
        else:
            cards = [member_card(rng, master, n + 1, 20000, 100, n % 3) for n in range(6)]
        mqtt = stack.register(device_id, "shop-1")
        handheld = MicroHandheld(device_id, tmp, master, PRICE_LIST, clock=clock, mqtt=mqtt, heap=heap, romfs=image)
        used: dict[int, int] = {}
        try:
            handheld.boot(meter=True)
            code = int(handheld.command("state")["heap_peak"])
            if with_coupons:
                _take_card_actions(handheld, stack)
            sold = 0
            for n in range(sales):
                lines = [(rng.choice([101, 102, 103, 201, 202, 301]), rng.randint(1, 3)) for _ in range(rng.randint(1, 4))]
                card = rng.choice(cards)
                coupon = 0
                if with_coupons and n % COUPON_EVERY == 1:
                    # The card's next coupon it has not used yet (none once it used both: the sale goes on without).
                    used[id(card)] = used.get(id(card), 0) + 1
                    coupon = (held[id(card)] + [0, 0])[used[id(card)] - 1]
                if handheld.sell(card, lines, redeem_points=n % 5 == 0, coupon=coupon) == sale.RECEIPT:
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
        with Session(stack.engine) as db:
            redeemed = len(db.exec(select(Coupon.id).where(col(Coupon.redeemed) > 0)).all())
    return {
        "sold": sold,
        "synced": took >= 0,
        "heap_peak": int(report["heap_peak"]),
        "boot_heap": code,
        "flash_per_sale": round(report["flash_bytes"] / max(1, sold), 1),
        "coupon_sales": sum(used.values()),
        "coupons_redeemed": redeemed,
    }


def _take_card_actions(handheld: MicroHandheld, stack: Stack) -> None:
    """Sync until the handheld holds every card action HQ made (the coupons), as a handheld does before opening."""
    with Session(stack.engine) as db:
        newest = latest_versions(db).actions
    for _ in range(2000):
        handheld.sync_step()
        if int(handheld.last.get("actions", 0)) >= newest:
            return
    raise RuntimeError(f"{handheld.device_id} did not get HQ's card actions (up to {newest})")


def run(devices: int = 1, seed: int = 1, say: Say = print, runtime: str = "micropython", sales: int = SALES) -> Outcome:
    out = Outcome("shift-budget")
    if runtime != "micropython":
        out.check("runs_on_micropython", False, "the budgets are MicroPython's: run with --runtime micropython")
        return out
    heap = os.environ.get("SIM_MICROPYTHON_HEAP", HEAP)
    with tempfile.TemporaryDirectory(prefix="sim-budget-") as tmp:
        bundle, manifest = build_bundle(Path(tmp) / "build")
        bundle_bytes = manifest["files_size"]
        romfs_bytes = (bundle / "firmware.romfs").stat().st_size
        image = build_sim_image(Path(tmp) / "sim")
        say(f"bundle {bundle.name}: {bundle_bytes} bytes, ROMFS image {romfs_bytes} bytes;"
            f" a shift of {sales} sales with sync at heap {heap}")
        measured, at = _metered(Path(tmp) / "plain", image, heap, "hh-01", sales, seed, say, out, "shift")
        say(f"a shift of {sales} sales in which every card carries two coupons and every {COUPON_EVERY}th sale uses one")
        coupons, coupons_at = _metered(Path(tmp) / "coupons", image, heap, "hh-c1", sales, seed, say, out,
                                       "shift_with_coupons", with_coupons=True)
    if "error" in measured or "error" in coupons:
        return out
    out.check("synced", measured["synced"] and coupons["synced"], "records left unacknowledged")
    out.check("coupons_used", coupons["coupons_redeemed"] >= coupons["coupon_sales"] * 3 // 4,
              f"{coupons['coupons_redeemed']} coupons redeemed in {coupons['coupon_sales']} coupon sales")
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
            "heap_peak_coupons_bytes": coupons["heap_peak"],
            "heap_size_coupons_bytes": _bytes(coupons_at),
            "sales_coupons": coupons["sold"],
            "coupon_sales": coupons["coupon_sales"],
            "coupons_redeemed": coupons["coupons_redeemed"],
        }
    )
    say(
        f"at heap {at}: heap peak {measured['heap_peak']} B ({measured['boot_heap']} B after boot),"
        f" flash {measured['flash_per_sale']} B per sale, bundle {bundle_bytes} B"
    )
    say(
        f"with coupons, at heap {coupons_at}: heap peak {coupons['heap_peak']} B,"
        f" {coupons['coupons_redeemed']} coupons redeemed in {coupons['coupon_sales']} coupon sales"
    )
    return out


def _metered(tmp: Path, image: Path, heap: str, device_id: str, sales: int, seed: int, say: Say, out: Outcome,
             name: str, with_coupons: bool = False) -> tuple[dict, str]:
    """The shift at the budget heap (check NAME_completes_in_HEAP_heap), measured again at the fallback if it does not fit."""
    first = _shift(tmp / "a", image, heap, device_id, sales, seed, say, with_coupons)
    out.check(
        f"{name}_completes_in_{heap}_heap",
        "error" not in first and first["sold"] == sales,
        first.get("error", f"{first.get('sold')} of {sales} sales"),
    )
    if "error" not in first:
        return first, heap
    say(f"the {name.replace('_', ' ')} does not fit in {heap}: {first['error'][-160:]}")
    say(f"measuring the figures at {FALLBACK_HEAP} instead")
    again = _shift(tmp / "b", image, FALLBACK_HEAP, device_id, sales, seed, say, with_coupons)
    if "error" in again:
        out.check("measured", False, again["error"])
    return again, FALLBACK_HEAP


def _bytes(size: str) -> int:
    return int(size[:-1]) * 1024 if size[-1] in "kK" else int(size[:-1]) * 1024 * 1024 if size[-1] in "mM" else int(size)
