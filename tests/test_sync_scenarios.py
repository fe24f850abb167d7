"""The sync scenarios end to end: real Mosquitto, a real `hub serve` process, virtual handhelds."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def sim_run(*args: str, timeout: int = 300) -> dict:
    done = subprocess.run([sys.executable, "-m", "simulator", "run", *args, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.stdout, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == (0 if result["ok"] else 1)
    return result


@pytest.mark.parametrize("scenario", ["sync", "hub-restart", "broker-restart", "duplicates"])
def test_nothing_lost_nothing_doubled(scenario):
    result = sim_run(scenario, "--devices", "2")
    assert result["ok"], result["problems"]
    figures = result["figures"]
    assert figures["lost"] == 0 and figures["doubled"] == 0
    assert figures["sales_in_ledger"] == figures["sales_made"] > 0


def test_disturbances_really_happened():
    assert sim_run("hub-restart", "--devices", "2")["figures"]["hub_kills"] >= 2
    duplicates = sim_run("duplicates", "--devices", "2")["figures"]
    assert duplicates["duplicates_dropped"] > 0


def test_backlog_catches_up():
    result = sim_run("backlog")
    assert result["ok"], result["problems"]
    assert result["figures"]["sales"] == 10_000 and result["figures"]["catchup_s"] > 0
