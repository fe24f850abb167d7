"""RFM tags on a virtual clock: scores by the documented cut points, recomputed without touching manual tags."""

import pytest
from sqlmodel import Session, select

from hub import members, tags
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
