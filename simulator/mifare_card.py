"""A virtual MIFARE Classic 1K card that enforces keys and access bits like a real one.

Behaviour follows NXP's MF1S50yyX/V1 data sheet:

* a failed authentication (wrong key, wrong UID) halts the card: it answers nothing
  until the field is reset or it is selected again (``reset()``);
* a refused read or write is answered with a 4-bit NAK, after which the card has left
  the authenticated state; this model then halts it too, so the reader must select and
  authenticate again (a PN532 reports the NAK as status 0x13, a halted card as 0x01);
* if key B is readable in a sector trailer (conditions 000, 010, 001), key B "cannot
  serve for authentication": the authentication itself goes through, but the card
  refuses every memory access that follows (data sheet section 8.7.2);
* block 0 (manufacturer block) is read-only;
* a sector whose access bits are inconsistent is blocked for good: every
  authentication to it fails.

Model choices where the data sheet is silent: a trailer write stores only the parts
(key A; access bits + GPB; key B) that the key may write and keeps the others, and
is NAKed only when no part is writable; a refused operation halts the card.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from protocol import access, mifare


class CardAccessError(Exception):
    """The card refused a read or write (it answered with a NAK)."""


class CardHalted(CardAccessError):
    """The card is halted and does not answer at all (a reader sees a timeout)."""


def _bcc(uid: bytes) -> int:
    """The UID check byte: xor of the UID bytes."""
    x = 0
    for b in uid:
        x ^= b
    return x


class MifareClassic1K:
    """64 blocks of 16 bytes, plus the field state (halted, authenticated sector)."""

    atqa = b"\x00\x04"
    sak = 0x08

    def __init__(self, uid: bytes, blocks: list[bytes]) -> None:
        if len(uid) != 4:
            raise ValueError("a MIFARE Classic 1K here has a 4-byte UID")
        if len(blocks) != mifare.BLOCKS or any(len(b) != mifare.BLOCK_SIZE for b in blocks):
            raise ValueError("need 64 blocks of 16 bytes")
        self.uid = bytes(uid)
        self.blocks = [bytes(b) for b in blocks]
        self.halted = False
        self.auth_sector: int | None = None
        self.auth_key_type: str | None = None
        # Set after a key B authentication while key B is readable: access is refused.
        self._key_b_refused = False

    @classmethod
    def blank(cls, uid: bytes) -> MifareClassic1K:
        """A card as shipped: default keys, transport access bits, zeroed data."""
        if len(uid) != 4:
            raise ValueError("a MIFARE Classic 1K here has a 4-byte UID")
        # Block 0: UID, BCC, SAK, ATQA (low byte first), manufacturer data.
        block0 = bytes(uid) + bytes([_bcc(uid), cls.sak]) + cls.atqa[::-1] + bytes(range(0x62, 0x6A))
        trailer = mifare.make_trailer(mifare.DEFAULT_KEY, mifare.TRANSPORT_ACCESS, mifare.TRANSPORT_GPB, mifare.DEFAULT_KEY)
        blocks = []
        for block in range(mifare.BLOCKS):
            if block == 0:
                blocks.append(block0)
            elif mifare.is_trailer(block):
                blocks.append(trailer)
            else:
                blocks.append(bytes(mifare.BLOCK_SIZE))
        return cls(uid, blocks)

    # -- field state -------------------------------------------------------------

    def reset(self) -> None:
        """Field off or re-select: drop authentication and wake a halted card."""
        self.halted = False
        self._drop_auth()

    def halt(self) -> None:
        """Stop answering until reset(), as after a failed authentication or a NAK."""
        self.halted = True
        self._drop_auth()

    def _drop_auth(self) -> None:
        """Forget the authenticated sector."""
        self.auth_sector = None
        self.auth_key_type = None
        self._key_b_refused = False

    # -- access bits ---------------------------------------------------------------

    def _conditions(self, sector: int) -> list[tuple[int, int, int]] | None:
        """The sector's access conditions, or None when the access bits are inconsistent."""
        trailer = self.blocks[mifare.trailer_of(sector)]
        try:
            return access.decode_access_bits(trailer[6:9])
        except ValueError:
            return None

    def _nak(self, why: str) -> CardAccessError:
        """Halt (the card leaves the authenticated state) and build the error to raise."""
        self.halt()
        return CardAccessError(why)

    def _check_session(self, block: int) -> list[tuple[int, int, int]]:
        """The conditions of block's sector if the current authentication covers it."""
        if self.halted:
            raise CardHalted("card is halted")
        sector = mifare.sector_of(block)
        if self.auth_sector != sector:
            raise self._nak(f"not authenticated for sector {sector}")
        if self._key_b_refused:
            raise self._nak(f"key B is readable in sector {sector}: access refused")
        conds = self._conditions(sector)
        if conds is None:
            raise self._nak(f"sector {sector} is blocked (inconsistent access bits)")
        return conds

    # -- commands ------------------------------------------------------------------

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> bool:
        """Three-pass authentication of block's sector; False halts the card."""
        if key_type not in ("A", "B"):
            raise ValueError("key_type must be 'A' or 'B'")
        sector = mifare.sector_of(block)
        if self.halted:
            return False
        trailer = self.blocks[mifare.trailer_of(sector)]
        expected = trailer[0:6] if key_type == "A" else trailer[10:16]
        conds = self._conditions(sector)
        if bytes(key) != expected or bytes(uid) != self.uid or conds is None:
            self.halt()
            return False
        self.auth_sector = sector
        self.auth_key_type = key_type
        self._key_b_refused = key_type == "B" and access.key_b_readable(conds[3])
        return True

    def read_block(self, block: int) -> bytes:
        """16 bytes; a trailer reads with key A (and key B unless readable) as zeros."""
        conds = self._check_session(block)
        key = self.auth_key_type or "A"
        data = self.blocks[block]
        slot = block % mifare.BLOCKS_PER_SECTOR
        if not mifare.is_trailer(block):
            if not access.data_allowed(conds[slot], "read", key):
                raise self._nak(f"read of block {block} refused")
            return data
        cond = conds[3]
        zero6 = bytes(6)
        bits = data[6:10] if access.trailer_allowed(cond, "access", "read", key) else bytes(4)
        key_b = data[10:16] if access.trailer_allowed(cond, "key_b", "read", key) else zero6
        return zero6 + bits + key_b

    def check_write(self, block: int) -> None:
        """Raise CardAccessError if a write to block would be refused now."""
        if block == 0:
            self._check_session(block)
            raise self._nak("block 0 is read-only")
        conds = self._check_session(block)
        key = self.auth_key_type or "A"
        if not mifare.is_trailer(block):
            if not access.data_allowed(conds[block % mifare.BLOCKS_PER_SECTOR], "write", key):
                raise self._nak(f"write of block {block} refused")
            return
        if not any(access.trailer_allowed(conds[3], part, "write", key) for part in ("key_a", "access", "key_b")):
            raise self._nak(f"write of trailer {block} refused")

    def _merged(self, block: int, data: bytes) -> bytes:
        """What block holds after writing data: trailer parts the key may not write stay."""
        if not mifare.is_trailer(block):
            return bytes(data)
        cond = self._conditions(mifare.sector_of(block))
        assert cond is not None  # check_write ran first
        key = self.auth_key_type or "A"
        old = self.blocks[block]
        # Bytes 0-5 key A, 6-9 access bits and GPB, 10-15 key B.
        spans = (("key_a", 0, 6), ("access", 6, 10), ("key_b", 10, 16))
        out = bytearray(old)
        for part, start, end in spans:
            if access.trailer_allowed(cond[3], part, "write", key):
                out[start:end] = data[start:end]
        return bytes(out)

    def write_block(self, block: int, data: bytes) -> None:
        """Write 16 bytes, honouring the access bits of the authenticated sector."""
        if len(data) != mifare.BLOCK_SIZE:
            raise ValueError("a block is 16 bytes")
        self.check_write(block)
        self.blocks[block] = self._merged(block, data)

    def write_torn(self, block: int, data: bytes, n_bytes: int, rng: random.Random | None = None) -> None:
        """A write cut by power loss: the first n_bytes are new, the rest old (or random with rng).

        The access checks run as for write_block (a refused write tears nothing).
        Keeping the old tail by default makes power-cut tests reproducible; pass rng to
        model EEPROM cells left in an undefined state instead.
        """
        if len(data) != mifare.BLOCK_SIZE:
            raise ValueError("a block is 16 bytes")
        if not 0 <= n_bytes <= mifare.BLOCK_SIZE:
            raise ValueError("n_bytes must be 0..16")
        self.check_write(block)
        merged = self._merged(block, data)
        old = self.blocks[block]
        tail = old[n_bytes:] if rng is None else bytes(rng.randrange(256) for _ in range(16 - n_bytes))
        self.blocks[block] = merged[:n_bytes] + tail

    # -- persistence ---------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The card's memory as JSON-ready data (the field state is not saved)."""
        return {"uid": self.uid.hex(), "blocks": [b.hex() for b in self.blocks]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MifareClassic1K:
        """A card from to_json() output."""
        return cls(bytes.fromhex(d["uid"]), [bytes.fromhex(h) for h in d["blocks"]])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the card to a JSON file."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MifareClassic1K:
        """Read a card saved with save()."""
        with open(path, encoding="utf-8") as f:
            return cls.from_json(json.load(f))

    def __repr__(self) -> str:
        return f"MifareClassic1K(uid={self.uid.hex()})"
