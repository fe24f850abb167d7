"""The journal on virtual flash: append, torn tails, damage, seq that never repeats, compaction."""

import pytest

from firmware.journal import JOURNAL, Journal
from firmware.outbox import Outbox
from simulator.power import PowerCut, PowerSwitch
from simulator.vhal import SimFlash


def event(code="x"):
    return {"kind": "event", "code": code, "message": "m", "uid": ""}


def sale(seq_hint=0):
    return {
        "kind": "sale", "card_no": "9000000000000001", "uid": "01020304", "counter_before": seq_hint,
        "counter_after": seq_hint + 1, "member_id": 1, "tier": 0, "discount_bps": 0, "price_list_version": 1,
        "firmware": "t", "lines": [{"item": 1, "qty": 1, "price": 100}], "subtotal": 100, "discount": 0,
        "total": 100, "points_redeemed": 0, "points_value": 0, "stored_value": 100, "cash": 0,
        "points_earned": 1, "balance_after": 0, "points_after": 1,
    }


@pytest.fixture
def flash(tmp_path):
    return SimFlash(tmp_path, PowerSwitch())


def opened(flash):
    journal = Journal(flash, "hh-t")
    notes = journal.open()
    return journal, notes


def test_append_and_reopen(flash):
    journal, notes = opened(flash)
    assert notes == []
    for i in range(5):
        journal.append(event(str(i)), now=100 + i)
    again, notes = opened(flash)
    assert notes == []
    assert [(r["seq"], r["code"], r["time"]) for r in again.records()] == [(i + 1, str(i), 100 + i) for i in range(5)]
    assert again.next_seq == 6


@pytest.mark.parametrize("mode", ["before", "torn", "after"])
def test_power_cut_during_append(flash, mode):
    journal, _ = opened(flash)
    journal.append(event("a"), now=1)
    flash.switch.reset_count()
    flash.switch.arm(0, mode)
    with pytest.raises(PowerCut):
        journal.append(event("b"), now=2)
    flash.switch.restore()
    again, notes = opened(flash)
    codes = [r["code"] for r in again.records()]
    if mode == "after":
        assert codes == ["a", "b"] and notes == []
    else:
        assert codes == ["a"]
        assert [n[0] for n in notes] == (["journal_torn_tail"] if mode == "torn" else [])
    again.append(event("c"), now=3)
    seqs = [r["seq"] for r in again.records()]
    assert seqs == sorted(set(seqs))


def test_every_torn_length_drops_only_the_last_record(flash, tmp_path):
    journal, _ = opened(flash)
    for i in range(3):
        journal.append(event(str(i)), now=i)
    whole = (tmp_path / JOURNAL).read_bytes()
    _seq, last = next(journal.entries(2))
    size_without_last = len(whole) - (3 + len(last))
    for cut in range(size_without_last + 1, len(whole)):
        (tmp_path / JOURNAL).write_bytes(whole[:cut])
        again, notes = opened(flash)
        assert [r["code"] for r in again.records()] == ["0", "1"], cut
        assert notes and notes[0][0] == "journal_torn_tail"
        assert (tmp_path / JOURNAL).stat().st_size == size_without_last


def test_damage_in_the_middle_keeps_the_records_behind_it(flash, tmp_path):
    journal, _ = opened(flash)
    for i in range(4):
        journal.append(event(str(i)), now=i)
    data = bytearray((tmp_path / JOURNAL).read_bytes())
    data[30] ^= 0xFF  # inside the second record
    (tmp_path / JOURNAL).write_bytes(bytes(data))
    again, notes = opened(flash)
    assert [n[0] for n in notes] == ["journal_damaged"]
    assert [r["code"] for r in again.records()] == ["0", "2", "3"]
    assert (tmp_path / (JOURNAL + ".damaged")).read_bytes() == bytes(data)
    assert again.next_seq == 5


def test_seq_survives_compaction_of_everything(flash):
    journal, _ = opened(flash)
    for _ in range(3):
        journal.append(event(), now=0)
    Outbox(journal).acknowledge(3)
    journal.compact()
    assert list(journal.records()) == []
    again, _ = opened(flash)
    assert again.append(event(), now=0)["seq"] == 4


