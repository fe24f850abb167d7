"""Shared fixtures: a private pcscd with vsmartcard's virtual reader, the virtual card in it, the hub's driver."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def pcscd() -> Iterator[Any]:
    """One pcscd per test module (libpcsclite reads its socket path once per process)."""
    from simulator import pcsc

    if pcsc.missing():
        pytest.skip(f"PC/SC stack missing: {'; '.join(pcsc.missing())}. Run `make setup`.")
    daemon = pcsc.PrivatePcscd()
    old = os.environ.get("PCSCLITE_CSOCK_NAME")
    daemon.start()
    process = daemon.process
    assert process is not None
    daemon.use_in_this_process()
    try:
        yield daemon
    finally:
        daemon.stop()
        if old is None:
            os.environ.pop("PCSCLITE_CSOCK_NAME", None)
        else:
            os.environ["PCSCLITE_CSOCK_NAME"] = old
        assert process.poll() is not None, "pcscd still running"


@pytest.fixture
def desk(pcscd: Any) -> Iterator[Any]:
    """The virtual card's side of the desk reader: insert() and remove() cards."""
    from simulator.desk_card import DeskCard

    with DeskCard(pcscd.vpcd_port) as d:
        yield d


@pytest.fixture
def reader(pcscd: Any) -> Iterator[Any]:
    """The hub's desk-reader driver on the private pcscd."""
    from hub.desk_reader import DeskReader

    with DeskReader(wait_ms=2000) as r:
        yield r


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, one for the whole run (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: run `make setup` (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
