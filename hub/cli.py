"""`hub`: serve the hub, run its broker, register devices, upgrade the database."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub import broker as mosquitto
from hub import cli_auth, cli_cards, cli_coupons, cli_jobs, cli_lease, cli_loyalty, cli_master, cli_members, cli_plans
from hub.cli_cards import make_card_batch  # noqa: F401  (scripts and tests import it from here)
from hub.db import make_engine, migrate
from hub.models import Device
from hub.settings import Settings

# Each area of the CLI: add_parsers(sub), COMMANDS it answers, run(args, engine).
AREAS = (cli_members, cli_master, cli_auth, cli_cards, cli_plans, cli_loyalty, cli_coupons, cli_jobs, cli_lease)
BROKER_PID = "hub-broker.pid"


def hub_password(settings: Settings) -> str:
    """The hub's own MQTT password: HUB_MQTT_PASSWORD, else one generated once into data_dir."""
    if settings.mqtt_password:
        return settings.mqtt_password
    path = settings.data_dir / "hub-mqtt-password"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(mosquitto.new_password())
        path.chmod(0o600)
    return path.read_text().strip()


def master_key(settings: Settings) -> bytes:
    """HQ's master key: HUB_MASTER_KEY (hex), else one generated once into data_dir (keep it secret)."""
    if settings.master_key:
        return bytes.fromhex(settings.master_key)
    path = settings.data_dir / "master-key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(os.urandom(32).hex())
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())


def broker_accounts(engine: Engine, settings: Settings) -> dict[str, str]:
    """Every account the broker must know: each registered device, and the hub."""
    with Session(engine) as db:
        accounts = {d.id: d.password_hash for d in db.exec(select(Device))}
    accounts[settings.mqtt_user] = mosquitto.hash_password(hub_password(settings))
    return accounts


def open_db(settings: Settings) -> Engine:
    engine = make_engine(settings.db_url())
    migrate(engine)
    return engine


def add_device(engine: Engine, device_id: str, shop: str, now: int) -> str:
    """Register a device; its new password (only its hash is kept)."""
    mosquitto.check_username(device_id)
    password = mosquitto.new_password()
    with Session(engine) as db:
        if db.get(Device, device_id) is not None:
            raise ValueError(f"device {device_id!r} is already registered")
        db.add(Device(id=device_id, shop=shop, password_hash=mosquitto.hash_password(password), created=now))
        db.commit()
    return password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub", description="The member-card hub: ledger, broker, devices.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the hub: HTTP API, dashboard and MQTT ingest")
    serve.add_argument("--no-mqtt", action="store_true", help="HTTP only (no broker connection)")
    sub.add_parser("broker", help="run Mosquitto configured for the registered devices (SIGHUP reloads)")
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])
    device = sub.add_parser("device", help="register and list handhelds")
    dsub = device.add_subparsers(dest="action", required=True)
    add = dsub.add_parser("add", help="register a handheld and print its MQTT credentials")
    add.add_argument("id")
    add.add_argument("--shop", required=True)
    dsub.add_parser("list", help="the registered handhelds and their sync state")
    for area in AREAS:
        area.add_parsers(sub)
    sub.add_parser("roles", help="every API route and page with the roles that may use it (docs/roles.md)")
    bench = sub.add_parser("bench", help="benchmarks of the hub")
    bsub = bench.add_subparsers(dest="action", required=True)
    ingest = bsub.add_parser("ingest", help="sales/s from simulated devices through the broker into the hub, vs a bare ceiling")
    ingest.add_argument("--devices", type=int, default=10, help="simulated handhelds, one MQTT client each (default 10)")
    ingest.add_argument("--sales", type=int, default=20000, help="committed sales in all (default 20000)")
    ingest.add_argument("--seed", type=int, default=1, help="seed of the generated sales")
    ingest.add_argument("--batch", type=int, default=None, help="messages per transaction at most (default HUB_INGEST_BATCH)")
    ingest.add_argument("--json", action="store_true", help="the figures as one JSON object on the last line")
    args = parser.parse_args(argv)
    settings = Settings()

    if args.command == "db":
        open_db(settings)
        print(f"database at the newest schema: {settings.db_url()}")
        return 0
    if args.command == "device":
        return _device(args, settings)
    for area in AREAS:
        if args.command in area.COMMANDS:
            return area.run(args, open_db(settings))
    if args.command == "roles":
        from hub.app import create_app
        from hub.auth import roles_table

        print(roles_table(create_app(open_db(settings))), end="")
        return 0
    if args.command == "broker":
        return _broker(settings)
    if args.command == "bench":
        from hub.bench import main_ingest

        return main_ingest(args)
    return _serve(settings, args.no_mqtt)