def test_outbox_batches_and_acknowledges(flash):
    journal, _ = opened(flash)
    for i in range(20):
        journal.append(sale(i), now=0)
    outbox = Outbox(journal)
    batch = outbox.batch(max_bytes=400)
    assert [seq for seq, _ in batch] == [1, 2, 3]
    assert sum(len(d) for _, d in batch) <= 400
    outbox.acknowledge(3)
    assert outbox.backlog() == 17
    assert outbox.batch(max_bytes=400)[0][0] == 4
    with pytest.raises(ValueError):
        outbox.acknowledge(99)


def test_compaction_keeps_pending_sales(flash):
    journal, _ = opened(flash)
    journal.append(sale(), now=0)  # seq 1, no outcome yet
    journal.append(event(), now=0)
    journal.acknowledge(2)
    journal.compact()
    again, _ = opened(flash)
    assert [r["seq"] for r in again.records()] == [1]
    assert 1 in again.pending_sales


def test_send_cursor_walks_a_backlog_once_and_survives_compaction(flash):
    journal, _ = opened(flash)
    for i in range(200):
        journal.append(event(str(i)), now=0)
    outbox = Outbox(journal)
    sent = []
    while outbox.unsent():
        batch = outbox.next_batch(max_bytes=1024)
        assert 0 < sum(len(d) + 2 for _, d in batch) <= 1024
        sent += [seq for seq, _ in batch]
        outbox.acknowledge(batch[-1][0])  # the hub keeps up
    assert sent == list(range(1, 201))
    assert journal.generation > 1  # compaction ran along the way...
    assert flash.size("journal.bin") < 4096 + 1024  # ...and kept the file small
    again, _ = opened(flash)
    assert again.next_seq == 201 and all(r["seq"] > 100 for r in again.records())


def test_rewind_resends_what_was_not_acknowledged(flash):
    journal, _ = opened(flash)
    for i in range(10):
        journal.append(sale(i), now=0)
    outbox = Outbox(journal)
    first = outbox.next_batch(max_bytes=400)
    outbox.next_batch(max_bytes=400)
    outbox.acknowledge(first[-1][0])
    outbox.rewind()
    assert outbox.next_batch(max_bytes=400)[0][0] == first[-1][0] + 1


def test_compaction_streams_a_big_journal_in_small_chunks(flash, monkeypatch):
    journal, _ = opened(flash)
    for i in range(400):
        journal.append(event(str(i)), now=0)
    reads: list[int] = []
    real_read = flash.read

    def counting_read(name, offset=0, size=-1):
        reads.append(size)
        return real_read(name, offset, size)

    monkeypatch.setattr(flash, "read", counting_read)
    journal.acknowledge(300)  # past half the file: compaction runs
    assert journal.generation > 1
    copy_reads = [size for size in reads if size > 16]
    assert copy_reads and max(copy_reads) <= 1024  # never the whole file at once
    monkeypatch.undo()
    again, _ = opened(flash)
    assert [r["seq"] for r in again.records()] == list(range(301, 401))


class FailingFlash(SimFlash):
    """A flash whose next append fails with an I/O error after writing some of the bytes."""

    landed: int | None = 0

    def append(self, name, data):
        if self.landed is not None:
            super().append(name, data[: self.landed] if self.landed >= 0 else data)
            self.landed = None
            raise OSError(5, "I/O error")
        super().append(name, data)


@pytest.mark.parametrize("landed", [0, 5, -1])
def test_a_failed_append_never_leaves_half_a_record_or_reuses_a_seq(tmp_path, landed):
    flash = FailingFlash(tmp_path, PowerSwitch())
    journal, _ = opened(flash)
    flash.landed = None
    journal.append(event("a"), now=0)
    flash.landed = landed
    if landed == -1:
        journal.append(event("b"), now=0)  # it all landed: the append counts
    else:
        with pytest.raises(OSError):
            journal.append(event("b"), now=0)
    journal.append(event("c"), now=0)
    again, notes = opened(flash)
    assert notes == []
    codes = [r["code"] for r in again.records()]
    assert codes == (["a", "b", "c"] if landed == -1 else ["a", "c"])
    assert [r["seq"] for r in again.records()] == sorted({r["seq"] for r in again.records()})
