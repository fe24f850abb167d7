"""pytest does not collect tests/mpy: its tests run through tests/mpy/runner.py, on the
MicroPython unix port and once on CPython, from tests/test_micropython.py."""

collect_ignore_glob = ["*.py"]
