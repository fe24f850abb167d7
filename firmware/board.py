"""The board's side of firmware/hal.py: an ESP32 handheld running MicroPython.

This module and the simulator's HALs are the only code that knows where it runs.
Everything here talks to MicroPython's machine, network and littlefs; nothing
here decides anything about sales, cards or sync.

* BoardUart: machine.UART to the PN532 (HSU, 115200 8N1, tx/rx pins from config).
* BoardClock: time() is Unix time (MicroPython on ESP32 counts from 2000-01-01:
  converted here); ticks_ms() never wraps (see its docstring); set_time_ntp().
* BoardFlash: files in a folder of the littlefs root file system (default /data).
* BoardDisplay: an SSD1306 128x64 OLED on I2C when the ssd1306 module is there,
  else the screens are printed to the REPL.
* BoardKeypad: a key matrix on machine.Pin with debounce.
* BoardNetwork: network.WLAN station; TCP connections through firmware.netio.
* Watchdog: machine.WDT, fed from the main loop.

Pins, UART and I2C numbers come from config.json's "pins" (see PINS for the
defaults: an ESP32-WROOM DevKit, UART2 on GPIO16/17, I2C on GPIO21/22).
MicroPython only: annotations are never evaluated, no typing at run time.
"""

import errno
import os
import time

import machine

from firmware import netio

# MicroPython's time functions (mypy checks this file against CPython's time, which lacks them).
_ticks_ms = time.ticks_ms  # type: ignore[attr-defined]
_ticks_diff = time.ticks_diff  # type: ignore[attr-defined]
_sleep_ms = time.sleep_ms  # type: ignore[attr-defined]
_sleep_us = time.sleep_us  # type: ignore[attr-defined]

PINS = {
    "pn532_uart": 2,  # UART1's default pins are the SPI flash's on a WROOM: always give tx/rx
    "pn532_tx": 17,
    "pn532_rx": 16,
    "i2c": 0,
    "i2c_scl": 22,
    "i2c_sda": 21,
    "oled_addr": 0x3C,
    # Rows are driven (open drain), columns read with pull-ups: GPIO34-39 have no
    # pull-ups and cannot be columns; GPIO0/2/12/15 are strapping pins, avoided.
    "key_rows": [25, 26, 27, 14],
    "key_cols": [32, 33, 4, 18, 19],
    "key_timer": 0,  # hardware timer that scans the keypad; None: scan from the main loop
    "wdt_timer": 1,  # hardware timer that feeds the watchdog while a developer is at the REPL
}
"""Default pin map; config.json's "pins" overrides any of these."""

KEYMAP = [
    ["1", "2", "3", "CANCEL", "POINTS"],
    ["4", "5", "6", "CLEAR", "CASH"],
    ["7", "8", "9", "ENTER", "COUPON"],
    ["*", "0", "", "OK", ""],
]
"""Default key names by [row][column]; '' where the matrix has no key. config.json "keymap" overrides."""

KEYS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "ENTER", "OK", "CANCEL", "CLEAR", "POINTS", "CASH", "COUPON")

UNIX_FROM_2000 = 946684800
"""Seconds from 1970-01-01 to 2000-01-01 (UTC)."""

EPOCH_OFFSET = UNIX_FROM_2000 if time.gmtime(0)[0] == 2000 else 0
"""What to add to time.time() for Unix time: the port's epoch is gmtime(0)'s year."""


def _errno(exc) -> int:
    """The errno of an OSError (MicroPython keeps it in args[0])."""
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    return code or 0


def pins(config: dict) -> dict:
    """The pin map: PINS with config.json's "pins" on top."""
    out = dict(PINS)
    out.update(config.get("pins") or {})
    return out


def random() -> float:
    """A float in [0, 1) from the hardware RNG (jitter for the sync back-off)."""
    b = os.urandom(3)
    return ((b[0] << 16) | (b[1] << 8) | b[2]) / 16777216


def reset() -> None:
    """Hard-reset the board."""
    machine.reset()


# -- UART ----------------------------------------------------------------------------------


