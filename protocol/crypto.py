"""HMAC-SHA256 and CRC-32 from what both MicroPython and CPython have (hashlib, binascii)."""

import binascii
import hashlib

_BLOCK = 64  # SHA-256 block size in bytes


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """RFC 2104 HMAC with SHA-256 (MicroPython has no hmac module)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    # The padded key is XORed in place: no list of 64 ints and no copy of msg, which on the
    # handheld's small heap were the largest allocations of a card read.
    pad = bytearray(_BLOCK)
    pad[: len(key)] = key
    for i in range(_BLOCK):
        pad[i] ^= 0x36
    h = hashlib.sha256(pad)
    h.update(msg)
    inner = h.digest()
    for i in range(_BLOCK):
        pad[i] ^= 0x36 ^ 0x5C
    h = hashlib.sha256(pad)
    h.update(inner)
    return h.digest()


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3, as zlib), always unsigned."""
    return binascii.crc32(data) & 0xFFFFFFFF


def equal(a: bytes, b: bytes) -> bool:
    """Compare MACs in time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
