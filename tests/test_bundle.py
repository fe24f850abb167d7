"""The deployable firmware bundle (tools/build_firmware.py): manifest, modules, and the .mpy files under MicroPython.

The bundle's .mpy files (only those: no sources on the path) run the protocol's test
vectors under the MicroPython unix port with a 96 KiB heap. Its ROMFS image holds the
same files, and boots the handheld (firmware.main) in a 96 KiB heap, mapped outside
the heap as a board's ROM partition is, against stand-in machine and network
modules: the board HAL is constructed and driven as far as a machine without a
board allows.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.version import FIRMWARE_VERSION
from protocol import PROTOCOL_VERSION
from simulator.micro import MPY, micropython_binary

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "tools" / "build_firmware.py"
VECTORS = ROOT / "tests" / "vectors" / "protocol.json"
HEAP = "96k"
# The board's boot in this test also holds the stand-in machine and network modules and
# the check's own objects, on a 64-bit port whose objects are about twice an ESP32's.
BOARD_HEAP = "128k"
BOARD_MODULES = ("main", "board", "terminal", "journal", "outbox", "sync", "mqtt", "netio", "pn532", "reader")


def micropython() -> str:
    """The MicroPython unix port the simulator uses."""
    try:
        return micropython_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc))


def run_micropython(
    script: Path, path: list[Path], *args: str, romfs: Path | None = None, heap: str = HEAP
) -> subprocess.CompletedProcess:
    """Run script; with romfs, that image is mapped outside the heap (simulator.mapped_flash)."""
    env = dict(os.environ, MICROPYPATH=":".join(str(p) for p in path))
    interpreter = [sys.executable, "-m", "simulator.mapped_flash", str(romfs)] if romfs else [micropython()]
    return subprocess.run(
        [*interpreter, "-X", f"heapsize={heap}", str(script), *args],
        capture_output=True, text=True, env=env, cwd=ROOT if romfs else script.parent, timeout=120,
    )


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = subprocess.run([sys.executable, str(BUILD), "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bundle = out / f"firmware-{FIRMWARE_VERSION}"
    assert bundle.is_dir(), proc.stdout
    return bundle, proc.stdout


@pytest.fixture(scope="module")
def bundle(build):
    return build[0]


@pytest.fixture(scope="module")
def manifest(bundle):
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture
def code(bundle, tmp_path):
    """Only the bundle's compiled modules, in their package folders."""
    folder = tmp_path / "code"
    for mpy in bundle.rglob("*.mpy"):
        target = folder / mpy.relative_to(bundle)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mpy, target)
    return folder


def test_build_prints_the_bundle_and_its_size(build):
    bundle, stdout = build
    assert str(bundle) in stdout
    total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert f"{total} bytes" in stdout


def test_manifest_lists_every_file_with_size_and_sha256(bundle, manifest):
    listed = {entry["path"]: entry for entry in manifest["files"]}
    on_disk = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(listed) == on_disk
    for path, entry in listed.items():
        data = (bundle / path).read_bytes()
        assert entry["size"] == len(data), path
        assert entry["sha256"] == hashlib.sha256(data).hexdigest(), path
    assert manifest["total_size"] == sum(entry["size"] for entry in manifest["files"])
    assert manifest["firmware_version"] == FIRMWARE_VERSION
    assert manifest["protocol_version"] == PROTOCOL_VERSION
    cross = manifest["mpy_cross"]
    assert cross["version"].startswith("MicroPython") and "mpy-cross" in cross["version"]
    assert cross["options"] and cross["mpy_version"] == 6 and cross["arch"] == "none" and cross["small_int_bits"] == 31


