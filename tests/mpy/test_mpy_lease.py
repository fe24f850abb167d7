"""The offline lease: its signature, its limits at the counter, counts that survive a reboot and reset at a sync."""

import json

from fakes import DirFlash
from harness import TempDir, raises
from test_mpy_sale import DEVICE, LEASE, MASTER, Handheld, member_card

from firmware import sale
from firmware.downlinks import Downlinks
from protocol import downlink as dl
from protocol.sync import SyncError

# Espresso 2.50, Cappuccino 3.20 (test_mpy_sale.PRICES); every card pays from stored value.
NOW = 1790000000 - 1790000000 % 86400 + 3600  # 01:00 of a day
TIGHT = dict(LEASE, version=1, max_sv_per_sale=640, max_sv_per_card_day=900, max_sv_offline_total=1100)


def sign(lease, master=MASTER):
    """The lease as the hub signs it (hub.lease)."""
    return dict(lease, mac=dl.lease_mac(master, lease))


def signed(lease):
    return json.dumps(sign(lease)).encode()


def sell(hh, card, entries):
    """Take the last card off the reader, then ring up a sale paid from stored value; the state it ends in."""
    hh.reader.remove()
    hh.run()
    return hh.sell(card, entries)


def back_out(hh):
    """CANCEL twice: from the confirm screen back to the items, then the sale is cancelled."""
    hh.press("CANCEL")
    hh.press("CANCEL")
    assert hh.state == sale.CANCELLED


def refused_with(hh):
    """The limit the confirm screen names ('' when the sale went through)."""
    lines = hh.display.lines
    return lines[2] if hh.state == sale.CONFIRM and lines[1] == "Network needed:" else ""


def test_a_lease_verifies_only_unchanged_and_for_its_device():
    good = sign(TIGHT)
    assert dl.decode_lease(MASTER, DEVICE, json.dumps(good)) == [1, 86400, 640, 900, 1100]
    for doc, words in (
        (dict(good, max_sv_per_sale=99999), "bad signature"),  # a limit raised after signing
        (dict(good, mac="00" * 16), "bad signature"),
        (sign(TIGHT, bytes(32)), "bad signature"),  # signed with another master key
        (sign(dict(TIGHT, device="hh-other")), "made for this device"),
        (dict(good, expires_after_s=-1), "expires_after_s must be a whole number"),
    ):
        with raises(SyncError) as err:
            dl.decode_lease(MASTER, DEVICE, json.dumps(doc))
        assert err.value.code == "bad_lease" and words in err.value.message, (doc, err.value.message)


def test_the_limits_in_order_of_the_checks():
    with TempDir() as tmp:
        held = Downlinks(DirFlash(tmp + "/flash"), MASTER, DEVICE)
        assert held.refusal("c1", 0, NOW) == ""  # no stored value: nothing to limit
        assert held.refusal("c1", 1, NOW) == "no offline lease"
        assert held.take(dl.LEASE, signed(TIGHT))
        held.synced(NOW)
        assert held.refusal("c1", 1, NOW + 86401) == "offline too long"
        assert held.refusal("c1", 1, NOW - 5) == "offline too long"  # the clock went back
        assert held.refusal("c1", 640, NOW + 86400) == ""
        assert held.refusal("c1", 641, NOW) == "card pay max 6.40"
        held.spent("c1", 300, NOW)
        assert held.refusal("c1", 601, NOW) == "card max 9.00/day"
        assert held.refusal("c1", 601, NOW + 86400) == ""  # another day for the card
        held.spent("c2", 400, NOW)
        assert held.refusal("c3", 401, NOW) == "offline max 11.00"
        held.synced(NOW + 60)
        assert held.refusal("c3", 640, NOW + 60) == ""


def test_no_lease_no_stored_value_but_cash_and_points_go_on():
    with TempDir() as tmp:
        hh = Handheld(tmp, lease=None)
        t = hh.boot()
        assert t.status()["lease"] == 0
        card = member_card(1, balance=5000, points=100)
        assert sell(hh, card, ["101"]) == sale.CONFIRM and refused_with(hh) == "no offline lease"
        assert hh.display.lines[3] == "CASH: pay cash" and hh.records("sale") == []
        hh.press("CASH")
        hh.press("OK")
        assert hh.state == sale.RECEIPT
        [record] = hh.records("sale")
        assert (record["stored_value"], record["cash"]) == (0, 250)
        assert "lease_limit" in hh.codes()


