"""The journal and its recovery, the outbox: on a folder, and on littlefs where MicroPython has it."""

from fakes import PowerCut, flash_kinds
from harness import TempDir, raises

from firmware.journal import COMPACT_MIN, JOURNAL, STATE, Journal
from firmware.outbox import Outbox
from protocol import record as rec


def event(code="x"):
    return {"kind": "event", "code": code, "message": "m", "uid": ""}


def sale(n=0):
    return {
        "kind": "sale",
        "card_no": "9000000000000001",
        "uid": "01020304",
        "counter_before": n,
        "counter_after": n + 1,
        "member_id": 1,
        "tier": 0,
        "discount_bps": 0,
        "price_list_version": 1,
        "firmware": "t",
        "lines": [{"item": 1, "qty": 1, "price": 100}],
        "subtotal": 100,
        "discount": 0,
        "total": 100,
        "points_redeemed": 0,
        "points_value": 0,
        "stored_value": 100,
        "cash": 0,
        "points_earned": 1,
        "balance_after": 0,
        "points_after": 1,
    }


def outcome(ref):
    return {"kind": "outcome", "ref": ref, "result": "committed", "reason": ""}


def opened(flash):
    journal = Journal(flash, "hh-mpy")
    return journal, journal.open()


def each_flash(check):
    """Run check(flash, kind) on every kind of flash this interpreter has."""
    with TempDir() as tmp:
        for kind, flash in flash_kinds(tmp):
            try:
                check(flash)
            except AssertionError as exc:
                raise AssertionError("on %s flash: %s" % (kind, exc))


def test_append_and_reopen():
    def check(flash):
        journal, notes = opened(flash)
        assert notes == []
        for i in range(5):
            journal.append(event(str(i)), 100 + i)
        again, notes = opened(flash)
        assert notes == []
        assert [(r["seq"], r["code"], r["time"]) for r in again.records()] == [(i + 1, str(i), 100 + i) for i in range(5)]
        assert again.next_seq == 6 and again.end == flash.size(JOURNAL)

    each_flash(check)


def test_power_cut_during_append():
    for mode in ("before", "torn", "after"):

        def check(flash, mode=mode):
            journal, _ = opened(flash)
            journal.append(event("a"), 1)
            flash.arm(0, mode)
            with raises(PowerCut):
                journal.append(event("b"), 2)
            again, notes = opened(flash)
            codes = [r["code"] for r in again.records()]
            if mode == "after":
                assert codes == ["a", "b"] and notes == [], (mode, codes, notes)
            else:
                assert codes == ["a"], (mode, codes)
                assert [n[0] for n in notes] == (["journal_torn_tail"] if mode == "torn" else []), (mode, notes)
            again.append(event("c"), 3)
            seqs = [r["seq"] for r in again.records()]
            assert seqs == list(range(1, len(seqs) + 1)), (mode, seqs)

        each_flash(check)


def test_every_torn_length_drops_only_the_last_record():
    def check(flash):
        journal, _ = opened(flash)
        for i in range(3):
            journal.append(event(str(i)), i)
        whole = flash.raw(JOURNAL)
        last = [d for _s, d in journal.entries(2)][0]
        without_last = len(whole) - (3 + len(last))
        for cut in range(without_last + 1, len(whole)):
            flash.put(JOURNAL, whole[:cut])
            again, notes = opened(flash)
            assert [r["code"] for r in again.records()] == ["0", "1"], cut
            assert notes and notes[0][0] == "journal_torn_tail", (cut, notes)
            assert flash.size(JOURNAL) == without_last, cut
            assert again.append(event("next"), 9)["seq"] == 3, cut

    each_flash(check)


def test_damage_in_the_middle_keeps_the_records_behind_it():
    def check(flash):
        journal, _ = opened(flash)
        for i in range(4):
            journal.append(event(str(i)), i)
        data = bytearray(flash.raw(JOURNAL))
        data[30] ^= 0xFF  # inside the second record
        flash.put(JOURNAL, bytes(data))
        again, notes = opened(flash)
        assert [n[0] for n in notes] == ["journal_damaged"], notes
        assert [r["code"] for r in again.records()] == ["0", "2", "3"]
        assert flash.raw(JOURNAL + ".damaged") == bytes(data)
        assert again.next_seq == 5
        third, notes = opened(flash)  # the repair is on flash: nothing more to repair
        assert notes == [] and [r["code"] for r in third.records()] == ["0", "2", "3"]

    each_flash(check)


