"""Offline leases: the limits each handheld sells under while it cannot reach the hub, signed for it.

The terms come from the lease.* parameters (hub.masterdata.PARAMS). A device's lease
is issued again, with the next version, only when its terms change; the version is
what the device reports holding, so hub.downlinks sends a lease like any other
downlink. protocol.downlink signs and verifies; docs/loyalty.md explains the limits.
"""

from __future__ import annotations

import json

from sqlmodel import Session, col, select

from hub.masterdata import params
from hub.models import Device, Lease
from protocol.downlink import LEASE_LIMITS, lease_mac

PARAM_OF = {key: f"lease.{key}" for key in LEASE_LIMITS}


def terms(values: dict[str, int]) -> dict[str, int]:
    """The lease limits from the parameters' values."""
    return {key: values[param] for key, param in PARAM_OF.items()}


def sign(master: bytes, lease: dict) -> dict:
    """The lease with its MAC (protocol.downlink.lease_mac: what the handheld verifies)."""
    return {**lease, "mac": lease_mac(master, lease)}


def lease_doc(master: bytes, device_id: str, version: int, issued: int, limits: dict[str, int]) -> dict:
    """The signed lease document a device is sent."""
    return sign(master, {"device": device_id, "version": version, "issued": issued, **limits})


def issue_all(db: Session, master: bytes, now: int) -> int:
    """Issue a new lease to every device whose terms changed (or that has none); how many were issued.

    The caller commits.
    """
    limits = terms(params(db))
    held = {row.device_id: row for row in db.exec(select(Lease))}
    issued = 0
    for device_id in db.exec(select(Device.id).order_by(col(Device.id))):
        row = held.get(device_id)
        if row is not None and all(getattr(row, key) == value for key, value in limits.items()):
            continue
        version = row.version + 1 if row is not None else 1
        doc = json.dumps(lease_doc(master, device_id, version, now, limits), sort_keys=True)
        if row is None:
            row = Lease(device_id=device_id, version=version, issued=now, doc=doc, **limits)
        else:
            row.version, row.issued, row.doc = version, now, doc
            for key, value in limits.items():
                setattr(row, key, value)
        db.add(row)
        issued += 1
    return issued
