"""`hub bench ingest` at a small size: it runs end to end and reports figures that add up (not a timed test)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hub.broker import BrokerError, mosquitto_binary

ROOT = Path(__file__).resolve().parent.parent

try:
    mosquitto_binary()
except BrokerError:
    pytest.skip("mosquitto is not installed", allow_module_level=True)


def test_bench_ingest_small_run_reports_json_figures():
    done = subprocess.run(
        [sys.executable, "-m", "hub", "bench", "ingest", "--devices", "2", "--sales", "200", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("sales_per_s", "ceiling_sales_per_s", "ratio"):
        assert isinstance(figures[key], (int, float)) and figures[key] > 0, key
    assert figures["sales_committed"] == 200  # the hub's database holds every sale, committed, once
    assert figures["ceiling_sales_committed"] == 200
    assert figures["ceiling_rows_match"] is True  # the ceiling wrote the same rows
    assert figures["cards_match"] is True  # and the cards' balances, points and counters add up
    assert figures["devices"] == 2 and figures["sales"] == 200
    assert figures["hub_anomalies"] == 0 and figures["hub_errors"] == 0
    assert "sales committed" in done.stderr  # progress goes to stderr


def test_bench_ingest_human_output_ends_with_the_ratio():
    done = subprocess.run(
        [sys.executable, "-m", "hub", "bench", "ingest", "--devices", "1", "--sales", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("hub:") and lines[1].startswith("ceiling:")
    assert lines[-1].startswith("ratio hub / ceiling:")
