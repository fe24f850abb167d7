"""What the card service needs from a contactless reader, and the errors it raises.

A reader selects one ISO 14443-A card and runs MIFARE Classic commands on it. The
PN532 on the handheld implements this; the HQ desk reader will too.
"""


class ReaderError(Exception):
    """The reader or the card did not do what was asked."""


class ReaderTimeout(ReaderError):
    """The reader did not answer in time (unplugged, powered off, wedged)."""


class ReaderProtocolError(ReaderError):
    """The reader answered with bytes that are not a valid frame (noise, garbage)."""


class AuthFailed(ReaderError):
    """The card refused the key: wrong key, or a card of another system."""


class CardLost(ReaderError):
    """The card stopped answering (pulled away mid-transaction)."""


class Reader:
    """The interface; the PN532 driver is one implementation."""

    def start(self) -> None:
        """Wake the reader and configure it so select() answers promptly."""
        raise NotImplementedError

    def select(self) -> bytes | None:
        """Select a card in the field; its UID, or None when there is none."""
        raise NotImplementedError

    def authenticate(self, block: int, key_type: str, key: bytes, uid: bytes) -> None:
        """MIFARE Classic authentication of block's sector with key 'A' or 'B'.

        After AuthFailed the card is halted: select() again before the next try.
        """
        raise NotImplementedError

    def read_block(self, block: int) -> bytes:
        """16 bytes of an authenticated sector's block."""
        raise NotImplementedError

    def write_block(self, block: int, data: bytes) -> None:
        """Write 16 bytes to an authenticated sector's block."""
        raise NotImplementedError
