"""The journal's power cuts on littlefs v2, the board's file system, under MicroPython.

tests/mpy/lfs_powercut.py runs under the MicroPython unix port (os.VfsLfs2 on a RAM
block device that is cut in the middle of a program or an erase, at every one of
them); this test runs it and fails with its output.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from simulator.micro import micropython_binary

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "mpy" / "lfs_powercut.py"


def micropython() -> str:
    """The MicroPython unix port the simulator uses."""
    try:
        return micropython_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc))


def test_journal_survives_every_power_cut_on_littlefs(record_property):
    env = dict(os.environ, MICROPYPATH=str(ROOT))
    proc = subprocess.run(
        [micropython(), "-X", "heapsize=8m", str(SCRIPT)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, value in figures.items():
        record_property(name, value)
    assert figures["failures"] == 0, output
    # Every program and every erase of the shift was cut, with each torn length.
    assert figures["program_cut_points"] == figures["program_ops"] * figures["torn_variants"], figures
    assert figures["erase_cut_points"] == figures["erase_ops"] * figures["torn_variants"], figures
    assert figures["program_ops"] >= 100 and figures["compactions"] >= 2, figures
    print("littlefs power cuts:", json.dumps(figures, sort_keys=True))
