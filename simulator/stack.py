"""A real hub stack for scenarios, the demo and tests: Mosquitto and a `hub serve` process.

Everything lives in one folder and on free loopback ports; stop() leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from hub.auth import ADMIN, new_login
from hub.broker import Broker, free_port
from hub.cli import add_device, broker_accounts, hub_password, open_db
from hub.settings import Settings

HUB_START_TIMEOUT = 30.0


class Stack:
    """Broker + hub on free ports with their data in folder; register devices before start()."""

    def __init__(self, folder: Path, master: bytes | None = None, scheduler: bool = False) -> None:
        self.folder = Path(folder)
        # The scenarios run on a virtual clock: the hub's scheduled jobs must not run on the wall clock beside them
        # (a scenario runs hub.scheduler.run_due with its own time); scheduler=True for a stack that should.
        self.scheduler = scheduler
        # master: the fleet's HQ key, so the leases the hub signs verify on its handhelds (None: the hub makes its own).
        self.settings = Settings(data_dir=self.folder / "hub", mqtt_port=free_port(), http_port=free_port(), mqtt_password="",
                                 master_key=master.hex() if master else "")
        self.engine = open_db(self.settings)
        self.broker = Broker(self.folder / "broker", self.settings.mqtt_port)
        self.hub: subprocess.Popen[bytes] | None = None
        self.passwords: dict[str, str] = {}
        # The scenarios read the API as HQ does: with an admin's token.
        self.admin_password, self.token = new_login(self.engine, "sim-admin", ADMIN, int(time.time()))

    @property
    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            HUB_DATA_DIR=str(self.settings.data_dir),
            HUB_MQTT_PORT=str(self.settings.mqtt_port),
            HUB_HTTP_PORT=str(self.settings.http_port),
            HUB_MQTT_PASSWORD=hub_password(self.settings),
            HUB_MASTER_KEY=self.settings.master_key,
            HUB_SCHEDULER="true" if self.scheduler else "false",
        )

    def register(self, device_id: str, shop: str) -> dict[str, Any]:
        """Register a device; the config its handheld needs to reach the broker."""
        password = add_device(self.engine, device_id, shop, int(time.time()))
        self.passwords[device_id] = password
        if self.broker.running:
            self.broker.accounts = broker_accounts(self.engine, self.settings)
            self.broker.reload()
        return {"mqtt_host": "127.0.0.1", "mqtt_port": self.settings.mqtt_port, "mqtt_password": password}

    def start(self) -> None:
        self.broker.accounts = broker_accounts(self.engine, self.settings)
        self.broker.start()
        self.start_hub()

    def start_hub(self, wait: bool = True) -> None:
        """Start `hub serve`; with wait, return once it is up and connected to the broker."""
        with open(self.folder / "hub.log", "ab") as log:
            self.hub = subprocess.Popen([sys.executable, "-m", "hub", "serve"], env=self.env(), stdout=log, stderr=log)
        if wait:
            self.wait_hub()

    def wait_hub(self) -> None:
        assert self.hub is not None
        deadline = time.monotonic() + HUB_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.hub.poll() is not None:
                raise RuntimeError(f"the hub exited at start; see {self.folder / 'hub.log'}:\n{self.log_tail()}")
            try:
                if self.api("/api/v1/health").get("mqtt"):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the hub did not come up in {HUB_START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def kill_hub(self) -> None:
        """kill -9: no goodbye, no flush; what it had not committed must come again."""
        if self.hub is not None and self.hub.poll() is None:
            self.hub.send_signal(signal.SIGKILL)
            self.hub.wait()

    def stop_hub(self) -> None:
        if self.hub is not None and self.hub.poll() is None:
            self.hub.terminate()
            try:
                self.hub.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.hub.kill()
                self.hub.wait()

    def stop(self) -> None:
        self.stop_hub()
        self.broker.stop()
        self.engine.dispose()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def api(self, path: str, body: Any = None, method: str | None = None) -> Any:
        """GET path (or send body as JSON) as the stack's admin; the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method or ("GET" if data is None else "POST"))
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as response:
            raw = response.read()
            return json.loads(raw) if raw else None

    def log_tail(self, lines: int = 30) -> str:
        path = self.folder / "hub.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