class BoardUart:  # hal.Uart
    """The PN532's UART (HSU: 115200 8N1).

    read() waits by polling any() with 1 ms sleeps: at 115200 baud a byte takes
    87 us, and select.poll on the ESP32 would wait in whole RTOS ticks (10 ms).
    """

    def __init__(self, uart_id: int = 2, tx: int = 17, rx: int = 16, baudrate: int = 115200, rxbuf: int = 512):
        self.uart = machine.UART(
            uart_id, baudrate=baudrate, bits=8, parity=None, stop=1, tx=tx, rx=rx, rxbuf=rxbuf, timeout=0, timeout_char=0
        )

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        sent = 0
        while sent < len(view):
            n = self.uart.write(view[sent:])
            if n:
                sent += n
            else:
                _sleep_ms(1)  # the TX buffer is full: the driver drains it

    def read(self, n: int, timeout_ms: int) -> bytes:
        start = _ticks_ms()
        while True:
            waiting = self.uart.any()
            if waiting:
                return self.uart.read(min(n, waiting)) or b""
            if _ticks_diff(_ticks_ms(), start) >= timeout_ms:
                return b""
            _sleep_ms(1)

    def flush_input(self) -> None:
        while self.uart.any():
            self.uart.read()


# -- clock ---------------------------------------------------------------------------------


class BoardClock:  # hal.Clock
    """Unix time from the RTC; a millisecond tick that does not wrap.

    time.ticks_ms() wraps (at 2**30 ms, 12.4 days, on the ESP32), but the firmware
    (sync.py, mqtt.py) subtracts ticks directly. ticks_ms() here adds up
    time.ticks_diff() steps from a counter that starts at 0: it never wraps, as
    long as it is called at least once every 2**29 ms (6.2 days; the main loop
    calls it many times a second). After 12.4 days its values are big integers,
    which MicroPython handles (a small allocation per call).

    The RTC starts at 2000-01-01 after a power loss: time() is only right once
    set_time_ntp() (or the RTC) has set it; .synced says whether that happened.
    """

    def __init__(self):
        self._last = _ticks_ms()
        self._ms = 0
        self.synced = False

    def time(self) -> int:
        return int(time.time()) + EPOCH_OFFSET

    def ticks_ms(self) -> int:
        now = _ticks_ms()
        self._ms += _ticks_diff(now, self._last)
        self._last = now
        return self._ms

    def sleep_ms(self, ms: int) -> None:
        _sleep_ms(ms)

    def set_time_ntp(self, host: str = "pool.ntp.org") -> bool:
        """Set the RTC (UTC) from an NTP server; blocks up to about a second; False when it failed."""
        try:
            import ntptime

            ntptime.host = host
            ntptime.settime()
        except (ImportError, OSError, OverflowError, IndexError):
            return False
        self.synced = True
        return True

    def set_time(self, unix: int) -> None:
        """Set the RTC to a Unix time (UTC), e.g. from the hub."""
        t = time.gmtime(unix - EPOCH_OFFSET)
        # RTC.datetime: (year, month, day, weekday, hours, minutes, seconds, subseconds)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
        self.synced = True


# -- flash ---------------------------------------------------------------------------------


class BoardFlash:  # hal.Flash
    """Flat files in one folder of the littlefs file system.

    append = open 'ab', write, close (littlefs commits on close: the data is
    durable, and a power cut before the commit leaves the file as it was);
    replace = write NAME.tmp, then rename over NAME (atomic on littlefs);
    truncate = replace with the first size bytes. The folder must be on littlefs
    (the ESP32 default since MicroPython 1.14): FAT renames are not atomic.

    Only a missing file reads as None / size -1; any other OSError (EIO) is
    raised, never taken for "no such file". Reads keep the last read file open
    (the journal is read record by record); any write to it closes it first.
    """

    def __init__(self, root: str = "/data"):
        self.root = root.rstrip("/") or "/"
        self._reader = {}  # type: dict  # at most one file kept open for reading: name -> file
        self.ensure_folder()

    def ensure_folder(self) -> None:
        path = ""
        for part in self.root.split("/"):
            if not part:
                continue
            path += "/" + part
            try:
                os.stat(path)
                continue
            except OSError:
                pass
            os.mkdir(path)

    def _path(self, name: str) -> str:
        if "/" in name or not name or name[0] == ".":
            raise ValueError("flash file names are flat, got %r" % name)
        return self.root.rstrip("/") + "/" + name

    def _drop_reader(self, name: str = "") -> None:
        """Close the kept read handle (of name only, when given)."""
        for kept in list(self._reader):
            if not name or kept == name:
                f = self._reader.pop(kept)
                try:
                    f.close()
                except OSError:
                    pass

    def close(self) -> None:
        """Close the kept read handle (before unmounting)."""
        self._drop_reader()

    def read(self, name: str, offset: int = 0, size: int = -1):
        f = self._reader.get(name)
        if f is None:
            self._drop_reader()
            try:
                f = open(self._path(name), "rb")
            except OSError as exc:
                if _errno(exc) == errno.ENOENT:
                    return None
                raise
            self._reader[name] = f
        f.seek(offset)
        data = f.read() if size < 0 else f.read(size)
        return data or b""

    def size(self, name: str) -> int:
        try:
            return os.stat(self._path(name))[6]
        except OSError as exc:
            if _errno(exc) == errno.ENOENT:
                return -1
            raise

    def _write_all(self, path: str, mode: str, data) -> None:
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = (data,)  # one chunk (hal.chunks, not imported: hal's classes would take heap)
        with open(path, mode) as f:
            for chunk in data:
                view = memoryview(chunk)
                done = 0
                while done < len(view):
                    n = f.write(view[done:])
                    if not n:
                        raise OSError(errno.EIO, "short write to %s" % path)
                    done += n

    def append(self, name: str, data: bytes) -> None:
        self._drop_reader(name)
        self._write_all(self._path(name), "ab", data)

    def replace(self, name: str, data) -> None:
        self._drop_reader(name)
        path = self._path(name)
        tmp = path + ".tmp"
        self._write_all(tmp, "wb", data)
        os.rename(tmp, path)

    def truncate(self, name: str, size: int) -> None:
        data = self.read(name, 0, size)
        if data is None:
            raise OSError(errno.ENOENT, name)
        self.replace(name, data)

    def remove(self, name: str) -> None:
        self._drop_reader(name)
        try:
            os.remove(self._path(name))
        except OSError as exc:
            if _errno(exc) != errno.ENOENT:
                raise

    def free_bytes(self) -> int:
        """Free space on the file system holding the folder."""
        st = os.statvfs(self.root)
        return st[0] * st[3]


