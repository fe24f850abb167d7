"""`sim`: the simulator's command line (reader, handheld, run)."""

from __future__ import annotations

import argparse
import inspect
import json
import random
import sys
import time
from pathlib import Path

from simulator.runtime import RUNTIMES
from simulator.scenarios import Outcome, scenarios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sim", description="Virtual cards, card readers and handhelds.")
    sub = parser.add_subparsers(dest="command", required=True)

    reader = sub.add_parser("reader", help="serve a virtual PN532 on a pseudo-terminal (path on the first line)")
    which = reader.add_mutually_exclusive_group()
    which.add_argument("--blank", action="store_true", help="a factory-blank MIFARE Classic 1K card (default)")
    which.add_argument("--card", metavar="FILE", help="a card saved as JSON (see `sim card`)")
    reader.add_argument("--wire-timing", action="store_true", help="pace bytes as a real UART at 115200 baud")
    reader.add_argument(
        "--fault", action="append", default=[], help="inject a fault once: no_answer, garbage, card_removed, nack"
    )

    desk = sub.add_parser("desk-reader", help="a virtual PC/SC desk reader (pcscd + vpcd) with a card; reader name first")
    desk_card = desk.add_mutually_exclusive_group()
    desk_card.add_argument("--blank", action="store_true", help="a factory-blank MIFARE Classic 1K card (default)")
    desk_card.add_argument("--card", metavar="FILE", help="a card saved as JSON (see `sim card`)")

    card = sub.add_parser("card", help="make a member card file for `sim reader --card`")
    card.add_argument("file", help="where to write the card (JSON)")
    card.add_argument("--number", type=int, default=1, help="member number (card number 9000...N)")
    card.add_argument("--balance", type=int, default=5000, help="stored value in cents")
    card.add_argument("--points", type=int, default=0)
    card.add_argument("--tier", type=int, default=0)
    card.add_argument("--master-key", help="HQ master key in hex (default: the one `sim handheld` uses)")
    card.add_argument("--seed", type=int, default=1)

    handheld = sub.add_parser("handheld", help="an interactive handheld in this terminal")
    handheld.add_argument("--dir", help="keep flash here between runs (default: a temporary folder)")
    handheld.add_argument("--cards", type=int, default=4, help="member cards to choose from")
    handheld.add_argument("--seed", type=int, default=1)

    demo = sub.add_parser("demo", help="a shop's day with a real broker and hub (what `make demo` runs)")
    demo.add_argument("--once", action="store_true", help="exit after the summary (DEMO_ONCE=1 make demo)")
    demo.add_argument("--dir", default="demo", help="where the hub's database and the flash files go (wiped first)")
    demo.add_argument("--pace", type=float, default=0.05, metavar="SECONDS", help="pause after each sale printed")

    run = sub.add_parser("run", help="run a scripted scenario and check it")
    run.add_argument("scenario", choices=sorted(scenarios()))
    run.add_argument("--devices", type=int, default=3)
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    run.add_argument("--pace", type=float, default=0.0, metavar="SECONDS", help="pause after each progress line, to watch")
    run.add_argument(
        "--runtime", choices=RUNTIMES, default="cpython", help="interpreter of the handhelds' firmware (default: cpython)"
    )

    args = parser.parse_args(argv)
    if args.command == "reader":
        from simulator.reader_cmd import run_reader

        return run_reader(args.card, args.blank, args.wire_timing, args.fault)
    if args.command == "desk-reader":
        from simulator.desk_reader_cmd import run_desk_reader

        return run_desk_reader(args.card, args.blank)
    if args.command == "card":
        return _make_card(args)
    if args.command == "demo":
        from simulator.demo import run_demo

        return run_demo(Path(args.dir), args.once, args.pace)
    if args.command == "handheld":
        from simulator.interactive import run_interactive

        return run_interactive(args.dir, args.cards, args.seed)
    return _run_scenario(args.scenario, args.devices, args.seed, args.json, args.pace, args.runtime)


def _run_scenario(name: str, devices: int, seed: int, as_json: bool, pace: float = 0.0, runtime: str = "cpython") -> int:
    if devices < 1:
        print("sim run: --devices must be at least 1", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)
        if pace > 0:
            time.sleep(pace)

    run = scenarios()[name]
    if runtime != "cpython" and "runtime" not in inspect.signature(run).parameters:
        print(f"sim run: {name} runs on the cpython runtime only", file=sys.stderr)
        return 2
    extra = {"runtime": runtime} if runtime != "cpython" else {}
    outcome = run(devices=devices, seed=seed, say=say, **extra)
    if as_json:
        print(json.dumps(outcome.as_json(), sort_keys=True))
    else:
        _summary(outcome)
    return 0 if outcome.ok else 1


def _summary(outcome: Outcome) -> None:
    print(f"\n== {outcome.scenario}: {'OK' if outcome.ok else 'FAILED'}")
    for name, passed in outcome.checks.items():
        print(f"  [{'x' if passed else ' '}] {name}")
    for name, value in outcome.figures.items():
        print(f"  {name} = {value}")
    for problem in outcome.problems:
        print(f"  problem: {problem}")


def _make_card(args: argparse.Namespace) -> int:
    from simulator.shop import master_key, member_card

    rng = random.Random(args.seed)
    master = bytes.fromhex(args.master_key) if args.master_key else master_key(random.Random(args.seed))
    card = member_card(rng, master, args.number, args.balance, args.points, args.tier)
    card.save(Path(args.file))
    print(f"card {card.uid.hex()} number 9{args.number:015d} written to {args.file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

