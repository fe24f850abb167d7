"""The `sim` command as a developer uses it: scenarios, the reader, the interactive handheld."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import serial

SIM = [sys.executable, "-m", "simulator"]
ROOT = Path(__file__).resolve().parent.parent


def sim(*args, stdin=None, timeout=300):
    return subprocess.run(SIM + list(args), cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=timeout)


@pytest.mark.parametrize(
    "args, figures",
    [
        (["offline-shift", "--devices", "3"], {"sales", "devices", "cards"}),
        (["power-cut"], {"cases", "sale_writes"}),
        (["card-reader"], {"frames_per_sale", "ms_per_sale"}),
    ],
)
def test_scenarios_end_ok_in_json(args, figures):
    done = sim("run", *args, "--json", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["scenario"] == args[0] and result["ok"] is True
    assert result["checks"] and all(result["checks"].values())
    assert figures <= set(result["figures"])
    assert all(isinstance(v, (int, float)) for v in result["figures"].values())


def test_card_reader_meets_its_target():
    done = sim("run", "card-reader", "--json")
    figures = json.loads(done.stdout)["figures"]
    assert figures["ms_per_sale"] <= 250
    assert 10 <= figures["frames_per_sale"] <= 20


def test_offline_shift_human_summary_and_progress():
    done = sim("run", "offline-shift", "--devices", "2", "--seed", "9")
    assert done.returncode == 0
    assert "[hh-01]" in done.stdout and "[hh-02]" in done.stdout and "PAID" in done.stdout
    assert "== offline-shift: OK" in done.stdout


def test_unknown_scenario_is_a_clear_error():
    done = sim("run", "no-such-thing")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr and "offline-shift" in done.stderr


# -- sim reader, used by a PN532 client written to NXP's manual (not our driver) ----------


def frame(cmd: int, data: bytes = b"") -> bytes:
    body = bytes([0xD4, cmd]) + data
    return bytes([0, 0, 0xFF, len(body), (-len(body)) & 0xFF]) + body + bytes([(-sum(body)) & 0xFF, 0])


ACK = bytes([0, 0, 0xFF, 0, 0xFF, 0])


def exchange(port: serial.Serial, cmd: int, data: bytes = b"") -> bytes:
    """Send a command, expect ACK then a D5 response; its data after the response code."""
    port.write(frame(cmd, data))
    assert port.read(6) == ACK
    head = port.read(5)
    assert head[:3] == bytes([0, 0, 0xFF]) and (head[3] + head[4]) & 0xFF == 0, head
    body = port.read(head[3])
    tail = port.read(2)
    assert body[0] == 0xD5 and body[1] == cmd + 1
    assert (sum(body) + tail[0]) & 0xFF == 0 and tail[1] == 0
    return body[2:]


@pytest.fixture
def reader_process():
    proc = subprocess.Popen(SIM + ["reader", "--blank"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sim_reader_blank_serves_a_pn532(reader_process):
    path = reader_process.stdout.readline().strip()
    assert path.startswith("/dev/")
    with serial.Serial(path, 115200, timeout=2) as port:
        port.write(bytes([0x55, 0x55]) + bytes(14))  # HSU wake-up
        assert exchange(port, 0x14, bytes([0x01, 0x14, 0x01])) == b""  # SAMConfiguration
        assert exchange(port, 0x02)[0] == 0x32  # GetFirmwareVersion: IC PN532
        target = exchange(port, 0x4A, bytes([0x01, 0x00]))  # InListPassiveTarget, 106 kbps type A
        assert target[0] == 1 and target[2:4] == bytes([0x00, 0x04]) and target[4] == 0x08
        uid = target[6 : 6 + target[5]]
        auth = bytes([0x01, 0x60, 4]) + b"\xff" * 6 + uid  # MIFARE auth A, block 4, transport key
        assert exchange(port, 0x40, auth) == b"\x00"
        assert exchange(port, 0x40, bytes([0x01, 0xA0, 4]) + b"hello, pn532 ok!") == b"\x00"
        assert exchange(port, 0x40, bytes([0x01, 0x30, 4])) == b"\x00hello, pn532 ok!"
        wrong = bytes([0x01, 0x60, 8]) + bytes(6) + uid
        assert exchange(port, 0x40, wrong) == b"\x14"  # MIFARE authentication error


def test_sim_card_then_reader(tmp_path):
    card = tmp_path / "card.json"
    done = sim("card", str(card), "--balance", "1234")
    assert done.returncode == 0 and card.exists()
    proc = subprocess.Popen(SIM + ["reader", "--card", str(card)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        path = proc.stdout.readline().strip()
        with serial.Serial(path, 115200, timeout=2) as port:
            port.write(bytes([0x55, 0x55]) + bytes(14))
            exchange(port, 0x14, bytes([0x01, 0x14, 0x01]))
            target = exchange(port, 0x4A, bytes([0x01, 0x00]))
            uid = target[6 : 6 + target[5]]
            assert uid.hex() == json.loads(card.read_text())["uid"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_interactive_handheld_sells_from_the_terminal():
    script = "tap 1\n101 ENTER\n2*102 ENTER\nOK\nOK\nremove\ncards\nquit\n"
    done = sim("handheld", stdin=script, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "|Tap member card" in done.stdout
    assert "|PAID 8.90" in done.stdout  # 2.50 + 2 x 3.20, member tier 0
    assert "balance 41.10" in done.stdout  # card 1 held 50.00


def test_interactive_handheld_explains_bad_commands():
    done = sim("handheld", stdin="tap 9\nquit\n", timeout=120)
    assert "no card 9" in done.stdout and "commands:" in done.stdout


def test_sim_run_exits_non_zero_when_a_check_fails(monkeypatch, capsys):
    from simulator import cli
    from simulator.scenarios import Outcome

    def failing(devices, seed, say):
        out = Outcome("failing")
        out.check("holds", False, "it does not")
        return out

    monkeypatch.setattr(cli, "scenarios", lambda: {"failing": failing})
    assert cli._run_scenario("failing", 1, 1, as_json=True) == 1
    assert json.loads(capsys.readouterr().out) == {
        "scenario": "failing", "ok": False, "checks": {"holds": False}, "figures": {}, "problems": ["holds: it does not"],
    }
