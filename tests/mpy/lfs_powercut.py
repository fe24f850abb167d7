"""The journal's power cuts on littlefs v2, as the board has it (a MicroPython script).

Run by tests/test_littlefs.py: `micropython tests/mpy/lfs_powercut.py` with
MICROPYPATH=<repo root>. It prints one JSON line of figures and exits 0, or
prints FAIL lines (and the figures) and exits 1.

The volume is os.VfsLfs2 on a RAM block device with MicroPython's extended
block-device interface (readblocks/writeblocks with an offset, ioctl 6 to erase)
and 4096-byte blocks like an ESP32 partition. It behaves like NOR flash: an erase
sets a block to 0xFF, a program can only clear bits. A power cut at program
operation N: that program writes only part of its bytes (a quarter, a half or
three quarters, by N) and raises OSError(EIO), and so does every write or erase
after it. A reboot is a fresh VfsLfs2 mount of a copy of the same bytes. The
same is done at every erase operation (the erase then clears only part of the
block).

The files are written through firmware.board.BoardFlash, the board's hal.Flash:
append = open 'ab' + write + close; replace = write NAME.tmp + os.rename;
truncate = rewrite; size = os.stat. The journal is firmware.journal with
COMPACT_MIN lowered so that acknowledgements compact it during the shift.

For every cut point of the shift (journal appends of events, sales and
outcomes, and acknowledgements), after the reboot: the volume mounts;
Journal.open() succeeds (journal.json, the ack state, parses); the acked seq is
the one before the cut or the one being written; every record whose append
returned is there exactly once, unless it was acknowledged and compacted away
(an unresolved sale never is); nothing else is there but, at most, the one record
whose append was cut; the next append gets a seq above every seq handed out
before; and that append is there after one more reboot.
"""

import gc
import json
import sys
import time

import vfs

from firmware import journal as journal_module
from firmware.board import BoardFlash
from firmware.journal import Journal

BLOCK = 4096
BLOCKS = 32
MOUNT = "/lfs"
ROOT = MOUNT + "/data"
DEVICE = "hh-lfs"
EIO = 5
ERASED = b"\xff" * BLOCK
COMPACT_MIN = 256  # instead of 4096: a few acknowledgements compact the journal
MAX_FAILURES = 20