def test_every_module_is_compiled_in_its_package_folder(bundle, manifest):
    excluded = set(manifest["excluded"])
    for package in ("firmware", "protocol"):
        for source in sorted((ROOT / package).glob("*.py")):
            module = package if source.stem == "__init__" else f"{package}.{source.stem}"
            mpy = bundle / package / f"{source.stem}.mpy"
            if module in excluded:
                assert not mpy.exists(), module
                continue
            assert mpy.is_file(), f"{module} is neither compiled nor listed as excluded"
            assert manifest["modules"][module] == f"{package}/{source.stem}.mpy"
            head = mpy.read_bytes()[:4]
            assert head[:2] == b"M\x06" and head[3] == 31, (module, head)
    for name in BOARD_MODULES:
        assert (bundle / "firmware" / f"{name}.mpy").is_file(), name
    assert "firmware.hal" in excluded  # the interfaces: the board implements them without importing them
    assert not excluded & {f"protocol.{p.stem}" for p in (ROOT / "protocol").glob("*.py")}
    assert not list(bundle.glob("firmware/*.py")) and not list(bundle.glob("protocol/*.py"))


ROMFS_LIST = r'''
import hashlib
import os

import romfs

romfs.mount()


def walk(path):
    for name, kind, *_ in os.ilistdir(path):
        full = path + "/" + name
        if kind == 0x4000:
            yield from walk(full)
        else:
            with open(full, "rb") as f:
                yield full, hashlib.sha256(f.read()).digest().hex()


for path, digest in walk("/rom"):
    print(path, digest)
'''


