"""The hub's dashboard at / in a real browser (Debian's Chromium via Playwright) over a real uvicorn server.

The ledger is filled as in test_api: a virtual handheld sells to a member card, the hub's Ingestor applies
its journal, a forged record makes an anomaly; one device is online, one offline.
"""

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlmodel import Session

from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.db import make_engine, migrate
from hub.downlink_queue import hotlist_change
from hub.ingest import Ingestor
from hub.models import Device, PublishedPrices
from protocol import record as rec
from protocol.pricing import format_money
from protocol.sync import encode_batch
from simulator.handheld import VirtualHandheld
from simulator.shop import PRICE_LIST, master_key, member_card
from tests.browser import logged_in, needs_chromium, serve

DAY = 86400
SALE_TOTAL = 646  # 3.20 + 2 x 1.80 = 6.80, less the tier-1 5 % = 6.46
SALES_TODAY = 3

pytestmark = needs_chromium

LOGIN: dict[str, str] = {}  # user name -> password, made by the hub_url fixture


def _today_time() -> int:
    """A time the dashboard counts as today (UTC days) for the next minute, even if midnight falls in between."""
    now = int(time.time())
    return now if now % DAY < DAY - 60 else now - now % DAY + DAY + 1


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("dashboard")
    rng = random.Random(3)
    master = master_key(rng)
    card = member_card(rng, master, 77, balance=5000, points=0, tier=1)
    hh = VirtualHandheld("hh-north", root, master, PRICE_LIST)
    hh.boot()
    hh.clock.now = _today_time() - 2 * DAY  # one sale two days ago: not today's
    assert hh.sell(card, [(102, 1), (103, 2)]) == "receipt"
    hh.clock.now = _today_time()
    for _ in range(SALES_TODAY):
        assert hh.sell(card, [(102, 1), (103, 2)]) == "receipt"
    records = [data for _s, data in hh.journal().entries()]
    hh.close()

    engine = make_engine(f"sqlite:///{root / 'hub.db'}")
    migrate(engine)
    with Session(engine) as s:
        s.add(Device(id="hh-north", shop="north", password_hash="x", created=0, online=True, head_seq=len(records) + 2))
        s.add(Device(id="hh-south", shop="south", password_hash="x", created=0, prices_version=1))
        # HQ has published south's prices twice and listed a lost card: hh-south holds the first version only.
        for version in (1, 2):
            s.add(PublishedPrices(shop_id="south", version=version, published=0, sha256=str(version), doc="{}"))
        hotlist_change(s, "9100000000000018", "0a0b0c0d", True, "lost", 0)
        s.commit()
    ingest = Ingestor(engine)
    ingest.ingest([("hh-north", encode_batch(records))])
    forged = rec.encode(dict(rec.decode(records[0]), device="hh-x"))  # another device's record on hh-north's topic
    ingest.ingest([("hh-north", encode_batch([forged]))])

    LOGIN["hq"] = new_login(engine, "hq", ADMIN, 0)[0]
    with serve(create_app(engine, lambda: True)) as url:
        yield url
    engine.dispose()


@pytest.fixture
def page(browser: Browser, hub_url: str) -> Iterator[Page]:
    with logged_in(browser, hub_url, "hq", LOGIN["hq"]) as page:
        page.goto("/")
        yield page


def cells(page: Page, table: str, has_text: str) -> Locator:
    """The cells of the one row of table (by id) that contains has_text."""
    row = page.locator(f"#{table} tbody tr").filter(has_text=has_text)
    expect(row).to_have_count(1)
    return row.locator("td")


def test_tiles(page: Page) -> None:
    expect(page).to_have_title("Hub dashboard")
    expect(page.locator("#sales-today")).to_have_text(str(SALES_TODAY))
    expect(page.locator("#turnover-today")).to_have_text(format_money(SALES_TODAY * SALE_TOTAL))
    expect(page.locator("#turnover-today")).to_have_text("19.38")
    expect(page.locator("#devices-online")).to_have_text("1/2")
    expect(page.locator("#anomaly-count")).to_have_text("1")


def test_devices_table_shows_state_and_backlog(page: Page) -> None:
    expect(page.locator("#devices thead th")).to_have_text(
        ["Device", "Shop", "State", "Firmware", "Acked seq", "Backlog", "Downlinks", "Last seen"]
    )
    expect(page.locator("#devices tbody tr")).to_have_count(2)
    north = cells(page, "devices", "hh-north")
    expect(north.nth(1)).to_have_text("north")
    expect(north.nth(2)).to_have_text("online")
    expect(north.nth(2)).to_have_class("on")
    expect(north.nth(4)).to_have_text("8")  # 4 sales, each a sale record and its outcome
    expect(north.nth(5)).to_have_text("2")  # the device reported a head 2 beyond what the hub committed
    expect(north.nth(6)).to_have_text("hotlist v0 of v1")  # north has no price list published
    expect(north.nth(7)).not_to_have_text("never")
    south = cells(page, "devices", "hh-south")
    expect(south.nth(2)).to_have_text("offline")
    expect(south.nth(2)).to_have_class("off")
    expect(south.nth(5)).to_have_text("0")
    expect(south.nth(6)).to_have_text("hotlist v0 of v1, prices v1 of v2")
    expect(south.nth(7)).to_have_text("never")


def test_todays_sales_only(page: Page) -> None:
    rows = page.locator("#sales tbody tr")
    expect(rows).to_have_count(SALES_TODAY)  # the sale of two days ago is not listed
    for i in range(SALES_TODAY):
        row = rows.nth(i).locator("td")
        expect(row.nth(1)).to_have_text("hh-north")
        expect(row.nth(3)).to_have_text("...0077")
        expect(row.nth(4)).to_have_text("6.46")
        expect(row.nth(5)).to_have_text("6.46")  # all from stored value
        expect(row.nth(6)).to_have_text("0.00")
    # newest first: seqs of the last three sale records, descending
    seqs = [int(t) for t in page.locator("#sales tbody tr td:nth-child(3)").all_inner_texts()]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == SALES_TODAY


def test_anomaly_listed(page: Page) -> None:
    expect(page.locator("#anomalies tbody tr")).to_have_count(1)
    anomaly = cells(page, "anomalies", "device_mismatch")
    expect(anomaly.nth(1)).to_have_text("device_mismatch")
    expect(anomaly.nth(2)).to_have_text("hh-north")


def test_screenshot(page: Page, tmp_path: Path) -> None:
    expect(page.locator("#anomalies")).to_be_visible()
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
