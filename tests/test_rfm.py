"""RFM tags on a virtual clock: scores by the documented cut points, recomputed without touching manual tags."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from hub import members, tags
from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.masterdata import PARAMS, params
from hub.models import AuditEntry, MemberTag
from tests.plans_world import DOC, add_member, at, buy, hub_db

DAY = 86400


def tag_sets(db: Session, member_id: int) -> tuple[list[str], list[str]]:
    rows = db.exec(select(MemberTag).where(MemberTag.member_id == member_id)).all()
    return sorted(t.tag for t in rows if t.source == "rfm"), sorted(t.tag for t in rows if t.source == "manual")


def test_scores_follow_the_documented_cut_points():
    assert tags.score(14, 20, 100_000) == (5, 5, 5)
    assert tags.score(15, 19, 99_999) == (4, 4, 4)
    assert tags.score(181, 1, 4_999) == (1, 1, 1)
    assert tags.score(90, 5, 20_000) == (3, 3, 3)
    # Every score has a segment.
    assert {tags.segment(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)} == set(tags.SEGMENT_NAMES)
    text = DOC.read_text(encoding="utf-8")
    for marks in (tags.RECENCY_DAYS, tags.FREQUENCY):
        assert " | ".join(str(v) for v in marks) in text
    assert " | ".join(f"{v // 100:,}.00" for v in tags.MONETARY) in text


def test_recompute_replaces_rfm_tags_and_never_manual_ones(tmp_path):
    engine = hub_db(tmp_path)
    june = at("2025-06-01")
    with Session(engine) as db:
        cleo = add_member(db, "Cleo", at("2024-01-01"))
        dan = add_member(db, "Dan", at("2025-05-01"))
        eva = add_member(db, "Eva", at("2024-01-01"))
        finn = add_member(db, "Finn", at("2024-01-01"))
        for week in range(20):
            buy(db, cleo, 6000, at("2025-05-28") - week * 7 * DAY)
        buy(db, dan, 3000, at("2025-05-25"))
        for n in range(6):
            buy(db, eva, 5000, at("2025-01-10") - n * DAY)
        buy(db, eva, 99999, at("2025-05-30"), state="voided")  # not a purchase
        members.set_member_tags(db, "hq", june, cleo, ["coffee"])
        members.set_member_tags(db, "hq", june, finn, ["vip"])
        db.commit()

        summary = tags.recompute_rfm(db, june)
        db.commit()
        assert tag_sets(db, cleo) == (["rfm:champion", "rfm:r5f5m5"], ["coffee"])
        assert tag_sets(db, dan) == (["rfm:new", "rfm:r5f1m1"], [])
        assert tag_sets(db, eva) == (["rfm:at-risk", "rfm:r2f3m3"], [])
        assert tag_sets(db, finn) == ([], ["vip"])  # never bought: no rfm tag
        assert (summary["champion"], summary["new"], summary["at-risk"], summary["changed"]) == (1, 1, 1, 3)
        text = DOC.read_text(encoding="utf-8")
        for line in ("| Cleo | rfm:champion rfm:r5f5m5 |", "| Dan | rfm:new rfm:r5f1m1 |", "| Eva | rfm:at-risk rfm:r2f3m3 |",
                     "| Dan (2025-09-01) | rfm:hibernating rfm:r2f1m1 |"):
            assert line in text

        # HQ changes Cleo's manual tags; the next recompute leaves them as they are.
        members.set_member_tags(db, "hq", june, cleo, ["coffee", "tea"])
        db.commit()
        again = tags.recompute_rfm(db, june)
        db.commit()
        assert again["changed"] == 0
        assert tag_sets(db, cleo) == (["rfm:champion", "rfm:r5f5m5"], ["coffee", "tea"])

        # Three months on, without buying: Dan hibernates, Cleo's recency falls.
        tags.recompute_rfm(db, at("2025-09-01"))
        db.commit()
        assert tag_sets(db, dan) == (["rfm:hibernating", "rfm:r2f1m1"], [])
        assert tag_sets(db, cleo)[1] == ["coffee", "tea"]
        assert tag_sets(db, finn) == ([], ["vip"])
        # Setting manual tags never removes computed ones either.
        members.set_member_tags(db, "hq", at("2025-09-01"), dan, [])
        db.commit()
        assert tag_sets(db, dan)[0] == ["rfm:hibernating", "rfm:r2f1m1"]
        assert db.exec(select(AuditEntry).where(AuditEntry.entity == "rfm")).all()


@pytest.mark.parametrize("tag", ["rfm:champion", "rfm:x"])
def test_a_manual_tag_cannot_pass_for_a_computed_one(tmp_path, tag):
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        who = add_member(db, "Gus", at("2025-01-01"))
        with pytest.raises(members.MemberError):
            members.set_member_tags(db, "hq", at("2025-01-01"), who, [tag])


def test_the_cut_points_are_hq_parameters_whose_defaults_are_the_documented_marks(tmp_path):
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        assert tags.marks_of(params(db)) == tags.DEFAULT_MARKS == (
            365, (14, 30, 90, 180), (20, 10, 5, 2), (100_000, 50_000, 20_000, 5_000))
    text = DOC.read_text(encoding="utf-8")
    for key in PARAMS:
        if key.startswith("rfm."):
            assert f"`{key}`" in text


def test_hq_changes_a_cut_point_and_the_next_recompute_uses_it(tmp_path):
    engine = hub_db(tmp_path)
    june = at("2025-06-01")
    with Session(engine) as db:
        dan = add_member(db, "Dan", at("2025-05-01"))
        buy(db, dan, 3000, at("2025-05-25"))  # 7 days before, once, 30.00
        db.commit()
        tags.recompute_rfm(db, june)
        db.commit()
        assert tag_sets(db, dan)[0] == ["rfm:new", "rfm:r5f1m1"]
    _password, token = new_login(engine, "hq", ADMIN, 0)
    api = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    assert api.put("/api/v1/params/rfm.m2_cents", json={"value": 2_500}).json() == {"key": "rfm.m2_cents", "value": 2_500}
    assert api.put("/api/v1/params/rfm.r5_days", json={"value": 5}).status_code == 200
    with Session(engine) as db:
        summary = tags.recompute_rfm(db, june)
        db.commit()
        assert tag_sets(db, dan)[0] == ["rfm:new", "rfm:r4f1m2"]
        assert summary["changed"] == 1
        changes = db.exec(select(AuditEntry).where(AuditEntry.entity == "param")).all()
        assert sorted(e.entity_key for e in changes) == ["rfm.m2_cents", "rfm.r5_days"]
        last = db.exec(select(AuditEntry).where(AuditEntry.entity == "rfm").order_by(col(AuditEntry.id).desc())).first()
        assert last is not None and json.loads(last.after)["marks"]["recency"] == [5, 30, 90, 180]


@pytest.mark.parametrize(("key", "value", "code", "words"), [
    ("rfm.r4_days", 10, "bad_order",
     "rfm.r4_days must be more than rfm.r5_days (14), got 10: a higher recency score needs a more recent purchase"),
    ("rfm.r4_days", 90, "bad_order", "rfm.r4_days must be less than rfm.r3_days (90), got 90"),
    ("rfm.f3_purchases", 20, "bad_order", "rfm.f3_purchases must be less than rfm.f4_purchases (10), got 20"),
    ("rfm.m5_cents", 50_000, "bad_order", "rfm.m5_cents must be more than rfm.m4_cents (50000), got 50000"),
    ("rfm.m2_cents", 0, "bad_number", "rfm.m2_cents must be a whole number from 1"),
    ("rfm.window_days", -1, "bad_number", "rfm.window_days must be a whole number from 1"),
])
def test_cut_points_out_of_order_are_refused_with_the_reason_and_nothing_saved(tmp_path, key, value, code, words):
    engine = hub_db(tmp_path)
    _password, token = new_login(engine, "hq", ADMIN, 0)
    api = TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})
    answer = api.put(f"/api/v1/params/{key}", json={"value": value})
    assert answer.status_code == 400 and answer.json()["code"] == code and words in answer.json()["detail"]
    with Session(engine) as db:
        assert tags.marks_of(params(db)) == tags.DEFAULT_MARKS
        assert db.exec(select(AuditEntry).where(AuditEntry.entity == "param")).all() == []