# -- display -------------------------------------------------------------------------------


class BoardDisplay:  # hal.Display
    """A 128x64 SSD1306 on I2C, or the REPL when there is no ssd1306 module or no OLED.

    screens.py writes 4 lines of up to 21 characters (a 6x8 font); framebuf's
    built-in font is 8x8, 16 characters a row. Each line gets two of the 8 rows:
    its first 16 characters, then the rest.
    """

    ROWS_PER_LINE = 2

    def __init__(self, i2c_id: int = 0, scl: int = 22, sda: int = 21, addr: int = 0x3C, width: int = 128, height: int = 64):
        self.oled = None
        self.cols = width // 8
        self.rows = height // 8
        self.last = None  # type: list | None
        try:
            import ssd1306  # pyright: ignore[reportMissingImports]  # micropython-lib: `mpremote mip install ssd1306`
        except ImportError:
            return
        try:
            i2c = machine.I2C(i2c_id, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=400000)
            self.oled = ssd1306.SSD1306_I2C(width, height, i2c, addr)
        except OSError as exc:  # nothing answers at addr: keep going on the REPL
            print("display: no SSD1306 at 0x%02X (%s); screens go to the REPL" % (addr, exc))
            self.oled = None

    def show(self, lines: list) -> None:
        lines = [str(line) for line in lines]
        if lines == self.last:
            return
        self.last = lines
        if self.oled is None:
            print("+" + "-" * 21 + "+")
            for line in lines:
                print("|%-21s|" % line[:21])
            print("+" + "-" * 21 + "+")
            return
        oled = self.oled
        oled.fill(0)
        row = 0
        for line in lines:
            for part in range(self.ROWS_PER_LINE):
                if row >= self.rows:
                    break
                text = line[part * self.cols : (part + 1) * self.cols]
                if text:
                    oled.text(text, 0, row * 8, 1)
                row += 1
        oled.show()


# -- keypad --------------------------------------------------------------------------------


class BoardKeypad:  # hal.Keypad
    """A key matrix: rows driven low one at a time (open drain), columns read with pull-ups.

    A key counts once per press: the scan must see the same key for debounce_ms
    (and then see it released) before it counts again. One key at a time: with
    several held, the first in scan order wins. Scans run from a machine.Timer
    every scan_ms when timer_id is given (keys are not missed while the main loop
    waits on the card reader or the network), else on each get_key().
    """

    def __init__(self, rows: list, cols: list, keymap: list = KEYMAP, debounce_ms: int = 30, timer_id=None, scan_ms: int = 10):
        if len(keymap) != len(rows) or [len(r) for r in keymap] != [len(cols)] * len(rows):
            raise ValueError("keymap must be %d rows of %d keys" % (len(rows), len(cols)))
        for row in keymap:
            for key in row:
                if key and key not in KEYS:
                    raise ValueError("no key %r; keys: %s" % (key, " ".join(KEYS)))
        self.rows = [machine.Pin(p, machine.Pin.OPEN_DRAIN, value=1) for p in rows]
        self.cols = [machine.Pin(p, machine.Pin.IN, machine.Pin.PULL_UP) for p in cols]
        self.keymap = keymap
        self.debounce_ms = debounce_ms
        self.queue = []  # type: list[str]
        self._raw = None  # type: str | None
        self._since = _ticks_ms()
        self._stable = None  # type: str | None
        self.timer = None
        if timer_id is not None:
            timer = machine.Timer(timer_id)
            timer.init(period=scan_ms, mode=machine.Timer.PERIODIC, callback=self._tick)
            self.timer = timer

    def _scan(self):
        """The first key held down, or None."""
        found = None
        for r in range(len(self.rows)):
            row = self.rows[r]
            row.value(0)
            _sleep_us(10)  # let the column lines settle
            for c in range(len(self.cols)):
                if found is None and not self.cols[c].value():
                    found = self.keymap[r][c] or None
            row.value(1)
        return found

    def _tick(self, _timer) -> None:
        self.scan()

    def scan(self) -> None:
        """Scan once; queue a key when a press has been stable for debounce_ms."""
        now = _ticks_ms()
        raw = self._scan()
        if raw != self._raw:
            self._raw = raw
            self._since = now
            return
        if raw != self._stable and _ticks_diff(now, self._since) >= self.debounce_ms:
            self._stable = raw
            if raw is not None and len(self.queue) < 16:
                self.queue.append(raw)

    def get_key(self):
        if self.timer is None:
            self.scan()
        if self.queue:
            return self.queue.pop(0)
        return None

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.deinit()
            self.timer = None


