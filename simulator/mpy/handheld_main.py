"""A virtual handheld's firmware on the MicroPython unix port, driven by the simulator.

Run as: micropython handheld_main.py FLASH_DIR PTY_PATH (MICROPYPATH has the repo
root and this folder). Reads one JSON command per line on stdin, answers one JSON
line on stdout; see simulator/micro.py for the host side.
"""

import gc
import json
import sys

from unixhal import FileFlash, GatedNetwork, Host, HostClock, Panel, PtyUart, meter

from firmware.pn532 import PN532
from firmware.sync import SyncLoop
from firmware.terminal import Terminal, load_config


class Device:
    def __init__(self, flash_dir: str, pty: str):
        self.host = Host()
        self.flash = FileFlash(flash_dir, self.host)
        self.clock = HostClock()
        self.display = self.keypad = Panel()
        self.network = GatedNetwork()
        self.reader = PN532(PtyUart(pty), self.clock)
        self.terminal = None
        self.sync = None
        self.seed = 1

    def random(self) -> float:
        # A small LCG: jitter only needs to differ between devices, not be secure.
        self.seed = (self.seed * 1103515245 + 12345) & 0x7FFFFFFF
        return self.seed / 0x80000000

    def boot(self, cmd: dict) -> None:
        config = load_config(self.flash)
        self.seed = sum(config["device_id"].encode()) or 1
        self.terminal = Terminal(self.reader, self.flash, self.clock, self.display, self.keypad, config)
        self.terminal.boot()
        if config.get("mqtt_password"):
            terminal = self.terminal
            self.sync = SyncLoop(
                terminal.outbox, self.network, self.clock, config, terminal.status, self.random, terminal.event,
                terminal.downlink,
            )

    def measure(self) -> None:
        meter.sample()

    def run(self, max_polls: int) -> None:
        for _ in range(max_polls):
            busy = self.terminal.poll()
            self.measure()
            if self.sync is not None:
                self.sync.step()
                self.measure()
            if not busy:
                return

    def handle(self, cmd: dict) -> dict:
        name = cmd["cmd"]
        if "now" in cmd:
            self.clock.now = cmd["now"]
        if "count_writes" in cmd:
            self.host.count_writes = cmd["count_writes"]
        if name == "boot":
            self.boot(cmd)
        elif name == "press":
            self.keypad.keys.extend(cmd["keys"])
        elif name == "run":
            self.run(cmd.get("max_polls", 200))
        elif name == "sync":
            if self.sync is not None:
                self.sync.step()
                self.measure()
        elif name == "net":
            self.network.set_up(cmd["up"])
        elif name == "meter":
            meter.start()
        elif name != "state":
            raise ValueError("unknown command %r" % name)
        return self.report()

    def report(self) -> dict:
        t = self.terminal
        out = {"ok": True, "heap_peak": meter.peak, "heap_free": gc.mem_free(), "flash_bytes": self.flash.bytes_written}
        if t is not None:
            out["state"] = t.state
            out["lines"] = self.display.lines
            out["backlog"] = t.outbox.backlog()
            out["flash_written"] = t.journal.bytes_written
            out["actions"] = t.downlinks.actions_version
        if self.sync is not None:
            out["connected"] = self.sync.connected
            out["messages"] = self.sync.sent_messages
        return out


def main() -> None:
    device = Device(sys.argv[1], sys.argv[2])
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            answer = device.handle(json.loads(line))
        except Exception as exc:  # an error is an answer, the device keeps running
            answer = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
        device.host.send(json.dumps(answer))


main()
