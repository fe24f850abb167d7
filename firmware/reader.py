"""The errors a contactless reader raises (its interface is firmware.hal.Reader).

A reader selects one ISO 14443-A card and runs MIFARE Classic commands on it. The
PN532 on the handheld implements it; the HQ desk reader does too.
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
