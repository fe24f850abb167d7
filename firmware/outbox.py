"""The outbox: the journal's records that the hub has not acknowledged yet.

It keeps a send cursor (the last seq handed out and where the next record
starts), so sending a long backlog reads the journal once, not once per batch.
"""

from protocol.sync import MAX_BATCH


class Outbox:
    """A view over the journal; deleting happens only through acknowledge()."""

    def __init__(self, journal, on_synced=None):
        self.journal = journal
        self.on_synced = on_synced  # () -> None: the hub has every record
        self.sent_seq = journal.acked
        self._offset = journal.acked_offset
        self._generation = journal.generation

    def batch(self, max_bytes: int = MAX_BATCH) -> list:
        """The oldest unacknowledged (seq, bytes), as many as fit in max_bytes (at least one)."""
        return self._collect(self.journal.acked, self.journal.acked_offset, max_bytes)[0]

    def next_batch(self, max_bytes: int = MAX_BATCH) -> list:
        """The next records not sent yet, and move the send cursor past them."""
        if self._generation != self.journal.generation:
            # Compaction moved the records: find the cursor's place again.
            self._generation = self.journal.generation
            self._offset = self.journal.offset_after(self.sent_seq)
        if self.sent_seq < self.journal.acked:
            self.rewind()
        out, offset = self._collect(self.sent_seq, self._offset, max_bytes)
        if out:
            self.sent_seq = out[-1][0]
            self._offset = offset
        return out

    def _collect(self, after_seq: int, offset: int, max_bytes: int) -> tuple:
        out = []  # type: list[tuple[int, bytes]]
        used = 0
        for seq, data, next_offset in self.journal.entries_from(offset):
            if seq <= after_seq:
                offset = next_offset
                continue
            if out and used + len(data) + 2 > max_bytes:
                break
            out.append((seq, data))
            used += len(data) + 2
            offset = next_offset
        return out, offset

    def rewind(self) -> None:
        """Send again everything after the acknowledged seq (no ack came for a while)."""
        self.sent_seq = self.journal.acked
        self._offset = self.journal.acked_offset
        self._generation = self.journal.generation

    def unsent(self) -> bool:
        return self.sent_seq < self.journal.next_seq - 1

    def backlog(self) -> int:
        """How many records wait for the hub."""
        return self.journal.next_seq - 1 - self.journal.acked

    def acknowledge(self, seq: int) -> None:
        """The hub committed every record up to seq (a cumulative acknowledgement)."""
        self.journal.acknowledge(seq)
        if self.on_synced is not None and seq >= self.journal.next_seq - 1:
            self.on_synced()
