"""`hub bench ingest`: committed sales per second through the real broker into the hub, against a bare ceiling.

One run, one temp folder: a Mosquitto configured as the hub's (password file, ACL), devices registered,
and two measurements with the same messages published the same way:

hub      the real hub.bridge.Bridge (paho, manual acks, the Ingestor, SQLite) in this process;
ceiling  a bare paho subscriber (same process, same queue-and-worker shape, same batch size) that decodes
         the same batches and writes the same rows into a fresh database, one transaction per batch,
         acknowledging each device per transaction; no dedup lookups, frontier or anomaly logic: cards
         are kept in memory and rows go through the driver's executemany (the least Python can do).
         The run checks that both databases end up with the same records, sales, lines, ledger sums
         and cards, so the two did the same work.

The devices are one paho client each, in a child process (handhelds are other machines: their
publishing must not share this process's GIL with the hub). Each publishes its batches at QoS 1 as fast
as the broker takes them, keeping at most a window of messages beyond what the hub has acknowledged
(the broker queues at most 10,000 messages for a subscriber and would drop the rest). A measurement
runs from the first publish until every device has the acknowledgement of its last record: committed
AND acknowledged. sales/s = sales / seconds; ratio = hub / ceiling.

The records are generated once per run, before timing: sales and their committed outcomes, on a set
of cards whose counters, balances and points follow from sale to sale across all devices, packed into
batches of about protocol.sync.MAX_BATCH bytes as the handheld packs them.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing
import pickle
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from hub.bridge import RECORDS, Bridge
from hub.broker import Broker, free_port
from hub.cli import add_device, broker_accounts, hub_password, open_db
from hub.db import make_engine, migrate
from hub.ingest import CARDS, SALE_FIELDS, SALES
from hub.models import Card, LedgerEntry, Record, Sale, SaleLine
from hub.settings import Settings
from protocol import pricing
from protocol import record as rec
from protocol.sync import (
    HUB_STATUS_TOPIC,
    MAX_BATCH,
    ack_topic,
    decode_ack,
    decode_batch,
    device_of,
    encode_ack,
    encode_batch,
    records_topic,
)

TARGET_SALES_PER_S = 30000
TARGET_RATIO = 0.8
CARDS_DEFAULT = 1000
WINDOW_TOTAL = 5000  # messages beyond the last ack, all devices together (the broker queues 10,000 per subscriber)
PAHO_INFLIGHT = 100  # QoS 1 messages a device client has waiting for PUBACK
STALL_S = 60.0  # no progress for this long: the run failed
HUB_READY = json.dumps({"online": True}).encode()  # what Bridge publishes (retained) once it has subscribed
CEILING_READY = json.dumps({"online": True, "bench": "ceiling"}).encode()


def _name(model: Any) -> str:
    return str(model.__tablename__)


def _insert(model: Any, columns: list[str]) -> str:
    return f"INSERT INTO {_name(model)} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# The ceiling's statements: the rows the hub writes, through the driver.
SALE_COLUMNS = ["device_id", "seq", "shop", "state", *SALE_FIELDS]
CARD_COLUMNS = ["card_no", "uid", "member_id", "tier", "balance", "points", "last_counter", "opening_counter",
                "opening_balance", "opening_points", "sales"]  # fmt: skip
INSERT_RECORD = _insert(Record, ["device_id", "seq", "kind", "time", "body"])
INSERT_SALE = _insert(Sale, SALE_COLUMNS)
INSERT_LINE = _insert(SaleLine, ["device_id", "seq", "item", "qty", "price"])
INSERT_ENTRY = _insert(LedgerEntry, ["time", "device_id", "seq", "card_no", "account", "amount", "memo"])
INSERT_CARD = _insert(Card, CARD_COLUMNS)
UPDATE_SALE_STATE = f"UPDATE {_name(Sale)} SET state = ? WHERE device_id = ? AND seq = ?"
UPDATE_CARD = (
    f"UPDATE {_name(Card)} SET balance = ?, points = ?, last_counter = ?, opening_counter = ?, opening_balance = ?, "
    "opening_points = ?, sales = ? WHERE card_no = ?"
)

PRICE_LIST = pricing.PriceList(
    {
        "version": 7,
        "items": [
            {"id": 101, "name": "Espresso", "price": 250},
            {"id": 102, "name": "Cappuccino", "price": 320},
            {"id": 103, "name": "Croissant", "price": 180},
            {"id": 201, "name": "Sandwich", "price": 550},
            {"id": 202, "name": "Salad bowl", "price": 695},
            {"id": 301, "name": "Coffee beans 250g", "price": 1290},
            {"id": 401, "name": "Gift voucher", "price": 2000, "discountable": False},
        ],
        "tiers": [
            {"tier": 0, "name": "Member", "discount_bps": 0},
            {"tier": 1, "name": "Silver", "discount_bps": 500},
            {"tier": 2, "name": "Gold", "discount_bps": 1250},
        ],
        "points": {"earn_per_100": 1, "point_value": 1},
    }
)
ITEMS = sorted(PRICE_LIST.items)


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


# -- the workload ------------------------------------------------------------------------------------


@dataclass
class DeviceLoad:
    """One simulated handheld: its id, shop, sales, and its batches as (payload, last seq in it)."""

    device_id: str
    shop: str
    sales: int = 0
    records: list[bytes] = field(default_factory=list)
    batches: list[tuple[bytes, int]] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return len(self.records)


@dataclass
class Workload:
    devices: list[DeviceLoad]
    sales: int
    cards: dict[str, tuple[int, int, int]]  # card_no -> (balance, points, counter) after the last sale

    @property
    def messages(self) -> int:
        return sum(len(d.batches) for d in self.devices)

    @property
    def records(self) -> int:
        return sum(len(d.records) for d in self.devices)

    @property
    def payload_bytes(self) -> int:
        return sum(len(p) for d in self.devices for p, _ in d.batches)


def pack(records: list[bytes], max_bytes: int = MAX_BATCH) -> list[tuple[bytes, int]]:
    """Records (seq 1..n) in batches as firmware/outbox.py packs them: whole records, at most max_bytes, at least one."""
    out: list[tuple[bytes, int]] = []
    batch: list[bytes] = []
    used = 0
    for seq, data in enumerate(records, 1):
        if batch and used + len(data) + 2 > max_bytes:
            out.append((encode_batch(batch), seq - 1))
            batch, used = [], 0
        batch.append(data)
        used += len(data) + 2
    if batch:
        out.append((encode_batch(batch), len(records)))
    return out


def generate(devices: int, sales: int, seed: int, cards: int = CARDS_DEFAULT, start: int = 1_790_000_000) -> Workload:
    """sales committed sales spread over devices handhelds, each a sale record then its outcome."""
    rng = random.Random(seed)
    loads = [DeviceLoad(f"bench-{i + 1:02d}", f"shop-{i % 3 + 1}") for i in range(devices)]
    order = [i % devices for i in range(sales)]
    rng.shuffle(order)
    # A card's state as its next sale finds it: uid, member, tier, counter, balance, points.
    state: list[dict[str, Any]] = []
    for n in range(cards):
        state.append(
            {
                "card_no": f"9{n + 1:015d}",
                "uid": rng.randbytes(4).hex(),
                "member_id": n + 1,
                "tier": n % 3,
                "counter": rng.randrange(0, 40),  # cards have a history before the hub hears of them
                "balance": rng.choice([0, 2000, 5000, 10000, 25000]),
                "points": rng.randrange(0, 300),
            }
        )
    sold: set[str] = set()
    for k, d in enumerate(order):
        load = loads[d]
        card = state[rng.randrange(cards)]
        sold.add(card["card_no"])
        lines = [(rng.choice(ITEMS), rng.choice((1, 1, 1, 2, 3))) for _ in range(rng.choice((1, 1, 2, 2, 3, 4)))]
        quote = pricing.quote(PRICE_LIST, lines, card["tier"])
        redeem = rng.randrange(card["points"] + 1) if card["points"] and rng.random() < 0.2 else 0
        paid = pricing.settle(PRICE_LIST, quote["total"], card["balance"], card["points"], redeem, rng.random() < 0.6)
        seq = len(load.records) + 1
        now = start + k // 4
        sale = {
            "kind": "sale",
            "seq": seq,
            "time": now,
            "device": load.device_id,
            "card_no": card["card_no"],
            "uid": card["uid"],
            "counter_before": card["counter"],
            "counter_after": card["counter"] + 1,
            "member_id": card["member_id"],
            "tier": card["tier"],
            "discount_bps": quote["discount_bps"],
            "price_list_version": PRICE_LIST.version,
            "firmware": "0.1.0",
            "lines": quote["lines"],
            "subtotal": quote["subtotal"],
            "discount": quote["discount"],
            "total": quote["total"],
        } | paid
        outcome = {
            "kind": "outcome",
            "seq": seq + 1,
            "time": now + 1,
            "device": load.device_id,
            "ref": seq,
            "result": "committed",
            "reason": "",
        }
        load.records += [rec.encode(sale), rec.encode(outcome)]
        load.sales += 1
        card["counter"] += 1
        card["balance"] = paid["balance_after"]
        card["points"] = paid["points_after"]
    for load in loads:
        load.batches = pack(load.records)
    final = {c["card_no"]: (c["balance"], c["points"], c["counter"]) for c in state if c["card_no"] in sold}
    return Workload(loads, sales, final)


# -- the devices (a child process) --------------------------------------------------------------------


def _devices_main(
    conn: Pipe,
    host: str,
    port: int,
    passwords: dict[str, str],
    batches_file: str,
    ready_payload: bytes,
    window: int,
) -> None:
    """Connect every device, wait for the subscriber to say it is ready, publish, wait for the last acks."""
    try:
        with open(batches_file, "rb") as f:
            batches: dict[str, list[tuple[bytes, int]]] = pickle.load(f)
        conn.send(("done", _publish(conn, host, port, passwords, batches, ready_payload, window)))
    except Exception as exc:  # the parent reports it and cleans up
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _DeviceState:
    def __init__(self, device_id: str, batches: list[tuple[bytes, int]]) -> None:
        self.device_id = device_id
        self.topic = records_topic(device_id)
        self.payloads = [p for p, _ in batches]
        self.last_seqs = [s for _, s in batches]
        self.sent = 0
        self.acked = 0  # messages whose records are all acknowledged
        self.done_at: float | None = None if batches else 0.0


def _publish(
    conn: Pipe,
    host: str,
    port: int,
    passwords: dict[str, str],
    batches: dict[str, list[tuple[bytes, int]]],
    ready_payload: bytes,
    window: int,
) -> dict[str, Any]:
    cond = threading.Condition()
    states = {d: _DeviceState(d, b) for d, b in batches.items()}
    subscribed: set[str] = set()
    ready = threading.Event()
    progress = [time.monotonic()]

    def on_connect(client: mqtt.Client, device_id: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            return
        topics = [(ack_topic(device_id), 1)]
        if device_id == next(iter(states)):
            topics.append((HUB_STATUS_TOPIC, 1))
        client.subscribe(topics)

    def on_subscribe(_c: mqtt.Client, device_id: Any, _m: Any, _r: Any, _p: Any) -> None:
        with cond:
            subscribed.add(device_id)
            cond.notify_all()

    def on_message(_c: mqtt.Client, device_id: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == HUB_STATUS_TOPIC:
            if msg.payload == ready_payload:
                ready.set()
            return
        st = states[device_of(msg.topic)]
        acked = bisect.bisect_right(st.last_seqs, decode_ack(bytes(msg.payload)))
        with cond:
            if acked > st.acked:
                st.acked = acked
                progress[0] = time.monotonic()
                if acked == len(st.last_seqs) and st.done_at is None:
                    st.done_at = progress[0]
                cond.notify_all()

    clients = []
    for device_id, password in passwords.items():
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, clean_session=True, userdata=device_id)
        client.username_pw_set(device_id, password)
        client.max_inflight_messages_set(PAHO_INFLIGHT)
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(host, port, keepalive=60)
        client.loop_start()
        clients.append(client)
    by_id = dict(zip(passwords, clients, strict=True))
    try:
        deadline = time.monotonic() + 15
        with cond:
            while len(subscribed) < len(clients):
                if not cond.wait(0.2) and time.monotonic() > deadline:
                    raise RuntimeError(f"devices not subscribed after 15 s: {len(subscribed)} of {len(clients)}")
        if not ready.wait(30):
            raise RuntimeError("the subscriber did not say it was ready within 30 s")
        conn.send(("ready", None))
        t0 = progress[0] = time.monotonic()
        while True:
            todo: list[tuple[mqtt.Client, str, bytes]] = []
            with cond:
                if all(st.done_at is not None for st in states.values()):
                    break
                for st in states.values():
                    while st.sent < len(st.payloads) and st.sent - st.acked < window:
                        todo.append((by_id[st.device_id], st.topic, st.payloads[st.sent]))
                        st.sent += 1
                if not todo:
                    cond.wait(1.0)
                    if time.monotonic() - progress[0] > STALL_S:
                        missing = {d: (st.acked, len(st.payloads)) for d, st in states.items() if st.done_at is None}
                        raise RuntimeError(f"no acknowledgement for {STALL_S:.0f} s; (acked, messages) {missing}")
            for client, topic, payload in todo:
                client.publish(topic, payload, qos=1)
        end = max(st.done_at or t0 for st in states.values())
        return {"seconds": end - t0, "messages": sum(len(st.payloads) for st in states.values())}
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()


class Devices:
    """The child process of devices for one measurement."""

    def __init__(self, host: str, port: int, passwords: dict[str, str], batches_file: Path, ready_payload: bytes) -> None:
        # The batches go through a file: a large pickle in the process arguments would block start() for good
        # if the child died before reading it.
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        window = max(8, WINDOW_TOTAL // max(1, len(passwords)))
        self.proc = ctx.Process(
            target=_devices_main,
            args=(child, host, port, passwords, str(batches_file), ready_payload, window),
            name="bench-devices",
            daemon=True,
        )
        self.proc.start()
        child.close()

    def wait(self, what: str, timeout: float, tick: Callable[[], None] | None = None) -> Any:
        """The next message from the child, which must be what; tick() about once a second meanwhile."""
        deadline = time.monotonic() + timeout
        while not self.conn.poll(1.0):
            if tick is not None:
                tick()
            if not self.proc.is_alive():
                raise RuntimeError(f"the devices' process exited (code {self.proc.exitcode}) before {what}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {what} from the devices within {timeout:.0f} s")
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"devices: {value}")
        if kind != what:
            raise RuntimeError(f"devices said {kind!r}, expected {what!r}")
        return value

    def close(self) -> None:
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.conn.close()


# -- the ceiling: a bare subscriber doing the same inserts ----------------------------------------------


class Ceiling:
    """paho + decode + the hub's rows in bulk, batched into transactions like the Bridge; acks per device."""

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        user: str,
        password: str,
        batch: int,
        shops: dict[str, str],
    ) -> None:
        self.engine = engine
        self.batch = batch
        self.shops = shops
        self.sales_committed = 0
        self.messages = 0
        self.batches = 0
        self.errors = 0
        self.last_error = ""
        self.pending: dict[tuple[str, int], list[Any]] = {}  # sales whose outcome comes in a later transaction
        self.cards: dict[str, list[Any]] = {}  # card rows as last written (CARD_COLUMNS)
        self.queue: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ceiling", clean_session=True)
        self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(RECORDS, 1)
        self.client.on_subscribe = lambda c, _u, _m, _r, _p: c.publish(HUB_STATUS_TOPIC, CEILING_READY, qos=1, retain=True)
        self.client.on_message = lambda _c, _u, msg: self.queue.put(msg)
        self.host, self.port = host, port
        self._worker = threading.Thread(target=self._work, name="bench-ceiling", daemon=True)

    def start(self) -> None:
        self.client.connect(self.host, self.port, keepalive=60)
        self.client.loop_start()
        self._worker.start()

    def stop(self) -> None:
        self.queue.put(None)
        self._worker.join(10)
        self.client.disconnect()
        self.client.loop_stop()

    def _work(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            msgs = [first]
            stop = False
            while len(msgs) < self.batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                msgs.append(nxt)
            try:
                self._handle(msgs)
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                say(f"ceiling: {self.last_error}")
            if stop:
                return

    def _handle(self, msgs: list[mqtt.MQTTMessage]) -> None:
        records: list[tuple[Any, ...]] = []
        sales: dict[tuple[str, int], list[Any]] = {}  # rows in SALE_COLUMNS order; state at index 3
        lines: list[tuple[Any, ...]] = []
        entries: list[tuple[Any, ...]] = []
        states: list[tuple[Any, ...]] = []
        new_cards: dict[str, list[Any]] = {}
        old_cards: dict[str, list[Any]] = {}
        acks: dict[str, int] = {}
        committed = 0
        for msg in msgs:
            device_id = device_of(msg.topic)
            for data in decode_batch(bytes(msg.payload)):
                r = rec.decode(data)
                seq = r["seq"]
                records.append((device_id, seq, r["kind"], r["time"], data))
                acks[device_id] = max(acks.get(device_id, 0), seq)
                if r["kind"] == "sale":
                    sales[(device_id, seq)] = [device_id, seq, self.shops[device_id], "pending"] + [r[f] for f in SALE_FIELDS]
                    lines.extend((device_id, seq, ln["item"], ln["qty"], ln["price"]) for ln in r["lines"])
                elif r["kind"] == "outcome":
                    key = (device_id, r["ref"])
                    row = sales.get(key)
                    if row is None:
                        row = self.pending.pop(key)
                        states.append((r["result"], device_id, r["ref"]))
                    row[3] = r["result"]
                    if r["result"] == "committed":
                        self._post(dict(zip(SALE_COLUMNS, row, strict=True)), entries, new_cards, old_cards)
                        committed += 1
        for key, row in sales.items():
            if row[3] == "pending":
                self.pending[key] = row
        with self.engine.begin() as conn:
            # The DBAPI's executemany with tuples: the least a Python program can do to insert these rows.
            for sql, rows in (
                (INSERT_RECORD, records),
                (INSERT_SALE, [tuple(row) for row in sales.values()]),
                (INSERT_LINE, lines),
                (INSERT_ENTRY, entries),
                (UPDATE_SALE_STATE, states),
                (INSERT_CARD, [tuple(card) for card in new_cards.values()]),
                (UPDATE_CARD, [(*c[4:], c[0]) for c in old_cards.values()]),
            ):
                if rows:
                    conn.exec_driver_sql(sql, rows)
        for device_id, seq in acks.items():
            self.client.publish(ack_topic(device_id), encode_ack(seq), qos=1)
        self.sales_committed += committed
        self.messages += len(msgs)
        self.batches += 1

    def _post(
        self,
        sale: dict[str, Any],
        entries: list[tuple[Any, ...]],
        new_cards: dict[str, list[Any]],
        old_cards: dict[str, list[Any]],
    ) -> None:
        """The ledger entries of a committed sale and its card's new state (in CARD_COLUMNS order)."""
        card_no, at, device_id, seq = sale["card_no"], sale["time"], sale["device_id"], sale["seq"]
        card = self.cards.get(card_no)
        if card is None:
            card = [card_no, sale["uid"], sale["member_id"], sale["tier"], 0, 0, 0, sale["counter_before"] + 1, 0, 0, 0]
            self.cards[card_no] = new_cards[card_no] = card
        elif card_no not in new_cards:
            old_cards[card_no] = card
        if sale["counter_before"] < card[7]:
            # The hub's opening rule (arithmetic only): the earliest sale seen says what the card held before;
            # a card's sales come from several devices in any order.
            before_balance = sale["balance_after"] + sale["stored_value"]
            before_points = sale["points_after"] + sale["points_redeemed"] - sale["points_earned"]
            for account, i, amount in (("stored_value", 4, before_balance - card[8]), ("points", 5, before_points - card[9])):
                if amount:
                    entries.append((at, device_id, seq, card_no, account, amount, "opening"))
                card[i] += amount
            card[7], card[8], card[9] = sale["counter_before"], before_balance, before_points
        for account, amount in (
            ("stored_value", -sale["stored_value"]),
            ("points", sale["points_earned"] - sale["points_redeemed"]),
            ("cash", sale["cash"]),
            ("revenue", sale["total"]),
        ):
            if amount:
                entries.append((at, device_id, seq, card_no, account, amount, "sale"))
        card[4] -= sale["stored_value"]
        card[5] += sale["points_earned"] - sale["points_redeemed"]
        card[6] = max(card[6], sale["counter_after"])
        card[10] += 1


# -- one run ------------------------------------------------------------------------------------------


def _committed(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(SALES).where(SALES.c.state == "committed")).scalar_one())


