"""Mount the ROMFS image that simulator/mapped_flash.py mapped into this MicroPython process.

A board with a ROM partition mounts it at /rom by itself at boot; the unix port
has none, so the simulator's boot scripts call mount() first.
"""

import os
import sys

import uctypes
import vfs


def mount() -> None:
    """Mount the image named by $SIM_ROMFS (address:size) at /rom and import from it first."""
    where = os.getenv("SIM_ROMFS")
    if not where:
        raise OSError("no ROMFS image mapped: run under python -m simulator.mapped_flash IMAGE")
    at, size = where.split(":")
    vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(at), int(size))), "/rom")
    sys.path.insert(0, "/rom")
