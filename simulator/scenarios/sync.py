"""The sync scenarios: handhelds sell offline, the network comes back, they sync to a real hub.

sync            nothing goes wrong
hub-restart     the hub is killed with SIGKILL again and again while it ingests
broker-restart  the broker is restarted (and once killed) while devices sync
duplicates      every message reaches the broker twice, out of order
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from simulator.handheld import Handheld, VirtualHandheld
from simulator.runtime import make_handheld
from simulator.scenarios import Outcome, Say
from simulator.scenarios.hubcheck import check_hub, sales_made, sync_all
from simulator.scenarios.offline_shift import CARDS_PER_DEVICE, ring_up_shift
from simulator.shop import PRICE_LIST, blank_card, master_key, member_card
from simulator.stack import Stack
from simulator.vhal import SimClock

SALES_PER_DEVICE = 20
SYNC_TIMEOUT_S = 120
Disturb = Callable[[Stack, float], int]  # (stack, seconds since sync began) -> blows dealt so far


def run_sync(
    name: str,
    devices: int,
    seed: int,
    say: Say,
    sales_per_device: int = SALES_PER_DEVICE,
    chaos: bool = False,
    disturb: Disturb | None = None,
    runtime: str = "cpython",
) -> Outcome:
    """Sell offline, bring the network back, sync (disturbed), check the hub against cards and journals."""
    rng = random.Random(seed)
    out = Outcome(name)
    master = master_key(rng)
    cards = [
        member_card(rng, master, n + 1, rng.choice([0, 2000, 8000]), rng.randrange(500), n % 3)
        for n in range(devices * CARDS_PER_DEVICE)
    ]
    with tempfile.TemporaryDirectory(prefix=f"sim-{name}-") as tmp, Stack(Path(tmp) / "stack", master) as stack:
        say(f"broker on port {stack.settings.mqtt_port}, hub at {stack.url}")
        clock = SimClock()
        fleet: list[Handheld] = []
        for i in range(devices):
            device_id = f"hh-{i + 1:02d}"
            mqtt = stack.register(device_id, "shop-1")
            handheld = make_handheld(runtime, device_id, Path(tmp), master, PRICE_LIST, clock, mqtt=mqtt, network_up=False)
            if chaos:
                assert isinstance(handheld, VirtualHandheld), "chaos networking is simulated on the CPython runtime"
                handheld.network.chaos = random.Random(seed * 100 + i)
            fleet.append(handheld)
        try:
            for handheld in fleet:
                handheld.boot()
            tally = ring_up_shift(fleet, cards, [blank_card(rng)], rng, devices * sales_per_device, lambda line: None)
            made = sales_made(fleet)
            out.check("every_sale_journaled", len(made) == tally["sold"], f"{len(made)} journaled, {tally['sold']} sold")
            say(f"{tally['sold']} sales made offline on {devices} handhelds; the network comes back")
            began = time.monotonic()
            arrivals = _Arrivals(fleet, staged=disturb is not None)
            between = (lambda: arrivals.after(disturb(stack, time.monotonic() - began))) if disturb else None
            took = sync_all(fleet, SYNC_TIMEOUT_S, say, between)
            out.check("all_synced", took >= 0, f"backlog left after {SYNC_TIMEOUT_S} s")
            say(f"synced in {took:.2f} s")
            if stack.hub is None or stack.hub.poll() is not None:
                stack.start_hub()  # a disturbance may have left it down at the very end
            else:
                stack.wait_hub()  # or still starting up
            check_hub(out, stack.engine, made, cards, master)
            devices_api = stack.api("/api/v1/devices")
            out.check("devices_report_no_backlog", all(d["backlog"] == 0 for d in devices_api), str(devices_api))
            out.figures["sync_s"] = round(took, 3)
            if chaos:
                dropped = stack.api("/api/v1/health")["ingest"]["duplicates"]
                out.check("hub_saw_and_dropped_duplicates", dropped > 0, "no duplicate reached the hub")
                out.figures["publishes_doubled"] = sum(h.network.duplicated for h in fleet if isinstance(h, VirtualHandheld))
                out.figures["duplicates_dropped"] = dropped
        finally:
            for handheld in fleet:
                handheld.close()
    return out


def run(devices: int = 3, seed: int = 1, say: Say = print, runtime: str = "cpython") -> Outcome:
    return run_sync("sync", devices, seed, say, runtime=runtime)


class _Arrivals:
    """Brings the handhelds back online: all at once, or (staged) one more after each blow.

    Staged, every restarted hub or broker still has a handheld's whole backlog ahead of
    it, so the next blow lands while it works, however fast the machine is.
    """

    STAGE_S = 3.0  # a blow that does not come within this long does not hold the others back

    def __init__(self, fleet: list[Handheld], staged: bool) -> None:
        self.waiting = list(fleet)
        self.blows = 0
        self.last = time.monotonic()
        self._release(1 if staged else len(self.waiting))

    def _release(self, count: int) -> None:
        for handheld in self.waiting[:count]:
            handheld.network.up = True
        del self.waiting[:count]
        self.last = time.monotonic()

    def after(self, blows: int) -> None:
        """Called after each disturbance check with the number of blows dealt so far."""
        if self.waiting and (blows > self.blows or time.monotonic() - self.last > self.STAGE_S):
            self._release(1)
        self.blows = blows


class _Every:
    """Disturb the stack as sync begins and then every period seconds, times times."""

    def __init__(self, period: float, times: int, act: Callable[[Stack, int], None]) -> None:
        self.period, self.times, self.act, self.done = period, times, act, 0

    def __call__(self, stack: Stack, elapsed: float) -> int:
        # The first blow lands at once: a fast hub may otherwise finish before anything happens.
        if self.done < self.times and elapsed >= self.period * self.done:
            self.act(stack, self.done)
            self.done += 1
        return self.done


class _KillWhileIngesting:
    """SIGKILL the hub each time the running hub process has committed records, up to times times.

    It looks at the database itself, every turn of the sync loop: a fresh hub may take a
    whole queued backlog in one transaction, and asking it over HTTP could miss that window.
    """

    def __init__(self, times: int, say: Say) -> None:
        self.times, self.say, self.done, self.seen = times, say, 0, 0

    def __call__(self, stack: Stack, elapsed: float) -> int:
        if self.done >= self.times:
            return self.done
        with stack.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM record").scalar() or 0
        if stored > self.seen:
            self.seen = stored
            self.done += 1
            self.say(f"  kill -9 the hub while it ingests ({self.done}: {stored} records committed so far)")
            stack.kill_hub()
            stack.start_hub(wait=False)
        return self.done


def run_hub_restart(devices: int = 3, seed: int = 1, say: Say = print) -> Outcome:
    disturb = _KillWhileIngesting(5, say)
    out = run_sync("hub-restart", devices, seed, say, sales_per_device=250, disturb=disturb)
    out.check("hub_was_killed_while_ingesting", disturb.done >= 2, f"only {disturb.done} kills before sync ended")
    out.figures["hub_kills"] = disturb.done
    return out


def run_broker_restart(devices: int = 3, seed: int = 1, say: Say = print) -> Outcome:
    def restart(stack: Stack, n: int) -> None:
        if n % 2 == 0:
            say(f"  restart the broker ({n + 1})")
            stack.broker.restart()
        else:
            say(f"  kill -9 the broker and start it again ({n + 1})")
            stack.broker.kill()
            stack.broker.start()

    disturb = _Every(0.3, 3, restart)
    out = run_sync("broker-restart", devices, seed, say, sales_per_device=60, disturb=disturb)
    out.check("broker_restarted_during_sync", disturb.done >= 2, f"only {disturb.done} restarts before sync ended")
    out.figures["broker_restarts"] = disturb.done
    return out


def run_duplicates(devices: int = 3, seed: int = 1, say: Say = print) -> Outcome:
    return run_sync("duplicates", devices, seed, say, sales_per_device=40, chaos=True)