def test_a_lease_that_does_not_verify_counts_as_none():
    with TempDir() as tmp:
        hh = Handheld(tmp, lease=None)
        t = hh.boot()
        forged = dict(sign(TIGHT), max_sv_offline_total=10**9)
        assert not t.downlink(dl.topic(DEVICE, dl.LEASE), json.dumps(forged).encode())
        assert t.status()["lease"] == 0 and "bad_downlink" in hh.codes()
        assert sell(hh, member_card(1), ["101"]) == sale.CONFIRM and refused_with(hh) == "no offline lease"
        # A lease file changed on flash no longer verifies at boot either.
        assert t.downlink(dl.topic(DEVICE, dl.LEASE), signed(TIGHT)) and t.status()["lease"] == 1
        hh.flash.put("lease.json", json.dumps(forged).encode())
        assert hh.boot().status()["lease"] == 0


def test_limits_per_sale_per_card_a_day_and_in_total():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        t = hh.boot()
        assert t.downlink(dl.topic(DEVICE, dl.LEASE), signed(TIGHT)) and t.status()["lease"] == 1
        first, second, third = member_card(1), member_card(2), member_card(3)
        assert sell(hh, first, ["3*101"]) == sale.CONFIRM and refused_with(hh) == "card pay max 6.40"  # 7.50
        back_out(hh)
        assert sell(hh, first, ["2*102"]) == sale.RECEIPT  # 6.40: the most one sale may take
        assert sell(hh, first, ["101"]) == sale.RECEIPT  # 8.90 today
        assert sell(hh, first, ["101"]) == sale.CONFIRM and refused_with(hh) == "card max 9.00/day"
        back_out(hh)
        assert sell(hh, second, ["101"]) == sale.CONFIRM and refused_with(hh) == "offline max 11.00"  # 8.90 + 2.50
        hh.press("CASH")
        hh.press("OK")
        assert hh.state == sale.RECEIPT  # cash is not limited
        # The counts outlive a reboot: they come from the sales the hub has not acknowledged.
        hh.boot()
        assert sell(hh, third, ["101"]) == sale.CONFIRM and refused_with(hh) == "offline max 11.00"
        back_out(hh)
        # A sync (every record acknowledged) starts the counts again.
        journal = hh.terminal.journal
        hh.terminal.outbox.acknowledge(journal.next_seq - 1)
        assert sell(hh, third, ["101"]) == sale.RECEIPT
        assert sell(hh, first, ["2*102"]) == sale.RECEIPT


def test_the_lease_runs_out_without_a_sync_and_a_sync_renews_it():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        t = hh.boot()
        t.downlink(dl.topic(DEVICE, dl.LEASE), signed(dict(TIGHT, expires_after_s=3600)))
        card = member_card(1)
        hh.clock.advance(10 * 86400 * 1000)  # never synced: no time to count from, only the amounts hold
        assert sell(hh, card, ["101"]) == sale.RECEIPT
        t.outbox.acknowledge(t.journal.next_seq - 1)  # the hub has everything: the hour starts
        hh.clock.advance(3601 * 1000)
        assert sell(hh, card, ["101"]) == sale.CONFIRM and refused_with(hh) == "offline too long"
        back_out(hh)
        hh.boot()  # a reboot does not renew it
        assert sell(hh, card, ["101"]) == sale.CONFIRM and refused_with(hh) == "offline too long"
        back_out(hh)
        hh.terminal.outbox.acknowledge(hh.terminal.journal.next_seq - 1)
        assert sell(hh, card, ["101"]) == sale.RECEIPT
        hh.boot()  # the sync time is on flash
        assert sell(hh, card, ["101"]) == sale.RECEIPT


def test_an_older_lease_does_not_replace_a_newer_one():
    with TempDir() as tmp:
        hh = Handheld(tmp)
        t = hh.boot()
        assert t.downlink(dl.topic(DEVICE, dl.LEASE), signed(dict(TIGHT, version=4)))
        assert not t.downlink(dl.topic(DEVICE, dl.LEASE), signed(dict(LEASE, version=3)))
        assert t.status()["lease"] == 4 and hh.boot().status()["lease"] == 4
