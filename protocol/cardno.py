"""Card numbers: 16 decimal digits, the last one a Luhn check digit (ISO/IEC 7812), like payment cards.

A mistyped digit, or two swapped neighbours, gives a number that fails the check.
"""

LENGTH = 16


def luhn_digit(body: str) -> str:
    """The check digit that makes body + digit pass the Luhn check."""
    if not body.isdigit():
        raise ValueError("card number digits expected, got %r" % (body,))
    total = 0
    double = True  # the rightmost body digit is doubled: the check digit goes to its right
    for ch in reversed(body):
        d = ord(ch) - 48
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return str((10 - total % 10) % 10)


def is_valid(card_no: str) -> bool:
    """16 digits whose last is the Luhn check digit of the others."""
    return (
        isinstance(card_no, str)
        and len(card_no) == LENGTH
        and card_no.isdigit()
        and luhn_digit(card_no[:-1]) == card_no[-1]
    )


def make(prefix: str, serial: int) -> str:
    """prefix, serial zero-padded to fill the number, check digit; ValueError when it does not fit."""
    width = LENGTH - 1 - len(prefix)
    if not prefix.isdigit() or width < 1:
        raise ValueError("prefix must be 1 to %d digits, got %r" % (LENGTH - 2, prefix))
    if serial < 0 or serial >= 10**width:
        raise ValueError("serial %d does not fit in %d digits after prefix %s" % (serial, width, prefix))
    body = prefix + "%0*d" % (width, serial)
    return body + luhn_digit(body)


def batch(prefix: str, start: int, count: int) -> list:
    """count sequential card numbers from serial start."""
    if count < 1:
        raise ValueError("a batch holds at least one card number")
    return [make(prefix, start + i) for i in range(count)]
