"""The crash-safe journal: every record the handheld makes, append-only on flash.

Each entry is framed as 0xA5, a 16-bit length, then the record (which carries
its own CRC-32). A power cut can tear only the last append; opening the journal
drops such a torn tail and nothing else. Sequence numbers come from the journal
itself and from the acknowledged seq kept in STATE, so they never repeat, even
after compaction has removed every record.
"""

import json

from protocol import record as rec

JOURNAL = "journal.bin"
STATE = "journal.json"
MAGIC = 0xA5
FRAME = 3  # magic + 16-bit length
MAX_RECORD = 1024
COPY_CHUNK = 1024  # compaction copies this much at a time: RAM stays small on a board
COMPACT_MIN = 4096  # compact once at least this many acknowledged bytes lead the file...
# ...and they are at least half of it: each byte is then rewritten O(1) times on average.


def _seq_at(buf: bytes, i: int) -> int:
    """The record seq stored big-endian at buf[i:i + 4] (bytes 2-5 of a record)."""
    return (buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) | buf[i + 3]


def frame(data: bytes) -> bytes:
    """One journal entry around an encoded record."""
    return bytes([MAGIC, len(data) >> 8, len(data) & 0xFF]) + data


class Journal:
    """Append records, list what is not yet acknowledged, compact what is."""

    def __init__(self, flash, device_id: str):
        self.flash = flash
        self.device_id = device_id
        self.next_seq = 1
        self.acked = 0
        self.end = 0  # byte length of the valid journal
        self.acked_offset = 0  # where the first record after the acknowledged ones starts
        self.generation = 0  # bumped when compaction moves records (offsets change)
        self.pending_sales = {}  # type: dict[int, dict]  # sales and card actions without an outcome yet
        self.bytes_written = 0

    def open(self) -> list:
        """Scan and repair the journal after boot; the recovery notes, for events."""
        state = self.flash.read(STATE)
        if state:
            self.acked = json.loads(state)["acked"]
        notes = []
        self.next_seq = self.acked + 1
        self.end = 0
        self.pending_sales = {}
        offset = 0
        size = max(self.flash.size(JOURNAL), 0)
        while offset < size:
            entry = self._entry_at(offset, size)
            if entry is None:
                notes += self._repair(offset, size)
                break
            record, length = entry
            self._index(record)
            offset += length
        self.end = max(self.flash.size(JOURNAL), 0)
        self.acked_offset = self.offset_after(self.acked)
        self.generation += 1
        return notes

    def _entry_at(self, offset: int, size: int):
        head = self.flash.read(JOURNAL, offset, FRAME)
        if not head or len(head) < FRAME or head[0] != MAGIC:
            return None
        length = (head[1] << 8) | head[2]
        if length > MAX_RECORD or offset + FRAME + length > size:
            return None
        try:
            record = rec.decode(self.flash.read(JOURNAL, offset + FRAME, length))
        except rec.RecordError:
            return None
        return record, FRAME + length

    def _repair(self, bad: int, size: int) -> list:
        """Drop a torn tail; set aside (never drop) records behind a damaged entry."""
        resume = self._next_valid(bad + 1, size)
        if resume < 0:
            self.flash.truncate(JOURNAL, bad)
            return [("journal_torn_tail", "dropped a torn last record (%d bytes)" % (size - bad))]
        # Mid-file damage cannot come from a power cut; keep everything readable.
        kept = self.flash.read(JOURNAL, 0, bad)
        offset = resume
        while offset < size:
            entry = self._entry_at(offset, size)
            if entry is None:
                break
            record, length = entry
            kept += self.flash.read(JOURNAL, offset, length)
            self._index(record)
            offset += length
        self.flash.replace(JOURNAL + ".damaged", self.flash.read(JOURNAL) or b"")
        self.flash.replace(JOURNAL, kept)
        return [
            (
                "journal_damaged",
                "skipped %d damaged bytes at offset %d; original kept as %s.damaged" % (resume - bad, bad, JOURNAL),
            )
        ]

    def _next_valid(self, start: int, size: int) -> int:
        for offset in range(start, size - FRAME):
            if self._entry_at(offset, size) is not None:
                return offset
        return -1

    def _index(self, record: dict) -> None:
        if record["seq"] >= self.next_seq:
            self.next_seq = record["seq"] + 1
        if record["kind"] in ("sale", "action"):  # both wait for their outcome
            self.pending_sales[record["seq"]] = record
        elif record["kind"] == "outcome":
            self.pending_sales.pop(record["ref"], None)

    def append(self, record: dict, now: int) -> dict:
        """Give record the next seq and the time, make it durable, and return it."""
        record["seq"] = self.next_seq
        record["time"] = now
        record["device"] = self.device_id
        data = rec.encode(record)
        if len(data) > MAX_RECORD:
            raise rec.RecordError("too_long", "record of %d bytes exceeds %d" % (len(data), MAX_RECORD))
        entry = frame(data)
        try:
            self.flash.append(JOURNAL, entry)
        except OSError:
            # A write error (not a power cut) may still have put all or part of it on flash.
            size = self.flash.size(JOURNAL)
            if size != self.end + len(entry):
                if size > self.end:
                    self.flash.truncate(JOURNAL, self.end)
                raise
        self.bytes_written += len(entry)
        self.end += len(entry)
        self.next_seq += 1
        self._index(record)
        return record

    def entries(self, after_seq: int = 0, offset: int = 0):
        """(seq, record bytes) of every record with seq > after_seq from offset on, oldest first."""
        for seq, data, _next in self.entries_from(offset):
            if seq > after_seq:
                yield seq, data

    def entries_from(self, offset: int):
        """(seq, record bytes, offset of the next entry) from offset on (records were verified at open)."""
        while offset < self.end:
            head = self.flash.read(JOURNAL, offset, FRAME)
            length = (head[1] << 8) | head[2]
            data = self.flash.read(JOURNAL, offset + FRAME, length)
            offset += FRAME + length
            yield _seq_at(data, 2), data, offset

    def offset_after(self, seq: int, offset: int = 0) -> int:
        """Where the first record with a seq above seq starts, scanning headers from offset."""
        while offset < self.end:
            head = self.flash.read(JOURNAL, offset, FRAME + 6)
            if _seq_at(head, FRAME + 2) > seq:
                return offset
            offset += FRAME + ((head[1] << 8) | head[2])
        return self.end

    def records(self, after_seq: int = 0):
        """Decoded records with seq > after_seq, oldest first."""
        for _seq, data in self.entries(after_seq):
            yield rec.decode(data)

    def acknowledge(self, seq: int) -> None:
        """The hub has committed everything up to seq: remember it, then compact."""
        if seq <= self.acked:
            return
        if seq >= self.next_seq:
            raise ValueError("ack %d is beyond the last record %d" % (seq, self.next_seq - 1))
        self.acked = seq
        self.acked_offset = self.offset_after(seq, self.acked_offset)
        self.flash.replace(STATE, json.dumps({"acked": seq}).encode())
        self.bytes_written += 16
        if self.acked_offset >= COMPACT_MIN and 2 * self.acked_offset >= self.end:
            self.compact()

    def compact(self) -> None:
        """Rewrite the journal without acknowledged records, keeping unresolved sales."""
        head = b"".join([frame(rec.encode(self.pending_sales[s])) for s in sorted(self.pending_sales) if s <= self.acked])
        size = len(head) + self.end - self.acked_offset
        self.flash.replace(JOURNAL, self._copy(head, self.acked_offset, self.end))
        self.bytes_written += size
        self.end = size
        self.acked_offset = len(head)
        self.generation += 1

    def _copy(self, head: bytes, start: int, end: int):
        if head:
            yield head
        while start < end:
            chunk = self.flash.read(JOURNAL, start, min(COPY_CHUNK, end - start))
            yield chunk
            start += len(chunk)
