"""Card numbers with a Luhn check digit: batches of them, and typos caught."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import cardno


@pytest.mark.parametrize("body, digit", [("7992739871", "3"), ("411111111111111", "1"), ("400000000000000", "2")])
def test_known_luhn_check_digits(body, digit):
    # 79927398713 is the textbook example; 4111 1111 1111 1111 and 4000 0000 0000 0002 are well-known test numbers.
    assert cardno.luhn_digit(body) == digit


def test_a_batch_is_sequential_and_valid():
    numbers = cardno.batch("9000", 41, 3)
    assert [n[:-1] for n in numbers] == ["900000000000041", "900000000000042", "900000000000043"]
    assert all(cardno.is_valid(n) and len(n) == 16 for n in numbers)


@given(prefix=st.from_regex(r"[1-9][0-9]{0,5}", fullmatch=True), serial=st.integers(0, 10**8 - 1),
       position=st.integers(0, 15), delta=st.integers(1, 9))
def test_any_single_digit_typo_is_caught(prefix, serial, position, delta):
    number = cardno.make(prefix, serial)
    typo = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert cardno.is_valid(number) and not cardno.is_valid(typo)


@pytest.mark.parametrize("prefix, serial", [("", 1), ("12a", 1), ("9" * 15, 1), ("9000", 10**11), ("9000", -1)])
def test_numbers_that_do_not_fit_are_refused(prefix, serial):
    with pytest.raises(ValueError):
        cardno.make(prefix, serial)


@pytest.mark.parametrize("bad", ["", "4111 1111 1111 1111", "411111111111111", "4111111111111112", 4111111111111111])
def test_is_valid_refuses(bad):
    assert not cardno.is_valid(bad)
