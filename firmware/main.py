"""Boot the handheld on the board, then run its main loop.

MicroPython runs /main.py at boot; in the bundle that file only does
`from firmware.main import run; app = run()`, so this module (compiled to .mpy)
is the boot code. Order: the data folder, config.json (not provisioned: say so
and stop at the REPL), the board HAL, the PN532, the terminal (which recovers
the journal), the sync loop, and last the watchdog, so a slow journal recovery
at boot cannot trip it. The main loop then polls the terminal, keeps the WiFi
and the clock up, steps the sync and feeds the watchdog, sleeping briefly when
there was nothing to do.

Ctrl-C (mpremote does that to get the REPL) stops the loop and keeps the
watchdog fed from a timer, so the board stays at the REPL (a soft reset stops
that timer: the watchdog then resets the board). A file named "maintenance" in
the data folder keeps the handheld from starting at all, watchdog included. Any other exception is a bug: it
is printed, journaled as an event when the journal still works, and the board
resets after a pause (the journal is crash-safe, and a sale in flight is settled
when its card is tapped again).

Only firmware.board knows it runs on a board; this module uses its objects.
"""

import gc
import sys

from firmware import board
from firmware.pn532 import PN532
from firmware.sync import SyncLoop
from firmware.terminal import Terminal, load_config
from firmware.version import FIRMWARE_VERSION

DATA = "/data"
"""The folder of config.json, prices.json and the journal on the board's littlefs."""

IDLE_MS = 20
"""Sleep after a loop that had nothing to do (a key or a card still gets handled within ~50 ms)."""

GC_EVERY_MS = 5000
NTP_RETRY_MS = 10 * 60 * 1000
NTP_RESYNC_MS = 24 * 3600 * 1000
WATCHDOG_MS = 60000
"""Longer than the longest blocking step: an MQTT connect (TCP, CONNACK, SUBACK, up to 5 s each) and a name lookup."""

RESTART_PAUSE_MS = 5000

MAINTENANCE = "maintenance"
"""While a file of this name is in the data folder, the handheld does not start (for updates over mpremote)."""


def _print_exception(exc) -> None:
    show = getattr(sys, "print_exception", None)
    if show is not None:
        show(exc)
    else:
        print("%s: %s" % (type(exc).__name__, exc))


def check_config(config: dict) -> None:
    """Refuse a configuration that cannot work (the example file copied unchanged, for one)."""
    try:
        key = bytes.fromhex(config["master_key"])
    except (ValueError, TypeError):
        raise ValueError("config.json: master_key must be hex")
    if len(key) < 16:
        raise ValueError("config.json: master_key is too short")
    if not isinstance(config["device_id"], str) or not config["device_id"]:
        raise ValueError("config.json: device_id must be text")


