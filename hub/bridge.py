"""The hub's MQTT side: records in, acknowledgements out, device status tracked.

paho's network thread only queues messages; one worker drains the queue in
batches, commits them through the Ingestor, then acknowledges to the devices
and (manual acks) to the broker. A message the hub dies with is redelivered by
the broker, and in any case by the device, which keeps every record until the
hub acknowledges it.

A second thread sends the downlinks (hub.downlinks): every second, and at once when
a device's status arrives, each online device that is behind on its shop's price
list, the hotlist, the card actions or its offline lease gets what it lacks (leases are
issued first, when their terms changed: hub.lease). It never holds up ingest.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from hub import downlinks
from hub import lease as leases
from hub.ingest import DEVICES, Ingestor
from hub.models import Device
from protocol import downlink as dl
from protocol.sync import HUB_STATUS_TOPIC, SyncError, ack_topic, device_of, encode_ack

log = logging.getLogger("hub.bridge")

RECORDS = "terminals/+/up/records"
STATUS = "terminals/+/up/status"
DOWNLINK_POLL_S = 1.0  # how often the hub looks for new versions HQ made
RESEND_S = 30.0  # a downlink the device has not confirmed (by its status) after this long goes again
STATUS_VERSIONS = (("firmware", "firmware"), ("head", "head_seq"), ("prices", "prices_version"),
                   ("hotlist", "hotlist_version"), ("actions", "actions_version"), ("lease", "lease_version"))


@dataclass
class BridgeStats:
    """Counters for the health endpoint and the benchmark."""

    messages: int = 0
    batches: int = 0
    duplicates: int = 0
    sales_committed: int = 0
    anomalies: int = 0
    errors: int = 0
    connected: bool = False
    last_error: str = ""
    acks_sent: dict[str, int] = field(default_factory=dict)
    downlinks_sent: int = 0


class Bridge:
    """A paho client and an ingest worker; start() and stop()."""

    def __init__(
        self,
        engine: Engine,
        host: str,
        port: int,
        user: str,
        password: str,
        batch: int = 500,
        now: Callable[[], int] = lambda: int(time.time()),
        lease_master: bytes | None = None,
    ) -> None:
        self.engine = engine
        self.lease_master = lease_master  # HQ's master key signs the devices' leases; None: no leases sent
        self.ingestor = Ingestor(engine, now)
        self.now = now
        self.batch = batch
        self.stats = BridgeStats()
        self.queue: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub", clean_session=False, manual_ack=True)
        self.client.username_pw_set(user, password)
        self.client.will_set(HUB_STATUS_TOPIC, json.dumps({"online": False}), qos=1, retain=True)
        self.client.reconnect_delay_set(1, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.queue.put(msg)
        self.host, self.port = host, port
        self._worker = threading.Thread(target=self._work, name="hub-ingest", daemon=True)
        self._sender = threading.Thread(target=self._send_downlinks, name="hub-downlinks", daemon=True)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # (device, kind) -> (version sent up to, when): what went out and is not confirmed yet
        self.sent: dict[tuple[str, str], tuple[int, float]] = {}

    def counters(self) -> dict[str, int]:
        """The ingest counters for the health endpoint."""
        s = self.stats
        return {
            "messages": s.messages,
            "batches": s.batches,
            "duplicates": s.duplicates,
            "sales_committed": s.sales_committed,
            "anomalies": s.anomalies,
            "errors": s.errors,
        }

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._worker.start()
        self._sender.start()

    def stop(self) -> None:
        """Say the hub is offline, finish the batch at hand, disconnect."""
        self._stopping.set()
        self.queue.put(None)
        self._wake.set()
        self._worker.join(timeout=10)
        self._sender.join(timeout=10)
        if self.stats.connected:
            self.client.publish(HUB_STATUS_TOPIC, json.dumps({"online": False}), qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self.stats.last_error = f"broker refused the hub: {reason}"
            log.error(self.stats.last_error)
            return
        self.stats.connected = True
        client.subscribe([(RECORDS, 1), (STATUS, 1)])
        client.publish(HUB_STATUS_TOPIC, json.dumps({"online": True}), qos=1, retain=True)
        # After a crash, acks for what was committed may never have gone out: say them again,
        # so devices need not wait for their ack timeout to resend.
        with self.engine.connect() as conn:
            for device_id, acked in conn.execute(select(DEVICES.c.id, DEVICES.c.acked_seq).where(DEVICES.c.acked_seq > 0)):
                client.publish(ack_topic(device_id), encode_ack(acked), qos=1)

    def _on_disconnect(self, *_args: object) -> None:
        self.stats.connected = False

    # -- the worker ------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            first = self.queue.get()
            if first is None:
                return
            msgs = [first]
            while len(msgs) < self.batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._stopping.set()
                    break
                msgs.append(nxt)
            try:
                self._handle(msgs)
            except Exception as exc:  # the loop must survive anything one batch does
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("ingest batch failed; its messages stay unacknowledged and will be resent")
                try:
                    self.ingestor.anomaly("ingest_error", self.stats.last_error)
                except Exception:
                    log.exception("could not record the ingest error")

    def _handle(self, msgs: list[mqtt.MQTTMessage]) -> None:
        records: list[tuple[str, bytes]] = []
        statuses: list[tuple[str, bytes]] = []
        for msg in msgs:
            try:
                device_id = device_of(msg.topic)
            except SyncError:
                continue
            (statuses if msg.topic.endswith("/up/status") else records).append((device_id, bytes(msg.payload)))
        result = self.ingestor.ingest(records) if records else None
        for device_id, payload in statuses:
            self._status(device_id, payload)
        # Only now, after the commit, do devices and the broker hear that it is safe.
        if result is not None:
            for device_id, acked in result.acks.items():
                self.client.publish(ack_topic(device_id), encode_ack(acked), qos=1)
                self.stats.acks_sent[device_id] = acked
            self.stats.sales_committed += result.sales_committed
            self.stats.duplicates += result.duplicates
            self.stats.anomalies += result.anomalies
        for msg in msgs:
            self.client.ack(msg.mid, msg.qos)
        self.stats.messages += len(msgs)
        self.stats.batches += 1

    def _status(self, device_id: str, payload: bytes) -> None:
        """A device's birth or will: online state, firmware, journal head; re-ack on birth."""
        try:
            status = json.loads(payload)
            online = bool(status.get("online"))
        except (ValueError, AttributeError):
            self.ingestor.anomaly("bad_status", f"unreadable status {payload[:60]!r}", device_id)
            return
        values: dict[str, object] = {"online": online, "last_seen": self.now()}
        for key, column in STATUS_VERSIONS:
            value = status.get(key)
            if (type(value) is str) if key == "firmware" else (type(value) is int and value >= 0):
                values[column] = value
        with self.engine.begin() as conn:
            found = conn.execute(update(DEVICES).where(DEVICES.c.id == device_id).values(**values)).rowcount
            acked = conn.execute(select(DEVICES.c.acked_seq).where(DEVICES.c.id == device_id)).scalar()
        if found and online:
            # A device that lost our last ack (or its journal state) learns where the hub is.
            self.client.publish(ack_topic(device_id), encode_ack(acked or 0), qos=1)
            self._wake.set()  # and what it lacks of the downlinks, without waiting for the next look

    # -- downlinks -------------------------------------------------------------------

    def _send_downlinks(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(DOWNLINK_POLL_S)
            self._wake.clear()
            if self._stopping.is_set() or not self.stats.connected:
                continue
            try:
                self.push_downlinks()
            except Exception as exc:  # the sender must outlive a bad moment of the database
                self.stats.last_error = f"downlinks: {type(exc).__name__}: {exc}"
                log.exception("sending downlinks failed; trying again in a second")

    def push_downlinks(self) -> int:
        """Publish to each online device what it lacks; the number of messages sent."""
        now = time.monotonic()
        out: list[tuple[str, str, bytes]] = []
        with Session(self.engine) as db:
            if self.lease_master is not None and leases.issue_all(db, self.lease_master, self.now()):
                db.commit()
            latest = downlinks.latest_versions(db)
            for device in db.exec(select_rows(Device).where(col(Device.online).is_(True))):
                for kind, (have, newest) in downlinks.behind(device, latest).items():
                    sent = self.sent.get((device.id, kind))
                    fresh = sent is not None and now - sent[1] < RESEND_S
                    if fresh and sent is not None and sent[0] >= newest:
                        continue  # on its way; the device's next status says it arrived
                    # From what was just sent, if that is recent: the device is taking it already.
                    base = max(have, sent[0]) if fresh and sent is not None and kind != dl.PRICES else have
                    for _to, payload in downlinks.messages(db, device, kind, base, newest):
                        out.append((device.id, kind, payload))
                    self.sent[(device.id, kind)] = (newest, now)
        for device_id, kind, payload in out:
            self.client.publish(dl.topic(device_id, kind), payload, qos=1)
        self.stats.downlinks_sent += len(out)
        return len(out)
