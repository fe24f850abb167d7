"""HMAC-SHA256 and CRC-32 from what both MicroPython and CPython have (hashlib, binascii)."""

import binascii
import hashlib

_BLOCK = 64  # SHA-256 block size in bytes


def hmac_sha256(key: bytes, msg: bytes) -> bytes:
    """RFC 2104 HMAC with SHA-256 (MicroPython has no hmac module)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + bytes(_BLOCK - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]) + msg).digest()
    return hashlib.sha256(bytes([b ^ 0x5C for b in key]) + inner).digest()


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
