# Boots a virtual handheld from its ROMFS image, as a board boots from its ROM
# partition: mount the image at /rom, then run the device from it.
import romfs

romfs.mount()

import handheld_main  # noqa: E402,F401  (importing it runs the device)
