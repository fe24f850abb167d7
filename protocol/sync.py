"""The sync wire format: MQTT topics, record batches, acknowledgements, device status.

docs/protocol.md (section 7) is the reference. A batch carries whole journal
records; the hub acknowledges the highest contiguous seq it has committed.
"""

import json
import struct

BATCH_VERSION = 1
MAX_BATCH = 1024  # bytes of records per message, about: one MQTT message stays small


class SyncError(ValueError):
    """A sync message that is not what the protocol says; .code names the reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def records_topic(device_id: str) -> str:
    return "terminals/%s/up/records" % device_id


def status_topic(device_id: str) -> str:
    return "terminals/%s/up/status" % device_id


def ack_topic(device_id: str) -> str:
    return "terminals/%s/down/ack" % device_id


HUB_STATUS_TOPIC = "hub/status"


def device_of(topic: str) -> str:
    """The device id in a terminals/<id>/... topic; SyncError otherwise."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "terminals" or not parts[1]:
        raise SyncError("bad_topic", "not a device topic: %r" % topic)
    return parts[1]


def encode_batch(records: list) -> bytes:
    """One message of records: version byte, then per record a 16-bit length and its bytes."""
    parts = [bytes([BATCH_VERSION])]
    for data in records:
        parts.append(struct.pack(">H", len(data)))
        parts.append(data)
    return b"".join(parts)


def decode_batch(payload: bytes) -> list:
    """The record byte strings in a batch (not yet decoded); SyncError when malformed."""
    if not payload or payload[0] != BATCH_VERSION:
        raise SyncError("bad_batch", "batch version %r, expected %d" % (payload[:1], BATCH_VERSION))
    out = []
    pos = 1
    while pos < len(payload):
        if pos + 2 > len(payload):
            raise SyncError("bad_batch", "batch ends inside a record length")
        (size,) = struct.unpack(">H", payload[pos : pos + 2])
        pos += 2
        if size == 0 or pos + size > len(payload):
            raise SyncError("bad_batch", "batch ends inside a record")
        out.append(bytes(payload[pos : pos + size]))
        pos += size
    return out


def encode_ack(acked: int) -> bytes:
    return json.dumps({"acked": acked}).encode()


def decode_ack(payload: bytes) -> int:
    """The acknowledged seq; SyncError when the payload is not an ack."""
    try:
        acked = json.loads(payload)["acked"]
    except (ValueError, KeyError, TypeError):
        raise SyncError("bad_ack", "not an ack: %r" % payload[:40])
    if type(acked) is not int or acked < 0:
        raise SyncError("bad_ack", "ack must be a whole number, got %r" % (acked,))
    return acked


def encode_status(status: dict) -> bytes:
    """The retained birth (online) or will (offline) message of a device."""
    return json.dumps(status).encode()