class RamFlash:
    """A RAM block device with the extended interface; cut at program cut_prog or at erase cut_erase.

    keep(n) is how many of a cut program's n bytes land (an erase cut clears part of its block).
    """

    def __init__(self, data, cut_prog=-1, cut_erase=-1, keep=None):
        self.data = data
        self.cut_prog = cut_prog
        self.cut_erase = cut_erase
        self.keep = keep or half
        self.progs = 0
        self.erases = 0
        self.dead = False
        self.retired = False
        self.overwrites = 0  # programs into bytes that were not erased (littlefs should never do that)
        self.largest_prog = 0

    def retire(self) -> None:
        """After the reboot image is taken: let files the dead mount left open close quietly.

        Their finalizers run during a garbage collection (heap locked: no allocation) and
        write to bytes nobody reads any more; without this they would print EIO tracebacks.
        """
        self.retired = True

    def readblocks(self, block, buf, offset=0):
        addr = block * BLOCK + offset
        if self.retired:
            for i in range(len(buf)):
                buf[i] = self.data[addr + i]
            return
        buf[:] = self.data[addr : addr + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # the simple interface: whole blocks, erased first
            for i in range(len(buf) // BLOCK):
                self.ioctl(6, block + i)
            offset = 0
        addr = block * BLOCK + offset
        if self.retired:
            for i in range(len(buf)):
                self.data[addr + i] = buf[i]
            return 0
        if self.dead:
            raise OSError(EIO)
        n = len(buf)
        self.largest_prog = max(self.largest_prog, n)
        index = self.progs
        self.progs += 1
        if index == self.cut_prog:
            n = self.keep(n)
            self.dead = True
        current = self.data[addr : addr + n]
        if current == ERASED[:n]:
            self.data[addr : addr + n] = buf[:n]
        else:
            self.overwrites += 1
            for i in range(n):
                self.data[addr + i] = current[i] & buf[i]
        if self.dead:
            raise OSError(EIO)
        return 0

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return len(self.data) // BLOCK
        if op == 5:  # block size
            return BLOCK
        if op == 6:  # erase
            if self.retired:
                return 0
            if self.dead:
                raise OSError(EIO)
            n = BLOCK
            index = self.erases
            self.erases += 1
            if index == self.cut_erase:
                n = self.keep(BLOCK)
                self.dead = True
            addr = arg * BLOCK
            self.data[addr : addr + n] = ERASED[:n]
            if self.dead:
                raise OSError(EIO)
            return 0
        return 0  # init, deinit, sync


def one_byte(n: int) -> int:
    return min(1, n)


def half(n: int) -> int:
    return n // 2


def all_but_one(n: int) -> int:
    return max(0, n - 1)


TORN = (("1 byte", one_byte), ("half", half), ("all but 1 byte", all_but_one))
"""How much of the cut program (or erase) lands: each cut point is tried with each."""


def unmount() -> None:
    try:
        vfs.umount(MOUNT)
    except OSError:
        pass


def mount(dev):
    """Mount dev's volume at MOUNT (littlefs checks it while mounting) and a BoardFlash on it."""
    unmount()
    vfs.mount(vfs.VfsLfs2(dev), MOUNT)
    return BoardFlash(ROOT)


def event(code: str) -> dict:
    return {"kind": "event", "code": code, "message": "event " + code, "uid": "04a1b2c3"}


def sale(n: int) -> dict:
    return {
        "kind": "sale",
        "card_no": "9000000000000042",
        "uid": "a1b2c3d4",
        "counter_before": n,
        "counter_after": n + 1,
        "member_id": 42,
        "tier": 2,
        "discount_bps": 1250,
        "price_list_version": 3,
        "firmware": "0.1.0",
        "lines": [{"item": 101, "qty": 2, "price": 250}, {"item": 103, "qty": 1, "price": 185}],
        "subtotal": 685,
        "discount": 86,
        "total": 599,
        "points_redeemed": 0,
        "points_value": 0,
        "stored_value": 599,
        "cash": 0,
        "points_earned": 11,
        "balance_after": 10000 - n,
        "points_after": 100 + n,
    }


def outcome(ref: int) -> dict:
    return {"kind": "outcome", "ref": ref, "result": "committed", "reason": ""}


def shift(online: int = 36, offline: int = 20, ack_every: int = 6) -> list:
    """The steps: ('append', record) (the k-th append gets seq k) or ('ack', seq).

    Events, sales and their outcomes; sale 5 never gets an outcome (its card was
    pulled), so every compaction must keep it. For the first `online` appends
    the hub acknowledges all but the newest record every ack_every appends. Then
    it is away for `offline` appends of long events (reader faults with a long
    message), so the journal grows past a 4 KiB block, and at last it
    acknowledges all but the newest record.
    """
    steps = []  # type: list[tuple]
    previous = None  # type: dict | None
    last = online + offline
    for seq in range(1, last + 1):
        if seq > online:
            record = event("fault%d" % seq)
            record["message"] = ("PN532 status 0x01: timeout: the target has not answered; retry %d " % seq) * 3
        elif previous is not None and previous["kind"] == "sale" and seq - 1 != 5:
            record = outcome(seq - 1)
        elif seq % 3 == 2:
            record = sale(seq)
        else:
            record = event("e%d" % seq)
        steps.append(("append", record))
        previous = record
        if (seq <= online and seq % ack_every == 0) or seq == last:
            steps.append(("ack", seq - 1))
    return steps


def play(flash, steps: list) -> dict:
    """Run the steps until one raises; what had returned, and what was cut."""
    journal = Journal(flash, DEVICE)
    journal.open()
    done = []  # records whose append returned, seq set
    acked = 0
    cut = None
    largest = 0
    now = 1790000000
    for kind, arg in steps:
        now += 1
        try:
            if kind == "append":
                record = dict(arg)
                if record["kind"] == "sale":
                    record["lines"] = [dict(line) for line in arg["lines"]]
                cut = ("append", record)
                journal.append(record, now)
                done.append(record)
            else:
                cut = ("ack", arg)
                journal.acknowledge(arg)
                acked = arg
            cut = None
        except OSError:
            break
        largest = max(largest, journal.end)
    return {"done": done, "acked": acked, "cut": cut, "generation": journal.generation, "largest": largest}


class Checker:
    """The checks after each cut, and what they saw."""

    def __init__(self):
        self.failures = []  # type: list[str]
        self.in_progress_kept = 0
        self.in_progress_lost = 0
        self.torn_tails = 0
        self.overwrites = 0

    def fail(self, where: str, why: str) -> None:
        self.failures.append(f"{where}: {why}")

    def after_reboot(self, where: str, dev, result: dict) -> None:
        """Mount the bytes the cut left (dev), open the journal, check it, append once more."""
        try:
            flash = mount(dev)
        except OSError as exc:
            self.fail(where, f"the volume does not mount: {exc!r}")
            return
        raw = flash.read(journal_module.STATE)
        if raw is not None:
            try:
                state = json.loads(raw)
            except ValueError:
                state = None
            if type(state) is not dict or type(state.get("acked")) is not int:
                self.fail(where, f"journal.json is corrupt: {raw!r}")
                flash.close()
                return
        journal = Journal(flash, DEVICE)
        try:
            notes = journal.open()
        except Exception as exc:
            self.fail(where, f"Journal.open() raised {exc!r}")
            flash.close()
            return
        self.torn_tails += len(notes)
        self.check_contents(where, journal, result)
        self.check_next_append(where, dev, flash, journal, result)

    def check_contents(self, where: str, journal, result: dict) -> None:
        done = result["done"]
        cut = result["cut"]
        allowed_acks = [result["acked"]]
        if cut is not None and cut[0] == "ack":
            allowed_acks.append(cut[1])
        if journal.acked not in allowed_acks:
            self.fail(where, f"acked is {journal.acked}, expected one of {allowed_acks}")
        present = list(journal.records())
        seqs = [r["seq"] for r in present]
        if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
            self.fail(where, f"seqs repeat or are out of order: {seqs}")
        expected = {}
        for record in done:
            expected[record["seq"]] = record
        in_progress = cut[1] if cut is not None and cut[0] == "append" else None
        for record in present:
            seq = record["seq"]
            if seq in expected:
                if record != expected[seq]:
                    self.fail(where, f"record {seq} differs from what was appended: {record}")
            elif in_progress is not None and seq == in_progress.get("seq"):
                if record != in_progress:
                    self.fail(where, f"the cut record {seq} is there, but not as appended: {record}")
            else:
                self.fail(where, f"record {seq} was never appended: {record}")
        resolved = [r["ref"] for r in done if r["kind"] == "outcome"]
        if in_progress is not None and in_progress["kind"] == "outcome" and in_progress.get("seq") in seqs:
            resolved.append(in_progress["ref"])  # the cut outcome landed after all
        for seq in expected:
            if seq in seqs:
                continue
            record = expected[seq]
            unresolved_sale = record["kind"] == "sale" and seq not in resolved
            if seq > journal.acked or unresolved_sale:
                self.fail(where, f"record {seq} ({record['kind']}) returned from append but is gone")
        for record in done:
            if record["kind"] == "sale" and record["seq"] not in resolved and record["seq"] not in journal.pending_sales:
                self.fail(where, f"unresolved sale {record['seq']} is not pending after the reboot")
        if in_progress is not None and "seq" in in_progress:
            if in_progress["seq"] in seqs:
                self.in_progress_kept += 1
            else:
                self.in_progress_lost += 1

    def check_next_append(self, where: str, dev, flash, journal, result: dict) -> None:
        handed_out = [r["seq"] for r in result["done"]] + [result["acked"]]
        try:
            record = journal.append(event("after"), 1790009999)
        except OSError as exc:
            self.fail(where, f"appending after the reboot failed: {exc!r}")
            flash.close()
            return
        if record["seq"] <= max(handed_out):
            self.fail(where, f"seq {record['seq']} repeats: seqs up to {max(handed_out)} were handed out")
        flash.close()
        try:
            flash = mount(dev)  # one more reboot, no cut this time
        except OSError as exc:
            self.fail(where, f"the volume does not mount after the recovery append: {exc!r}")
            return
        again = Journal(flash, DEVICE)
        notes = again.open()
        if notes or [r["seq"] for r in again.records()][-1:] != [record["seq"]]:
            self.fail(where, f"the recovery append is not the last record after one more reboot (notes {notes})")
        flash.close()


def base_image() -> bytes:
    """A freshly formatted volume with the data folder: what a provisioned board starts from."""
    dev = RamFlash(bytearray(ERASED * BLOCKS))
    vfs.VfsLfs2.mkfs(dev)
    mount(dev).close()
    unmount()
    return bytes(dev.data)


def run_cut(checker: Checker, image: bytes, steps: list, where: str, cut_prog=-1, cut_erase=-1, keep=None) -> bool:
    """One shift with a cut armed, then the reboot checks; False when the shift ended before the cut point."""
    dev = RamFlash(bytearray(image), cut_prog, cut_erase, keep)
    flash = mount(dev)
    result = play(flash, steps)
    checker.overwrites += dev.overwrites
    rebooted = RamFlash(bytearray(dev.data))
    dev.retire()
    flash.close()
    unmount()
    if not dev.dead:
        return False
    if result["cut"] is None:
        checker.fail(where, "the device died, but no step raised")
        return True
    checker.after_reboot(where, rebooted, result)
    unmount()
    gc.collect()
    return True


def main() -> int:
    started = time.ticks_ms()  # type: ignore[attr-defined]
    journal_module.COMPACT_MIN = COMPACT_MIN
    steps = shift()
    image = base_image()

    # The shift without a cut: how many program and erase operations it makes.
    dev = RamFlash(bytearray(image))
    clean = play(mount(dev), steps)
    unmount()
    programs, erases = dev.progs, dev.erases
    checker = Checker()
    checker.overwrites = dev.overwrites
    if clean["cut"] is not None or len(clean["done"]) != sum(1 for s in steps if s[0] == "append"):
        checker.fail("clean run", "the shift did not complete without a cut")
    if clean["largest"] <= BLOCK:
        checker.fail("clean run", f"the journal never grew past one block ({clean['largest']} bytes)")
    if clean["generation"] < 3:
        checker.fail("clean run", f"expected at least two compactions, journal generation is {clean['generation']}")

    cuts = 0
    erase_cuts = 0
    for name, keep in TORN:
        for n in range(programs):
            where = f"program {n} cut ({name} written)"
            if run_cut(checker, image, steps, where, cut_prog=n, keep=keep):
                cuts += 1
            else:
                checker.fail(where, "the shift ended before this program operation")
        for n in range(erases):
            where = f"erase {n} cut ({name} erased)"
            if run_cut(checker, image, steps, where, cut_erase=n, keep=keep):
                erase_cuts += 1
            else:
                checker.fail(where, "the shift ended before this erase operation")
    if checker.overwrites:
        checker.fail("flash", f"{checker.overwrites} programs into bytes that were not erased")

    figures = {
        "block_size": BLOCK,
        "blocks": BLOCKS,
        "appends": len(clean["done"]),
        "acknowledgements": sum(1 for s in steps if s[0] == "ack"),
        "compactions": clean["generation"] - 1,
        "journal_largest_bytes": clean["largest"],
        "program_ops": programs,
        "erase_ops": erases,
        "largest_program_bytes": dev.largest_prog,
        "torn_variants": len(TORN),
        "program_cut_points": cuts,
        "erase_cut_points": erase_cuts,
        "cut_points": cuts + erase_cuts,
        "cut_record_kept": checker.in_progress_kept,
        "cut_record_lost": checker.in_progress_lost,
        "torn_tails_repaired": checker.torn_tails,
        "failures": len(checker.failures),
        "ms": time.ticks_diff(time.ticks_ms(), started),  # type: ignore[attr-defined]
    }
    for line in checker.failures[:MAX_FAILURES]:
        print("FAIL " + line)
    if len(checker.failures) > MAX_FAILURES:
        print(f"FAIL ... and {len(checker.failures) - MAX_FAILURES} more")
    print(json.dumps(figures))
    return 1 if checker.failures else 0


sys.exit(main())
