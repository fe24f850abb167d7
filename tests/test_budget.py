"""The MicroPython budgets: flash per sale, bundle size, heap (sim run shift-budget)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shift_budget() -> dict:
    done = subprocess.run([sys.executable, "-m", "simulator", "run", "shift-budget", "--runtime", "micropython", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def budget():
    return shift_budget()


def test_a_shift_with_sync_runs_on_micropython_and_is_measured(budget):
    figures = budget["figures"]
    assert budget["checks"]["synced"] and figures["sales"] == 40
    assert figures["flash_bytes_per_sale"] <= 256 and budget["checks"]["flash_within_target"]
    assert 0 < figures["heap_after_boot_bytes"] <= figures["heap_peak_bytes"] <= figures["heap_size_bytes"]
    assert figures["bundle_bytes"] > 10_000 and figures["romfs_bytes"] > 10_000


def test_the_shift_completes_in_a_96k_heap_running_in_place_from_romfs(budget):
    # The 96 KiB heap holds the handheld's objects only: its bytecode runs from the mapped image.
    assert budget["checks"]["shift_completes_in_96k_heap"], budget
    assert budget["figures"]["heap_size_bytes"] == 96 * 1024
    assert budget["figures"]["heap_peak_bytes"] <= 96 * 1024


def test_a_shift_where_every_card_carries_coupons_is_measured(budget):
    # HQ issued every card two coupons (card actions over the real downlink); a quarter of the sales use one.
    figures = budget["figures"]
    assert budget["checks"]["synced"] and figures["sales_coupons"] == 40
    assert figures["coupon_sales"] == 10 and budget["checks"]["coupons_used"], figures
    assert figures["heap_peak_bytes"] < figures["heap_peak_coupons_bytes"] <= figures["heap_size_coupons_bytes"]


def test_the_coupon_shift_completes_in_a_96k_heap(budget):
    assert budget["checks"]["shift_with_coupons_completes_in_96k_heap"], budget["problems"]
    assert budget["figures"]["heap_peak_coupons_bytes"] <= 90 * 1024  # room to spare: 6 KiB
