"""The sync loop (firmware/sync.py): on an in-memory broker with a clock that moves only when
told, and once through a real Mosquitto with a test client playing the hub ($MQTT_PORT)."""

import json

from fakes import DirFlash, FakeBroker, FakeClock, RealClock
from harness import TempDir, mqtt_port, unique

from firmware import netio
from firmware.journal import Journal
from firmware.mqtt import MQTTClient
from firmware.outbox import Outbox
from firmware.sync import ACK_TIMEOUT_MS, BACKOFF_MAX_MS, BACKOFF_MIN_MS, OFFLINE, ONLINE, WINDOW, SyncLoop, next_backoff
from protocol import record as rec
from protocol.sync import ack_topic, decode_batch, encode_ack, records_topic, status_topic


def event(i):
    return {"kind": "event", "code": "e%d" % i, "message": "m" * 40, "uid": ""}


class Device:
    """A journal with n records and a SyncLoop over network (the fake broker unless given)."""

    def __init__(self, tmp, n, clock, network, device_id="hh-sync", port=1883, on_down=None):
        self.device_id = device_id
        self.journal = Journal(DirFlash(tmp + "/flash"), device_id)
        self.journal.open()
        for i in range(n):
            self.journal.append(event(i), 1000 + i)
        self.events = []  # type: list
        config = {"device_id": device_id, "mqtt_host": "127.0.0.1", "mqtt_port": port, "mqtt_password": "pw"}
        self.sync = SyncLoop(
            Outbox(self.journal),
            network,
            clock,
            config,
            lambda: {"firmware": "test", "prices": 1},
            lambda: 0.5,
            lambda code, message: self.events.append((code, message)),
            on_down,
        )

    def head(self):
        return self.journal.next_seq - 1


def sent_seqs(broker, device_id):
    """The seqs in every records message the broker received, in order (repeats included)."""
    out = []
    for _topic, payload, _qos, _retain, _dup in broker.messages(records_topic(device_id)):
        out += [rec.decode(data)["seq"] for data in decode_batch(payload)]
    return out


def test_backoff_grows_to_a_cap_with_jitter():
    delays = []
    backoff = 0
    for _ in range(12):
        backoff = next_backoff(backoff, 0.5)
        delays.append(backoff)
    assert delays[0] == BACKOFF_MIN_MS and delays[-1] == BACKOFF_MAX_MS and delays == sorted(delays)
    assert next_backoff(4000, 0.0) == 6000 and next_backoff(4000, 0.999) == 9996


def test_connects_announces_and_sends_the_backlog_in_a_window():
    with TempDir() as tmp:
        clock = FakeClock()
        broker = FakeBroker(clock)
        dev = Device(tmp, 120, clock, broker)
        dev.sync.step()
        assert dev.sync.state == ONLINE and dev.sync.connected
        session = broker.connects[0]
        assert session["client_id"] == "hh-sync" and session["user"] == "hh-sync" and not session["clean"]
        assert session["subs"] == ["terminals/hh-sync/down/#"]
        assert json.loads(session["will"][1]) == {"online": False, "device": "hh-sync"} and session["will"][3]
        birth = json.loads(broker.retained[status_topic("hh-sync")])
        assert birth["online"] and birth["head"] == 120 and birth["acked"] == 0 and birth["firmware"] == "test"
        broker.hold_acks = True
        dev.sync.step()
        assert dev.sync.client.inflight == WINDOW and len(broker.messages(records_topic("hh-sync"))) == WINDOW
        broker.hold_acks = False
        broker.release_acks()
        for _ in range(50):
            dev.sync.step()
            clock.advance(10)
            broker.publish(ack_topic("hh-sync"), encode_ack(max(sent_seqs(broker, "hh-sync"))))
            if dev.journal.acked == dev.head():
                break
        assert dev.journal.acked == 120 and dev.sync.outbox.backlog() == 0
        assert sent_seqs(broker, "hh-sync") == list(range(1, 121))  # each once, in order
        assert dev.events == []


def test_no_ack_for_a_while_sends_the_unacknowledged_again():
    with TempDir() as tmp:
        clock = FakeClock()
        broker = FakeBroker(clock)
        dev = Device(tmp, 10, clock, broker)
        dev.sync.step()
        dev.sync.step()
        assert sent_seqs(broker, "hh-sync") == list(range(1, 11))
        broker.publish(ack_topic("hh-sync"), encode_ack(4))
        dev.sync.step()
        assert dev.journal.acked == 4
        clock.advance(ACK_TIMEOUT_MS + 1)
        dev.sync.step()
        assert sent_seqs(broker, "hh-sync") == list(range(1, 11)) + list(range(5, 11))


def test_lost_link_goes_offline_backs_off_and_comes_back():
    with TempDir() as tmp:
        clock = FakeClock()
        broker = FakeBroker(clock)
        dev = Device(tmp, 5, clock, broker)
        dev.sync.step()
        dev.sync.step()
        broker.drop()
        assert json.loads(broker.retained[status_topic("hh-sync")])["online"] is False  # the will
        dev.sync.step()
        assert dev.sync.state == OFFLINE and not dev.sync.connected
        assert dev.sync.backoff_ms == next_backoff(0, 0.5)
        dev.sync.step()
        assert len(broker.connects) == 1  # not before the back-off is over
        dev.journal.append(event(99), 2000)  # selling goes on meanwhile
        clock.advance(dev.sync.backoff_ms)
        dev.sync.step()
        assert dev.sync.state == ONLINE and len(broker.connects) == 2 and dev.sync.backoff_ms == 0
        assert json.loads(broker.retained[status_topic("hh-sync")])["head"] == 6
        dev.sync.step()
        broker.publish(ack_topic("hh-sync"), encode_ack(6))
        dev.sync.step()
        assert dev.journal.acked == 6