def test_power_cut_during_the_repair_itself():
    def check(flash):
        journal, _ = opened(flash)
        for i in range(3):
            journal.append(event(str(i)), i)
        whole = flash.raw(JOURNAL)
        for mode in ("before", "after"):
            flash.put(JOURNAL, whole[:-5])
            flash.arm(0, mode)
            try:
                opened(flash)
            except PowerCut:
                pass
            flash.disarm()
            again, _ = opened(flash)
            assert [r["code"] for r in again.records()] == ["0", "1"], mode

    each_flash(check)


def test_pending_sales_survive_a_reboot_until_their_outcome():
    def check(flash):
        journal, _ = opened(flash)
        journal.append(sale(0), 1)  # seq 1
        journal.append(sale(1), 2)  # seq 2
        journal.append(outcome(1), 3)
        again, _ = opened(flash)
        assert sorted(again.pending_sales) == [2]
        assert again.pending_sales[2]["counter_after"] == 2

    each_flash(check)


def test_seq_never_repeats_after_compacting_everything():
    def check(flash):
        journal, _ = opened(flash)
        for _ in range(3):
            journal.append(event(), 0)
        Outbox(journal).acknowledge(3)
        journal.compact()
        assert list(journal.records()) == [] and flash.raw(STATE)
        again, _ = opened(flash)
        assert again.append(event(), 0)["seq"] == 4

    each_flash(check)


def test_compaction_keeps_pending_sales():
    def check(flash):
        journal, _ = opened(flash)
        journal.append(sale(), 0)  # seq 1, no outcome yet
        journal.append(event(), 0)
        journal.acknowledge(2)
        journal.compact()
        again, _ = opened(flash)
        assert [r["seq"] for r in again.records()] == [1]
        assert 1 in again.pending_sales and again.next_seq == 3

    each_flash(check)


def test_a_record_too_long_is_refused_before_it_reaches_flash():
    def check(flash):
        journal, _ = opened(flash)
        big = sale()
        big["lines"] = [{"item": i + 1, "qty": 1, "price": 1} for i in range(120)]
        with raises(rec.RecordError) as caught:
            journal.append(big, 0)
        assert getattr(caught.value, "code", None) == "too_long"
        assert flash.size(JOURNAL) <= 0 and journal.next_seq == 1

    each_flash(check)


def test_outbox_batches_and_acknowledges():
    def check(flash):
        journal, _ = opened(flash)
        for i in range(20):
            journal.append(sale(i), 0)
        outbox = Outbox(journal)
        batch = outbox.batch(400)
        assert [seq for seq, _ in batch] == [1, 2, 3]
        assert sum([len(d) for _, d in batch]) <= 400
        outbox.acknowledge(3)
        assert outbox.backlog() == 17
        assert outbox.batch(400)[0][0] == 4
        with raises(ValueError):
            outbox.acknowledge(99)

    each_flash(check)


def test_send_cursor_walks_a_backlog_once_and_survives_compaction():
    def check(flash):
        journal, _ = opened(flash)
        for i in range(200):
            journal.append(event(str(i)), 0)
        outbox = Outbox(journal)
        sent = []
        while outbox.unsent():
            batch = outbox.next_batch(1024)
            assert 0 < sum([len(d) + 2 for _, d in batch]) <= 1024
            sent += [seq for seq, _ in batch]
            outbox.acknowledge(batch[-1][0])  # the hub keeps up
        assert sent == list(range(1, 201))
        assert journal.generation > 1  # compaction ran along the way...
        assert flash.size(JOURNAL) < COMPACT_MIN + 1024  # ...and kept the file small
        again, _ = opened(flash)
        assert again.next_seq == 201 and all([r["seq"] > 100 for r in again.records()])

    each_flash(check)


def test_rewind_resends_what_was_not_acknowledged():
    def check(flash):
        journal, _ = opened(flash)
        for i in range(10):
            journal.append(sale(i), 0)
        outbox = Outbox(journal)
        first = outbox.next_batch(400)
        outbox.next_batch(400)
        outbox.acknowledge(first[-1][0])
        outbox.rewind()
        assert outbox.next_batch(400)[0][0] == first[-1][0] + 1

    each_flash(check)
