"""RFM tags: recency, frequency and monetary scores 1-5 by fixed cut points, a segment, tags with source "rfm".

Fixed cut points rather than quintiles: a member's tag then depends on what they did,
not on what everyone else did, so it can be explained to them and a test can predict it.
Tags are "rfm:<segment>" and "rfm:r<R>f<F>m<M>"; a manual tag cannot hold ":", so the two
never meet. A recompute replaces the rfm tags only, never manual ones. Members who never
bought get no rfm tag. The cut points are HQ's parameters rfm.* (hub.masterdata.PARAMS), read
at each recompute. docs/loyalty.md, "Tiers, tags and plans", lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import NamedTuple

from sqlmodel import Session, col, select

from hub.activity import DAY, Activity, activity
from hub.masterdata import PARAMS, params
from hub.models import AuditEntry, MemberTag

RFM = "rfm"  # MemberTag.source of these tags
PREFIX = "rfm:"


class Marks(NamedTuple):
    """The cut points: score 5, 4, 3, 2 at these marks, else 1; frequency and monetary count in the window."""

    window_days: int
    recency: tuple[int, ...]  # days since the last purchase, at most
    frequency: tuple[int, ...]  # purchases in the window, at least
    monetary: tuple[int, ...]  # cents paid in the window, at least


def marks_of(values: Mapping[str, int]) -> Marks:
    """The cut points from the rfm.* parameters (hub.masterdata.params)."""
    return Marks(values["rfm.window_days"], tuple(values[f"rfm.r{s}_days"] for s in (5, 4, 3, 2)),
                 tuple(values[f"rfm.f{s}_purchases"] for s in (5, 4, 3, 2)),
                 tuple(values[f"rfm.m{s}_cents"] for s in (5, 4, 3, 2)))


DEFAULT_MARKS = marks_of({key: spec[0] for key, spec in PARAMS.items()})  # while HQ has changed none
WINDOW_DAYS, RECENCY_DAYS, FREQUENCY, MONETARY = DEFAULT_MARKS
# The first segment whose (R from, R to, F from, F to, lowest M) the scores fall in; together they cover every score.
SEGMENTS: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("champion", 4, 5, 4, 5, 4),  # bought lately, often, much
    ("loyal", 3, 5, 4, 5, 1),  # often, not long ago
    ("at-risk", 1, 2, 3, 5, 1),  # used to buy often, not lately
    ("new", 4, 5, 1, 1, 1),  # one purchase, lately
    ("regular", 3, 5, 1, 3, 1),
    ("hibernating", 2, 2, 1, 2, 1),
    ("lost", 1, 1, 1, 2, 1),
)
SEGMENT_NAMES = tuple(s[0] for s in SEGMENTS)


def score(days_since: int, purchases: int, spend: int, marks: Marks = DEFAULT_MARKS) -> tuple[int, int, int]:
    """(R, F, M), each 1-5."""
    r = next((5 - i for i, days in enumerate(marks.recency) if days_since <= days), 1)
    f = next((5 - i for i, mark in enumerate(marks.frequency) if purchases >= mark), 1)
    m = next((5 - i for i, mark in enumerate(marks.monetary) if spend >= mark), 1)
    return r, f, m


def segment(r: int, f: int, m: int) -> str:
    for name, r_lo, r_hi, f_lo, f_hi, m_lo in SEGMENTS:
        if r_lo <= r <= r_hi and f_lo <= f <= f_hi and m >= m_lo:
            return name
    raise AssertionError(f"no segment for R{r} F{f} M{m}")  # SEGMENTS cover every score


def rfm_tags(act: Activity, now: int, marks: Marks = DEFAULT_MARKS) -> list[str]:
    """A member's rfm tags at now from their activity in the window (none when they never bought)."""
    if not act.last_purchase:
        return []
    r, f, m = score((now - act.last_purchase) // DAY, act.purchases, act.spend, marks)
    return sorted([PREFIX + segment(r, f, m), f"{PREFIX}r{r}f{f}m{m}"])


def recompute_rfm(db: Session, now: int, actor: str = "rfm") -> dict[str, int]:
    """Recompute every member's rfm tags (manual tags stay); members per segment, and "changed": members whose tags changed."""
    marks = marks_of(params(db))  # HQ may have changed them since the last run
    acts = activity(db, now - marks.window_days * DAY, now)
    have: dict[int, dict[str, MemberTag]] = {}
    for row in db.exec(select(MemberTag).where(MemberTag.source == RFM)):
        have.setdefault(row.member_id, {})[row.tag] = row
    counts = {name: 0 for name in SEGMENT_NAMES}
    changed = 0
    for member_id, act in acts.items():
        wanted = rfm_tags(act, now, marks)
        old = have.get(member_id, {})
        for tag in wanted:
            if tag.removeprefix(PREFIX) in counts:
                counts[tag.removeprefix(PREFIX)] += 1
        if sorted(old) == wanted:
            continue
        changed += 1
        for tag, row in old.items():
            if tag not in wanted:
                db.delete(row)
        for tag in wanted:
            if tag not in old:
                db.add(MemberTag(member_id=member_id, source=RFM, tag=tag, created=now))
    summary = {**counts, "changed": changed}
    # One entry for the whole recompute: the tags themselves are the record of each member's; the marks explain them.
    db.add(AuditEntry(time=now, actor=actor, action="recompute", entity="rfm", entity_key=str(now), before="",
                      after=json.dumps({**summary, "marks": marks._asdict()}, sort_keys=True)))
    db.flush()
    return summary


def segments_of(db: Session, member_ids: list[int]) -> dict[int, str]:
    """Each member's rfm segment ('' for none)."""
    out = {i: "" for i in member_ids}
    rows = db.exec(select(MemberTag).where(MemberTag.source == RFM, col(MemberTag.member_id).in_(member_ids)))
    for row in rows:
        name = row.tag.removeprefix(PREFIX)
        if name in SEGMENT_NAMES:
            out[row.member_id] = name
    return out
