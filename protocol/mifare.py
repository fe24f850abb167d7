"""MIFARE Classic 1K memory facts shared by the card layout, the virtual card and readers.

Sans-IO and MicroPython-compatible: only builtins, no typing at run time.
Source: NXP MF1S50yyX/V1 product data sheet, section 8.6 (memory organisation,
sector trailer). The access conditions are in protocol/access.py: only card
issuance and the virtual cards need them, so the handheld never loads them.
"""

DEFAULT_KEY = b"\xff" * 6
"""The key A and key B of a card fresh from the factory."""

BLOCK_SIZE = 16
"""Bytes per block."""

SECTORS = 16
"""Sectors on a 1K card."""

BLOCKS_PER_SECTOR = 4
"""Blocks per sector on a 1K card; the last one is the sector trailer."""

BLOCKS = 64
"""Blocks on a 1K card."""

TRANSPORT_ACCESS = bytes([0xFF, 0x07, 0x80])
"""Factory access bytes 6-8: data blocks (0,0,0), trailer (0,0,1)."""

TRANSPORT_GPB = 0x69
"""Factory general purpose byte (trailer byte 9)."""

KEY_SIZE = 6
"""Bytes in key A and in key B."""

def _check_block(block: int) -> None:
    """Raise ValueError unless block is 0..63."""
    if not 0 <= block < BLOCKS:
        raise ValueError("block out of range: %r" % (block,))


def sector_of(block: int) -> int:
    """The sector holding block."""
    _check_block(block)
    return block // BLOCKS_PER_SECTOR


def first_block(sector: int) -> int:
    """The first block of sector."""
    if not 0 <= sector < SECTORS:
        raise ValueError("sector out of range: %r" % (sector,))
    return sector * BLOCKS_PER_SECTOR


def trailer_of(sector: int) -> int:
    """The sector trailer block of sector."""
    return first_block(sector) + BLOCKS_PER_SECTOR - 1


def is_trailer(block: int) -> bool:
    """Whether block is a sector trailer."""
    _check_block(block)
    return block % BLOCKS_PER_SECTOR == BLOCKS_PER_SECTOR - 1


def make_trailer(key_a: bytes, access3: bytes, gpb: int, key_b: bytes) -> bytes:
    """A 16-byte sector trailer: key A, access bytes 6-8, GPB, key B."""
    if len(key_a) != KEY_SIZE or len(key_b) != KEY_SIZE:
        raise ValueError("keys are 6 bytes")
    if len(access3) != 3:
        raise ValueError("access bits are 3 bytes")
    if not 0 <= gpb <= 0xFF:
        raise ValueError("gpb is one byte")
    return bytes(key_a) + bytes(access3) + bytes([gpb]) + bytes(key_b)
