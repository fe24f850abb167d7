"""Members in CSV files: an export that re-imports as it is, and imports that take the whole file or nothing of it."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hub import member_csv
from hub import members as rules
from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.db import make_engine, migrate
from hub.masterdata import save_member_category, save_tier
from hub.models import CardAction, TierChange
from tests.test_members import CARD, LOST_CARD, seed_member, state


def make_hub(path):
    engine = make_engine(f"sqlite:///{path / 'hub.db'}")
    migrate(engine)
    _password, token = new_login(engine, "alice", ADMIN, 0)
    return engine, TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def hub(tmp_path):
    engine, api = make_hub(tmp_path)
    yield engine, api
    engine.dispose()


def upload(api, data: bytes, name: str = "members.csv"):
    return api.post("/api/v1/members/import", files={"file": (name, data, "text/csv")})


def defined_tiers_and_categories(engine) -> None:
    with Session(engine) as db:
        save_tier(db, "test", 0, 1, "Silver", 300)
        save_tier(db, "test", 0, 2, "Gold", 500)
        save_member_category(db, "test", 0, 1, "Standard")
        save_member_category(db, "test", 0, 2, "Staff")
        db.commit()


def test_an_export_re_imports_as_it_is_into_a_new_hub_and_into_the_same(hub, tmp_path):
    engine, api = hub
    seed_member(engine)
    with Session(engine) as db:
        rules.add_member(db, "test", 0, 'Zoë "Zee" Müller, Jr.', "030 1234567", "", 1, 2, ["staff", "weekend"])
        rules.add_member(db, "test", 0, "李小龍", "", "1940-11-27")
        db.commit()
    exported = api.get("/api/v1/members/export")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    data = exported.content
    assert data.startswith("\ufeff".encode()) and data.decode("utf-8-sig").splitlines() == [
        "id,name,phone,birthday,category,tier,tags",
        "1,Ana Lima,+491512345678,1990-04-23,1,1,vip",
        '2,"Zoë ""Zee"" Müller, Jr.",0301234567,,1,2,staff weekend',
        "3,李小龍,,1940-11-27,,0,",
    ]

    again = upload(api, data)  # into the same hub: every row is already so
    assert again.status_code == 200 and again.json() == {"created": 0, "updated": 0, "unchanged": 3}

    (tmp_path / "fresh").mkdir()
    fresh_engine, fresh = make_hub(tmp_path / "fresh")
    with Session(fresh_engine) as db:  # the tiers and categories the file names are master data, set up first
        save_tier(db, "test", 0, 1, "Silver", 300)
        save_tier(db, "test", 0, 2, "Gold", 500)
        save_member_category(db, "test", 0, 1, "Standard")
        db.commit()
    imported = upload(fresh, data)
    assert imported.status_code == 200 and imported.json() == {"created": 3, "updated": 0, "unchanged": 0}
    assert fresh.get("/api/v1/members/export").content == data  # the same members, numbers and all
    fresh_engine.dispose()


BROKEN = """name,phone,birthday,tier,tags,id
Cleo Good,+44 20 7946 0001,1985-06-01,1,new,
Dan Dup,+44 20 7946 0002,,,,
Eve Badphone,07946-ABC,,,,
Fay Baddate,,1985-02-30,,,
"Gus
Multiline",+44 20 7946 0002,,,,
Hal Short,,
Ida Tier,,,9,,
,+44 20 7946 0003,,,,
Jo Taken,+49 151 2345678,,,,
Kim Id,,,,,2
Lu Id again,,,,,2
Max Tag,,,,bad/tag,
Ned Id,,,,,abc
Oli Future,,2999-01-01,,,
"""


def test_a_file_with_broken_rows_reports_every_one_by_line_and_imports_nothing(hub):
    engine, api = hub
    defined_tiers_and_categories(engine)
    seed_member(engine)
    before = state(engine)
    refused = upload(api, BROKEN.encode())
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["code"] == "bad_csv" and body["detail"].startswith("nothing was imported: 11 bad rows: line 4:")
    errors = {e["line"]: " / ".join(e["problems"]) for e in body["errors"]}
    assert sorted(errors) == [4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]
    assert "phone '07946-ABC'" in errors[4]
    assert "birthday 1985-02-30 is not a day" in errors[5]
    assert "phone +442079460002 is also on line 3" in errors[6]  # a record over two lines starts on line 6
    assert "has 3 fields; the header has 6" in errors[8]
    assert "no tier 9" in errors[9]
    assert "the name is empty" in errors[10]
    assert "phone +491512345678 belongs to member 1, who is not in this file" in errors[11]
    assert "member id 2 is also on line 12" in errors[13]
    assert "tag 'bad/tag'" in errors[14]
    assert "id 'abc' is not a whole number" in errors[15]
    assert "in the future" in errors[16]
    assert state(engine) == before  # not even the good rows (lines 2, 3, 7, 12)


def test_excel_files_with_a_bom_semicolons_and_crlf_import(hub):
    engine, api = hub
    defined_tiers_and_categories(engine)
    text = "\ufeffName;Phone;Birthday;Category;Tier;Tags\r\nAnna Öberg;+46 70 123 45 67;1970-01-31;2;2;vip;\r\n"
    refused = upload(api, text.encode())  # a stray separator at the end of the row: 7 fields
    assert refused.json()["errors"] == [{"line": 2, "problems": ["has 7 fields; the header has 6"]}]
    text = text.replace("vip;\r\n", "vip\r\n") + ";;;;;\r\n\r\nBo Ek;;;;;\r\n"  # blank rows are skipped
    done = upload(api, text.encode())
    assert done.status_code == 200 and done.json() == {"created": 2, "updated": 0, "unchanged": 0}
    anna = api.get("/api/v1/members", params={"q": "Öberg"}).json()[0]
    assert (anna["phone"], anna["birthday"], anna["category_id"], anna["tier"]) == ("+46701234567", "1970-01-31", 2, 2)
    with Session(engine) as db:
        assert [(h.to_tier, h.reason) for h in db.exec(select(TierChange))] == [(2, "new member")]


def test_files_that_are_not_utf8_csv_are_refused_with_the_line(hub):
    engine, api = hub
    before = state(engine)
    latin1 = "name,phone\nAna,\nJosé,\n".encode("latin-1")
    refused = upload(api, latin1)
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"line": 3, "problems": ["byte 0xE9 is not UTF-8 text: save the file as CSV UTF-8"]}]
    for data, line, words in [
        (b"", 1, "the file is empty"),
        (b"naam,telefoon\nAna,1\n", 1, "unknown column 'naam'"),
        (b"phone,birthday\n+4930123456,\n", 1, "the header has no 'name' column"),
        (b"name,name\nA,B\n", 1, "column 'name' appears twice"),
        (b"name\nA\x00B\n", 2, "control characters"),
        (b"name\n" + b"a" * 200_000 + b"\n", 2, "not readable as CSV: field larger than field limit"),
    ]:
        refused = upload(api, data)
        assert refused.status_code == 400 and refused.json()["errors"][0]["line"] == line, (data, refused.text)
        assert words in " ".join(refused.json()["errors"][0]["problems"]), (data, refused.text)
    assert state(engine) == before


def test_an_import_updates_members_by_number_moves_phones_and_queues_tier_changes(hub):
    engine, api = hub
    ana = seed_member(engine)
    bo = api.post("/api/v1/members", json={"name": "Bo", "phone": "+46 70 000 0001"}).json()["id"]
    # Ana and Bo swap phones; Ana goes to Gold; Bo's tags are cleared; columns left out (birthday) stay as they are.
    data = f"id,name,phone,tier,tags\n{ana},Ana Lima,+46700000001,2,vip regular\n{bo},Bo,+491512345678,,\n".encode()
    done = upload(api, data)
    assert done.status_code == 200, done.text
    assert done.json() == {"created": 0, "updated": 2, "unchanged": 0}
    ana_now = api.get(f"/api/v1/members/{ana}").json()
    assert (ana_now["phone"], ana_now["tier"], ana_now["birthday"]) == ("+46700000001", 2, "1990-04-23")
    assert [t["tag"] for t in ana_now["tags"]] == ["regular", "vip"]
    assert api.get(f"/api/v1/members/{bo}").json()["phone"] == "+491512345678"
    with Session(engine) as db:
        assert [(a.card_no, a.kind, a.tier) for a in db.exec(select(CardAction))] == [(CARD, "tier", 2)]  # not LOST_CARD
        assert LOST_CARD not in {a.card_no for a in db.exec(select(CardAction))}
        assert db.exec(select(TierChange).where(TierChange.to_tier == 2)).one().reason == "CSV import"
    audit = api.get("/api/v1/audit", params={"entity": "member", "key": str(ana)}).json()
    assert audit[1]["action"] == "update" and audit[1]["before"]["phone"] == "+491512345678"


def test_a_new_row_with_a_number_of_its_own_keeps_it(hub):
    engine, api = hub
    done = upload(api, b"id,name\n500,Far Away\n,Next One\n")
    assert done.status_code == 200
    assert sorted((m["id"], m["name"]) for m in api.get("/api/v1/members").json()) == [(500, "Far Away"), (501, "Next One")]


def test_plan_import_is_a_pure_check_of_rows(tmp_path):
    from datetime import date

    known = member_csv.Known(rules.Limits(date(2025, 1, 1), {1}, set()), {"+4930123456": 7})
    names = ["id", "name", "phone"]
    planned, bad = member_csv.plan_import(
        names, [(2, ["7", "Ana", "+49 30 123456"]), (3, ["", "Bo", "+4930123456"]), (4, ["", "Cy", ""])], known
    )
    assert [p.line for p in planned] == [2, 4]
    assert bad == [member_csv.BadRow(3, ("phone +4930123456 is also on line 2",))]
