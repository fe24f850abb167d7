"""What the tests under tests/mpy share: paths, temporary folders, raises(), skip().

Runs on MicroPython (unix port) and CPython alike: no os.path, no tempfile, no
typing, no `from __future__`; MicroPython-only names are looked up with getattr.
"""

import json
import os
import sys

MICROPYTHON = sys.implementation.name == "micropython"


def _dirname(path: str) -> str:
    cut = path.rfind("/")
    if cut < 0:
        return "."
    return path[:cut] or "/"


def absolute(path: str) -> str:
    """path made absolute against the current directory, with '.' and '..' resolved."""
    if not path.startswith("/"):
        path = os.getcwd() + "/" + path
    parts = []  # type: list[str]
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


HERE = _dirname(absolute(__file__))  # tests/mpy
ROOT = _dirname(_dirname(HERE))  # the repository


class Skip(Exception):
    """Raised by skip(): the runner counts the test as skipped, not failed."""


def skip(reason: str) -> None:
    raise Skip(reason)


class raises:
    """with raises(SomeError) as caught: ...; caught.value is the exception (like pytest.raises).

    raises(SomeError, "code"): also its .code (the reason, as CardError carries it).
    """

    def __init__(self, kind, code: str = "") -> None:
        self.kind = kind
        self.code = code
        self.value = None  # type: BaseException | None

    def __enter__(self) -> "raises":
        return self

    def __exit__(self, kind, value, tb) -> bool:
        if kind is None:
            raise AssertionError("%s was not raised" % self.kind.__name__)
        if not isinstance(value, self.kind):
            return False  # a different exception: let it fail the test
        if self.code and getattr(value, "code", None) != self.code:
            raise AssertionError("%s with code %r, not %r" % (self.kind.__name__, getattr(value, "code", None), self.code))
        self.value = value
        return True


def exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def is_dir(path: str) -> bool:
    return bool(os.stat(path)[0] & 0x4000)


def remove_tree(path: str) -> None:
    """rm -r path (no shutil on MicroPython)."""
    if not exists(path):
        return
    if not is_dir(path):
        os.remove(path)
        return
    for name in os.listdir(path):
        remove_tree(path + "/" + name)
    os.rmdir(path)


class TempDir:
    """with TempDir() as path: a fresh folder under $TMPDIR (or /tmp), removed afterwards."""

    def __init__(self) -> None:
        base = os.getenv("TMPDIR") or "/tmp"
        self.path = "%s/mpytest-%s" % (base.rstrip("/"), os.urandom(6).hex())
        os.mkdir(self.path)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, kind, value, tb) -> None:
        remove_tree(self.path)


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


_vectors = None


def vectors() -> dict:
    """tests/vectors/protocol.json, loaded once."""
    global _vectors
    if _vectors is None:
        _vectors = json.loads(read_text(ROOT + "/tests/vectors/protocol.json"))
    return _vectors


def mqtt_port() -> int:
    """The port of the Mosquitto that tests/test_micropython.py started ($MQTT_PORT); skip() without one."""
    port = os.getenv("MQTT_PORT")
    if not port:
        skip("no broker: set MQTT_PORT to a Mosquitto on 127.0.0.1 (tests/test_micropython.py does)")
    return int(port or 0)


def unique(prefix: str) -> str:
    """A name no other run (or the other interpreter, on the same broker) uses."""
    return "%s-%s-%s" % (prefix, sys.implementation.name[:2], os.urandom(4).hex())
