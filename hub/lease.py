"""Offline leases: the limits each handheld sells under while it cannot reach the hub, signed for it.

The terms come from the lease.* parameters (hub.masterdata.PARAMS), or from an
override HQ set for the device (LeaseOverride: a smaller allowance for some handhelds).
A device's lease is issued again, with the next version, only when its terms change;
the version is what the device reports holding, so hub.downlinks sends a lease like any
other downlink. protocol.downlink signs and verifies; docs/loyalty.md explains the limits.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from hub.masterdata import audit, params
from hub.models import Device, Lease, LeaseOverride
from hub.refusal import Refusal
from protocol.downlink import LEASE_LIMITS, MAX_AMOUNT, lease_mac

PARAM_OF = {key: f"lease.{key}" for key in LEASE_LIMITS}
MAX_OFFLINE_S = 30 * 86400  # what protocol.downlink.decode_lease takes: a month offline at most


class LeaseError(Refusal):
    """A lease override refused: code and message say why; nothing was written."""


def terms(values: dict[str, int]) -> dict[str, int]:
    """The lease limits from the parameters' values."""
    return {key: values[param] for key, param in PARAM_OF.items()}


def check_terms(limits: dict[str, Any]) -> dict[str, int]:
    """The limits when they make a lease, else LeaseError saying which one is wrong.

    Each is a positive whole number (a zero limit is no offline selling: leave the device
    out of the shop instead), and a sale may not take more than a card a day, nor a card a
    day more than the handheld in all.
    """
    for key in LEASE_LIMITS:
        value = limits.get(key)
        top = MAX_OFFLINE_S if key == "expires_after_s" else MAX_AMOUNT
        if type(value) is not int or not 1 <= value <= top:
            raise LeaseError("bad_lease", f"{key} must be a whole number from 1 to {top}, got {value!r}")
    sale, day, total = limits["max_sv_per_sale"], limits["max_sv_per_card_day"], limits["max_sv_offline_total"]
    if sale > day:
        raise LeaseError("bad_lease", f"max_sv_per_sale {sale} is more than max_sv_per_card_day {day}: "
                                      "one sale cannot take more than a card may spend in a day")
    if day > total:
        raise LeaseError("bad_lease", f"max_sv_per_card_day {day} is more than max_sv_offline_total {total}: "
                                      "one card cannot spend more than the handheld may take in all")
    return {key: limits[key] for key in LEASE_LIMITS}


def override_terms(row: LeaseOverride) -> dict[str, int]:
    return {key: getattr(row, key) for key in LEASE_LIMITS}


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
    defaults = terms(params(db))
    held = {row.device_id: row for row in db.exec(select(Lease))}
    overrides = {row.device_id: override_terms(row) for row in db.exec(select(LeaseOverride))}
    issued = 0
    for device_id in db.exec(select(Device.id).order_by(col(Device.id))):
        limits = overrides.get(device_id, defaults)
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


# -- overrides (HQ) ------------------------------------------------------------------------------------


def _device(db: Session, device_id: str) -> Device:
    device = db.get(Device, device_id)
    if device is None:
        raise LeaseError("unknown_device", f"no device {device_id!r} is registered", 404)
    return device


def device_terms(db: Session, device_id: str) -> dict[str, Any]:
    """What a device's next lease holds: its override, or the parameters; and the version it was last issued."""
    _device(db, device_id)
    row = db.get(LeaseOverride, device_id)
    lease = db.get(Lease, device_id)
    return {"device_id": device_id, "source": "override" if row is not None else "parameters",
            **(override_terms(row) if row is not None else terms(params(db))),
            "issued_version": lease.version if lease is not None else 0}


def set_override(db: Session, actor: str, now: int, device_id: str, given: dict[str, int | None]) -> LeaseOverride:
    """Set the device's lease terms: the limits given, the others as its next lease would hold them now; audited.

    An override is a whole set of terms, checked together: a later change of the lease.*
    parameters does not reach the device until the override is cleared.
    """
    unknown = sorted(set(given) - set(LEASE_LIMITS))
    if unknown:
        raise LeaseError("bad_lease", f"no lease limit {unknown[0]!r}; there are: {', '.join(LEASE_LIMITS)}")
    limits = {key: value for key, value in device_terms(db, device_id).items() if key in LEASE_LIMITS}
    if all(value is None for value in given.values()):
        raise LeaseError("bad_lease", f"name at least one limit to set: {', '.join(LEASE_LIMITS)}")
    limits.update({key: value for key, value in given.items() if value is not None})
    checked = check_terms(limits)
    row = db.get(LeaseOverride, device_id)
    before = row.model_dump() if row is not None else None
    if row is None:
        row = LeaseOverride(device_id=device_id, set_at=now, actor=actor, **checked)
    else:
        row.set_at, row.actor = now, actor
        for key, value in checked.items():
            setattr(row, key, value)
    db.add(row)
    audit(db, actor, now, "set", row, device_id, before)
    return row


def clear_override(db: Session, actor: str, now: int, device_id: str) -> dict[str, int]:
    """Remove the device's override (its limits are returned): its next lease follows the parameters again; audited."""
    _device(db, device_id)
    row = db.get(LeaseOverride, device_id)
    if row is None:
        raise LeaseError("no_override", f"device {device_id} has no lease override: it follows the parameters", 404)
    audit(db, actor, now, "clear", row, device_id, row.model_dump())
    db.delete(row)
    db.flush()
    return override_terms(row)
