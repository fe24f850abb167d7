"""The seams to hardware: every board or simulator provides these objects.

Only the board HAL and the simulator's HAL know where they run; the rest of the
firmware talks to these interfaces. Methods raise NotImplementedError here.

The handheld's own HALs (firmware/board.py, simulator/mpy/unixhal.py) implement them
without inheriting, so this module is never loaded on the handheld: its classes would
take ~3 KB of heap. tests/test_hal_seams.py checks that they implement every method.
"""


class Uart:
    """A byte stream to a peripheral (the PN532 runs HSU at 115200 8N1)."""

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, n: int, timeout_ms: int) -> bytes:
        """Up to n bytes; fewer (or b'') when the timeout passes first."""
        raise NotImplementedError

    def flush_input(self) -> None:
        """Drop whatever is waiting in the receive buffer."""
        raise NotImplementedError


class Clock:
    """Wall time for records, a monotonic tick for timeouts."""

    def time(self) -> int:
        """Unix time in whole seconds (UTC)."""
        raise NotImplementedError

    def ticks_ms(self) -> int:
        """Monotonic milliseconds that never wrap (callers subtract them); only differences mean anything."""
        raise NotImplementedError

    def sleep_ms(self, ms: int) -> None:
        raise NotImplementedError


class Flash:
    """A small file system (littlefs on the board, a directory in the simulator).

    Files are named flat, without folders. append() and replace() are the only
    ways to write, so a power cut can tear at most the tail of one append.
    """

    def read(self, name: str, offset: int = 0, size: int = -1) -> bytes | None:
        """size bytes from offset (all to the end when size < 0), or None when there is no such file."""
        raise NotImplementedError

    def size(self, name: str) -> int:
        """The file's length in bytes, -1 when it does not exist."""
        raise NotImplementedError

    def append(self, name: str, data: bytes) -> None:
        """Append and make durable before returning."""
        raise NotImplementedError

    def replace(self, name: str, data) -> None:
        """Atomically replace the file (write a temporary file, then rename).

        data is bytes, or an iterable of byte chunks, so a big file can be
        rewritten (journal compaction) with a little RAM.
        """
        raise NotImplementedError

    def truncate(self, name: str, size: int) -> None:
        """Cut the file to size bytes (used to drop a torn tail)."""
        raise NotImplementedError

    def remove(self, name: str) -> None:
        raise NotImplementedError


def chunks(data):
    """The chunks of what Flash.replace() was given: bytes, or an iterable of bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return (data,)
    return data


class Display:
    """A few lines of text (a 128x64 OLED shows 4 lines of 21 characters)."""

    def show(self, lines: list) -> None:
        raise NotImplementedError


class Keypad:
    """Key names: '0'-'9', '*', 'ENTER', 'OK', 'CANCEL', 'CLEAR', 'POINTS', 'CASH', 'COUPON'."""

    def get_key(self) -> str | None:
        """The next key pressed, or None when no key is waiting."""
        raise NotImplementedError


class Reader:
    """A contactless reader (errors: firmware.reader); the PN532 driver is one, the HQ desk reader another."""

    def start(self) -> None:
        """Wake the reader and configure it so select() answers promptly."""
        raise NotImplementedError

    def select(self) -> bytes | None:
        """Select a card in the field; its UID, or None when there is none."""
        raise NotImplementedError

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> None:
        """MIFARE Classic authentication of block's sector with key 'A' or 'B'.

        After AuthFailed (firmware.reader) the card is halted: select() again before the next try.
        """
        raise NotImplementedError

    def read_block(self, block: int) -> bytes:
        """16 bytes of an authenticated sector's block."""
        raise NotImplementedError

    def write_block(self, block: int, data: bytes) -> None:
        """Write 16 bytes to an authenticated sector's block."""
        raise NotImplementedError
