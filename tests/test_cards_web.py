"""The card pages in Chromium: HQ issues a card at the virtual desk reader through /admin/cards, reports it lost and
sees it on the hotlist, tops it up and replaces it; the member uses /me. Real uvicorn, pcscd, vpcd and SQLite."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlmodel import Session

from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.cli_cards import make_card_batch
from hub.db import make_engine, migrate
from hub.models import Card, Member
from protocol import cardno
from simulator.mifare_card import MifareClassic1K
from simulator.shop import master_key, read_card_directly
from tests.browser import logged_in, needs_chromium, serve

pytestmark = needs_chromium

MASTER = master_key(random.Random(1212))
FIRST, SECOND = cardno.make("6300", 1), cardno.make("6300", 2)


@pytest.fixture
def site(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, pcscd: Any) -> Iterator[tuple[str, str, Any]]:
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER.hex())
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    with Session(engine) as db:
        db.add(Member(id=5, name="Ada Lovelace", created=0))
        db.add(Member(id=6, name="Grace Hopper", created=0))
        db.commit()
    make_card_batch(engine, "6300", 1, 2, 0)
    password, _token = new_login(engine, "hq", ADMIN, 0)
    with serve(create_app(engine)) as base:
        yield base, password, engine
    engine.dispose()


def issue_on_page(page: Page, member: str) -> None:
    page.goto("/admin/cards")
    page.select_option("#issue-member", member)
    page.select_option("#issue-reader", "Virtual PCD 00 00")
    page.click("#issue-button")


def test_hq_issues_a_card_marks_it_lost_and_sees_it_on_the_hotlist(browser: Browser, site: Any, desk: Any) -> None:
    base, password, engine = site
    with logged_in(browser, base, "hq", password) as page:
        page.goto("/admin/cards")
        expect(page.locator("#batches")).to_contain_text(FIRST)
        expect(page.locator("#hotlist")).to_have_text("No card is on the hotlist.")
        issue_on_page(page, "6")
        expect(page.locator("#error")).to_have_text("no card on the desk reader: put a blank card on it")
        card = MifareClassic1K.blank(bytes.fromhex("f1f2f3f4"))
        desk.insert(card)
        issue_on_page(page, "5")
        expect(page.locator("#notice")).to_contain_text(f"Card {FIRST} (UID f1f2f3f4) is active for member 5")
        member_password = page.locator("#new-password").inner_text()
        assert len(member_password) == 10
        assert read_card_directly(card, MASTER)["ident"]["card_no"] == FIRST
        issue_on_page(page, "6")  # the same card again
        expect(page.locator("#error")).to_contain_text(f"card f1f2f3f4 is issued already, as card {FIRST}")

        page.fill("#search-card-no", FIRST)
        page.click("#search-button")
        expect(page.locator("#card-state")).to_have_text("active")
        page.click("#lost-button")
        expect(page.locator("#notice")).to_contain_text("Reported lost")
        expect(page.locator("#card-state")).to_have_text("lost")
        expect(page.locator("#card-hotlisted")).to_have_text("yes")
        expect(page.locator("#hotlist-history")).to_contain_text("lost")
        page.goto("/admin/cards")
        expect(page.locator(f"#hot-{FIRST}")).to_have_text(FIRST)
        expect(page.locator("#hotlist")).to_contain_text("lost")
        with Session(engine) as db:
            assert db.get(Card, FIRST).state == "lost"  # type: ignore[union-attr]

        page.click(f"#hot-{FIRST}")
        page.click("#unfreeze-button")
        expect(page.locator("#card-state")).to_have_text("active")
        page.fill("#topup-amount", "12,50")
        page.click("#topup-button")
        expect(page.locator("#error")).to_contain_text("'12,50' is not an amount like 12.50")
        page.fill("#topup-amount", "12.50")
        page.click("#topup-button")
        expect(page.locator("#card-pending-topups")).to_have_text("12.50")
        expect(page.locator("#pending")).to_contain_text("paid at HQ")

        page.goto("/admin/cards")
        page.click("#verify-button")
        expect(page.locator("#verdict")).to_have_text("OK")
        expect(page.locator("#findings")).to_contain_text("pending action(s) reach the card")

        new = MifareClassic1K.blank(bytes.fromhex("e1e2e3e4"))
        desk.insert(new)
        page.goto(f"/admin/cards/{FIRST}")
        page.click("#replace-button")
        expect(page.locator("#notice")).to_contain_text(f"Card {SECOND} (UID e1e2e3e4) is active for member 5: balance 12.50")
        page.click("#card-link")
        expect(page.locator("#card-balance")).to_have_text("12.50")
        page.goto(f"/admin/cards/{FIRST}")
        expect(page.locator("#card-state")).to_have_text("replaced")
        expect(page.locator("#replaced-by")).to_have_text(SECOND)
        assert page.locator("#lost-button").count() == 0 and page.locator("#replace-form").count() == 0

        page.goto("/admin/cards")
        page.fill("#batch-prefix", "6300")
        page.fill("#batch-count", "5")
        page.click("#batch-button")
        expect(page.locator("#error")).to_contain_text("2 of these card numbers exist already")
        page.fill("#batch-start", "3")
        page.click("#batch-button")
        expect(page.locator("#notice")).to_contain_text("5 card numbers in stock")

    # The member, with the card number and the password the desk gave them.
    with logged_in(browser, base, SECOND, member_password) as me:
        assert me.url.endswith("/me")
        expect(me.locator("#me-balance")).to_have_text("12.50")
        expect(me.locator("#my-sales")).to_have_text("No purchases yet.")
        me.fill("#old-password", "not my password")
        me.fill("#new-password", "a better one 9")
        me.fill("#repeat-password", "a better one 9")
        me.click("#password-button")
        expect(me.locator("#error")).to_have_text("the current password is wrong; nothing was changed")
        me.fill("#old-password", member_password)
        me.fill("#new-password", "a better one 9")
        me.fill("#repeat-password", "a better one 8")
        me.click("#password-button")
        expect(me.locator("#error")).to_contain_text("the two new passwords differ")
        me.fill("#old-password", member_password)
        me.fill("#new-password", "a better one 9")
        me.fill("#repeat-password", "a better one 9")
        me.click("#password-button")
        expect(me.locator("#notice")).to_have_text("Password changed.")
    with logged_in(browser, base, SECOND, "a better one 9") as again:
        expect(again.locator("#me-balance")).to_have_text("12.50")
