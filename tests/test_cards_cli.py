"""`hub reader list` and `hub card ...` as HQ staff run them: separate processes on the private pcscd and its
virtual desk reader, and `sim desk-reader --blank` serving a reader that other PC/SC programs use."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from hub.db import make_engine, migrate
from hub.models import Member
from protocol import cardno
from simulator import pcsc
from simulator.mifare_card import MifareClassic1K
from simulator.shop import master_key, read_card_directly

ROOT = Path(__file__).resolve().parent.parent
MASTER = master_key(random.Random(808))
FIRST, SECOND = cardno.make("7100", 1), cardno.make("7100", 2)


@pytest.fixture
def env(tmp_path: Path, pcscd: pcsc.PrivatePcscd) -> dict[str, str]:
    data = tmp_path / "hub"
    engine = make_engine(f"sqlite:///{data / 'hub.db'}")
    migrate(engine)
    with Session(engine) as db:
        db.add(Member(id=3, name="Ada Lovelace", created=0))
        db.commit()
    engine.dispose()
    return dict(os.environ, HUB_DATA_DIR=str(data), HUB_MASTER_KEY=MASTER.hex(), **pcscd.env())


def hub(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, env=env, input=stdin or "", capture_output=True,
                          text=True, timeout=60)


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = hub(env, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def refused(env: dict[str, str], *args: str, words: str) -> None:
    done = hub(env, *args)
    assert done.returncode == 2 and words in done.stderr, (args, done.returncode, done.stderr)


def test_the_card_commands_from_issue_to_replace(env: dict[str, str], desk: Any, pcscd: pcsc.PrivatePcscd) -> None:
    assert ok(env, "reader", "list").splitlines() == pcscd.reader_names
    assert "2 card numbers in stock" in ok(env, "card", "batch", "--prefix", "7100", "--count", "2")
    refused(env, "card", "batch", "--prefix", "7100", "--count", "1", words="1 of these card numbers exist already")
    refused(env, "card", "issue", "--member", "3", words="no card on the desk reader: put a blank card on it")
    card = MifareClassic1K.blank(bytes.fromhex("c0c1c2c3"))
    desk.insert(card)
    refused(env, "card", "issue", "--member", "3", "--reader", "ACR122U 00 00",
            words="no PC/SC reader named 'ACR122U 00 00'; readers: 'Virtual PCD 00 00', 'Virtual PCD 00 01'")
    refused(env, "card", "issue", "--member", "4", words="no member 4")
    desk.remove_at_write(3)
    refused(env, "card", "issue", "--member", "3", words=f"left the reader before it was written and checked (card number "
            f"{FIRST} stays reserved for it)")
    desk.insert(card)
    issued = json.loads(ok(env, "card", "issue", "--member", "3", "--reader", pcscd.reader_name, "--password-stdin",
                           stdin="my card pass\n"))
    assert (issued["card_no"], issued["uid"], issued["state"]) == (FIRST, "c0c1c2c3", "active") and "password" not in issued
    assert read_card_directly(card, MASTER)["ident"]["card_no"] == FIRST
    refused(env, "card", "issue", "--member", "3", words=f"card c0c1c2c3 is issued already, as card {FIRST}")

    verified = ok(env, "card", "verify")
    assert verified.startswith("card c0c1c2c3: OK") and "counter 0, as the hub last saw it" in verified
    assert "pending" in ok(env, "card", "topup", FIRST, "12.50")
    refused(env, "card", "topup", FIRST, "12,50", words="'12,50' is not an amount like 12.50")
    shown = ok(env, "card", "show", FIRST)
    assert "state active" in shown and "pending top-ups 12.50" in shown and "pending topup #1 +12.50" in shown
    assert "on the hotlist" in ok(env, "card", "lost", FIRST)
    refused(env, "card", "lost", FIRST, words=f"card {FIRST} is already reported lost")
    assert "PROBLEMS" in ok(env, "card", "verify")
    assert "active again" in ok(env, "card", "unfreeze", FIRST)
    refused(env, "card", "unfreeze", FIRST, words="is active, not lost: there is nothing to unfreeze")
    refused(env, "card", "show", "7100000000000000", words="no card 7100000000000000 on the hub (and its check digit is "
            "wrong: a typo?)")
    password = ok(env, "card", "passwd", FIRST).splitlines()[-1]
    assert password.startswith("password: ") and len(password.split()[1]) == 10
    refused(env, "card", "passwd", FIRST, "--password-stdin", words="at least 8 characters")

    new = MifareClassic1K.blank(bytes.fromhex("d0d1d2d3"))
    desk.insert(new)
    assert f"card {SECOND} replaces {FIRST}: balance 12.50" in ok(env, "card", "replace", FIRST)
    assert read_card_directly(new, MASTER)["purse"]["balance"] == 1250  # the pending top-up moved onto the new card
    desk.insert(MifareClassic1K.blank(bytes.fromhex("e0e1e2e3")))
    refused(env, "card", "replace", FIRST, words=f"card {FIRST} was replaced by {SECOND}")
    detail = json.loads(ok(env, "card", "show", FIRST, "--json"))
    assert (detail["state"], detail["replaced_by"], detail["hotlisted"]) == ("replaced", SECOND, True)
    assert "nothing to settle" in ok(env, "card", "settle")
    batches = ok(env, "card", "batches")
    assert "stock 0\treserved 0\tissued 2" in batches


def test_no_pcscd_is_a_clear_error(env: dict[str, str], tmp_path: Path) -> None:
    gone = dict(env, PCSCLITE_CSOCK_NAME=str(tmp_path / "no-pcscd.comm"))
    refused(gone, "reader", "list", words="cannot reach pcscd")
    refused(gone, "card", "verify", words="cannot reach pcscd")


def test_sim_desk_reader_blank_serves_a_reader_that_pc_sc_tools_and_the_hub_use(env: dict[str, str]) -> None:
    """The Done-when of issue 6: `sim desk-reader --blank` serves a reader a PC/SC tool reads the UID from."""
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "desk-reader", "--blank"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items()
                                                                    if k != "PCSCLITE_CSOCK_NAME"})
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        socket_line = proc.stdout.readline().strip()
        card_line = proc.stdout.readline().strip()
        assert name == "Virtual PCD 00 00" and socket_line.startswith("PCSCLITE_CSOCK_NAME="), proc.stderr
        uid = card_line.split("uid=")[1].split()[0]
        assert "(blank)" in card_line
        there = dict(env, PCSCLITE_CSOCK_NAME=socket_line.split("=", 1)[1])
        tool = (  # what any PC/SC program does: connect to the reader by name, GET UID (FF CA 00 00 00)
            "import sys; from smartcard import scard\n"
            "_, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)\n"
            "state = scard.SCARD_STATE_UNAWARE\n"  # wait until pcscd reports the card, as tools do
            "for _ in range(20):\n"
            "    rc, states = scard.SCardGetStatusChange(ctx, 500, [(sys.argv[1], state)])\n"
            "    state = states[0][1] if rc == scard.SCARD_S_SUCCESS else state\n"
            "    if state & scard.SCARD_STATE_PRESENT:\n"
            "        break\n"
            "rc, card, proto = scard.SCardConnect(ctx, sys.argv[1], scard.SCARD_SHARE_SHARED, "
            "scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)\n"
            "pci = scard.SCARD_PCI_T1 if proto == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0\n"
            "rc, answer = scard.SCardTransmit(card, pci, [0xFF, 0xCA, 0x00, 0x00, 0x00])\n"
            "print(bytes(answer).hex())\n"
        )
        read = subprocess.run([sys.executable, "-c", tool, name], env=there, capture_output=True, text=True, timeout=20)
        assert read.returncode == 0, read.stderr
        assert read.stdout.strip() == uid + "9000"
        assert name in ok(there, "reader", "list").splitlines()
        ok(there, "card", "batch", "--prefix", "7100", "--count", "1")
        issued = json.loads(ok(there, "card", "issue", "--member", "3", "--reader", name))
        assert (issued["uid"], issued["card_no"]) == (uid, FIRST) and len(issued["password"]) == 10
        assert ok(there, "card", "verify", "--reader", name).startswith(f"card {uid}: OK")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
