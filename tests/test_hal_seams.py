"""The handheld's HALs implement firmware/hal.py's interfaces without inheriting them (to keep hal
off the handheld's heap): each implements every method of its interface, with the same parameters."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTERFACES = ROOT / "firmware" / "hal.py"
BOARD, SIM, PN532 = "firmware/board.py", "simulator/mpy/unixhal.py", "firmware/pn532.py"
# (file, class, the hal interface it implements); the PN532 driver is the reader of the board and the simulator.
SEAMS = [
    (BOARD, "BoardUart", "Uart"),
    (BOARD, "BoardClock", "Clock"),
    (BOARD, "BoardFlash", "Flash"),
    (BOARD, "BoardDisplay", "Display"),
    (BOARD, "BoardKeypad", "Keypad"),
    (SIM, "PtyUart", "Uart"),
    (SIM, "HostClock", "Clock"),
    (SIM, "FileFlash", "Flash"),
    (SIM, "Panel", "Display"),
    (SIM, "Panel", "Keypad"),
    (PN532, "PN532", "Reader"),
]


def methods(path: Path) -> dict[str, dict[str, list[str]]]:
    """class -> method -> its parameter names (self first), for the top-level classes of a file."""
    tree = ast.parse(path.read_text())
    return {
        node.name: {f.name: [a.arg for a in f.args.args] for f in node.body if isinstance(f, ast.FunctionDef)}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }


def test_the_board_and_the_simulator_implement_every_interface():
    interfaces = set(methods(INTERFACES))
    for where in (BOARD, SIM):
        assert {i for f, _c, i in SEAMS if f in (where, PN532)} == interfaces, where


@pytest.mark.parametrize(("where", "cls", "interface"), SEAMS)
def test_the_handhelds_hal_implements_the_interface(where: str, cls: str, interface: str) -> None:
    wanted = methods(INTERFACES)[interface]
    found = methods(ROOT / where)[cls]
    for name, params in wanted.items():
        assert name in found, f"{where}: {cls} lacks {name}() of hal.{interface}"
        assert found[name][: len(params)] == params, f"{where}: {cls}.{name}{tuple(found[name])}, hal has {tuple(params)}"


def test_the_handheld_never_loads_hal():
    # Inheriting (or importing hal at all) would put its classes back on the heap.
    for where in {f for f, _c, _i in SEAMS}:
        tree = ast.parse((ROOT / where).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names]
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert "hal" not in names and "firmware.hal" not in names + modules, where
