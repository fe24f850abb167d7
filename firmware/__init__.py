"""Handheld firmware: MicroPython for an ESP32-class member-card terminal."""
