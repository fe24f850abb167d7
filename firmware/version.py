"""The firmware's version, reported in every sale record."""

FIRMWARE_VERSION = "0.1.0"
