"""Shared, sans-IO rules of the product: runs unchanged on MicroPython and CPython.

Whatever must give the same answer on a handheld and on the hub (a price, a
discount, points, a card MAC, a record's bytes) is computed here, once.
"""

PROTOCOL_VERSION = 1
