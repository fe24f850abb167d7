"""The sync loop: journal records to the hub over MQTT, acknowledgements back.

It never blocks the sale flow: step() does a little and returns. Records stay in
the journal until the hub acknowledges them (cumulatively); after a silence or a
reconnect the unacknowledged ones are sent again, and the hub drops duplicates.
Downlinks (price list, hotlist, card actions) go to on_down; when one moves a
version, the status is published again so the hub knows what the device holds.
"""

from firmware.mqtt import MQTTBusy, MQTTClient, MQTTConnectError, MQTTError
from protocol.sync import SyncError, ack_topic, decode_ack, encode_batch, encode_status, records_topic, status_topic

OFFLINE = "offline"
ONLINE = "online"

# state -> {event: next state}
TRANSITIONS = {
    OFFLINE: {"wait": OFFLINE, "connected": ONLINE, "refused": OFFLINE, "failed": OFFLINE},
    ONLINE: {"synced": ONLINE, "lost": OFFLINE},
}

BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 30000
ACK_TIMEOUT_MS = 10000  # no ack progress for this long while records are out: send them again
WINDOW = 8  # QoS 1 messages in flight at most
KEEPALIVE_S = 30
CONNECT_TIMEOUT_MS = 1500
# An online device publishes its status at least this often (seconds of its clock): the hub answers with an ack,
# so a connected handheld with nothing to send stays synced and keeps its offline lease (firmware/downlinks.py).
STATUS_EVERY_S = 3600


def next_backoff(backoff_ms: int, jitter: float) -> int:
    """Exponential back-off with jitter in [0, 1): doubles up to the maximum."""
    grown = min(BACKOFF_MAX_MS, max(BACKOFF_MIN_MS, backoff_ms * 2))
    return int(grown * (0.75 + jitter / 2))


class SyncLoop:
    """One device's sync session; call step() from the main loop."""

    def __init__(self, outbox, network, clock, config: dict, status, random_fn, on_event=None, on_down=None):
        self.outbox = outbox
        self.journal = outbox.journal
        self.clock = clock
        self.device_id = config["device_id"]
        self.status = status  # () -> dict: firmware, the downlink versions held
        self.on_down = on_down  # (topic, payload) -> bool: take a downlink; True when a version moved
        self.random = random_fn  # () -> float in [0, 1); randomness is passed in
        self.on_event = on_event  # (code, message) -> None: journal an event
        self.client = MQTTClient(
            network,
            clock,
            self.device_id,
            config.get("mqtt_host", "127.0.0.1"),
            config.get("mqtt_port", 1883),
            user=self.device_id,
            password=config.get("mqtt_password", ""),
            keepalive_s=KEEPALIVE_S,
            # Connecting blocks the main loop: keep it short so a dead broker does not freeze the till.
            timeout_ms=config.get("mqtt_timeout_ms", CONNECT_TIMEOUT_MS),
        )
        self.state = OFFLINE
        self.backoff_ms = 0
        self.retry_at = clock.ticks_ms()
        self.ack_at = clock.ticks_ms()
        self.refused = ""
        self.sent_messages = 0
        self.announce = False  # a downlink moved a version: publish the status again
        self.announced_s = 0  # clock.time() of the last status published

    def go(self, event: str) -> None:
        self.state = TRANSITIONS[self.state][event]

    def step(self) -> None:
        """Connect when due, take acks, send what fits in the window."""
        now = self.clock.ticks_ms()
        if self.state == OFFLINE:
            if now - self.retry_at < 0:
                self.go("wait")
                return
            self._connect(now)
            return
        try:
            self._exchange(now)
            self.go("synced")
        except (OSError, MQTTError):
            self.client.close()
            self._schedule(now)
            self.go("lost")

    def _schedule(self, now: int) -> None:
        self.backoff_ms = next_backoff(self.backoff_ms, self.random())
        self.retry_at = now + self.backoff_ms

    def _connect(self, now: int) -> None:
        will = (status_topic(self.device_id), encode_status({"online": False, "device": self.device_id}), 1, True)
        try:
            self.client.connect(clean_session=False, will=will)
            self.client.subscribe([("terminals/%s/down/#" % self.device_id, 1)])
            self._announce()
        except MQTTConnectError as exc:
            # Wrong password or a device the hub removed: say so once, keep selling offline.
            if self.refused != str(exc) and self.on_event:
                self.on_event("sync_refused", str(exc))
            self.refused = str(exc)
            self.client.close()
            self._schedule(now)
            self.go("refused")
            return
        except (OSError, MQTTError):
            self.client.close()
            self._schedule(now)
            self.go("failed")
            return
        self.refused = ""
        self.backoff_ms = 0
        self.ack_at = now
        self.go("connected")

    def _announce(self) -> None:
        """Publish the retained status: online, journal head, what the device runs and holds."""
        birth = self.status()
        birth.update({"online": True, "device": self.device_id, "head": self.journal.next_seq - 1, "acked": self.journal.acked})
        self.client.publish(status_topic(self.device_id), encode_status(birth), qos=1, retain=True)
        self.announced_s = self.clock.time()

    def _exchange(self, now: int) -> None:
        for topic, payload, _retain in self.client.poll(0):
            if topic == ack_topic(self.device_id):
                self._ack(payload, now)
            elif self.on_down is not None and self.on_down(topic, payload):
                self.announce = True
        t = self.clock.time()
        if t < self.announced_s or t - self.announced_s >= STATUS_EVERY_S:
            self.announce = True  # a quiet hour (or a clock set back): say we are here
        if self.announce and self.client.inflight < WINDOW:
            self.announce = False
            self._announce()
        if self.outbox.sent_seq > self.journal.acked and now - self.ack_at > ACK_TIMEOUT_MS:
            self.outbox.rewind()
            self.ack_at = now
        while self.client.inflight < WINDOW and self.outbox.unsent():
            batch = self.outbox.next_batch()
            try:
                self.client.publish(records_topic(self.device_id), encode_batch([d for _s, d in batch]), qos=1)
            except MQTTBusy:
                self.outbox.rewind()
                return
            self.sent_messages += 1

    def _ack(self, payload: bytes, now: int) -> None:
        try:
            acked = decode_ack(payload)
            if acked > self.journal.acked:
                self.ack_at = now
            if acked >= self.journal.acked:  # one that moves nothing still says the hub has everything up to it
                self.outbox.acknowledge(acked)
        except (SyncError, ValueError) as exc:
            if self.on_event:
                self.on_event("bad_ack", str(exc))

    @property
    def connected(self) -> bool:
        return self.state == ONLINE and self.client.connected
