"""hub/broker.py against a real Mosquitto and real paho-mqtt clients: logins, the ACL, reload, restart."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

mqtt = pytest.importorskip("paho.mqtt.client")

from hub.broker import (  # noqa: E402  (after the importorskip on purpose)
    Broker,
    BrokerError,
    hash_password,
    mosquitto_binary,
    new_password,
    password_file_text,
    verify_password,
)

try:
    mosquitto_binary()
except BrokerError:
    pytest.skip("mosquitto is not installed", allow_module_level=True)

PASSWORDS = {"hub": new_password(), "hh-01": new_password(), "hh-02": new_password()}
QUIET = 0.5  # seconds to wait for a message that must not come


class Client:
    """A connected paho client that queues what it receives as (topic, payload); retained ones only if asked."""

    def __init__(self, broker: Broker, user: str, password: str, retained: bool = False) -> None:
        self.retained = retained
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[Any] = queue.Queue()
        self.subacks: dict[int, list[Any]] = {}
        self._subacked = threading.Condition()
        self.mqtt = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:8]}")
        self.mqtt.username_pw_set(user, password)
        self.mqtt.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.mqtt.on_message = self._on_message
        self.mqtt.on_subscribe = self._on_subscribe
        self.mqtt.connect(broker.host, broker.port)
        self.mqtt.loop_start()
        try:
            self.reason = self.connack.get(timeout=5)
        except BaseException:
            self.close()
            raise

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        # Retained messages left by other tests would otherwise arrive first on a wide subscription.
        if self.retained or not msg.retain:
            self.messages.put((msg.topic, msg.payload))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        with self._subacked:
            self.subacks[mid] = codes
            self._subacked.notify_all()

    def subscribe(self, topic: str) -> Any:
        """Subscribe at QoS 1 and return the broker's reason code from the SUBACK."""
        _, mid = self.mqtt.subscribe(topic, qos=1)
        with self._subacked:
            assert self._subacked.wait_for(lambda: mid in self.subacks, timeout=5), f"no SUBACK for {topic}"
            return self.subacks[mid][0]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the PUBACK (Mosquitto acks a publish the ACL drops, too)."""
        self.mqtt.publish(topic, payload, qos=1, retain=retain).wait_for_publish(timeout=5)

    def until(self, topic: str, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        """Everything received up to and including the first message on topic."""
        got: list[tuple[str, bytes]] = []
        while not got or got[-1][0] != topic:
            got.append(self.messages.get(timeout=timeout))
        return got

    def quiet(self, seconds: float = QUIET) -> list[tuple[str, bytes]]:
        """Whatever else arrives within seconds (should be nothing)."""
        got: list[tuple[str, bytes]] = []
        try:
            while True:
                got.append(self.messages.get(timeout=seconds))
        except queue.Empty:
            return got

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def login(broker: Broker, user: str | None, password: str | None) -> Any:
    """The CONNACK reason code for one login attempt, on the calling thread (paho's own would retry)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if user is not None:
        client.username_pw_set(user, password)
    reasons: list[Any] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: reasons.append(rc)
    client.connect(broker.host, broker.port)
    try:
        deadline = time.monotonic() + 5
        while not reasons and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        assert reasons, f"no CONNACK for {user}"
        return reasons[0]
    finally:
        client.disconnect()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("broker"))
    for user, password in PASSWORDS.items():
        b.set_account(user, hash_password(password))
    try:
        b.start()
        yield b
    finally:
        b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker for tests that reload or restart it, so the shared one stays as it was."""
    b = Broker(tmp_path / "broker")
    b.set_account("hub", hash_password(PASSWORDS["hub"]))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def clients(broker: Broker) -> Iterator[dict[str, Client]]:
    """One connected client per account, closed after the test."""
    made: dict[str, Client] = {}
    try:
        for user, password in PASSWORDS.items():
            made[user] = Client(broker, user, password)
            assert not made[user].reason.is_failure, made[user].reason
        yield made
    finally:
        for c in made.values():
            c.close()


def refused(reason: Any) -> bool:
    """CONNACK says bad credentials: MQTT 3.1.1 code 4 or 5, which paho reports as 134 or 135."""
    return bool(reason.is_failure) and reason.value in (134, 135)


# -- logins ---------------------------------------------------------------------------------------


def test_right_password_connects(broker: Broker) -> None:
    assert not login(broker, "hh-01", PASSWORDS["hh-01"]).is_failure


def test_wrong_password_is_refused(broker: Broker) -> None:
    assert refused(login(broker, "hh-01", PASSWORDS["hh-02"]))


def test_unknown_user_is_refused(broker: Broker) -> None:
    assert refused(login(broker, "hh-99", PASSWORDS["hh-01"]))


def test_anonymous_is_refused(broker: Broker) -> None:
    assert login(broker, None, None).is_failure


# -- the ACL --------------------------------------------------------------------------------------


def test_device_publishes_only_under_its_own_up(clients: dict[str, Client]) -> None:
    hub, device = clients["hub"], clients["hh-01"]
    hub.subscribe("#")
    device.publish("terminals/hh-02/up/records", b"forged")
    device.publish("terminals/hh-01/down/ack", b"forged")
    device.publish("hub/status", b"forged")
    # Last, so that once it has arrived the forged ones, sent earlier on the same connection, had their chance.
    device.publish("terminals/hh-01/up/records", b"ok")
    assert hub.until("terminals/hh-01/up/records") == [("terminals/hh-01/up/records", b"ok")]
    assert hub.quiet() == []


def test_device_reads_only_its_own_down(clients: dict[str, Client]) -> None:
    hub, device = clients["hub"], clients["hh-01"]
    # Mosquitto 2.0.11 grants these SUBACKs and filters each message against the read ACL on delivery.
    device.subscribe("terminals/hh-02/down/#")
    device.subscribe("#")
    assert not device.subscribe("terminals/hh-01/down/#").is_failure
    hub.publish("terminals/hh-02/down/ack", b"not for hh-01")
    hub.publish("terminals/hh-01/up/records", b"not for hh-01 either")
    hub.publish("elsewhere", b"nor this")
    hub.publish("terminals/hh-01/down/ack", b"for hh-01")
    assert device.until("terminals/hh-01/down/ack") == [("terminals/hh-01/down/ack", b"for hh-01")]
    assert device.quiet() == []


def test_device_reads_retained_hub_status(broker: Broker, clients: dict[str, Client], request: pytest.FixtureRequest) -> None:
    clients["hub"].publish("hub/status", b"online", retain=True)
    device = Client(broker, "hh-02", PASSWORDS["hh-02"], retained=True)
    request.addfinalizer(device.close)
    assert not device.subscribe("hub/status").is_failure
    assert device.until("hub/status") == [("hub/status", b"online")]


def test_hub_reads_and_writes_everywhere(clients: dict[str, Client]) -> None:
    hub = clients["hub"]
    assert not hub.subscribe("#").is_failure
    topics = ["terminals/hh-01/down/ack", "terminals/hh-02/up/records", "hub/status", "anything/at/all"]
    for topic in topics:
        hub.publish(topic, topic.encode())
    assert hub.until(topics[-1]) == [(t, t.encode()) for t in topics]
    device = clients["hh-01"]
    device.subscribe("terminals/hh-01/down/#")
    hub.publish("terminals/hh-01/down/price-list", b"v2")
    assert device.until("terminals/hh-01/down/price-list")[-1] == ("terminals/hh-01/down/price-list", b"v2")


# -- reload and restart ---------------------------------------------------------------------------


def test_reload_lets_a_new_device_in_without_a_restart(own_broker: Broker) -> None:
    own_broker.start()
    pid = own_broker.pid
    password = new_password()
    own_broker.set_account("hh-03", hash_password(password))
    assert refused(login(own_broker, "hh-03", password))  # not in force before the reload
    own_broker.reload()
    assert not login(own_broker, "hh-03", password).is_failure
    assert own_broker.pid == pid and own_broker.running
    own_broker.remove_account("hh-03")
    own_broker.reload()
    assert refused(login(own_broker, "hh-03", password))


def test_restart_keeps_retained_messages(own_broker: Broker) -> None:
    own_broker.start()
    port, pid = own_broker.port, own_broker.pid
    hub = Client(own_broker, "hub", PASSWORDS["hub"])
    try:
        hub.publish("hub/status", b"kept", retain=True)
    finally:
        hub.close()
    own_broker.restart()
    assert own_broker.port == port and own_broker.pid != pid
    hub = Client(own_broker, "hub", PASSWORDS["hub"], retained=True)
    try:
        hub.subscribe("hub/status")
        assert hub.until("hub/status") == [("hub/status", b"kept")]
    finally:
        hub.close()


def test_kill_and_context_manager(tmp_path: Path) -> None:
    with Broker(tmp_path) as b:
        assert b.running
        b.kill()
        assert not b.running and b.pid is None
        b.start()  # after a crash: stale pid file, persistence file from the last save
        assert b.running
    assert not b.running


def test_start_failure_says_why(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        b = Broker(tmp_path, port=taken.getsockname()[1])
        try:
            with pytest.raises(BrokerError, match="(?i)address already in use"):
                b.start(timeout=5)
            assert not b.running
        finally:
            b.stop()


# -- the password format --------------------------------------------------------------------------


def test_hash_round_trip() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$7$101$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret!", hashed)
    assert hash_password("x", salt=b"\0" * 12) == hash_password("x", salt=b"\0" * 12)
    assert hash_password("x") != hash_password("x")  # a fresh salt each time
    for bad in ("", "s3cret", "$7$", "$7$x$AAAA$AAAA", "$7$101$!!$AAAA", "$5$AAAA$AAAA"):
        assert not verify_password("s3cret", bad)


def test_mosquitto_passwd_files_verify(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    tool = Path(mosquitto_binary()).with_name("mosquitto_passwd")
    if not tool.exists():
        tool = Path("/usr/bin/mosquitto_passwd")
    subprocess.run([str(tool), "-b", "-c", str(path), "alice", "pa:ss word"], check=True, capture_output=True)
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "alice" and hashed.startswith("$7$101$")
    assert verify_password("pa:ss word", hashed)
    assert not verify_password("pa:ss words", hashed)


def test_password_file_refuses_plain_passwords_and_bad_names() -> None:
    with pytest.raises(ValueError):
        password_file_text({"hh-01": "plain"})
    for name in ("hh/01", "+", "#", "a:b", "", "a b"):
        with pytest.raises(ValueError):
            password_file_text({name: hash_password("x")})