class Handheld:
    """The board's objects and one main-loop step."""

    def __init__(self, flash, config: dict):
        pins = board.pins(config)
        self.config = config
        self.flash = flash
        self.clock = board.BoardClock()
        self.display = board.BoardDisplay(pins["i2c"], pins["i2c_scl"], pins["i2c_sda"], pins["oled_addr"])
        self.display.show(["Member card", "Firmware %s" % FIRMWARE_VERSION, "Starting...", config["device_id"]])
        self.keypad = board.BoardKeypad(
            pins["key_rows"], pins["key_cols"], config.get("keymap") or board.KEYMAP, timer_id=pins.get("key_timer")
        )
        self.uart = board.BoardUart(pins["pn532_uart"], pins["pn532_tx"], pins["pn532_rx"])
        self.reader = PN532(self.uart, self.clock)
        self.network = board.BoardNetwork(
            config.get("wifi_ssid", ""), config.get("wifi_password", ""), self.clock, hostname=config["device_id"]
        )
        self.terminal = Terminal(self.reader, flash, self.clock, self.display, self.keypad, config)
        self.terminal.boot()
        self.sync = None
        if config.get("mqtt_password"):
            terminal = self.terminal
            self.sync = SyncLoop(
                terminal.outbox, self.network, self.clock, config, terminal.status, board.random, terminal.event,
                terminal.downlink,
            )
        self.ntp_host = config.get("ntp_host", "pool.ntp.org")
        now = self.clock.ticks_ms()
        self.ntp_at = now
        self.gc_at = now + GC_EVERY_MS
        self.watchdog = board.Watchdog(config.get("watchdog_ms", WATCHDOG_MS))
        self.wdt_timer = pins.get("wdt_timer", 1)

    def step(self) -> bool:
        """One round of the main loop; whether there was something to do."""
        busy = self.terminal.poll()
        self.network.step()
        self._keep_time()
        if self.sync is not None:
            self.sync.step()
        self.watchdog.feed()
        return busy

    def idle(self) -> None:
        now = self.clock.ticks_ms()
        if now - self.gc_at >= 0:
            self.gc_at = now + GC_EVERY_MS
            gc.collect()
        self.clock.sleep_ms(IDLE_MS)

    def _keep_time(self) -> None:
        """Set the RTC from NTP once the WiFi is up, then daily; journal a large correction."""
        now = self.clock.ticks_ms()
        if not self.ntp_host or now - self.ntp_at < 0 or not self.network.is_connected():
            return
        before = self.clock.time()
        if self.clock.set_time_ntp(self.ntp_host):
            self.ntp_at = now + NTP_RESYNC_MS
            after = self.clock.time()
            if abs(after - before) > 60:
                self.terminal.event("clock_set", "clock set by NTP from %d to %d" % (before, after))
        else:
            self.ntp_at = now + NTP_RETRY_MS

    def stop(self) -> None:
        """Leave the loop for the REPL: keys no longer scanned, the watchdog fed by a timer."""
        self.keypad.stop()
        self.watchdog.hold(self.wdt_timer)

    def crash(self, exc) -> None:
        """An unexpected exception: report it, journal it if possible, restart the board."""
        _print_exception(exc)
        message = "%s: %s" % (type(exc).__name__, exc)
        try:
            self.display.show(["Fault: restarting", message[:21], message[21:42], ""])
            self.terminal.event("crash", message)
        except Exception as again:  # the journal or the display may be what failed
            print("while reporting the fault:", again)
        self.clock.sleep_ms(RESTART_PAUSE_MS)
        board.reset()


def start(data: str = DATA):
    """Everything up to the main loop; None when the handheld cannot or must not start (said on the display)."""
    flash = board.BoardFlash(data)
    if flash.size(MAINTENANCE) >= 0:
        print("maintenance: %s/%s exists, so the main loop and the watchdog are not started" % (data, MAINTENANCE))
        board.BoardDisplay().show(["Maintenance", "main loop stopped", "", ""])
        return None
    try:
        config = load_config(flash)
        check_config(config)
    except (ValueError, KeyError) as exc:
        print("not provisioned: %s" % exc)
        print("copy a config.json (see config.example.json) and prices.json to %s/, then reset" % data)
        board.BoardDisplay().show(["Not provisioned", str(exc)[:21], "config.json", "-> " + data])
        return None
    try:
        return Handheld(flash, config)
    except Exception as exc:
        _print_exception(exc)
        message = "%s: %s" % (type(exc).__name__, exc)
        board.BoardDisplay().show(["Cannot start", message[:21], message[21:42], "see the REPL"])
        return None


def run(data: str = DATA, loops: int = -1):
    """Start, then loop (forever when loops < 0); the Handheld, for the REPL after Ctrl-C."""
    app = start(data)
    if app is None:
        return None
    try:
        while loops != 0:
            if loops > 0:
                loops -= 1
            if not app.step():
                app.idle()
    except KeyboardInterrupt:
        while True:
            try:
                app.stop()
                break
            except KeyboardInterrupt:  # a second Ctrl-C right behind the first
                pass
        print("main loop stopped; the watchdog is fed meanwhile. app.step() runs one round, machine.reset() restarts")
    except Exception as exc:
        app.crash(exc)
    return app