def test_broker_down_backs_off_up_to_the_cap():
    with TempDir() as tmp:
        clock = FakeClock()
        broker = FakeBroker(clock)
        broker.down = True
        dev = Device(tmp, 1, clock, broker)
        delays = []
        for _ in range(12):
            dev.sync.step()
            assert dev.sync.state == OFFLINE
            delays.append(dev.sync.backoff_ms)
            clock.advance(dev.sync.backoff_ms)
        assert delays[0] == BACKOFF_MIN_MS and delays[-1] == BACKOFF_MAX_MS and delays == sorted(delays)
        broker.down = False
        dev.sync.step()
        assert dev.sync.state == ONLINE and dev.events == []


def test_refused_login_is_reported_once_and_selling_goes_on():
    with TempDir() as tmp:
        clock = FakeClock()
        broker = FakeBroker(clock)
        broker.refuse = 5
        dev = Device(tmp, 1, clock, broker)
        for _ in range(6):
            dev.sync.step()
            clock.advance(BACKOFF_MAX_MS)
            dev.journal.append(event(1), 3000)
        assert len(broker.connects) == 6 and dev.sync.state == OFFLINE
        assert [code for code, _m in dev.events] == ["sync_refused"] and "5" in dev.events[0][1]
        broker.refuse = 0
        dev.sync.step()
        assert dev.sync.state == ONLINE and dev.sync.refused == ""


def test_a_bad_ack_is_reported_and_changes_nothing():
    with TempDir() as tmp:
        clock = FakeClock()
        broker = FakeBroker(clock)
        dev = Device(tmp, 3, clock, broker)
        dev.sync.step()
        dev.sync.step()
        broker.publish(ack_topic("hh-sync"), b"not json")
        broker.publish(ack_topic("hh-sync"), encode_ack(2))
        dev.sync.step()
        assert [code for code, _m in dev.events] == ["bad_ack"] and dev.journal.acked == 2


def test_downlinks_go_to_the_handler_and_a_moved_version_is_announced():
    with TempDir() as tmp:
        clock = FakeClock()
        broker = FakeBroker(clock)
        got = []

        def on_down(topic, payload):
            got.append((topic, payload))
            return payload == b"new"

        dev = Device(tmp, 0, clock, broker, on_down=on_down)
        dev.sync.step()
        births = len(broker.messages(status_topic("hh-sync")))
        broker.publish("terminals/hh-sync/down/hotlist", b"same")
        dev.sync.step()
        assert len(broker.messages(status_topic("hh-sync"))) == births  # nothing moved: no new status
        broker.publish("terminals/hh-sync/down/prices", b"new")
        broker.publish(ack_topic("hh-sync"), encode_ack(0))
        dev.sync.step()
        assert got == [("terminals/hh-sync/down/hotlist", b"same"), ("terminals/hh-sync/down/prices", b"new")]
        assert len(broker.messages(status_topic("hh-sync"))) == births + 1 and dev.sync.state == ONLINE


def test_sync_round_trip_through_mosquitto():
    port = mqtt_port()
    clock = RealClock()
    device_id = unique("hh-mpy")
    hub = MQTTClient(netio.Network(), clock, unique("hub"), "127.0.0.1", port, timeout_ms=3000)
    with TempDir() as tmp:
        dev = Device(tmp, 60, clock, netio.Network(), device_id=device_id, port=port)
        try:
            hub.connect(clean_session=True)
            hub.subscribe([("terminals/%s/up/#" % device_id, 1)])
            seen = set()
            acked = 0
            statuses = []
            start = clock.ticks_ms()
            while dev.journal.acked < dev.head() and clock.ticks_ms() - start < 10000:
                dev.sync.step()
                for topic, payload, _retain in hub.poll(20):
                    if topic == records_topic(device_id):
                        seen.update([rec.decode(data)["seq"] for data in decode_batch(payload)])
                        while acked + 1 in seen:
                            acked += 1
                        hub.publish(ack_topic(device_id), encode_ack(acked), qos=1)
                    elif topic == status_topic(device_id):
                        statuses.append(json.loads(payload))
            assert dev.journal.acked == 60, (dev.journal.acked, sorted(seen)[-3:], dev.sync.state)
            assert seen == set(range(1, 61)) and dev.sync.connected
            assert statuses and statuses[0]["online"] and statuses[0]["head"] == 60
            dev.sync.client.close()  # switched off: no DISCONNECT, so the broker publishes the will
            start = clock.ticks_ms()
            while clock.ticks_ms() - start < 5000 and not [s for s in statuses if not s["online"]]:
                for topic, payload, _retain in hub.poll(50):
                    if topic == status_topic(device_id):
                        statuses.append(json.loads(payload))
            assert statuses[-1] == {"online": False, "device": device_id}, statuses
        finally:
            dev.sync.client.close()
            hub.close()
