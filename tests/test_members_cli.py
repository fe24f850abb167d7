"""`hub member ...`: add, set, tag, show, list, search, import and export, as HQ staff type them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from hub.cli import main
from hub.db import make_engine
from hub.models import AuditEntry, CardAction, Member
from tests.test_members import CARD, LOST_CARD, png, seed_member, state

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "hub"
    monkeypatch.setenv("HUB_DATA_DIR", str(folder))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    return folder


@pytest.fixture
def engine(data_dir):
    assert main(["db", "upgrade"]) == 0
    engine = make_engine(f"sqlite:///{data_dir / 'hub.db'}")
    yield engine
    engine.dispose()


def hub(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_set_tag_show_search_and_list(engine, capsys, tmp_path):
    ana = seed_member(engine)
    code, out, _err = hub(capsys, "member", "add", "--name", "Bo Berg", "--phone", "030 1234567", "--tag", "staff")
    assert code == 0 and out.strip() == f"member {ana + 1}: Bo Berg"

    code, out, _err = hub(capsys, "member", "set", str(ana), "--tier", "2", "--reason", "big spender", "--birthday", "1991-05-06")
    assert code == 0, out
    assert out.splitlines() == [f"member {ana}: Ana Lima", f"member {ana}: tier 2; queued for card {CARD}"]
    with Session(engine) as db:
        assert [(a.card_no, a.kind, a.tier) for a in db.exec(select(CardAction))] == [(CARD, "tier", 2)]
        assert db.get(Member, ana).birthday == "1991-05-06"  # type: ignore[union-attr]
        tiers = db.exec(select(AuditEntry).where(AuditEntry.action == "tier").order_by(col(AuditEntry.id))).all()
        assert [t.actor for t in tiers][0] == "test" and tiers[-1].actor.startswith("cli:")

    photo = tmp_path / "ana.png"
    photo.write_bytes(png())
    code, out, _err = hub(capsys, "member", "set", str(ana), "--photo", str(photo))
    assert code == 0 and "photo saved (image/png" in out

    code, out, _err = hub(capsys, "member", "tag", str(ana), "Coffee", "weekend", "--remove", "vip")
    assert code == 0 and out.strip() == f"member {ana}: coffee weekend"

    code, out, _err = hub(capsys, "member", "show", str(ana))
    assert code == 0
    assert "member 1: Ana Lima" in out and "birthday 1991-05-06" in out and "tier 2 (Gold)" in out
    assert "tags: coffee weekend; photo: yes" in out and "balance 47.50, points 330; 2 sales, 19.50 in all" in out
    assert f"{CARD}  active" in out and f"{LOST_CARD}  lost" in out and "1 -> 2  big spender  by cli:" in out

    code, out, _err = hub(capsys, "member", "show", str(ana), "--json")
    doc = json.loads(out)
    assert doc["member"]["tier"] == 2 and [c["card_no"] for c in doc["cards"]] == [CARD, LOST_CARD]
    assert (doc["sales_count"], doc["sales_total"]) == (2, 1950)

    assert hub(capsys, "member", "search", "weekend")[1].startswith(f"{ana}\tAna Lima\t+491512345678\t1991-05-06\ttier 2 (Gold)")
    assert hub(capsys, "member", "search", CARD)[1].startswith(f"{ana}\tAna Lima")
    assert "no member matches 'nobody'" in hub(capsys, "member", "search", "nobody")[1]
    listing = hub(capsys, "member", "list")[1].splitlines()
    assert [line.split("\t")[1] for line in listing] == ["Bo Berg", "Ana Lima"]


@pytest.mark.parametrize("args, words", [
    (["member", "add", "--name", "Cy", "--phone", "12ab"], "hub member add: phone '12ab' may hold only digits"),
    (["member", "add", "--name", "Cy", "--phone", "+49 151 2345678"], "belongs to member 1 (Ana Lima)"),
    (["member", "set", "1", "--birthday", "1990-02-30"], "hub member set: birthday 1990-02-30 is not a day"),
    (["member", "set", "1", "--tier", "9"], "no tier 9"),
    (["member", "set", "1"], "say what to change"),
    (["member", "set", "99", "--name", "X"], "no member 99"),
    (["member", "tag", "1", "--remove", "gold"], "member 1 has no tag gold"),
    (["member", "show", "99"], "no member 99"),
])
def test_bad_input_says_why_and_changes_nothing(engine, capsys, args, words):
    seed_member(engine)
    before = state(engine)
    code, _out, err = hub(capsys, *args)
    assert code == 2 and words in err, err
    assert state(engine) == before


def test_a_bad_photo_changes_nothing(engine, capsys, tmp_path):
    seed_member(engine)
    before = state(engine)
    fake = tmp_path / "me.jpg"
    fake.write_text("not a picture")
    code, _out, err = hub(capsys, "member", "set", "1", "--name", "Ana Maria", "--photo", str(fake))
    assert code == 2 and "not a JPEG or PNG" in err
    assert state(engine) == before  # the name did not change either: one command, one transaction


def test_export_and_import_from_the_command_line(engine, capsys, data_dir, tmp_path):
    seed_member(engine)
    exported = tmp_path / "members.csv"
    code, _out, err = hub(capsys, "member", "export", str(exported))
    assert code == 0 and "1 members written" in err
    assert exported.read_bytes().decode("utf-8-sig").splitlines()[1] == "1,Ana Lima,+491512345678,1990-04-23,1,1,vip"

    bad = tmp_path / "new.csv"
    bad.write_text("name,phone,birthday\nCy Good,030 7654321,\nDee,12,\nEd,,1990-13-01\n")
    before = state(engine)
    env = dict(os.environ, HUB_DATA_DIR=str(data_dir))
    done = subprocess.run([sys.executable, "-m", "hub", "member", "import", str(bad)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"hub member import: nothing was imported from {bad}: 2 bad rows",
        "  line 3: phone '12' has 2 digits; a phone number has 6 to 15",
        "  line 4: birthday 1990-13-01 is not a day of the calendar",
    ]
    assert state(engine) == before

    bad.write_text("name,phone,birthday\nCy Good,030 7654321,\nDee,,\n")
    code, out, _err = hub(capsys, "member", "import", str(bad))
    assert code == 0 and out.strip() == f"imported {bad}: 2 new, 0 changed, 0 unchanged"
    code, out, _err = hub(capsys, "member", "import", str(exported))
    assert code == 0 and out.strip() == f"imported {exported}: 0 new, 0 changed, 1 unchanged"

    code, out, _err = hub(capsys, "member", "export")
    names = [line.split(",")[1] for line in out.lstrip("\ufeff").splitlines()]
    assert code == 0 and names == ["name", "Ana Lima", "Cy Good", "Dee"]