def _summary(engine: Engine) -> dict[str, Any]:
    """What a database holds, in terms both measurements must agree on (ledger sums, not entry counts)."""
    with engine.connect() as conn:
        out: dict[str, Any] = {
            table: conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            for table in (_name(Record), _name(SaleLine))
        }
        out["sales"] = conn.exec_driver_sql(f"SELECT state, count(*) FROM {_name(Sale)} GROUP BY 1 ORDER BY 1").all()
        out["ledger"] = conn.exec_driver_sql(f"SELECT account, sum(amount) FROM {_name(LedgerEntry)} GROUP BY 1 ORDER BY 1").all()
        out["cards"] = conn.exec_driver_sql(
            f"SELECT card_no, balance, points, last_counter, sales FROM {_name(Card)} ORDER BY 1"
        ).all()
    return out


def _cards_match(engine: Engine, expected: dict[str, tuple[int, int, int]]) -> bool:
    """Every card's balance, points and counter in the database are what the cards hold after the last sale."""
    with engine.connect() as conn:
        got = {
            r.card_no: (r.balance, r.points, r.last_counter)
            for r in conn.execute(select(CARDS.c.card_no, CARDS.c.balance, CARDS.c.points, CARDS.c.last_counter))
        }
    return got == expected


def _forget_session(host: str, port: int, user: str, password: str, client_id: str) -> None:
    """Connect once with a clean session: the broker drops what it kept (and would queue) for client_id."""
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.username_pw_set(user, password)
    client.on_connect = lambda *_a: done.set()
    client.connect(host, port)
    client.loop_start()
    try:
        if not done.wait(10):
            raise RuntimeError(f"could not log in as {client_id!r} to clear its session")
    finally:
        client.disconnect()
        client.loop_stop()