def _device(args: argparse.Namespace, settings: Settings) -> int:
    engine = open_db(settings)
    if args.action == "list":
        with Session(engine) as db:
            rows = db.exec(select(Device).order_by(Device.id)).all()
        print(f"{'device':<16}{'shop':<12}{'state':<9}{'firmware':<10}{'acked':>8}{'backlog':>9}")
        for d in rows:
            backlog = max(0, max(d.head_seq, d.last_seq) - d.acked_seq)
            state = "online" if d.online else "offline"
            print(f"{d.id:<16}{d.shop:<12}{state:<9}{d.firmware or '-':<10}{d.acked_seq:>8}{backlog:>9}")
        return 0
    try:
        password = add_device(engine, args.id, args.shop, int(time.time()))
    except ValueError as exc:
        print(f"hub device add: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "device_id": args.id,
                "shop": args.shop,
                "mqtt_user": args.id,
                "mqtt_password": password,
                "mqtt_host": settings.mqtt_host,
                "mqtt_port": settings.mqtt_port,
            },
            indent=1,
        )
    )
    pid_file = settings.data_dir / BROKER_PID
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGHUP)
            print("the running broker reloads its accounts", file=sys.stderr)
        except (ProcessLookupError, ValueError):
            pid_file.unlink(missing_ok=True)
    return 0


def _broker(settings: Settings) -> int:
    engine = open_db(settings)
    broker = mosquitto.Broker(settings.data_dir / "broker", settings.mqtt_port)
    reload_wanted = threading.Event()
    stop_wanted = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload_wanted.set())
    signal.signal(signal.SIGTERM, lambda *_: stop_wanted.set())
    signal.signal(signal.SIGINT, lambda *_: stop_wanted.set())
    broker.accounts = broker_accounts(engine, settings)
    broker.start()
    pid_file = settings.data_dir / BROKER_PID
    pid_file.write_text(str(os.getpid()))
    print(f"mosquitto on {broker.host}:{broker.port} with {len(broker.accounts) - 1} devices; Ctrl-C stops it", flush=True)
    try:
        while not stop_wanted.wait(0.2):
            if reload_wanted.is_set():
                reload_wanted.clear()
                broker.accounts = broker_accounts(engine, settings)
                broker.reload()
                print(f"reloaded: {len(broker.accounts) - 1} devices", flush=True)
            if not broker.running:
                print(f"mosquitto stopped by itself:\n{broker.log_tail()}", file=sys.stderr)
                return 1
    finally:
        pid_file.unlink(missing_ok=True)
        broker.stop()
    return 0


def _serve(settings: Settings, no_mqtt: bool) -> int:
    import uvicorn

    from hub.app import create_app
    from hub.bridge import Bridge

    engine = open_db(settings)
    bridge = None
    if not no_mqtt:
        bridge = Bridge(
            engine,
            settings.mqtt_host,
            settings.mqtt_port,
            settings.mqtt_user,
            hub_password(settings),
            batch=settings.ingest_batch,
            lease_master=master_key(settings),
        )
        bridge.start()
    app = create_app(engine, (lambda: bridge.stats.connected) if bridge else (lambda: None), bridge.counters if bridge else dict)
    ticker = None
    if settings.scheduler:  # the scheduled jobs (hub.scheduler) with the wall clock, every minute
        from hub.scheduler import Ticker

        ticker = Ticker(engine)
        ticker.start()
    print(f"hub dashboard: http://{settings.http_host}:{settings.http_port}/", flush=True)
    try:
        uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_level="warning")
    finally:
        if ticker:
            ticker.stop()
        if bridge:
            bridge.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
