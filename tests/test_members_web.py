"""The member pages in Chromium: search, the 360 view, editing a profile, tier, tags and photo, CSV import and export."""

import pytest
from playwright.sync_api import FilePayload, Page, expect
from sqlmodel import Session, select

from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.db import make_engine, migrate
from hub.models import CardAction, Member
from tests.browser import logged_in, needs_chromium, serve
from tests.test_members import CARD, LOST_CARD, png, seed_member, state

pytestmark = needs_chromium


@pytest.fixture
def hq(tmp_path):
    """A hub with Ana's member record, served by uvicorn; (engine, base URL, admin password)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    seed_member(engine)
    password, _token = new_login(engine, "alice", ADMIN, 0)
    with serve(create_app(engine)) as base_url:
        yield engine, base_url, password
    engine.dispose()


def upload(name: str, mime: str, data: bytes) -> FilePayload:
    return FilePayload(name=name, mimeType=mime, buffer=data)


def search(page: Page, q: str) -> None:
    page.fill("#q", q)
    page.click("#search-button")


def test_hq_finds_a_member_and_sees_their_cards_points_sales_and_tiers(browser, hq):
    _engine, base_url, password = hq
    with logged_in(browser, base_url, "alice", password) as page:
        page.click("nav >> text=Members")
        search(page, "0151 2345678")
        expect(page.locator("#members tbody tr")).to_have_count(1)
        search(page, CARD[-8:])  # by card number
        expect(page.locator("#members tbody tr")).to_have_count(1)
        page.click("#member-1")
        expect(page.locator("#member-name")).to_have_text("Ana Lima")
        expect(page.locator("#profile")).to_contain_text("+491512345678")
        expect(page.locator("#profile")).to_contain_text("1 (Silver)")
        expect(page.locator("#tags")).to_have_text("vip")
        cards = page.locator("#cards tbody tr")
        expect(cards).to_have_count(2)
        expect(cards.nth(0)).to_contain_text(CARD)
        expect(cards.nth(0)).to_contain_text("42.50")
        expect(cards.nth(1)).to_contain_text(LOST_CARD)
        expect(cards.nth(1)).to_contain_text("lost")
        expect(page.locator("#balance")).to_have_text("47.50")
        expect(page.locator("#points")).to_have_text("330")
        ledger = page.locator("#ledger tbody tr")
        expect(ledger).to_have_count(4)
        expect(ledger.nth(0)).to_contain_text("points")
        expect(ledger.nth(1)).to_contain_text("-7.50")
        expect(page.locator("#sales tbody tr")).to_have_count(3)
        expect(page.locator("#sales tbody tr").nth(0)).to_contain_text("voided")
        expect(page.locator("#sales-count")).to_have_text("2")
        expect(page.locator("#sales-total")).to_have_text("19.50")
        expect(page.locator("#tier-history tbody tr")).to_have_count(1)
        expect(page.locator("#tier-history")).to_contain_text("new member")


def test_hq_edits_a_profile_tier_tags_and_photo(browser, hq):
    engine, base_url, password = hq
    with logged_in(browser, base_url, "alice", password) as page:
        page.goto("/admin/members/1")
        page.fill("#phone", "0170 555 4443")
        page.fill("#birthday", "1991-05-06")
        page.click("#save-profile")
        expect(page.locator("#notice")).to_have_text("Profile saved.")
        expect(page.locator("#profile")).to_contain_text("01705554443")
        expect(page.locator("#profile")).to_contain_text("1991-05-06")

        before = state(engine)
        page.fill("#birthday", "1991-02-30")
        page.fill("#name", "Ana Maria Lima")
        page.click("#save-profile")
        expect(page.locator("#error")).to_contain_text("birthday 1991-02-30 is not a day of the calendar")
        expect(page.locator("#birthday")).to_have_value("1991-02-30")  # what was typed, to correct it
        expect(page.locator("#member-name")).to_have_text("Ana Lima")
        assert state(engine) == before

        page.select_option("#tier", "2")
        page.fill("#reason", "spent 1000 this year")
        page.click("#save-tier")
        expect(page.locator("#notice")).to_have_text(f"Tier changed to 2; card {CARD} gets it at the next tap.")
        expect(page.locator("#tier-history tbody tr").nth(0)).to_contain_text("spent 1000 this year")
        expect(page.locator("#tier-history tbody tr").nth(0)).to_contain_text("2 (Gold)")
        with Session(engine) as db:
            assert [(a.card_no, a.tier) for a in db.exec(select(CardAction))] == [(CARD, 2)]

        page.fill("#tag-list", "vip, Coffee")
        page.click("#save-tags")
        expect(page.locator("#tags")).to_have_text("coffee vip")

        page.set_input_files("#photo-file", files=[upload("notes.jpg", "image/jpeg", b"hello")])
        page.click("#upload-photo")
        expect(page.locator("#error")).to_contain_text("not a JPEG or PNG image")
        expect(page.locator("#photo")).to_have_count(0)
        page.set_input_files("#photo-file", files=[upload("ana.png", "image/png", png(3, 2))])
        page.click("#upload-photo")
        expect(page.locator("#notice")).to_have_text("Photo saved.")
        assert page.locator("#photo").evaluate("img => img.complete && img.naturalWidth") == 3  # the browser decoded it


def test_a_csv_with_a_bad_row_shows_its_line_and_imports_nothing(browser, hq):
    engine, base_url, password = hq
    with logged_in(browser, base_url, "alice", password) as page:
        page.goto("/admin/members")
        before = state(engine)
        bad = b"name,phone,birthday\nCy Good,030 7654321,\nDee,12,\nEd,+49 151 2345678,\n"
        page.set_input_files("#import-file", files=[upload("members.csv", "text/csv", bad)])
        page.click("#import-button")
        expect(page.locator("#error")).to_have_text("Nothing was imported: 2 bad rows.")
        expect(page.locator("#import-line-3")).to_have_text("line 3: phone '12' has 2 digits; a phone number has 6 to 15")
        expect(page.locator("#import-line-4")).to_contain_text("belongs to member 1")
        expect(page.locator("#import-errors li")).to_have_count(2)
        assert state(engine) == before
        search(page, "Cy Good")
        expect(page.locator("#members")).to_have_text("No members found.")

        good = b"\xef\xbb\xbfname,phone,birthday\r\nCy Good,030 7654321,\r\nDee,,1999-12-31\r\n"
        page.set_input_files("#import-file", files=[upload("members.csv", "text/csv", good)])
        page.click("#import-button")
        expect(page.locator("#notice")).to_have_text("Imported members.csv: 2 new, 0 changed, 0 unchanged.")
        with Session(engine) as db:
            assert len(db.exec(select(Member)).all()) == 3

        with page.expect_download() as download:
            page.click("#export")
        exported = open(download.value.path(), "rb").read().decode("utf-8-sig").splitlines()
        assert exported[0] == "id,name,phone,birthday,category,tier,tags"
        assert exported[2:] == ["2,Cy Good,0307654321,,,0,", "3,Dee,,1999-12-31,,0,"]


def test_a_new_member_is_added_from_the_members_page(browser, hq):
    engine, base_url, password = hq
    with logged_in(browser, base_url, "alice", password) as page:
        page.goto("/admin/members")
        page.fill("#add-name", "Bo Berg")
        page.fill("#add-phone", "+49 151 2345678")  # Ana's
        page.click("#add-button")
        expect(page.locator("#error")).to_have_text("phone +491512345678 belongs to member 1 (Ana Lima)")
        expect(page.locator("#add-name")).to_have_value("Bo Berg")
        page.fill("#add-phone", "030 1112223")
        page.fill("#add-tags", "staff")
        page.click("#add-button")
        expect(page.locator("#notice")).to_have_text("Member 2 added.")
        expect(page.locator("#member-name")).to_have_text("Bo Berg")
        expect(page.locator("#tags")).to_have_text("staff")
