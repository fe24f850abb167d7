"""A card reader wired straight to a virtual card: the HQ desk's own code (hub.issuance) without PC/SC.

For scenarios that issue many cards and want it fast; the PC/SC path itself is what
`sim desk-reader` and the hq-cards scenario exercise.
"""

from __future__ import annotations

from firmware.hal import Reader
from firmware.reader import AuthFailed, CardLost, ReaderError
from simulator.mifare_card import CardAccessError, CardHalted, MifareClassic1K


class DirectReader(Reader):
    """A reader with at most one virtual card in its field (insert / remove)."""

    def __init__(self) -> None:
        self.card: MifareClassic1K | None = None

    def insert(self, card: MifareClassic1K) -> None:
        card.reset()
        self.card = card

    def remove(self) -> None:
        self.card = None

    def _present(self) -> MifareClassic1K:
        if self.card is None:
            raise CardLost("no card in the field")
        return self.card

    def start(self) -> None:
        pass

    def select(self) -> bytes | None:
        if self.card is None:
            return None
        self.card.reset()
        return self.card.uid

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> None:
        if not self._present().authenticate(block, key_type, key, uid):
            raise AuthFailed(f"key {key_type} refused for block {block}")

    def read_block(self, block: int) -> bytes:
        try:
            return self._present().read_block(block)
        except CardHalted as exc:
            raise CardLost(str(exc)) from exc
        except CardAccessError as exc:
            raise ReaderError(str(exc)) from exc

    def write_block(self, block: int, data: bytes) -> None:
        try:
            self._present().write_block(block, data)
        except CardHalted as exc:
            raise CardLost(str(exc)) from exc
        except CardAccessError as exc:
            raise ReaderError(str(exc)) from exc