# -- network -------------------------------------------------------------------------------


class BoardNetwork(netio.Network):
    """WiFi station; TCP connections through netio once it is up.

    step() (from the main loop) starts a connection attempt when the link is
    down, at most every retry_ms, without waiting for it. connect() fails at once
    with OSError(EHOSTUNREACH) while the link is down, so the sync loop backs off
    instead of blocking. Give mqtt_host as an IP address: a name lookup blocks.
    """

    def __init__(self, ssid: str, password: str, clock, hostname: str = "", retry_ms: int = 10000):
        import network

        self.network = network
        self.ssid = ssid
        self.password = password
        self.clock = clock
        self.retry_ms = retry_ms
        self._next_try = clock.ticks_ms()
        if hostname:
            try:
                network.hostname(hostname)
            except (AttributeError, ValueError, OSError):
                pass
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(bool(ssid))

    def is_connected(self) -> bool:
        return bool(self.ssid) and self.wlan.isconnected()

    def step(self) -> None:
        """Start (or restart) joining the network when it is down and the retry is due."""
        if not self.ssid or self.wlan.isconnected():
            return
        now = self.clock.ticks_ms()
        if now - self._next_try < 0:
            return
        self._next_try = now + self.retry_ms
        try:
            if self.wlan.status() == getattr(self.network, "STAT_CONNECTING", -1):
                return  # still trying since the last attempt: give it time
            self.wlan.disconnect()
            self.wlan.connect(self.ssid, self.password)
        except OSError as exc:  # "Wifi Internal Error" and friends: try again later
            print("wifi: %s" % exc)

    def connect(self, host: str, port: int, timeout_ms: int):
        if not self.is_connected():
            self.step()
            raise OSError(errno.EHOSTUNREACH, "WiFi not connected")
        return netio.connect(host, port, timeout_ms)

    def address(self) -> str:
        return self.wlan.ifconfig()[0] if self.is_connected() else ""


# -- watchdog ------------------------------------------------------------------------------


class Watchdog:
    """machine.WDT: the board resets unless feed() comes within timeout_ms.

    It cannot be stopped once started (on the ESP32 its resolution is a second).
    hold() feeds it from a timer instead, for a developer at the REPL (mpremote
    interrupts main.py with Ctrl-C): the board then stays up until reset.
    """

    def __init__(self, timeout_ms: int = 60000):
        self.wdt = None
        self.timer = None
        try:
            self.wdt = machine.WDT(timeout=timeout_ms)
        except (OSError, ValueError) as exc:  # already running after a soft reset, or a bad timeout
            print("watchdog: not started (%s)" % exc)
        self.timeout_ms = timeout_ms

    def feed(self) -> None:
        if self.wdt is not None:
            self.wdt.feed()

    def hold(self, timer_id: int = 1) -> None:
        """Keep feeding from a machine.Timer (scheduled callbacks also run at the REPL)."""
        if self.wdt is None or self.timer is not None:
            return
        try:
            timer = machine.Timer(timer_id)
            timer.init(period=max(1000, self.timeout_ms // 3), mode=machine.Timer.PERIODIC, callback=self._hold)
            self.timer = timer
        except (OSError, ValueError) as exc:
            print("watchdog: cannot hold (%s): the board resets within %d ms" % (exc, self.timeout_ms))

    def _hold(self, _timer) -> None:
        self.feed()
