"""The HQ desk reader for real: pyscard -> libpcsclite -> a private pcscd -> vpcd -> the virtual card.

One pcscd serves the module (libpcsclite reads the socket path once per process);
each test puts its own card in the reader and takes it away again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator import pcsc

if pcsc.missing():
    pytest.skip(f"PC/SC stack missing: {'; '.join(pcsc.missing())}. Run `make setup`.", allow_module_level=True)

from smartcard import scard  # noqa: E402  (after the skip on purpose)

from firmware.cardservice import CardService  # noqa: E402
from firmware.reader import AuthFailed, CardLost  # noqa: E402
from hub.desk_reader import DeskReader, DeskReaderError, ReaderNotFound, list_readers  # noqa: E402
from protocol import card as layout  # noqa: E402
from protocol import mifare  # noqa: E402
from simulator.desk_card import ACR122_MIFARE_1K_ATR, DeskCard  # noqa: E402
from simulator.mifare_card import MifareClassic1K  # noqa: E402
from simulator.shop import issue_card, master_key, read_card_directly  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
UID = bytes.fromhex("0badcafe")
MASTER = master_key(random.Random(42))
IDENT = {"card_no": "9000000000000042", "member_id": 42, "tier": 1}


def issued_card(balance: int = 1500, points: int = 30) -> MifareClassic1K:
    card = MifareClassic1K.blank(UID)
    issue_card(card, MASTER, IDENT, balance, points)
    return card


def test_list_readers_shows_the_virtual_reader(pcscd: pcsc.PrivatePcscd) -> None:
    assert list_readers() == pcscd.reader_names
    assert pcscd.reader_name == "Virtual PCD 00 00"
    with DeskReader() as r:
        assert r.name == pcscd.reader_name  # the first reader when no name is given


def test_an_unknown_reader_name_is_a_clear_error(pcscd: pcsc.PrivatePcscd) -> None:
    with pytest.raises(ReaderNotFound) as e:
        DeskReader("ACS ACR122U 00 00")
    assert "'ACS ACR122U 00 00'" in str(e.value) and repr(pcscd.reader_name) in str(e.value)


def wait_until_present(context: int, reader: str, timeout_ms: int = 5000) -> None:
    """What a PC/SC tool does before connecting: wait until pcscd reports a card in the reader.

    pcscd learns of the card at its next poll of vpcd, so right after the card goes in a
    connect can still answer SCARD_E_NO_SMARTCARD on a busy machine.
    """
    state = scard.SCARD_STATE_UNAWARE
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        hresult, states = scard.SCardGetStatusChange(context, 500, [(reader, state)])
        if hresult == scard.SCARD_S_SUCCESS:
            state = states[0][1]
            if state & scard.SCARD_STATE_PRESENT and not state & scard.SCARD_STATE_MUTE:
                return
        elif hresult != scard.SCARD_E_TIMEOUT:
            raise AssertionError(f"SCardGetStatusChange: {scard.SCardGetErrorMessage(hresult)}")
    raise AssertionError(f"pcscd did not report the card in {reader!r} within {timeout_ms} ms")


def test_a_pcsc_tool_sees_an_acr122_with_a_mifare_classic(pcscd: pcsc.PrivatePcscd, desk: DeskCard) -> None:
    desk.insert(MifareClassic1K.blank(UID))
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        wait_until_present(context, pcscd.reader_name)
        hresult, card, protocol = scard.SCardConnect(
            context, pcscd.reader_name, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
        )
        assert hresult == scard.SCARD_S_SUCCESS
        pci = scard.SCARD_PCI_T1 if protocol == scard.SCARD_PROTOCOL_T1 else scard.SCARD_PCI_T0
        hresult, response = scard.SCardTransmit(card, pci, [0xFF, 0xCA, 0x00, 0x00, 0x00])
        assert hresult == scard.SCARD_S_SUCCESS
        assert bytes(response) == UID + b"\x90\x00"
        hresult, _, _, _, atr = scard.SCardStatus(card)
        assert bytes(atr) == ACR122_MIFARE_1K_ATR
        # A function the reader lacks, and a read before any authentication.
        assert bytes(scard.SCardTransmit(card, pci, [0xFF, 0xCA, 0x01, 0x00, 0x00])[1]) == b"\x6a\x81"
        assert bytes(scard.SCardTransmit(card, pci, [0xFF, 0xB0, 0x00, 0x04, 0x10])[1]) == b"\x63\x00"
        scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    finally:
        scard.SCardReleaseContext(context)


def test_the_desk_issues_a_blank_card_and_reads_it_back(desk: DeskCard, reader: DeskReader) -> None:
    card = MifareClassic1K.blank(UID)
    desk.insert(card)
    service = CardService(reader, MASTER)
    uid = service.present()
    assert uid == UID
    apdus = reader.apdus
    started = time.perf_counter()
    service.issue(uid, IDENT, 2500, 40)
    issue_ms = (time.perf_counter() - started) * 1000
    apdus = reader.apdus - apdus

    assert service.present() == UID
    read = service.read(UID)
    assert read["ident"]["card_no"] == IDENT["card_no"]
    assert read["ident"]["member_id"] == 42 and read["ident"]["tier"] == 1
    assert (read["purse"]["balance"], read["purse"]["points"], read["purse"]["counter"]) == (2500, 40, 0)
    assert read["torn"] == []
    direct = read_card_directly(card, MASTER)
    assert direct["ident"] == read["ident"] and direct["purse"] == read["purse"]
    # The trailers now hold the card's own keys: the transport key no longer opens sector 1.
    assert card.blocks[mifare.trailer_of(1)][:6] == layout.sector_keys(MASTER, UID, 1)[0]
    assert issue_ms < 1000, f"issuing took {issue_ms:.0f} ms"
    print(f"\nissue: {issue_ms:.1f} ms, {apdus} APDUs ({len(layout.issue_writes(MASTER, UID, IDENT, 0, 0))} block writes)")


def test_a_purse_write_through_the_desk(desk: DeskCard, reader: DeskReader) -> None:
    card = issued_card()
    desk.insert(card)
    service = CardService(reader, MASTER)
    uid = service.present()
    assert uid is not None
    before = service.read(uid)
    purse = dict(before["purse"], counter=before["purse"]["counter"] + 1, balance=1200, points=33, tag=7)
    service.write_purse(before, purse)
    assert read_card_directly(card, MASTER)["purse"] == purse


def test_a_wrong_key_is_auth_failed_and_select_wakes_the_card(desk: DeskCard, reader: DeskReader) -> None:
    desk.insert(issued_card())
    assert reader.select() == UID
    with pytest.raises(AuthFailed):
        reader.authenticate(4, "B", bytes(6), UID)
    # The card is halted now; select() re-activates it and the right key opens the sector.
    assert reader.select() == UID
    reader.authenticate(4, "B", layout.sector_keys(MASTER, UID, 1)[1], UID)
    assert reader.read_block(4)[:2] == layout.MAGIC
    # A card of another fleet: our keys fail, the transport key too.
    service = CardService(reader, master_key(random.Random(7)))
    assert service.present() == UID
    with pytest.raises(layout.CardError) as refused:
        service.read(UID)
    assert refused.value.code == "unknown_card"


def test_a_refused_write_is_not_a_lost_card(desk: DeskCard, reader: DeskReader) -> None:
    desk.insert(issued_card())
    assert reader.select() == UID
    reader.authenticate(8, "A", layout.sector_keys(MASTER, UID, 2)[0], UID)
    with pytest.raises(DeskReaderError) as e:
        reader.write_block(8, bytes(16))  # data blocks take key B only
    assert e.value.sw == 0x6300 and not isinstance(e.value, CardLost)


def test_no_card_select_returns_none(desk: DeskCard, pcscd: pcsc.PrivatePcscd) -> None:
    with DeskReader(wait_ms=0) as r:
        assert r.select() is None
        desk.insert(MifareClassic1K.blank(UID))
        assert r.select() == UID
        desk.remove()
        assert r.select() is None


def test_a_card_removed_between_commands_is_lost(desk: DeskCard, reader: DeskReader) -> None:
    desk.insert(issued_card())
    assert reader.select() == UID
    reader.authenticate(8, "B", layout.sector_keys(MASTER, UID, 2)[1], UID)
    desk.remove()
    with pytest.raises(CardLost):
        reader.read_block(8)


@pytest.mark.parametrize(("nth", "landed"), [(1, False), (1, True), (2, False), (2, True)])
def test_a_card_pulled_mid_write_is_lost_and_keeps_a_valid_purse(
    desk: DeskCard, reader: DeskReader, nth: int, landed: bool
) -> None:
    card = issued_card(balance=1500, points=30)
    desk.insert(card)
    service = CardService(reader, MASTER)
    assert service.present() == UID
    before = service.read(UID)
    new = dict(before["purse"], counter=before["purse"]["counter"] + 1, balance=900, points=31, tag=99)
    desk.remove_at_write(nth, landed=landed)  # 1: the copy's data block, 2: its MAC block
    with pytest.raises(CardLost):
        service.write_purse(before, new)
    assert not desk.in_field
    direct = read_card_directly(card, MASTER)
    expected = new if (nth, landed) == (2, True) else before["purse"]
    assert direct["purse"] == expected
    # Tapped again, the card reads at the desk: the old purse (or the new one when both blocks landed).
    desk.insert(card)
    assert service.present() == UID
    again = service.read(UID)
    assert again["purse"] == expected
    assert again["torn"] == ([before["write_copy"]] if (nth, landed) in ((1, True), (2, False)) else [])


def test_timing_per_apdu(desk: DeskCard, reader: DeskReader) -> None:
    desk.insert(issued_card())
    assert reader.select() == UID
    key = layout.sector_keys(MASTER, UID, 2)[1]
    reader.authenticate(8, "B", key, UID)
    n = 200
    started = time.perf_counter()
    for _ in range(n):
        reader.read_block(8)
    ms = (time.perf_counter() - started) * 1000 / n
    print(f"\nread binary: {ms:.3f} ms per APDU")
    assert ms < 5, f"{ms:.1f} ms per APDU: TCP_NODELAY/TCP_QUICKACK lost?"


def test_a_second_private_pcscd_comes_and_goes_cleanly(tmp_path: Path, pcscd: pcsc.PrivatePcscd) -> None:
    other = pcsc.PrivatePcscd(socket_path=str(tmp_path / "other.comm"))
    run_pcscd = Path("/run/pcscd/pcscd.pid")
    pid_before = run_pcscd.read_bytes() if run_pcscd.exists() else None
    with other:
        assert other.running and other.vpcd_port not in (pcscd.vpcd_port, pcscd.vpcd_port + 1)
        assert os.path.exists(other.socket_path)
        process, folder = other.process, other.folder
        assert process is not None and folder is not None
        if other.isolation == "mount-namespace":
            assert (run_pcscd.read_bytes() if run_pcscd.exists() else None) == pid_before
    assert process.poll() is not None
    assert not folder.exists() and not os.path.exists(other.socket_path)
    assert other.vpcd_port not in pcsc.listening_ports()
    assert pcscd.running and list_readers() == pcscd.reader_names  # the first one did not notice


def test_sim_desk_reader_command_serves_a_card_until_sigterm(tmp_path: Path) -> None:
    card_file = tmp_path / "card.json"
    issued_card().save(card_file)
    code = "import sys; from simulator.desk_reader_cmd import run_desk_reader; sys.exit(run_desk_reader(sys.argv[1], False))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(card_file)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        socket_line = proc.stdout.readline().strip()
        assert name == "Virtual PCD 00 00"
        assert socket_line.startswith("PCSCLITE_CSOCK_NAME=")
        # Another process (as the hub would be), pointed at that pcscd, reads the member card.
        client = (
            "import sys; from hub.desk_reader import DeskReader; from firmware.cardservice import CardService\n"
            "with DeskReader(sys.argv[1], wait_ms=2000) as r:\n"
            "    s = CardService(r, bytes.fromhex(sys.argv[2])); uid = s.present(); c = s.read(uid)\n"
            "    print(uid.hex(), c['ident']['card_no'], c['purse']['balance'])\n"
        )
        env = dict(os.environ, PCSCLITE_CSOCK_NAME=socket_line.split("=", 1)[1])
        out = subprocess.run(
            [sys.executable, "-c", client, name, MASTER.hex()], cwd=REPO, env=env, capture_output=True, text=True, timeout=20
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [UID.hex(), IDENT["card_no"], "1500"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert MifareClassic1K.load(card_file).uid == UID
    assert not os.path.exists(socket_line.split("=", 1)[1])
