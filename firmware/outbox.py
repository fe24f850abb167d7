"""The outbox: the journal's records that the hub has not acknowledged yet."""

MAX_BATCH_BYTES = 1024  # one MQTT message stays about 1 KiB


class Outbox:
    """A view over the journal; deleting happens only through acknowledge()."""

    def __init__(self, journal):
        self.journal = journal

    def batch(self, max_bytes: int = MAX_BATCH_BYTES) -> list:
        """The oldest unacknowledged (seq, bytes), as many as fit in max_bytes (at least one)."""
        out = []  # type: list[tuple[int, bytes]]
        used = 0
        for seq, data in self.journal.entries(self.journal.acked):
            if out and used + len(data) > max_bytes:
                break
            out.append((seq, data))
            used += len(data)
        return out

    def backlog(self) -> int:
        """How many records wait for the hub."""
        return self.journal.next_seq - 1 - self.journal.acked

    def acknowledge(self, seq: int) -> None:
        """The hub committed every record up to seq (a cumulative acknowledgement)."""
        self.journal.acknowledge(seq)