class Progress:
    """Once a second on stderr: sales committed so far and the rate over the last second."""

    def __init__(self, label: str, total: int, count: Callable[[], int], failed: Callable[[], str]) -> None:
        self.label, self.total, self.count, self.failed = label, total, count, failed
        self.last = (time.monotonic(), count())
        self.moved = self.last[0]

    def __call__(self) -> None:
        if self.failed():
            raise RuntimeError(f"{self.label}: {self.failed()}")
        now, n = time.monotonic(), self.count()
        rate = (n - self.last[1]) / max(1e-9, now - self.last[0])
        if n != self.last[1]:
            self.moved = now
        elif now - self.moved > STALL_S + 30:
            raise RuntimeError(f"{self.label}: no sale committed for {now - self.moved:.0f} s")
        self.last = (now, n)
        say(f"{self.label}: {n:,} of {self.total:,} sales committed, {rate:,.0f} sales/s")


def measure(
    label: str,
    host: str,
    port: int,
    passwords: dict[str, str],
    work: Workload,
    batches_file: Path,
    ready: bytes,
    count: Callable[[], int],
    failed: Callable[[], str],
) -> float:
    """Publish the workload from the devices' process; seconds from the first publish to the last ack."""
    devices = Devices(host, port, passwords, batches_file, ready)
    try:
        devices.wait("ready", 60)
        say(f"{label}: publishing {work.messages:,} messages from {len(work.devices)} devices")
        result = devices.wait("done", float("inf"), Progress(label, work.sales, count, failed))
        seconds = float(result["seconds"])
        say(f"{label}: {work.sales:,} sales committed and acknowledged in {seconds:.2f} s")
        return seconds
    finally:
        devices.close()


