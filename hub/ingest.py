"""Ingest: apply the handhelds' journal records to the ledger, each exactly once.

Records are stored as they came, once per (device, seq). They are applied in
each device's seq order as its contiguous frontier advances, so a gap holds
everything behind it (and is reported) and a duplicate is a no-op. Everything a
batch of messages does happens in one transaction; acknowledgements are handed
back only after it commits.

A card action a handheld wrote to a card (a top-up paid at HQ, a tier change, a
transfer) counts once its outcome says committed: the first report marks the
CardAction applied and posts it to the ledger; any later report of the same action
is an anomaly and posts nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from hub.cards import settle_replaced
from hub.checks import RuleBook
from hub.coupons import redeem as redeem_coupon
from hub.models import Anomaly, Card, CardAction, Device, Event, LedgerEntry, Record, Sale, SaleLine
from hub.points import applied_as_requested, record_debt
from protocol import record as rec
from protocol.sync import SyncError, decode_batch

# Device events that people should look at (a forged or broken card, a damaged journal).
# A hotlisted card tapped, a downlink or a card action the handheld could not take: the same.
ANOMALOUS_EVENTS = {
    "bad_mac",
    "unknown_layout",
    "purse_invalid",
    "journal_damaged",
    "card_hotlisted",
    "bad_downlink",
    "bad_action",
}


RecordT = dict[str, Any]


def _t(model: Any) -> Table:
    """The Core table of a model: ingest writes in bulk through Core, not the ORM."""
    table: Table = model.__table__
    return table


DEVICES, RECORDS, SALES, CARDS, ACTIONS = _t(Device), _t(Record), _t(Sale), _t(Card), _t(CardAction)
# A sale's coupon fields are filled in by _sale: records of sales without a coupon do not have them.
SALE_FIELDS = [c.name for c in SALES.columns
               if c.name not in ("id", "device_id", "seq", "shop", "state", "coupon", "coupon_value")]
CARD_BY_NO = select(CARDS).where(CARDS.c.card_no == bindparam("no"))
COMMITTED_PAIR = (
    select(SALES.c.id)
    .where(and_(SALES.c.card_no == bindparam("no"), SALES.c.counter_after == bindparam("ctr"), SALES.c.state == "committed"))
    .limit(1)
)
COMMITTED_PAIRS_SQLITE = (
    "SELECT s.card_no, s.counter_after FROM json_each(?) j JOIN sale s"
    " ON s.card_no = json_extract(j.value, '$[0]') AND s.counter_after = json_extract(j.value, '$[1]')"
    " WHERE s.state = 'committed'"
)


@dataclass
class IngestResult:
    """What one transaction did; acks are the (device -> seq) to publish now that it committed."""

    acks: dict[str, int] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0
    anomalies: int = 0
    sales_committed: int = 0


class Ingestor:
    """Applies batches of sync messages; one instance per hub process."""

    def __init__(self, engine: Engine, now: Callable[[], int] = lambda: int(time.time())) -> None:
        self.engine = engine
        self.now = now
        self._gaps_reported: set[tuple[str, int]] = set()
        self.rulebook = RuleBook()  # published rule sets, parsed once per hub process

    def ingest(self, messages: list[tuple[str, bytes]]) -> IngestResult:
        """Apply (device from topic, payload) messages in one transaction."""
        with self.engine.begin() as conn:
            tx = _Tx(conn, self.now(), self._gaps_reported, self.rulebook)
            for device_id, payload in messages:
                tx.take(device_id, payload)
            tx.store_and_apply()
            tx.flush()
        if any(card.get("state") == "replaced" for card in tx.cards.values()):
            self._settle_replaced()
        return tx.result

    def _settle_replaced(self) -> None:
        """Late records of a replaced card (sold offline before it was blocked) move on to its replacement."""
        with Session(self.engine) as db:
            settle_replaced(db, "ingest", self.now())
            db.commit()

    def anomaly(self, code: str, detail: str, device_id: str = "") -> None:
        """Record an anomaly in a transaction of its own (when ingest itself failed)."""
        with self.engine.begin() as conn:
            conn.execute(insert(Anomaly), [{"time": self.now(), "device_id": device_id, "code": code, "detail": detail[:400]}])


class _Tx:
    """The state of one ingest transaction: rows to write, caches, the result."""

    def __init__(self, conn: Connection, now: int, gaps_reported: set[tuple[str, int]], rulebook: RuleBook | None = None) -> None:
        self.conn = conn
        self.rulebook = rulebook or RuleBook()
        self.published: dict[str, bool] = {}  # shop -> whether HQ published any rules for it
        self.now = now
        self.gaps_reported = gaps_reported
        self.result = IngestResult()
        self.devices: dict[str, dict[str, Any]] = {}
        self.incoming: dict[str, dict[int, tuple[RecordT, bytes]]] = {}
        self.rows: dict[Any, list[dict[str, Any]]] = {Record: [], Sale: [], SaleLine: [], LedgerEntry: [], Anomaly: [], Event: []}
        self.sales: dict[tuple[str, int], dict[str, Any]] = {}  # sales inserted by this transaction
        self.actions: dict[tuple[str, int], RecordT] = {}  # card action records applied by this transaction
        self.sale_states: list[dict[str, Any]] = []  # outcomes of sales stored earlier
        self.cards: dict[str, dict[str, Any]] = {}
        self.card_base: dict[str, dict[str, Any]] = {}  # each card as read, to write back only what changed
        self.new_cards: set[str] = set()
        self.counters: set[tuple[str, int]] = set()  # (card, counter) committed by this transaction
        self.suspects: list[dict[str, Any]] = []  # sales whose counter an earlier transaction may have used
        self.unknown_cards: set[str] = set()  # looked up in bulk and not on the hub yet

    # -- reading the messages -------------------------------------------------------

    def flag(self, code: str, detail: str, device_id: str = "", seq: int = 0, card_no: str = "") -> None:
        self.rows[Anomaly].append(
            {"time": self.now, "device_id": device_id, "seq": seq, "card_no": card_no, "code": code, "detail": detail[:400]}
        )
        self.result.anomalies += 1

    def device(self, device_id: str) -> dict[str, Any] | None:
        if device_id not in self.devices:
            row = self.conn.execute(
                select(DEVICES.c.shop, DEVICES.c.acked_seq, DEVICES.c.last_seq).where(DEVICES.c.id == device_id)
            ).first()
            if row is None:
                return None
            self.devices[device_id] = {"shop": row.shop, "acked": row.acked_seq, "last": row.last_seq}
        return self.devices[device_id]

    def take(self, device_id: str, payload: bytes) -> None:
        """Decode one message; bad parts become anomalies, never exceptions."""
        device = self.device(device_id)
        if device is None:
            self.flag("unknown_device", f"records from unregistered device {device_id!r}", device_id)
            return
        device["seen"] = True
        try:
            batch = decode_batch(payload)
        except SyncError as exc:
            self.flag(exc.code, exc.message, device_id)
            return
        incoming = self.incoming.setdefault(device_id, {})
        for data in batch:
            try:
                record = rec.decode(data)
            except rec.RecordError as exc:
                self.flag(f"record_{exc.code}", exc.message, device_id)
                continue
            if record["device"] != device_id:
                detail = f"record of device {record['device']!r} sent on the topic of {device_id!r}"
                self.flag("device_mismatch", detail, device_id, record["seq"])
                continue
            seq = record["seq"]
            if seq in incoming:
                if incoming[seq][1] != data:
                    self.flag("replay_mismatch", f"two different records with seq {seq} in one batch", device_id, seq)
                else:
                    self.result.duplicates += 1
                continue
            incoming[seq] = (record, data)

    # -- storing and applying -------------------------------------------------------------

    def store_and_apply(self) -> None:
        self._prefetch_cards()
        for device_id, incoming in self.incoming.items():
            device = self.devices[device_id]
            self._drop_known(device_id, incoming)
            self.rows[Record].extend(
                {"device_id": device_id, "seq": seq, "kind": r["kind"], "time": r["time"], "body": data}
                for seq, (r, data) in incoming.items()
            )
            if incoming:
                device["last"] = max(device["last"], max(incoming))
            self._advance(device_id, device, incoming)

    def _drop_known(self, device_id: str, incoming: dict[int, tuple[RecordT, bytes]]) -> None:
        """Drop records already stored; a stored record with other bytes is a replay anomaly."""
        if not incoming:
            return
        stored = self.conn.execute(
            select(RECORDS.c.seq, RECORDS.c.body).where(
                and_(RECORDS.c.device_id == device_id, RECORDS.c.seq >= min(incoming), RECORDS.c.seq <= max(incoming))
            )
        ).all()
        for seq, body in stored:
            if seq not in incoming:
                continue
            if bytes(body) != incoming[seq][1]:
                self.flag("replay_mismatch", f"seq {seq} resent with different content: kept the first", device_id, seq)
            else:
                self.result.duplicates += 1
            del incoming[seq]

    def _advance(self, device_id: str, device: dict[str, Any], incoming: dict[int, tuple[RecordT, bytes]]) -> None:
        """Apply records in seq order while they are contiguous; report what a gap holds back."""
        ready = dict(incoming)
        if device["last"] > device["acked"] + len(incoming):
            # Records held behind an earlier gap may be stored already: bring them in.
            held = self.conn.execute(
                select(RECORDS.c.seq, RECORDS.c.body).where(
                    and_(RECORDS.c.device_id == device_id, RECORDS.c.seq > device["acked"])
                )
            ).all()
            for seq, body in held:
                ready.setdefault(seq, (rec.decode(bytes(body)), bytes(body)))
        seq = device["acked"] + 1
        while seq in ready:
            self._apply(device_id, device, ready[seq][0])
            seq += 1
        device["acked"] = seq - 1
        beyond = [s for s in ready if s > seq]
        if beyond and (device_id, seq) not in self.gaps_reported:
            self.gaps_reported.add((device_id, seq))
            self.flag("seq_gap", f"seq {seq} missing: {len(beyond)} later records held until it arrives", device_id, seq)

    def _apply(self, device_id: str, device: dict[str, Any], record: RecordT) -> None:
        self.result.applied += 1
        kind = record["kind"]
        if kind == "sale":
            self._sale(device_id, device["shop"], record)
        elif kind == "action":
            self.actions[(device_id, record["seq"])] = record  # it counts once its outcome says committed
        elif kind == "outcome":
            self._outcome(device_id, record)
        else:
            self.rows[Event].append({k: record[k] for k in ("seq", "time", "code", "message", "uid")} | {"device_id": device_id})
            if record["code"] in ANOMALOUS_EVENTS:
                self.flag(f"device_{record['code']}", record["message"], device_id, record["seq"])

    def _sale(self, device_id: str, shop: str, record: RecordT) -> None:
        row = {name: record[name] for name in SALE_FIELDS} | {
            "device_id": device_id,
            "seq": record["seq"],
            "shop": shop,
            "state": "pending",
            "coupon": record.get("coupon", 0),  # only a sale with a coupon has these (hub.coupons)
            "coupon_value": record.get("coupon_value", 0),
        }
        self.sales[(device_id, record["seq"])] = row
        # The hub checks the handheld: the sale's figures under the rules it names (hub.checks).
        for code, detail in self.rulebook.check(self.conn, shop, record, self.published):
            self.flag(code, detail, device_id, record["seq"], record["card_no"])
        self.rows[SaleLine].extend(
            {"device_id": device_id, "seq": record["seq"], "item": ln["item"], "qty": ln["qty"], "price": ln["price"]}
            for ln in record["lines"]
        )

    def _outcome(self, device_id: str, record: RecordT) -> None:
        key = (device_id, record["ref"])
        sale = self.sales.get(key)
        if sale is None:
            found = self.conn.execute(
                select(SALES).where(and_(SALES.c.device_id == device_id, SALES.c.seq == record["ref"]))
            ).first()
            if found is None:
                action = self._action_record(device_id, record["ref"])
                if action is not None:
                    self._action_outcome(device_id, action, record)
                    return
                self.flag("outcome_without_sale", f"outcome of seq {record['ref']}, which is no sale", device_id, record["seq"])
                return
            sale = dict(found._mapping)
            self.sale_states.append({"d": device_id, "s": record["ref"], "new_state": record["result"]})
        if sale["state"] != "pending":
            self.flag("outcome_twice", f"sale {record['ref']} already {sale['state']}", device_id, record["seq"])
            return
        sale["state"] = record["result"]
        if record["result"] == "committed":
            self._post(sale)
        elif record["result"] == "unknown":
            self.flag(
                "sale_unknown",
                "the handheld could not tell whether the card was written",
                device_id,
                sale["seq"],
                sale["card_no"],
            )

    # -- card actions ----------------------------------------------------------------------

    def _action_record(self, device_id: str, seq: int) -> RecordT | None:
        """The card action record (device, seq), from this transaction or as stored earlier."""
        if (device_id, seq) in self.actions:
            return self.actions[(device_id, seq)]
        body = self.conn.execute(
            select(RECORDS.c.body).where(and_(RECORDS.c.device_id == device_id, RECORDS.c.seq == seq, RECORDS.c.kind == "action"))
        ).scalar()
        return None if body is None else rec.decode(bytes(body))

    def _action_outcome(self, device_id: str, act: RecordT, outcome: RecordT) -> None:
        where = (device_id, act["seq"], act["card_no"])
        if outcome["result"] == "unknown":
            self.flag("action_unknown", f"the handheld could not tell whether action {act['number']} reached the card", *where)
        if outcome["result"] != "committed":
            return
        row = self.conn.execute(
            select(ACTIONS).where(and_(ACTIONS.c.card_no == act["card_no"], ACTIONS.c.number == act["number"]))
        ).first()
        if row is None or row.id != act["action"]:
            self.flag("action_not_found", f"card has no action {act['number']} with id {act['action']}", *where)
            return
        if row.state == "applied":
            detail = f"action {act['number']} was applied already by {row.applied_device} #{row.applied_seq}: not posted again"
            self.flag("action_applied_twice", detail, *where)
            return
        if row.state == "cancelled":
            self.flag("action_after_cancel", f"action {act['number']} was cancelled at HQ but reached the card", *where)
        # A deduction of points the card could not take in full stops at zero (a debt, below), no mismatch.
        if (row.kind, row.amount) != (act["act"], act["amount"]) or not applied_as_requested(row.points, act["points"]):
            detail = f"HQ's {row.kind} {row.amount}/{row.points} written as {act['act']} {act['amount']}/{act['points']}"
            self.flag("action_mismatch", detail, *where)
        self.conn.execute(
            update(CardAction)
            .where(ACTIONS.c.id == row.id)
            .values(state="applied", applied_device=device_id, applied_seq=act["seq"], applied_time=act["time"])
        )
        # The ledger follows what the card got.
        posting = {"time": act["time"], "device_id": device_id, "seq": act["seq"], "card_no": act["card_no"]}
        self._entry(posting, "stored_value", act["amount"], act["act"])
        self._entry(posting, "points", act["points"], act["act"])
        card = self._known_card(act["card_no"])
        if card is None:
            self.flag("action_card_unknown", f"card {act['card_no']} is not on the hub", *where)
            return
        record_debt(self.conn, row, card, act["points"], act["time"])
        card["balance"] += act["amount"]
        card["points"] += act["points"]
        card["tier"] = act["tier"]
        card["last_counter"] = max(card["last_counter"], act["counter_after"])
        if act["counter_after"] != act["counter_before"]:
            self.counters.add((act["card_no"], act["counter_after"]))

    def _known_card(self, card_no: str) -> dict[str, Any] | None:
        if card_no not in self.cards and card_no not in self.unknown_cards:
            row = self.conn.execute(CARD_BY_NO, {"no": card_no}).first()
            if row is not None:
                self.cards[card_no] = dict(row._mapping)
                self.card_base[card_no] = dict(self.cards[card_no])
        return self.cards.get(card_no)

    # -- the ledger -------------------------------------------------------------------------

    def _prefetch_cards(self) -> None:
        """Load every card this transaction's sales touch in one query per 500, not one per sale."""
        wanted = {
            r["card_no"] for incoming in self.incoming.values() for r, _d in incoming.values() if r["kind"] in ("sale", "action")
        }
        numbers = sorted(wanted)
        for i in range(0, len(numbers), 500):
            for row in self.conn.execute(select(CARDS).where(CARDS.c.card_no.in_(numbers[i : i + 500]))):
                self.cards[row.card_no] = dict(row._mapping)
                self.card_base[row.card_no] = dict(self.cards[row.card_no])
        self.unknown_cards = wanted - set(self.cards)

    def card(self, sale: dict[str, Any]) -> dict[str, Any]:
        """The card row for a sale's card, opening it from the sale when the hub has not seen it."""
        card_no = sale["card_no"]
        if card_no not in self.cards:
            row = None if card_no in self.unknown_cards else self.conn.execute(CARD_BY_NO, {"no": card_no}).first()
            if row is not None:
                self.cards[card_no] = dict(row._mapping)
                self.card_base[card_no] = dict(self.cards[card_no])
            else:
                self.new_cards.add(card_no)
                self.cards[card_no] = {
                    "card_no": card_no,
                    "uid": sale["uid"],
                    "member_id": sale["member_id"],
                    "tier": sale["tier"],
                    "balance": 0,
                    "points": 0,
                    "last_counter": 0,
                    "sales": 0,
                    "opening_counter": sale["counter_before"] + 1,
                    "opening_balance": 0,
                    "opening_points": 0,
                }
        return self.cards[card_no]

    def _post(self, sale: dict[str, Any]) -> None:
        card = self.card(sale)
        before_balance = sale["balance_after"] + sale["stored_value"]
        before_points = sale["points_after"] + sale["points_redeemed"] - sale["points_earned"]
        if sale["counter_before"] < card["opening_counter"]:
            # The earliest sale seen so far sets what the card held before the hub knew it.
            self._entry(sale, "stored_value", before_balance - card["opening_balance"], "opening")
            self._entry(sale, "points", before_points - card["opening_points"], "opening")
            card["balance"] += before_balance - card["opening_balance"]
            card["points"] += before_points - card["opening_points"]
            card["opening_counter"] = sale["counter_before"]
            card["opening_balance"] = before_balance
            card["opening_points"] = before_points
        if (sale["card_no"], sale["counter_after"]) in self.counters:
            self._repeat(sale)
        elif sale["counter_after"] <= card["last_counter"]:
            self.suspects.append(sale)  # checked against earlier transactions in one query at flush
        self._entry(sale, "stored_value", -sale["stored_value"], "sale")
        self._entry(sale, "points", sale["points_earned"] - sale["points_redeemed"], "sale")
        self._entry(sale, "cash", sale["cash"], "sale")
        self._entry(sale, "revenue", sale["total"], "sale")
        card["balance"] -= sale["stored_value"]
        card["points"] += sale["points_earned"] - sale["points_redeemed"]
        card["last_counter"] = max(card["last_counter"], sale["counter_after"])
        self.counters.add((sale["card_no"], sale["counter_after"]))
        card["sales"] += 1
        self.result.sales_committed += 1
        if sale.get("coupon"):  # the coupon is spent: the card marked it used with this sale's money
            for code, detail in redeem_coupon(self.conn, sale):
                self.flag(code, detail, sale["device_id"], sale["seq"], sale["card_no"])

    def _repeat(self, sale: dict[str, Any]) -> None:
        detail = f"counter {sale['counter_after']} used twice: cloned or rolled-back card"
        self.flag("counter_repeat", detail, sale["device_id"], sale["seq"], sale["card_no"])

    def _check_suspects(self) -> None:
        """Flag suspects whose card counter a sale committed by an earlier transaction already wrote."""
        if not self.suspects:
            return
        pairs = sorted({(s["card_no"], s["counter_after"]) for s in self.suspects})
        if self.conn.dialect.name == "sqlite":
            # json_each lets SQLite probe ix_sale_card_counter once per pair (a tuple IN would scan).
            used = {(r[0], r[1]) for r in self.conn.exec_driver_sql(COMMITTED_PAIRS_SQLITE, (json.dumps(pairs),))}
        else:
            used = {p for p in pairs if self.conn.execute(COMMITTED_PAIR, {"no": p[0], "ctr": p[1]}).first()}
        for sale in self.suspects:
            if (sale["card_no"], sale["counter_after"]) in used:
                self._repeat(sale)

    def _entry(self, sale: dict[str, Any], account: str, amount: int, memo: str) -> None:
        if amount:
            self.rows[LedgerEntry].append(
                {
                    "time": sale["time"],
                    "device_id": sale["device_id"],
                    "seq": sale["seq"],
                    "card_no": sale["card_no"],
                    "account": account,
                    "amount": amount,
                    "memo": memo,
                }
            )

    # -- writing ------------------------------------------------------------------------------

    def _update_cards(self, cards: list[dict[str, Any]]) -> None:
        """Write back what these records changed as increments, so a change HQ made meanwhile
        (a card reported lost, a balance moved to a replacement) is kept, not overwritten."""
        m = self._mark()
        sql = (
            f"UPDATE card SET balance = balance + {m}, points = points + {m}, sales = sales + {m}, "
            f"last_counter = CASE WHEN last_counter > {m} THEN last_counter ELSE {m} END, "
            f"tier = {m}, opening_counter = {m}, opening_balance = {m}, opening_points = {m} WHERE card_no = {m}"
        )
        rows = []
        for card in cards:
            base = self.card_base[card["card_no"]]
            rows.append(
                (
                    card["balance"] - base["balance"],
                    card["points"] - base["points"],
                    card["sales"] - base["sales"],
                    card["last_counter"],
                    card["last_counter"],
                    card["tier"],
                    card["opening_counter"],
                    card["opening_balance"],
                    card["opening_points"],
                    card["card_no"],
                )
            )
        self.conn.exec_driver_sql(sql, rows)

    def flush(self) -> None:
        """Write everything in bulk, then the devices' frontiers (the acks to publish)."""
        self._check_suspects()
        self.rows[Sale] = list(self.sales.values())
        for table in (Record, Sale, SaleLine, LedgerEntry, Event, Anomaly):
            if self.rows[table]:
                self._bulk_insert(_t(table), self.rows[table])
        if self.sale_states:
            self.conn.execute(
                update(Sale)
                .where(and_(SALES.c.device_id == bindparam("d"), SALES.c.seq == bindparam("s")))
                .values(state=bindparam("new_state")),
                self.sale_states,
            )
        new = [c for no, c in self.cards.items() if no in self.new_cards]
        old = [c for no, c in self.cards.items() if no not in self.new_cards]
        if new:
            self._bulk_insert(CARDS, new)
        if old:
            self._update_cards(old)
        for device_id, device in self.devices.items():
            if not device.get("seen"):
                continue
            self.conn.execute(
                update(Device)
                .where(DEVICES.c.id == device_id)
                .values(acked_seq=device["acked"], last_seq=device["last"], last_seen=self.now)
            )
            self.result.acks[device_id] = device["acked"]

    def _mark(self) -> str:
        return "?" if self.conn.dialect.paramstyle == "qmark" else "%s"

    def _bulk_insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """INSERT many rows straight through the driver: the Core layer's per-row work showed in profiles."""
        columns = [c.name for c in table.columns if c.name in rows[0]]
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([self._mark()] * len(columns))})"
        self.conn.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in rows])
