"""The sale lifecycle table and the pure decisions of the sale flow."""

import pytest

from firmware import sale


def table() -> dict[str, dict[str, str]]:
    """sale.TRANSITIONS read back: state -> {event: next state}."""
    lines = sale.TRANSITIONS.strip().splitlines()
    return {line.split()[0]: dict(e.split(":") for e in line.split()[1:]) for line in lines}


def test_every_state_in_the_table_can_be_left_and_reached():
    transitions = table()
    targets = {t for events in transitions.values() for t in events.values()}
    assert set(transitions) == targets | {sale.IDLE}
    assert all(transitions[s] for s in transitions)
    assert all(sale.next_state(s, e) == t for s in transitions for e, t in transitions[s].items())


def test_the_happy_path_follows_the_issue():
    state = sale.IDLE
    path = [state]
    for event in ("card", "read_ok", "add", "ok", "written", "journaled", "printed", "done"):
        state = sale.next_state(state, event)
        path.append(state)
    assert path == ["idle", "card_read", "items", "items", "confirm", "card_written", "journaled", "receipt", "idle"]


@pytest.mark.parametrize("state, event", [("idle", "ok"), ("items", "written"), ("card_written", "cancel"), ("nowhere", "card")])
def test_events_a_state_does_not_take_are_refused(state, event):
    with pytest.raises(ValueError, match="not allowed in state"):
        sale.next_state(state, event)


@pytest.mark.parametrize("entry, parsed", [("101", (101, 1)), ("3*101", (101, 3)), ("0*5", (5, 0))])
def test_parse_entry(entry, parsed):
    assert sale.parse_entry(entry) == parsed


@pytest.mark.parametrize("entry", ["", "*", "3*", "*101", "1*2*3"])
def test_parse_entry_refuses_malformed(entry):
    with pytest.raises(ValueError):
        sale.parse_entry(entry)


def test_add_line_merges_repeats():
    assert sale.add_line([(1, 1), (2, 1)], 1, 2) == [(1, 3), (2, 1)]
    assert sale.add_line([], 5, 1) == [(5, 1)]


PENDING = {"counter_before": 4, "counter_after": 5}


def card(a, b):
    newest = max([c for c in (a, b) if c], key=lambda c: c["counter"])
    return {"copies": {"A": a, "B": b}, "purse": newest}


def copy(counter, tag):
    return {"counter": counter, "balance": 0, "points": 0, "tag": tag}


def test_resolve_write_landed():
    assert sale.resolve(PENDING, card(copy(4, 1), copy(5, 99)), 99) == "committed"


def test_resolve_write_lost_or_torn():
    assert sale.resolve(PENDING, card(copy(4, 1), None), 99) == "voided"


def test_resolve_card_used_elsewhere_once_after_our_write():
    assert sale.resolve(PENDING, card(copy(6, 7), copy(5, 99)), 99) == "committed"


def test_resolve_card_used_elsewhere_instead():
    # Another device wrote counter 5 with its own tag: ours never landed.
    assert sale.resolve(PENDING, card(copy(4, 1), copy(5, 42)), 99) == "voided"


def test_resolve_card_moved_on_twice_is_left_to_the_hub():
    assert sale.resolve(PENDING, card(copy(6, 1), copy(7, 42)), 99) is None