def test_romfs_image_holds_the_compiled_modules_and_nothing_else(bundle, manifest, tmp_path):
    script = tmp_path / "romfs_list.py"
    script.write_text(ROMFS_LIST)
    proc = run_micropython(script, [MPY], romfs=bundle / "firmware.romfs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = dict(line.split() for line in proc.stdout.splitlines())
    compiled = {f"/rom/{p}": hashlib.sha256((bundle / p).read_bytes()).hexdigest() for p in manifest["modules"].values()}
    assert listed == compiled
    assert manifest["romfs"] == {"image": "firmware.romfs", "holds": ["firmware", "protocol"], "mount": "/rom"}
    assert manifest["files_size"] == manifest["total_size"] - (bundle / "firmware.romfs").stat().st_size


def test_main_py_is_tiny_and_only_starts_the_compiled_boot_code(bundle):
    main = (bundle / "main.py").read_text()
    assert len(main) < 512
    code = [line for line in main.splitlines() if line.strip() and not line.startswith("#")]
    assert code == ["from firmware.main import run", "app = run()"]
    compile(main, "main.py", "exec")


def test_config_example_has_the_shape_and_no_keys(bundle):
    config = json.loads((bundle / "config.example.json").read_text())
    for key in ("device_id", "master_key", "mqtt_host", "mqtt_port", "mqtt_password", "wifi_ssid", "wifi_password", "pins"):
        assert key in config, key
    with pytest.raises(ValueError):
        bytes.fromhex(config["master_key"])  # a placeholder: the handheld refuses to start with it
    assert "REPLACE" in config["mqtt_password"] and "REPLACE" in config["wifi_password"]
    vectors = json.loads(VECTORS.read_text())
    for path in bundle.rglob("*"):
        if path.is_file():
            assert vectors["master_key"].encode() not in path.read_bytes(), path


VECTOR_CHECK = r'''
import json
import sys

from protocol import card, pricing, record
from protocol.crypto import crc32, hmac_sha256

assert record.__file__.endswith(".mpy"), record.__file__  # the bundle's compiled module, not a source
V = json.loads(open(sys.argv[1]).read())
MASTER = bytes.fromhex(V["master_key"])
UID = bytes.fromhex(V["uid"])
n = 0
for case in V["hmac_sha256"]:
    assert hmac_sha256(bytes.fromhex(case["key"]), bytes.fromhex(case["msg"])).hex() == case["mac"], case["source"]
    n += 1
for case in V["crc32"]:
    assert crc32(bytes.fromhex(case["data"])) == case["crc"]
    n += 1
for case in V["round_half_up"]:
    assert pricing.apply_bps(case["amount"], case["bps"]) == case["share"], case["why"]
    n += 1
pl = pricing.PriceList(V["price_list"])
q = V["quote"]
assert pricing.quote(pl, [tuple(line) for line in q["lines"]], q["tier"]) == q["result"]
s = V["settle"]
assert pricing.settle(pl, s["total"], s["balance"], s["points"], s["redeem_points"], s["use_stored_value"]) == s["result"]
assert card.mac_key(MASTER, UID).hex() == V["keys"]["mac_key"]
for sector, keys in V["keys"]["sectors"].items():
    assert [k.hex() for k in card.sector_keys(MASTER, UID, int(sector))] == keys
ident = V["identity"]["ident"]
blocks = [bytes.fromhex(b) for b in V["identity"]["blocks"]]
assert card.encode_identity(MASTER, UID, ident) == blocks
assert card.decode_identity(MASTER, UID, blocks) == ident
p = V["purse"]
blocks = [bytes.fromhex(b) for b in p["blocks"]]
assert card.encode_purse(MASTER, UID, p["card_no"], p["copy"], p["purse"]) == blocks
assert card.decode_purse(MASTER, UID, p["card_no"], p["copy"], blocks) == p["purse"]
i = V["issue_writes"]
assert [[b, d.hex()] for b, d in card.issue_writes(MASTER, UID, i["ident"], i["balance"], i["points"])] == i["writes"]
n += 6
for case in V["records"]:
    assert record.encode(case["record"]).hex() == case["hex"], case["record"]["kind"]
    assert record.decode(bytes.fromhex(case["hex"])) == case["record"]
    n += 1
for case in V["bad_records"]:
    try:
        record.decode(bytes.fromhex(case["hex"]))
        raise AssertionError("decoded a bad record: " + case["why"])
    except record.RecordError as exc:
        assert exc.code == case["error"], (case["why"], exc.code)
    n += 1
print("vectors ok", n)
'''


def test_bundle_runs_the_protocol_vectors_under_micropython(code, tmp_path):
    script = tmp_path / "vector_check.py"
    script.write_text(VECTOR_CHECK)
    proc = run_micropython(script, [code], str(VECTORS))
    assert proc.returncode == 0 and "vectors ok" in proc.stdout, proc.stdout + proc.stderr


FAKE_MACHINE = r'''
"""Stand-in for the ESP32's machine module: a key matrix, a silent UART, a watchdog that counts."""


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    levels = {}
    held = set()  # (row pin, column pin) of the keys held down

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        if value is not None:
            Pin.levels[id] = value

    def value(self, v=None):
        if v is not None:
            Pin.levels[self.id] = v
            return None
        if self.mode == Pin.IN:
            for row, col in Pin.held:
                if col == self.id and Pin.levels.get(row, 1) == 0:
                    return 0
            return 1
        return Pin.levels.get(self.id, 1)


class UART:
    made = []

    def __init__(self, id, **kw):
        self.id = id
        self.kw = kw
        self.rx = b""
        self.tx = []
        UART.made.append(self)

    def any(self):
        return len(self.rx)

    def read(self, n=-1):
        if not self.rx:
            return None
        n = len(self.rx) if n < 0 else n
        out, self.rx = self.rx[:n], self.rx[n:]
        return out

    def write(self, data):
        self.tx.append(bytes(data))
        return len(data)


class I2C:
    def __init__(self, *args, **kw):
        raise OSError(19)  # ENODEV: nothing on the bus


class RTC:
    now = None

    def datetime(self, value=None):
        RTC.now = value


class WDT:
    fed = 0
    timeout = None

    def __init__(self, id=0, timeout=5000):
        WDT.timeout = timeout

    def feed(self):
        WDT.fed += 1


class Timer:
    PERIODIC = 1
    ONE_SHOT = 0
    made = []

    def __init__(self, id):
        self.id = id
        self.callback = None
        Timer.made.append(self)

    def init(self, period=0, mode=1, callback=None):
        self.period = period
        self.callback = callback

    def deinit(self):
        self.callback = None


def reset():
    raise SystemExit("machine.reset")
'''

FAKE_NETWORK = r'''
"""Stand-in for the ESP32's network module: a WiFi station that never gets an address."""

STA_IF = 0
STAT_IDLE = 1000
STAT_CONNECTING = 1001


def hostname(name=None):
    return "esp32"


class WLAN:
    last = None

    def __init__(self, interface):
        self.on = False
        self.connects = 0
        WLAN.last = self

    def active(self, on=None):
        if on is not None:
            self.on = on
        return self.on

    def isconnected(self):
        return False

    def status(self):
        return STAT_IDLE

    def connect(self, ssid, password):
        self.connects += 1

    def disconnect(self):
        pass

    def ifconfig(self):
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
'''

BOARD_CHECK = r'''
import gc
import json
import os
import sys
import time

import machine
import network

import firmware.main as m
from firmware import board

data = sys.argv[1]
assert m.__file__ == "/rom/firmware/main.mpy" and board.__file__ == "/rom/firmware/board.mpy", m.__file__


def write(name, text):
    with open(data + "/" + name, "w") as f:
        f.write(text)


# Not provisioned, or provisioned with the example configuration: no start, no watchdog.
assert m.run(data, loops=1) is None
write("config.json", open(sys.argv[2]).read())
assert m.run(data, loops=1) is None
assert machine.WDT.timeout is None

# Maintenance mode: no start either.
config = {"device_id": "hh-board", "master_key": sys.argv[3], "wifi_ssid": "shop", "wifi_password": "pw",
          "mqtt_host": "127.0.0.1", "mqtt_port": 1883, "mqtt_password": "secret", "ntp_host": "",
          "pins": {"key_timer": None}}
write("config.json", json.dumps(config))
write("prices.json", open(sys.argv[4]).read())
write("maintenance", "")
assert m.run(data, loops=1) is None
os.remove(data + "/maintenance")

# A provisioned handheld whose PN532 does not answer: it runs, says so, and journals it.
app = m.run(data, loops=3)
assert app is not None
gc.collect()
used_after_boot = gc.mem_alloc()
codes = [r.get("code") for r in app.terminal.journal.records()]
assert "reader_fault" in codes, codes
assert app.terminal.notice == "Card reader fault", app.terminal.notice
assert machine.WDT.timeout == 60000 and machine.WDT.fed >= 3, (machine.WDT.timeout, machine.WDT.fed)
assert app.sync is not None and app.sync.state == "offline"
assert network.WLAN.last.connects >= 1
uart = machine.UART.made[-1]
assert uart.id == 2 and uart.kw["baudrate"] == 115200 and uart.kw["tx"] == 17 and uart.kw["rx"] == 16
assert uart.tx and uart.tx[0].startswith(b"\x55\x55"), uart.tx[:1]  # the PN532 HSU wake-up
assert os.stat(data + "/journal.bin")[6] > 0

# Ctrl-C: the watchdog is fed from a timer meanwhile.
app.stop()
fed = machine.WDT.fed
machine.Timer.made[-1].callback(None)
assert machine.WDT.fed == fed + 1

# A bug in the loop: reported, journaled, then a reset.
m.RESTART_PAUSE_MS = 0
try:
    app.crash(RuntimeError("boom"))
    raise AssertionError("no reset after a crash")
except SystemExit:
    pass
assert list(app.terminal.journal.records())[-1]["code"] == "crash"

# The clock: Unix time, ticks that only go up.
clock = board.BoardClock()
assert abs(clock.time() - time.time()) <= 1
t0 = clock.ticks_ms()
clock.sleep_ms(5)
assert clock.ticks_ms() - t0 >= 5

# The UART: what has arrived, or b'' after the timeout.
u = board.BoardUart(2, 17, 16)
u.uart.rx = b"\x00\x00\xff\x00\xff\x00"
assert u.read(4, 10) == b"\x00\x00\xff\x00" and u.read(10, 10) == b"\xff\x00"
t = time.ticks_ms()
assert u.read(4, 30) == b"" and time.ticks_diff(time.ticks_ms(), t) >= 30
u.uart.rx = b"stale"
u.flush_input()
assert u.uart.any() == 0

# The keypad: one key per press, after the debounce, none while held or bouncing.
rows, cols = [25, 26, 27, 14], [32, 33, 4, 18, 19]
keys = board.BoardKeypad(rows, cols, debounce_ms=20)


def settle(ms=25):
    out = [keys.get_key()]
    time.sleep_ms(ms)
    out.append(keys.get_key())
    return [k for k in out if k]


machine.Pin.held = {(26, 33)}  # row 1, column 1: "5"
assert settle() == ["5"]
assert settle() == []  # still held: no repeat
machine.Pin.held = set()
assert settle() == []
machine.Pin.held = {(14, 18)}  # row 3, column 3: "OK"
keys.get_key()
machine.Pin.held = set()  # a bounce shorter than the debounce
time.sleep_ms(25)
assert keys.get_key() is None
machine.Pin.held = {(14, 18)}
assert settle() == ["OK"]

# The flash, on this port's file system: only a missing file reads as None / -1.
flash = board.BoardFlash(data + "/f")
assert flash.read("x") is None and flash.size("x") == -1
flash.append("x", b"abc")
flash.append("x", b"def")
assert flash.read("x", 2, 3) == b"cde" and flash.size("x") == 6
flash.replace("x", b"123456789")
assert flash.read("x") == b"123456789"
flash.truncate("x", 4)
assert flash.read("x") == b"1234"
flash.remove("x")
flash.remove("x")
assert flash.read("x") is None and "x.tmp" not in os.listdir(data + "/f")

gc.collect()
print("board ok", json.dumps({"heap_used_after_boot": used_after_boot, "heap_used_at_end": gc.mem_alloc()}))
'''


def test_bundle_boots_the_handheld_from_its_romfs_with_a_stand_in_board(bundle, tmp_path):
    # The stand-in board and this check are compiled into the image too (build_firmware.py
    # --with), so that the heap holds what a board's would: the handheld's objects, not test bytecode.
    extra = []
    for name, text in (("machine", FAKE_MACHINE), ("network", FAKE_NETWORK), ("board_check", BOARD_CHECK)):
        source = tmp_path / f"{name}.py"
        source.write_text(text)
        extra += ["--with", f"{name}={source}"]
    out = tmp_path / "build"
    built = subprocess.run([sys.executable, str(BUILD), "--out", str(out), *extra], capture_output=True, text=True, cwd=ROOT)
    assert built.returncode == 0, built.stdout + built.stderr
    romfs = out / f"firmware-{FIRMWARE_VERSION}" / "firmware.romfs"
    script = tmp_path / "boot.py"
    script.write_text("import romfs\nromfs.mount()\nimport board_check\n")
    data = tmp_path / "data"
    vectors = json.loads(VECTORS.read_text())
    # Long arguments crash this packaging of the unix port: the price list goes in a file.
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(vectors["price_list"]))
    proc = run_micropython(
        script, [MPY], str(data), str(bundle / "config.example.json"), vectors["master_key"], str(prices), romfs=romfs,
        heap=BOARD_HEAP,
    )
    assert proc.returncode == 0 and "board ok" in proc.stdout, proc.stdout + proc.stderr
    assert "not provisioned" in proc.stdout and "master_key must be hex" in proc.stdout
    assert "Card reader fault" in proc.stdout  # the screen, on the REPL when there is no OLED
    print(proc.stdout.strip().splitlines()[-1])
