"""A test runner for MicroPython (unix port) and CPython alike: no unittest, no pytest.

    micropython tests/mpy/runner.py [--code DIR] [-k SUBSTRING] [TEST ...]
    python3     tests/mpy/runner.py [--code DIR] [-k SUBSTRING] [TEST ...]

Runs every function named test_* of tests/mpy/test_*.py, in the order they are
defined, with plain asserts. A TEST is a module of tests/mpy (test_mpy_journal) or
the path of a test file anywhere (its folder goes on sys.path). -k keeps the tests
whose module.function contains SUBSTRING. --code DIR imports firmware/ and protocol/
from DIR instead of the repository (e.g. the .mpy files mpy-cross made).

A test that raises harness.Skip is skipped. One line per test, the traceback of each
failure, then the summary `N passed, N failed` (`, N skipped` when some were) alone
on a line. Exit status: 0 when all passed, 1 when any failed (or a module did not
import), 2 when nothing ran.

The repository root and tests/mpy go first on sys.path, so neither MICROPYPATH nor
PYTHONPATH is needed; $MQTT_PORT points the broker tests at a Mosquitto.
"""

import os
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, _here)

import harness  # noqa: E402  (needs the path above)

sys.path.insert(0, harness.ROOT)


def _time_ms() -> int:
    import time

    ticks = getattr(time, "ticks_ms", None)
    if ticks is not None:
        return ticks()
    return int(time.monotonic() * 1000)


def _print_exception(exc: BaseException) -> None:
    print_exception = getattr(sys, "print_exception", None)
    if print_exception is not None:  # MicroPython
        print_exception(exc)
        return
    import traceback

    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stdout)


def _test_names(path: str) -> list:
    """The file's test functions in definition order (MicroPython's dir() is in hash order)."""
    names = []
    with open(path) as f:
        for line in f:
            if line.startswith("def test_"):
                names.append(line[4:].split("(", 1)[0].strip())
    return names


def _modules(wanted: list) -> tuple:
    """([(module name, file)] to run, [names asked for that are no test module])."""
    found = sorted(n[:-3] for n in os.listdir(harness.HERE) if n.startswith("test_") and n.endswith(".py"))
    if not wanted:
        return [(n, harness.HERE + "/" + n + ".py") for n in found], []
    modules = []
    unknown = []
    for want in wanted:
        if want.endswith(".py") and "/" in want:
            path = harness.absolute(want)
            if not harness.exists(path):
                unknown.append(want)
                continue
            folder, name = path.rsplit("/", 1)
            if folder not in sys.path:
                sys.path.insert(1, folder)
            modules.append((name[:-3], path))
        else:
            name = want[:-3] if want.endswith(".py") else want
            if name in found:
                modules.append((name, harness.HERE + "/" + name + ".py"))
            else:
                unknown.append(want)
    return modules, unknown


def _where(package: str) -> str:
    module = __import__(package)
    return getattr(module, "__file__", "?").rsplit("/", 1)[0]


def main(argv: list) -> int:
    pattern = ""
    wanted = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "-k" and args:
            pattern = args.pop(0)
        elif arg == "--code" and args:
            sys.path.insert(0, harness.absolute(args.pop(0)))
        else:
            wanted.append(arg)
    impl = sys.implementation
    print("runner: %s %s on %s" % (impl.name, ".".join([str(v) for v in impl.version[:3]]), sys.platform))
    print("code: firmware from %s, protocol from %s" % (_where("firmware"), _where("protocol")))
    passed = failed = skipped = 0
    failures = []
    modules, unknown = _modules(wanted)
    for name in unknown:
        failed += 1
        failures.append(name)
        print("FAIL %s: no such test module" % name)
    for module_name, path in modules:
        try:
            module = __import__(module_name)
        except Exception as exc:
            failed += 1
            failures.append(module_name)
            print("FAIL %s (import)" % module_name)
            _print_exception(exc)
            continue
        for name in _test_names(path):
            test_id = "%s.%s" % (module_name, name)
            if pattern and pattern not in test_id:
                continue
            fn = getattr(module, name, None)
            if fn is None:
                continue
            began = _time_ms()
            try:
                fn()
            except harness.Skip as exc:
                skipped += 1
                print("SKIP %s: %s" % (test_id, exc))
                continue
            except Exception as exc:
                failed += 1
                failures.append(test_id)
                print("FAIL %s" % test_id)
                _print_exception(exc)
                continue
            passed += 1
            print("ok   %s (%d ms)" % (test_id, _time_ms() - began))
    for test_id in failures:
        print("failed: %s" % test_id)
    summary = "%d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary)
    if failed:
        return 1
    return 0 if passed else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