def run(devices: int, sales: int, seed: int, batch: int | None) -> dict[str, Any]:
    """One full run: generate, set up, measure the hub, measure the ceiling, tear down; the figures."""
    say(f"generating {sales:,} sales on {devices} devices")
    t = time.monotonic()
    work = generate(devices, sales, seed)
    say(
        f"generated {work.records:,} records in {work.messages:,} messages ({work.payload_bytes / 1e6:.1f} MB) "
        f"in {time.monotonic() - t:.1f} s"
    )
    folder = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    broker: Broker | None = None
    engines: list[Engine] = []
    try:
        settings = Settings(
            data_dir=folder / "hub",
            database_url="",
            mqtt_host="127.0.0.1",
            mqtt_port=free_port(),
            mqtt_user="hub",
            mqtt_password="",
        )
        batch = batch or settings.ingest_batch
        engine = open_db(settings)
        engines.append(engine)
        now = int(time.time())
        passwords = {d.device_id: add_device(engine, d.device_id, d.shop, now) for d in work.devices}
        batches_file = folder / "batches.pickle"
        with open(batches_file, "wb") as f:
            pickle.dump({d.device_id: d.batches for d in work.devices}, f, protocol=pickle.HIGHEST_PROTOCOL)
        broker = Broker(folder / "broker", settings.mqtt_port)
        broker.accounts = broker_accounts(engine, settings)
        broker.start()
        host, port, user, password = broker.host, broker.port, settings.mqtt_user, hub_password(settings)
        say(f"broker on {host}:{port}; batch of up to {batch} messages per transaction")
        bridge = Bridge(engine, host, port, user, password, batch=batch)
        bridge.start()
        try:
            hub_s = measure(
                "hub",
                host,
                port,
                passwords,
                work,
                batches_file,
                HUB_READY,
                lambda: bridge.stats.sales_committed,
                lambda: bridge.stats.last_error if bridge.stats.errors else "",
            )
        finally:
            bridge.stop()
        _forget_session(host, port, user, password, "hub")
        hub_stats = bridge.counters()

        ceiling_engine = make_engine(f"sqlite:///{folder / 'ceiling' / 'ceiling.db'}")
        engines.append(ceiling_engine)
        migrate(ceiling_engine)
        ceiling = Ceiling(
            ceiling_engine,
            host,
            port,
            user,
            password,
            batch,
            {d.device_id: d.shop for d in work.devices},
        )
        ceiling.start()
        try:
            ceiling_s = measure(
                "ceiling",
                host,
                port,
                passwords,
                work,
                batches_file,
                CEILING_READY,
                lambda: ceiling.sales_committed,
                lambda: ceiling.last_error if ceiling.errors else "",
            )
        finally:
            ceiling.stop()

        hub_rate = sales / hub_s
        ceiling_rate = sales / ceiling_s
        return {
            "sales_per_s": round(hub_rate, 1),
            "ceiling_sales_per_s": round(ceiling_rate, 1),
            "ratio": round(hub_rate / ceiling_rate, 3),
            "devices": devices,
            "sales": sales,
            "records": work.records,
            "messages": work.messages,
            "payload_bytes": work.payload_bytes,
            "batch": batch,
            "hub_seconds": round(hub_s, 3),
            "ceiling_seconds": round(ceiling_s, 3),
            "sales_committed": _committed(engine),
            "ceiling_sales_committed": _committed(ceiling_engine),
            "cards_match": _cards_match(engine, work.cards),
            "ceiling_rows_match": _summary(engine) == _summary(ceiling_engine),
            "hub_transactions": hub_stats["batches"],
            "ceiling_transactions": ceiling.batches,
            "hub_anomalies": hub_stats["anomalies"],
            "hub_errors": hub_stats["errors"],
            "ceiling_errors": ceiling.errors,
            "target_sales_per_s": TARGET_SALES_PER_S,
            "target_ratio": TARGET_RATIO,
        }
    finally:
        say("cleaning up")
        if broker is not None:
            broker.stop()
        for eng in engines:
            eng.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def human(fig: dict[str, Any]) -> str:
    hub_tx = fig["messages"] / max(1, fig["hub_transactions"])
    ceiling_tx = fig["messages"] / max(1, fig["ceiling_transactions"])
    return (
        f"hub:     {fig['sales_per_s']:>9,.0f} sales/s  ({fig['sales_committed']:,} of {fig['sales']:,} sales committed "
        f"and acknowledged in {fig['hub_seconds']:.2f} s; {fig['devices']} devices, {fig['messages']:,} messages, "
        f"{hub_tx:.1f} messages per transaction; target {TARGET_SALES_PER_S:,})\n"
        f"ceiling: {fig['ceiling_sales_per_s']:>9,.0f} sales/s  ({fig['ceiling_sales_committed']:,} sales in "
        f"{fig['ceiling_seconds']:.2f} s; bare paho subscriber, same inserts, {ceiling_tx:.1f} messages per transaction)\n"
        f"ratio hub / ceiling: {fig['ratio']:.2f}  (target {TARGET_RATIO})"
    )


