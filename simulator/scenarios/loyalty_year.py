"""loyalty-year: a year of the loyalty programme on a virtual clock, on a real hub, checked end to end (issue 7, item 8).

A real Mosquitto and `hub serve`; handhelds on the real firmware, online all year and
synced every evening. Every day of 2027 on the virtual clock:
- morning: new members join; HQ issues their cards (hub.issuance, the desk's own code,
  on a reader wired straight to the virtual card), some referred by a member;
- day: members buy at the handhelds, paying by card, in cash or with points; how often
  each buys changes through the year (some grow, some fade, some leave);
- evening: every handheld syncs; the hub recomputes each sale with the rules it names;
- night: HQ tops cards up (with a bonus rule) and refunds sales, issues coupons (monthly
  to the tiers, now and then to one member), then the hub's schedule runs
  (hub.scheduler.run_due with the virtual time): tier reviews with gift packs (points and
  a coupon), referral awards, points-debt settlements, expiry by lots
  (points.validity_days 90), RFM tags, badges, plans (one grants the at-risk a coupon);
  coupon grants become coupons. What HQ decided reaches the handhelds before the shop opens.
- at the counter a member holding a coupon hands it over now and then: staff press COUPON
  until it is picked; the handheld takes it off the sale or says why not (below its
  minimum spend, past its date), and the scenario keeps what it said.

Checks: hub and handhelds agree on every sale; points never negative on a card or at
the hub; the stored-value liability equals the cards' balances on the hub, and each
card's hub balance and points equal what the card holds; every upgrade granted its
gift pack exactly once; every job ran every night without failing; each coupon was
redeemed at most once, every coupon a handheld took is redeemed at the hub with that
sale, and a handheld refused a coupon only for a true reason; every coupon reached its
card, the gift packs' once each.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from firmware import sale as sale_flow
from hub import badges, cards, coupons, plans, points, refunds, stored_value, tiers
from hub.downlinks import Latest, latest_versions
from hub.issuance import issue
from hub.masterdata import (
    add_price_list,
    publish_prices,
    save_category,
    save_product,
    save_shop,
    save_tier,
    set_param,
)
from hub.members import add_member
from hub.models import (
    Anomaly,
    Card,
    CardAction,
    Coupon,
    CouponGrant,
    JobRun,
    LedgerEntry,
    MemberTag,
    PointsDebt,
    Refund,
    Sale,
    TierChange,
    TierGift,
    TopupBonus,
)
from hub.scheduler import JOBS, run_due
from protocol import coupon as card_coupon
from protocol import downlink as dl
from simulator.direct_reader import DirectReader
from simulator.handheld import VirtualHandheld
from simulator.mifare_card import MifareClassic1K
from simulator.scenarios import Outcome, Say
from simulator.scenarios.hubcheck import sync_all
from simulator.shop import PRICE_LIST, blank_card, master_key, read_card_directly
from simulator.stack import Stack
from simulator.vhal import SimClock

DAY = 86_400
HOUR = 3_600
START = 1_798_761_600  # 2027-01-01 00:00 UTC: monthly reviews fall on the 1st of each month
DAYS = 365
SHOP = "high-street"
HQ = "hq:loyalty-year"
PASSWORD = "card password 1"
FIRST_MEMBERS = 10
JOIN_P = 0.045  # a new member joins on a day with this chance (about 16 more over the year)
REFERRED_P = 0.4  # a new member was referred by an existing one
REFUND_P = 0.08  # HQ refunds a sale on a night with this chance
REDEEM_P = 0.25  # a member holding 100 points or more pays with them
TIERS = ((0, "Member", 0, 10_000), (1, "Silver", 500, 12_500), (2, "Gold", 1_000, 15_000))
# HQ's coupon templates, one of each kind (name, kind, value, min spend), each valid 30 days from its issue.
COUPONS = {"fixed": ("3.00 off 10.00", "fixed", 300, 1_000), "percent": ("10 % off", "percent", 1_000, 0),
           "gift": ("a croissant on us", "gift", 103, 0)}
COUPON_DAYS = 30
GROUP_COUPON_DAY = 15  # of each month: the fixed coupon to every member in tier 1 or 2
SINGLE_COUPON_P = 0.05  # on a night HQ gives one member a coupon (a complaint put right, a birthday)
USE_COUPON_P = 0.5  # a member holding an unused coupon hands it over at a visit, expired or not
MAKE_MIN_SPEND_P = 0.75  # ... and for a fixed one adds beans (12.90) to reach its minimum spend; else it is refused
# Spend in the last 60 days; a tier holds 60 days, then it is reviewed again: members rise and fall within the year.
# The gift packs' coupons are named by kind here; set_up puts in the ids of HQ's templates.
TIER_RULES: dict[str, Any] = {"measure": "spend", "window_days": 60, "validity_days": 60, "review": "monthly",
                              "tiers": [{"tier": 1, "threshold": 6_000, "gift_points": 50, "gift_coupons": ["gift"]},
                                        {"tier": 2, "threshold": 15_000, "gift_points": 200,
                                         "gift_coupons": ["percent"]}]}
BONUS = [[20_000, 1_500], [50_000, 5_000]]  # pay 200.00 get 15.00, pay 500.00 get 50.00
TOPUPS = (2_000, 5_000, 20_000, 50_000)
PARAMS = {"points.validity_days": 90, "points.referral_bps": 1_000}
# How a member's buying changes: (days since joining it lasts, chance of buying on a day).
PROFILES: dict[str, list[tuple[int, float]]] = {
    "steady": [(DAYS, 0.12)],
    "regular": [(DAYS, 0.3)],
    "fan": [(DAYS, 0.55)],
    "fader": [(120, 0.55), (DAYS, 0.04)],
    "grower": [(150, 0.06), (DAYS, 0.5)],
    "leaver": [(70, 0.3), (DAYS, 0.0)],  # their points expire
}
BASKET = [101, 101, 102, 102, 103, 201, 202, 301]  # items by how often they are bought
WAIT_S = 30.0


@dataclass
class Person:
    """A member as the scenario drives them: their card and how they buy."""

    member_id: int
    chip: MifareClassic1K
    card_no: str
    joined: int  # day of the year
    profile: str
    cash_share: float  # chance of paying a sale in cash

    def buys_today(self, day: int, rng: random.Random) -> bool:
        since = day - self.joined
        rate = next((r for until, r in PROFILES[self.profile] if since < until), 0.0)
        return rng.random() < rate


@dataclass
class Tally:
    sales: int = 0
    not_sold: list[str] = field(default_factory=list)
    topups: int = 0
    refunds: int = 0
    referrals: int = 0
    lowest_points: int = 0  # the lowest points seen on a card or at the hub (never below zero)
    coupons_taken: dict[int, tuple[str, int]] = field(default_factory=dict)  # coupon -> the sale a handheld took it in
    coupons_refused: Counter[str] = field(default_factory=Counter)  # what the handheld said -> how often
    coupon_wrongs: list[str] = field(default_factory=list)  # a verdict of a handheld the coupon's terms do not bear out


def run(devices: int = 2, seed: int = 1, say: Say = print) -> Outcome:
    began = time.monotonic()
    out = Outcome("loyalty-year")
    rng = random.Random(seed)
    master = master_key(rng)
    with tempfile.TemporaryDirectory(prefix="sim-loyalty-year-") as tmp, Stack(Path(tmp) / "stack", master) as stack:
        year = _Year(stack, master, rng, out, say, max(2, devices), Path(tmp), random.Random(f"coupons {seed}"))
        try:
            year.play()
        finally:
            year.close()
    out.figures["seconds"] = round(time.monotonic() - began, 1)
    return out


class _Year:
    def __init__(self, stack: Stack, master: bytes, rng: random.Random, out: Outcome, say: Say, devices: int,
                 root: Path, coupon_rng: random.Random) -> None:
        self.stack, self.master, self.rng, self.out, self.say = stack, master, rng, out, say
        # Coupons draw from their own stream, so the members, their visits and baskets stay those of the same seed.
        self.coupon_rng = coupon_rng
        self.till = random.Random(rng.random())  # which handheld a member goes to: the same year for any number of them
        self.engine = stack.engine
        self.clock = SimClock(START)
        self.fleet = [VirtualHandheld(f"hh-{n + 1}", root, master, None, self.clock,
                                      mqtt=stack.register(f"hh-{n + 1}", SHOP)) for n in range(devices)]
        self.reader = DirectReader()
        self.people: list[Person] = []
        self.tally = Tally()
        self.templates: dict[str, int] = {}  # coupon kind -> HQ's template id
        # The coupons' scheduler job (hub.scheduler "coupons") delivers grants when the hub has one; else HQ does.
        self.grants_by_hq = not any(job.name == "coupons" for job in JOBS)

    def close(self) -> None:
        for hh in self.fleet:
            hh.close()

    # -- the year --------------------------------------------------------------------------------

    def play(self) -> None:
        self.set_up(START - DAY)
        for hh in self.fleet:
            hh.boot()
        self.deliver("prices_and_leases_reach_handhelds")
        for day in range(DAYS):
            t0 = START + day * DAY
            self.join(day, t0 + 8 * HOUR)
            self.shop_day(day, t0)
            took = sync_all(self.fleet, WAIT_S, lambda _line: None)
            self.out.check("handhelds_sync_every_evening", took >= 0, f"day {day}: backlog left after {WAIT_S:.0f} s")
            self.hq_night(t0 + 20 * HOUR)
            self.hq_coupons(t0 + 21 * HOUR)
            for run in run_due(self.engine, t0 + 22 * HOUR):
                self.out.check("jobs_run_without_failing", run.ok, f"day {day}: {run.job}: {run.summary}")
            if self.grants_by_hq:
                self.deliver_grants(t0 + 23 * HOUR)
            self.watch_points()
            self.deliver("hq_decisions_reach_handhelds")
            if (day + 1) % 30 == 0:
                self.progress(day)
        self.finish(START + DAYS * DAY + 9 * HOUR)

    def set_up(self, now: int) -> None:
        """HQ's shop, catalogue, tiers, rules and card stock; its price list published to the handhelds."""
        with Session(self.engine) as db:
            save_shop(db, HQ, now, SHOP, "High Street")
            category = {}
            for name in sorted({item["category"] for item in PRICE_LIST["items"]}):
                category[name] = save_category(db, HQ, now, name).id
            for item in PRICE_LIST["items"]:
                save_product(db, HQ, now, item["id"], item["name"], category[item["category"]],
                             discountable=item.get("discountable", True))
            add_price_list(db, HQ, now, {item["id"]: item["price"] for item in PRICE_LIST["items"]}, effective_from=0)
            for tier, name, discount_bps, points_bps in TIERS:
                save_tier(db, HQ, now, tier, name, discount_bps, points_bps)
            for key, value in PARAMS.items():
                set_param(db, HQ, now, key, value)
            for kind, (name, kind_, value, min_spend) in COUPONS.items():
                made = coupons.add_template(db, HQ, now, name, kind_, value, min_spend, COUPON_DAYS)
                self.templates[kind] = int(made.id or 0)
            rules = dict(TIER_RULES, tiers=[dict(step, gift_coupons=[self.templates[k] for k in step["gift_coupons"]])
                                            for step in TIER_RULES["tiers"]])
            tiers.save_rules(db, HQ, now, rules, "the year's rules")
            stored_value.save_bonus_rules(db, HQ, now, BONUS)
            badges.save_badge(db, HQ, now, "regular", "Regular", "purchases", 10)
            badges.save_badge(db, HQ, now, "gold", "Gold reached", "tier", 2)
            plans.add_plan(db, HQ, now, "we miss you", {"when": {"schedule": "monthly", "day": 1},
                                                          "audience": {"rfm": ["at-risk", "hibernating"]},
                                                          "actions": [{"notify": "We miss you, {name}"},
                                                                      {"coupon": self.templates["percent"]}]})
            plans.add_plan(db, HQ, now, "welcome up", {"when": {"event": "tier_upgraded"},
                                                         "actions": [{"notify": "Welcome to your new tier, {name}"}]})
            cards.make_batch(db, HQ, now, "9000", 1, 200)
            publish_prices(db, HQ, now, SHOP)
            db.commit()
        self.say(f"HQ set up shop {SHOP}: tiers, tier rules, bonus rules, points valid "
                 f"{PARAMS['points.validity_days']} days, referrals at {PARAMS['points.referral_bps']} bps, "
                 f"coupons {', '.join(name for name, *_ in COUPONS.values())}"
                 + ("" if not self.grants_by_hq else " (grants delivered by HQ each night: no coupons job)"))

    def join(self, day: int, now: int) -> None:
        """New members; HQ issues each a card at the desk, with an opening balance."""
        count = FIRST_MEMBERS if day == 0 else int(self.rng.random() < JOIN_P)
        for _ in range(count):
            profile = self.rng.choice(sorted(PROFILES))
            cash_share = self.rng.choice([0.0, 0.2, 0.6])
            opening = self.rng.choice([0, 2_000, 5_000])
            chip = blank_card(self.rng)
            referrer = self.rng.choice(self.people).member_id if self.people and self.rng.random() < REFERRED_P else None
            with Session(self.engine) as db:
                member = add_member(db, HQ, now, f"Member {len(self.people) + 1}")
                db.commit()
                assert member.id is not None
                member_id = member.id
            self.reader.insert(chip)
            issued = issue(self.engine, self.reader, self.master, now, HQ, member_id=member_id, balance=opening,
                           password=PASSWORD)
            self.reader.remove()
            if referrer is not None:
                with Session(self.engine) as db:
                    points.set_referrer(db, HQ, now, member_id, referrer)
                    db.commit()
                self.tally.referrals += 1
            self.people.append(Person(member_id, chip, issued.card["card_no"], day, profile, cash_share))

    def shop_day(self, day: int, t0: int) -> None:
        """Members buy at the handhelds between 09:00 and 18:00."""
        visits = sorted((self.rng.randrange(9 * HOUR, 18 * HOUR), p.member_id, p)
                        for p in self.people if p.buys_today(day, self.rng))
        for at, _m, person in visits:
            self.clock.now = t0 + at
            hh = self.till.choice(self.fleet)
            lines = self.basket()
            card = read_card_directly(person.chip, self.master)
            held = card["purse"]
            redeem = held["points"] >= 100 and self.rng.random() < REDEEM_P
            cash = self.rng.random() < person.cash_share
            terms = self.pick_coupon(card, lines)
            result = hh.sell(person.chip, lines, redeem_points=redeem, pay_cash=cash, coupon=terms[0] if terms else 0)
            if result == sale_flow.RECEIPT:
                self.tally.sales += 1
                if terms and hh.coupon_said:  # not said: a coupon action at the tap took its slot
                    self.heard(hh.device_id, hh.coupon_said, hh.ended_on, terms)
            else:
                self.tally.not_sold.append(f"day {day} {hh.device_id} card {person.card_no}: {result} {hh.lines}")
            self.tally.lowest_points = min(self.tally.lowest_points,
                                           read_card_directly(person.chip, self.master)["purse"]["points"])
        self.out.check("every_sale_rung_up", not self.tally.not_sold, "; ".join(self.tally.not_sold[:1]))

    def pick_coupon(self, card: dict, lines: list[tuple[int, int]]) -> list[int] | None:
        """The coupon the member hands over, if any; for a fixed one they mostly buy enough (lines grows)."""
        ext = card["purse"].get("ext")
        unused = [(i, c) for i, c in enumerate(card["slots"]) if c is not None and card_coupon.used(ext, i) != c[0]]
        if not unused or self.coupon_rng.random() >= USE_COUPON_P:
            return None
        terms = self.coupon_rng.choice(unused)[1]
        if terms[1] == coupons.KINDS["fixed"] and 301 not in dict(lines) and self.coupon_rng.random() < MAKE_MIN_SPEND_P:
            lines.append((301, 1))
        return terms

    def heard(self, device_id: str, said: str, receipt: tuple[str, ...], terms: list[int]) -> None:
        """Keep what the handheld said of a coupon and whether the coupon's terms bear it out."""
        day = self.clock.now // DAY
        if said.startswith("Coupon -"):  # taken: "Coupon -3.00"; the receipt names the sale ("PAID 15.10 #57")
            found = re.search(r"#(\d+)", receipt[0] if receipt else "")
            seq = int(found.group(1)) if found else -1
            if terms[0] in self.tally.coupons_taken or not terms[4] <= day <= terms[5]:
                self.tally.coupon_wrongs.append(f"coupon {terms} taken on day {day} by {device_id} #{seq}")
            self.tally.coupons_taken[terms[0]] = (device_id, seq)
            return
        self.tally.coupons_refused[said] += 1
        true = (said == "Coupon expired" and terms[5] < day) or (
            said.startswith("Coupon needs") and terms[1] == coupons.KINDS["fixed"] and terms[3] > 0)
        if not true:
            self.tally.coupon_wrongs.append(f"coupon {terms} refused on day {day} by {device_id}: {said!r}")

    def basket(self) -> list[tuple[int, int]]:
        items = sorted({self.rng.choice(BASKET) for _ in range(self.rng.randint(1, 3))})
        if self.rng.random() < 0.02:
            items.append(401)  # a gift voucher: no tier discount
        return [(item, 2 if self.rng.random() < 0.15 else 1) for item in items]

    def hq_night(self, now: int) -> None:
        """HQ tops up cards running low (with the bonus rules) and refunds a sale now and then."""
        with Session(self.engine) as db:
            pending = dict(db.exec(select(CardAction.card_no, func.sum(CardAction.amount))
                                   .where(CardAction.state == "pending").group_by(col(CardAction.card_no))).all())
            for person in self.people:
                card = db.get(Card, person.card_no)
                assert card is not None
                low = card.balance + int(pending.get(person.card_no, 0)) < 1_000
                if person.cash_share < 0.5 and low and self.rng.random() < 0.5:
                    cards.topup(db, HQ, now, person.card_no, self.rng.choice(TOPUPS))
                    self.tally.topups += 1
            db.commit()
        if self.rng.random() >= REFUND_P:
            return
        with Session(self.engine) as db:
            recent = db.exec(select(Sale).where(Sale.state == "committed", col(Sale.time) > now - 30 * DAY)
                             .order_by(col(Sale.time), col(Sale.device_id), col(Sale.seq))).all()
            if not recent:
                return
            sale = self.rng.choice(recent)
            sold = sorted(refunds.sold_lines(db, sale))
            lines = None if self.rng.random() < 0.5 else [(sold[0], 1)]
            try:
                refunds.refund_sale(db, HQ, now, sale.device_id, sale.seq, lines)
                db.commit()
                self.tally.refunds += 1
            except refunds.RefundError:
                db.rollback()  # refunded already: HQ is told so and nothing changes

    def hq_coupons(self, now: int) -> None:
        """Monthly the fixed coupon to everyone in a tier; now and then a coupon to one member."""
        with Session(self.engine) as db:
            if time.gmtime(now).tm_mday == GROUP_COUPON_DAY:
                group = coupons.group(db, tiers=[1, 2])
                if group:
                    coupons.issue_to(db, HQ, now, self.templates["fixed"], group)
            if self.people and self.coupon_rng.random() < SINGLE_COUPON_P:
                member_id = self.coupon_rng.choice(self.people).member_id
                kind = self.coupon_rng.choice(sorted(COUPONS))
                try:
                    coupons.issue(db, HQ, now, self.templates[kind], member_id)
                except coupons.CouponError:
                    pass  # the card holds two unused coupons already: HQ is told so, nothing issued
            db.commit()

    def deliver_grants(self, now: int) -> None:
        with Session(self.engine) as db:
            coupons.deliver_grants(db, HQ, now)
            db.commit()

    def watch_points(self) -> None:
        with Session(self.engine) as db:
            lowest = db.exec(select(func.min(Card.points))).one()
            owed = db.exec(select(PointsDebt.member_id, func.sum(PointsDebt.amount))
                           .group_by(col(PointsDebt.member_id))).all()
        self.tally.lowest_points = min([self.tally.lowest_points, int(lowest or 0)] + [int(a) for _m, a in owed])

    def deliver(self, check: str) -> None:
        """Step the handhelds until each holds the newest price list, hotlist, card actions and lease HQ has."""
        with Session(self.engine) as db:
            latest = latest_versions(db)
        lagging = self.lagging(latest)
        if not lagging:
            return
        for hh in self.fleet:
            # The handheld says hello again (as it does whenever a downlink moves a version): the hub answers a
            # status at once with what the device lacks, instead of at its next look a second later.
            assert hh.sync is not None
            hh.sync.announce = True
        began = time.monotonic()
        while lagging and time.monotonic() - began < WAIT_S:
            for hh in self.fleet:
                hh.sync_step()
            time.sleep(0.002)
            lagging = self.lagging(latest)
        self.out.check(check, not lagging, f"handhelds still behind after {WAIT_S:.0f} s: {lagging}")

    def lagging(self, latest: Latest) -> dict[str, list[str]]:
        """device -> the downlinks it lacks the newest of, by what its firmware holds."""
        out = {}
        for hh in self.fleet:
            held = hh.terminal.status()
            kinds = [kind for kind in (dl.PRICES, dl.HOTLIST, dl.ACTIONS, dl.LEASE)
                     if held[kind] < latest.of(kind, SHOP, hh.device_id)]
            if kinds:
                out[hh.device_id] = kinds
        return out

    def progress(self, day: int) -> None:
        with Session(self.engine) as db:
            changes = db.exec(select(TierChange).where(col(TierChange.rules_version) > 0)).all()
        up = sum(c.to_tier > c.from_tier for c in changes)
        self.say(f"day {day + 1}: {len(self.people)} members, {self.tally.sales} sales, {up} upgrades, "
                 f"{len(changes) - up} downgrades, {self.expired()} points expired, {self.tally.refunds} refunds, "
                 f"{self.tally.topups} top-ups, {len(self.tally.coupons_taken)} coupons used "
                 f"({sum(self.tally.coupons_refused.values())} refused)")

    def expired(self) -> int:
        with Session(self.engine) as db:
            taken = db.exec(select(func.coalesce(func.sum(LedgerEntry.amount), 0))
                            .where(LedgerEntry.account == "points", LedgerEntry.memo == "expire")).one()
        return -int(taken)

    # -- the end of the year: every card tapped once more, then the checks ---------------------------

    def finish(self, now: int) -> None:
        self.clock.now = now
        for person in self.people:  # whatever HQ decided last night reaches the card
            self.fleet[0].sell(person.chip, [(101, 1)], cancel=True)
        took = sync_all(self.fleet, WAIT_S, lambda _line: None)
        self.out.check("handhelds_sync_every_evening", took >= 0, f"the last sync: backlog left after {WAIT_S:.0f} s")
        self.watch_points()
        with Session(self.engine) as db:
            self.check_sales(db)
            self.check_cards(db)
            self.check_gift_packs(db)
            self.check_coupons(db, now)
            self.check_jobs(db)
            self.figures(db)

    def check_sales(self, db: Session) -> None:
        anomalies = db.exec(select(Anomaly)).all()
        disagree = [a for a in anomalies if a.code in ("sale_mismatch", "unknown_rules_version")]
        self.out.check("hub_and_handhelds_agree_on_every_sale", not disagree,
                       "; ".join(f"{a.device_id}#{a.seq} {a.code}: {a.detail}" for a in disagree[:2]))
        self.out.check("no_anomalies", not anomalies, "; ".join(f"{a.code}: {a.detail}" for a in anomalies[:3]))
        committed = db.exec(select(func.count()).select_from(Sale).where(Sale.state == "committed")).one()
        self.out.check("hub_holds_every_sale", committed == self.tally.sales,
                       f"{self.tally.sales} rung up, {committed} committed at the hub")

    def check_cards(self, db: Session) -> None:
        self.out.check("points_never_negative", self.tally.lowest_points >= 0, f"lowest {self.tally.lowest_points}")
        pending = db.exec(select(CardAction).where(CardAction.state == "pending")).all()
        self.out.check("every_action_reached_its_card", not pending,
                       f"{len(pending)} pending, e.g. {pending[0].kind} on {pending[0].card_no}" if pending else "")
        for person in self.people:
            purse = read_card_directly(person.chip, self.master)["purse"]
            hub = db.get(Card, person.card_no)
            assert hub is not None
            self.out.check("hub_cards_equal_cards", (hub.balance, hub.points) == (purse["balance"], purse["points"]),
                           f"{person.card_no}: hub {hub.balance}/{hub.points}, card {purse['balance']}/{purse['points']}")
        owed = stored_value.liability(db)
        balances = db.exec(select(func.coalesce(func.sum(Card.balance), 0))).one()
        self.out.check("liability_equals_card_balances",
                       owed["liability"] == balances == owed["ledger"] and bool(owed["balanced"]), str(owed))
        self.out.figures["liability_cents"] = int(owed["liability"])

    def check_gift_packs(self, db: Session) -> None:
        """Every upgrade by a review has its tier's gift pack (once per member, tier and rules), its points on the card once."""
        ups = {(c.member_id, c.to_tier, c.rules_version) for c in db.exec(select(TierChange))
               if c.rules_version and c.to_tier > c.from_tier}
        gifts = db.exec(select(TierGift)).all()
        keys = [(g.member_id, g.tier, g.rules_version) for g in gifts]
        self.out.check("every_upgrade_granted_its_gift_pack_once", set(keys) == ups and len(keys) == len(set(keys)),
                       f"upgrades {sorted(ups - set(keys))[:3]} without a pack; packs {len(keys)} for {len(ups)}")
        transfers = db.exec(select(CardAction).where(CardAction.kind == "transfer")).all()
        self.out.check("gift_points_reached_cards_once", len(transfers) == sum(1 for g in gifts if g.points),
                       f"{len(transfers)} point transfers for {len(gifts)} gift packs")
        for gift in gifts:
            action = db.get(CardAction, gift.action_id) if gift.action_id else None
            posted = [] if action is None else db.exec(select(LedgerEntry.amount).where(
                LedgerEntry.device_id == action.applied_device, LedgerEntry.seq == action.applied_seq,
                LedgerEntry.account == "points")).all()
            self.out.check("gift_points_reached_cards_once", action is not None and action.state == "applied"
                           and posted == [gift.points], f"member {gift.member_id} tier {gift.tier}: {action}, {posted}")

    def check_coupons(self, db: Session, now: int) -> None:
        """Each coupon redeemed once at most, with the sale a handheld took it in; every coupon on its card."""
        twice = db.exec(select(Anomaly).where(Anomaly.code == "coupon_redeemed_twice")).all()
        sold = db.exec(select(Sale.coupon, Sale.device_id, Sale.seq).where(col(Sale.coupon) != 0)).all()
        redeemed = db.exec(select(Coupon.id, Coupon.redeemed_device, Coupon.redeemed_seq)
                           .where(col(Coupon.redeemed) != 0)).all()
        by_sales = Counter(c for c, _d, _s in sold)
        self.out.check("each_coupon_redeemed_at_most_once",
                       not twice and max(by_sales.values(), default=0) <= 1 and set(sold) == set(redeemed),
                       f"{len(twice)} redeemed twice; sales {sorted(set(sold) ^ set(redeemed))[:3]} disagree")
        taken = {(c, d, s) for c, (d, s) in self.tally.coupons_taken.items()}
        self.out.check("every_coupon_taken_is_redeemed_with_its_sale", taken == set(redeemed),
                       f"taken not redeemed {sorted(taken - set(redeemed))[:2]}, "
                       f"redeemed not taken {sorted(set(redeemed) - taken)[:2]}")
        self.out.check("handhelds_said_true_of_coupons", not self.tally.coupon_wrongs,
                       "; ".join(self.tally.coupon_wrongs[:2]))
        actions = db.exec(select(CardAction).where(CardAction.kind == "coupon", CardAction.state != "applied")).all()
        self.out.check("every_coupon_reached_its_card", not actions,
                       "; ".join(f"{a.note} on {a.card_no}: {a.state}" for a in actions[:2]))
        # A gift pack's coupon reached the card once (one coupon per grant, its card action applied), or it waits
        # for a slot: the card still holds two coupons not used yet.
        issued = {c.grant_id: c for c in db.exec(select(Coupon).where(col(Coupon.grant_id).is_not(None)))}
        for grant in db.exec(select(CouponGrant).where(CouponGrant.source == "tier")):
            got = issued.get(grant.id)
            action = db.get(CardAction, got.action_id) if got and got.action_id else None
            waits = coupons.why_not(db, coupons.template(db, grant.template_id), grant.member_id, now)[0]
            self.out.check("gift_pack_coupons_reached_cards_once",
                           action.state == "applied" if action else got is None and waits == "card_full",
                           f"grant {grant.id} of member {grant.member_id}: coupon {got}, action {action}, {waits}")

    def check_jobs(self, db: Session) -> None:
        runs = db.exec(select(JobRun.job, func.count()).where(col(JobRun.ok).is_(True)).group_by(col(JobRun.job))).all()
        done = dict(runs)
        self.out.check("every_job_ran_every_night", all(done.get(job.name) == DAYS for job in JOBS), str(done))
        tagged = db.exec(select(func.count(func.distinct(MemberTag.member_id))).where(MemberTag.source == "rfm")).one()
        bought = db.exec(select(func.count(func.distinct(Card.member_id))).join(Sale, col(Sale.card_no) == col(Card.card_no))
                         .where(Sale.state == "committed")).one()
        self.out.check("rfm_tags_for_every_buyer", tagged == bought, f"{tagged} members tagged, {bought} bought")
        self.out.figures["rfm_tagged"] = int(tagged)

    def figures(self, db: Session) -> None:
        changes = db.exec(select(TierChange).where(col(TierChange.rules_version) > 0)).all()
        upgrades = sum(c.to_tier > c.from_tier for c in changes)
        referral = db.exec(select(func.coalesce(func.sum(CardAction.points), 0))
                           .where(CardAction.kind == "referral", CardAction.state == "applied")).one()
        bonus = db.exec(select(func.coalesce(func.sum(TopupBonus.bonus), 0))).one()
        settled = db.exec(select(func.coalesce(func.sum(PointsDebt.amount), 0)).where(col(PointsDebt.amount) < 0)).one()
        refunded = db.exec(select(func.count()).select_from(Refund)).one()
        self.out.figures.update({
            "members": len(self.people),
            "sales": self.tally.sales,
            "upgrades": upgrades,
            "downgrades": len(changes) - upgrades,
            "points_expired": self.expired(),
            "refunds": int(refunded),
            "topups": self.tally.topups,
            "topup_bonus_cents": int(bonus),
            "referred_members": self.tally.referrals,
            "referral_points": int(referral),
            "debt_settled_points": -int(settled),
            "job_runs": int(db.exec(select(func.count()).select_from(JobRun)).one()),
            "coupons_issued": int(db.exec(select(func.count()).select_from(Coupon)).one()),
            "coupons_redeemed": int(db.exec(select(func.count()).select_from(Coupon)
                                            .where(col(Coupon.redeemed) != 0)).one()),
            "coupon_value_cents": int(db.exec(select(func.coalesce(func.sum(Sale.coupon_value), 0))).one()),
            "coupons_refused_at_counter": sum(self.tally.coupons_refused.values()),
            "gift_pack_coupons": int(db.exec(select(func.count()).select_from(CouponGrant)
                                             .where(CouponGrant.source == "tier")).one()),
            "plan_coupons": int(db.exec(select(func.count()).select_from(CouponGrant)
                                        .where(CouponGrant.source == "plan")).one()),
        })
        for name in ("upgrades", "downgrades", "points_expired", "refunds", "topups", "referral_points",
                     "coupons_issued", "coupons_redeemed", "coupon_value_cents", "coupons_refused_at_counter",
                     "gift_pack_coupons"):
            self.out.check("the_year_saw_it_all", self.out.figures[name] > 0, f"no {name.replace('_', ' ')}")
        kinds = set(db.exec(select(Coupon.kind).where(col(Coupon.redeemed) != 0)).all())
        self.out.check("the_year_saw_it_all", kinds == set(COUPONS), f"coupons redeemed only of kinds {sorted(kinds)}")
        said = " ".join(self.tally.coupons_refused)
        for why in ("Coupon needs", "Coupon expired"):
            self.out.check("the_year_saw_it_all", why in said, f"no coupon refused with {why!r}: {said!r}")