def main_ingest(args: argparse.Namespace) -> int:
    """`hub bench ingest`: the figures on stdout (human, or one JSON object); exit 1 if the hub lost sales."""
    if args.devices < 1 or args.sales < 1:
        print("hub bench ingest: --devices and --sales must be at least 1", file=sys.stderr)
        return 2
    if args.batch is not None and args.batch < 1:
        print("hub bench ingest: --batch must be at least 1", file=sys.stderr)
        return 2
    try:
        figures = run(args.devices, args.sales, args.seed, args.batch)
    except (RuntimeError, OSError) as exc:  # BrokerError is a RuntimeError
        print(f"hub bench ingest: {exc}", file=sys.stderr)
        return 1
    failed = [
        what
        for what, good in (
            ("the hub did not commit every sale", figures["sales_committed"] == figures["sales"]),
            ("the ceiling did not commit every sale", figures["ceiling_sales_committed"] == figures["sales"]),
            ("the hub's cards do not hold what the sales left on them", figures["cards_match"]),
            ("the ceiling did not write the rows the hub wrote", figures["ceiling_rows_match"]),
            ("the hub had ingest errors", not figures["hub_errors"]),
            ("the ceiling had errors", not figures["ceiling_errors"]),
        )
        if not good
    ]
    figures["ok"] = not failed
    print(json.dumps(figures) if args.json else human(figures), flush=True)
    for what in failed:
        print(f"hub bench ingest: {what}", file=sys.stderr)
    return 1 if failed else 0
