"""HQ's loyalty pages: the overview (/admin/loyalty), tier rules with their versions (/admin/loyalty/tiers), top-up
bonus rules (/admin/loyalty/bonus), and running a scheduled job now.

The pages call what the API and the CLI call (hub.tiers, hub.stored_value, hub.scheduler,
hub.masterdata): the same checks and the same refusal messages, and no rule lives here.
Parameters are changed on /admin/settings (one place); the overview links there.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import json
import re
from collections.abc import Callable
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, func, select

from hub import masterdata as md
from hub import scheduler, stored_value, tiers
from hub.auth import ADMIN, Gate, Principal
from hub.forms import back, commit, dropdown, message, show, text_input
from hub.models import Card, Tier, TierReview, TierRules, TopupBonusRules
from hub.pages import table, td, when
from hub.web_master import parse_when, parse_whole, percent, utc
from protocol.pricing import BPS, format_money

LOYALTY_PARAMS = ("points.", "rfm.", "lease.")  # the PARAMS the overview shows (they are changed on /admin/settings)
REVIEWS_SHOWN = 50
BONUS_HINT = "one rule a line: PAY=BONUS, e.g. 500.00=50.00"
MONEY_MEASURES = ("spend", "topup")  # their thresholds are amounts; the points measure's are whole points


# -- reading form input (pure) ------------------------------------------------------------------


def parse_amount(text: str, what: str) -> int:
    """An amount like 60.00 typed into a form -> cents; the error names the field."""
    try:
        return md.parse_money(text)
    except md.MasterDataError as exc:
        raise md.MasterDataError(exc.code, f"{what} {text.strip()!r} is not an amount like 60.00 (dot, at most "
                                 "2 decimals)") from exc


def parse_threshold(text: str, measure: str, tier: int) -> int:
    what = f"tier {tier}'s threshold"
    return parse_amount(text, what) if measure in MONEY_MEASURES else parse_whole(text, what)


def parse_ids(text: str, what: str) -> list[int]:
    """'7, 9' or '7 9' -> [7, 9]; empty -> []."""
    return [parse_whole(part, what) for part in re.split(r"[\s,]+", text.strip()) if part]


def tier_rules_doc(fields: dict[str, str], rows: list[dict[str, str]]) -> dict[str, Any]:
    """The tier rules document (hub.tiers' JSON) from the form; a tier row without a threshold is left out."""
    measure = fields.get("measure", "")
    doc: dict[str, Any] = {
        "measure": measure,
        "window_days": parse_whole(fields.get("window_days", ""), "window_days (days the growth value counts)"),
        "validity_days": parse_whole(fields.get("validity_days", ""), "validity_days (days a tier holds)"),
        "review": fields.get("review", ""),
        "tiers": [],
    }
    for row in rows:
        if not row["threshold"].strip():
            continue
        tier = parse_whole(row["tier"], "tier")
        entry: dict[str, Any] = {"tier": tier, "threshold": parse_threshold(row["threshold"], measure, tier)}
        if row["gift_points"].strip():
            entry["gift_points"] = parse_whole(row["gift_points"], f"tier {tier}'s gift points")
        coupons = parse_ids(row["gift_coupons"], f"tier {tier}'s gift coupon template")
        if coupons:
            entry["gift_coupons"] = coupons
        doc["tiers"].append(entry)
    if not doc["tiers"]:
        raise tiers.TierRuleError("bad_rules", "give at least one tier a threshold: a tier without one is not reviewed")
    return doc


def parse_bonus_lines(text: str) -> list[list[int]]:
    """PAY=BONUS lines -> [[pay, bonus], ...] in cents; an error names the line. No line at all: no bonus."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        paid, sign, bonus = line.partition("=")
        if not sign:
            raise stored_value.StoredValueError("bad_bonus", f"line {number}: {line.strip()!r} is not PAY=BONUS, e.g. "
                                                "500.00=50.00")
        try:
            out.append([parse_amount(paid, "pay"), parse_amount(bonus, "bonus")])
        except md.MasterDataError as exc:
            raise md.MasterDataError(exc.code, f"line {number}: {exc.message}") from exc
    return out


def parse_until(text: str, now: int) -> int:
    """'' -> 0 (open-ended); else a UTC date-time like parse_when's."""
    if not text.strip():
        return 0
    try:
        return parse_when(text, now)
    except md.MasterDataError as exc:
        raise md.MasterDataError(exc.code, f"until {text!r} is empty (open-ended), 'now' or a UTC date-time like "
                                 "2025-03-01 08:00") from exc


# -- showing (pure) ------------------------------------------------------------------------------


def multiplier(bps: int) -> str:
    """10000 -> 'x1', 15000 -> 'x1.5', 12500 -> 'x1.25' (no floats)."""
    frac = f"{bps % BPS:04d}".rstrip("0")
    return f"x{bps // BPS}" + (f".{frac}" if frac else "")


def gift_text(step: tiers.Step) -> str:
    parts = [f"{step.gift_points} points"] if step.gift_points else []
    if step.gift_coupons:
        parts.append("coupon template " + ", ".join(str(c) for c in step.gift_coupons))
    return " + ".join(parts) or "none"


def threshold_field(rules: tiers.Rules, step: tiers.Step) -> str:
    """A threshold as the form takes it back: an amount for money measures, else whole points."""
    return format_money(step.threshold) if rules.measure in MONEY_MEASURES else str(step.threshold)


def rules_line(rules: tiers.Rules) -> str:
    return (f"Growth value: {rules.measure} ({tiers.MEASURES[rules.measure]}) over the last {rules.window_days} days; "
            f"reviewed {rules.review}; a tier holds {rules.validity_days} days")


def steps_text(rules: tiers.Rules) -> str:
    return "; ".join(f"tier {s.tier} from {tiers.show_value(rules, s.threshold)} (gift: {gift_text(s)})" for s in rules.steps)


def bonus_text(thresholds: list[list[int]]) -> str:
    return "; ".join(f"pay {format_money(p)} get {format_money(b)}" for p, b in thresholds) or "no bonus"


def period_text(start: int, until: int) -> str:
    return f"{utc(start)} to {utc(until) if until else 'open-ended'}"


# -- the routes ----------------------------------------------------------------------------------


def loyalty_pages(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The pages /admin/loyalty, /admin/loyalty/tiers and /admin/loyalty/bonus (admins only)."""
    web = APIRouter(include_in_schema=False)
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Text = Annotated[str, Form()]
    Texts = Annotated[list[str] | None, Form()]

    def now() -> int:
        return int(gate.clock())

    # -- the overview --

    def tier_section(db: Session) -> str:
        rules = tiers.current_rules(db)
        defined = list(db.exec(select(Tier).order_by(col(Tier.id))))
        if rules is None:
            head = '<p id="tier-rules-version" class="muted">No tier rules yet: members keep the tier HQ sets by hand.</p>'
        else:
            row = tiers.rules_version(db, rules.version)
            head = (f'<p id="tier-rules-version">Version {rules.version}, saved {utc(row.created)} UTC by '
                    f'{escape(row.actor)}{": " + escape(row.note) if row.note else ""}.</p>'
                    f'<p id="tier-rules-terms">{escape(rules_line(rules))}.</p>')
        rows = []
        for t in defined:
            step = rules.step(t.id) if rules else None
            needs = tiers.show_value(rules, step.threshold) if rules and step else "not reviewed (set by hand)"
            rows.append([td(t.id, True), td(t.name), td(needs, cls="" if step else "muted"),
                         td(gift_text(step) if step else "-"), td(percent(t.discount_bps), True),
                         td(multiplier(t.points_bps), True)])
        head_row = ["Tier", "Name", "Needs", "Gift pack", "Discount", "Points multiplier"]
        return (head + table("tier-rules", head_row, rows, "No tiers defined: add them on Settings.")
                + '<p><a href="/admin/loyalty/tiers" id="tiers-link">New tier rules version, and every version</a> · '
                '<a href="/admin/settings" id="tiers-settings-link">Tier names, discounts</a></p>')

    def bonus_section(db: Session, at: int) -> str:
        rules = stored_value.rules_at(db, at)
        if rules is None:
            text = '<p id="bonus-current" class="muted">No top-up bonus in force: a top-up gets what is paid.</p>'
        else:
            text = (f'<p id="bonus-current">Version {rules.version} ({period_text(rules.effective_from, rules.until)} UTC): '
                    f"{escape(bonus_text(json.loads(rules.body)))}.</p>")
        return text + '<p><a href="/admin/loyalty/bonus" id="bonus-link">New bonus rules version, and every version</a></p>'

    def params_section(db: Session) -> str:
        values = md.params(db)
        rows = [[td(key), td(meaning), td(values[key], True), td(default, True)]
                for key, (default, _lo, _hi, meaning) in md.PARAMS.items() if key.startswith(LOYALTY_PARAMS)]
        return (table("loyalty-params", ["Parameter", "Meaning", "Value", "Default"], rows, "No parameters.")
                + '<p><a href="/admin/settings#params" id="params-link">Change parameters on Settings</a> '
                '(audited; the same checks as <code>hub param set</code>)</p>')

    def liability_section(db: Session) -> str:
        report = stored_value.liability(db)
        holding = db.exec(select(func.count()).select_from(Card).where(Card.balance != 0)).one()
        cards = db.exec(select(func.count()).select_from(Card)).one()
        balanced = bool(report["balanced"])
        verdict = ("yes: the stored-value postings equal the cards' balances" if balanced else
                   f"NO: the stored-value postings say {format_money(int(report['ledger']))}, the cards' balances "
                   f"{format_money(int(report['cards']))}")
        return f"""<div class="tiles">
 <div class="tile">Liability<b id="liability-total">{format_money(int(report["liability"]))}</b></div>
 <div class="tile">On the cards<b id="liability-cards">{format_money(int(report["cards"]))}</b></div>
 <div class="tile">Pending card actions<b id="liability-pending">{format_money(int(report["pending"]))}</b></div>
 <div class="tile">Cards holding a balance<b id="liability-card-count">{holding} of {cards}</b></div>
</div>
<p>Reconciles: <span id="liability-balanced" class="{"on" if balanced else "off"}">{escape(verdict)}</span></p>"""

    def jobs_section(db: Session, at: int) -> str:
        last_ok = scheduler.last_runs(db)
        due = {j.name for j in scheduler.due(scheduler.JOBS, last_ok, at)}
        rows = []
        for job in scheduler.JOBS:
            latest = scheduler.recent_runs(db, job.name, 1)
            run = latest[0] if latest else None
            state = "-" if run is None else ("ok" if run.ok else "FAILED")
            rows.append([
                td(job.name), td(scheduler.cadence(job.every)), td(job.what),
                f'<td id="last-{job.name}">{escape(when(run.time) if run else "never")}</td>',
                f'<td id="ok-{job.name}" class="{"on" if run and run.ok else "off" if run else ""}">{state}</td>',
                f'<td id="summary-{job.name}">{escape(run.summary if run else "")}</td>',
                td("yes" if job.name in due else "no"),
                f"""<td><form method="post" action="/admin/loyalty/jobs" class="inline">
<input type="hidden" name="job" value="{escape(job.name)}"><button id="run-{job.name}">Run now</button></form></td>""",
            ])
        head = ["Job", "Cadence", "What", "Last run (UTC)", "OK", "What it did", "Due", ""]
        return table("jobs", head, rows, "No jobs.")

    def overview_page(db: Session, who: Principal, notice: str = "", error: str = "", status: int = 200) -> HTMLResponse:
        at = now()
        body = f"""<h1>Loyalty</h1>{message(notice, error)}
<p class="muted">As of {utc(at)} UTC. <a href="/admin/offers" id="offers-link">Coupons and plans</a></p>
<h2>Tier rules</h2>
{tier_section(db)}
<h2>Top-up bonus</h2>
{bonus_section(db, at)}
<h2>Points, RFM tags and offline leases</h2>
{params_section(db)}
<h2>Stored-value liability</h2>
{liability_section(db)}
<h2>Scheduled jobs</h2>
<p class="muted">The hub runs each once per period; "Run now" runs it at once whether due or not, as
<code>hub jobs run JOB</code> does.</p>
{jobs_section(db, at)}"""
        return show("Loyalty", body, who, status)

    @web.get("/admin/loyalty", response_class=HTMLResponse)
    def overview(db: Db, who: Admin, notice: str = "") -> HTMLResponse:
        return overview_page(db, who, notice)

    @web.post("/admin/loyalty/jobs")
    def run_job(db: Db, who: Admin, job: Text = "") -> Response:
        try:
            chosen = scheduler.job_named(job)
        except KeyError as exc:
            return overview_page(db, who, error=str(exc.args[0]), status=404)
        run = scheduler.run_job(gate.engine, chosen, now(), who.name)  # its own transaction, recorded with its work
        if not run.ok:
            return overview_page(db, who, error=f"{run.job} failed (recorded; it is due again): {run.summary}")
        return back("/admin/loyalty", f"{run.job}: {run.summary}")

    # -- tier rules --

    def tier_form(db: Session, fields: dict[str, str], rows: list[dict[str, str]]) -> str:
        names = {t.id: t.name for t in db.exec(select(Tier))}
        inputs = "".join(
            f"""<tr><td class="n">{escape(r["tier"])}<input type="hidden" name="tier" value="{escape(r["tier"])}"></td>
<td>{escape(names.get(int(r["tier"]), "?") if r["tier"].isdigit() else "?")}</td>
<td><input name="threshold" id="threshold-{escape(r["tier"])}" value="{escape(r["threshold"])}" size="10"></td>
<td><input name="gift_points" id="gift-points-{escape(r["tier"])}" value="{escape(r["gift_points"])}" size="8"></td>
<td><input name="gift_coupons" id="gift-coupons-{escape(r["tier"])}" value="{escape(r["gift_coupons"])}" size="10"></td></tr>"""
            for r in rows
        )
        measures = [(m, f"{m}: {what}") for m, what in tiers.MEASURES.items()]
        return f"""<form method="post" action="/admin/loyalty/tiers" id="tier-rules-form">
{dropdown("Growth value", "measure", measures, fields.get("measure", "spend"))}
{text_input("Counted over the last (days)", "window_days", fields.get("window_days", ""), "required size=6")}
{text_input("A tier holds for (days)", "validity_days", fields.get("validity_days", ""), "required size=6")}
{dropdown("Reviewed", "review", [(c, c) for c in tiers.CADENCES], fields.get("review", "monthly"))}
<table id="tier-rule-rows"><thead><tr><th class="n">Tier</th><th>Name</th><th>Needs (an amount like 60.00; points
for the points measure; empty: not reviewed)</th><th>Gift points</th><th>Gift coupon templates</th></tr></thead>
<tbody>{inputs}</tbody></table>
{text_input("Note (why the rules change)", "note", fields.get("note", ""), "size=50")}
<button id="save-tier-rules">Save as a new version</button></form>"""

    def form_of(db: Session) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The form filled with the newest rules (every defined tier above 0 gets a row)."""
        rules = tiers.current_rules(db)
        ids = sorted({t.id for t in db.exec(select(Tier)) if t.id > 0} | {s.tier for s in (rules.steps if rules else ())})
        if rules is None:
            return {"window_days": "365", "validity_days": "365"}, [
                {"tier": str(i), "threshold": "", "gift_points": "", "gift_coupons": ""} for i in ids]
        fields = {"measure": rules.measure, "window_days": str(rules.window_days),
                  "validity_days": str(rules.validity_days), "review": rules.review}
        rows = []
        for i in ids:
            step = rules.step(i)
            rows.append({"tier": str(i), "threshold": threshold_field(rules, step) if step else "",
                         "gift_points": str(step.gift_points) if step and step.gift_points else "",
                         "gift_coupons": ", ".join(str(c) for c in step.gift_coupons) if step else ""})
        return fields, rows

    def tiers_page(db: Session, who: Principal, fields: dict[str, str], rows: list[dict[str, str]], notice: str = "",
                   error: str = "", status: int = 200) -> HTMLResponse:
        versions = list(db.exec(select(TierRules).order_by(col(TierRules.version).desc())))
        version_rows = []
        for n, row in enumerate(versions):
            rules = tiers.parse_rules(json.loads(row.body), row.version)
            until = versions[n - 1].created if n else 0
            in_force = f"{utc(row.created)} to {utc(until) if n else 'now (the newest applies)'}"
            version_rows.append([td(row.version, True), td(in_force), td(row.actor), td(row.note),
                                 td(rules_line(rules)), td(steps_text(rules))])
        reviews = [[td(when(r.time)), td(r.period), td(r.rules_version, True), td(r.actor), td(r.reviewed, True),
                    td(r.upgrades, True), td(r.downgrades, True), td(r.renewals, True)]
                   for r in db.exec(select(TierReview).order_by(col(TierReview.id).desc()).limit(REVIEWS_SHOWN))]
        body = f"""<h1>Tier rules</h1>{message(notice, error)}
<p class="muted">Every version is kept and the newest applies from when it was saved; a rule that contradicts itself is
refused with the reason and nothing is saved. <a href="/admin/loyalty">Back to Loyalty</a></p>
<h2>New version</h2>
{tier_form(db, fields, rows)}
<h2>Versions</h2>
{table("tier-rule-versions", ["Version", "In force (UTC)", "By", "Note", "Terms", "Tiers"], version_rows,
       "No tier rules yet.")}
<h2>Reviews</h2>
<p class="muted">Each review names the rules version it applied; a member's tier history (on their page) does too.</p>
{table("tier-reviews", ["Time (UTC)", "Period", "Rules", "By", "Reviewed", "Up", "Down", "Renewed"], reviews,
       "No review has run yet.")}"""
        return show("Tier rules", body, who, status)

    @web.get("/admin/loyalty/tiers", response_class=HTMLResponse)
    def tier_rules(db: Db, who: Admin, notice: str = "") -> HTMLResponse:
        fields, rows = form_of(db)
        return tiers_page(db, who, fields, rows, notice)

    @web.post("/admin/loyalty/tiers")
    def save_tier_rules(db: Db, who: Admin, measure: Text = "", window_days: Text = "", validity_days: Text = "",
                        review: Text = "", note: Text = "", tier: Texts = None, threshold: Texts = None,
                        gift_points: Texts = None, gift_coupons: Texts = None) -> Response:
        fields = {"measure": measure, "window_days": window_days, "validity_days": validity_days, "review": review,
                  "note": note}
        columns = [tier or [], threshold or [], gift_points or [], gift_coupons or []]
        rows = [{"tier": t, "threshold": th, "gift_points": g, "gift_coupons": c} for t, th, g, c in zip(*columns, strict=False)]

        def work() -> tuple[TierRules, bool]:
            if len({len(c) for c in columns}) != 1:
                raise tiers.TierRuleError("bad_rules", "every tier row needs its tier, threshold, gift points and coupons")
            return tiers.save_rules(db, who.name, now(), tier_rules_doc(fields, rows), note.strip())

        done, error = commit(db, work)
        if error:
            return tiers_page(db, who, fields, rows, error=error.message, status=error.status)
        row, new = done
        notice = f"Tier rules v{row.version} saved." if new else f"Unchanged: these are the rules of v{row.version} already."
        return back("/admin/loyalty/tiers", notice)

    # -- top-up bonus rules --

    def bonus_page(db: Session, who: Principal, form: dict[str, str], notice: str = "", error: str = "",
                   status: int = 200) -> HTMLResponse:
        at = now()
        current = stored_value.rules_at(db, at)
        rows = []
        for r in sorted(stored_value.list_rules(db), key=lambda r: -r["version"]):
            state = ("in force" if current and r["version"] == current.version else
                     "upcoming" if r["effective_from"] > at else "ended" if r["until"] and r["until"] <= at else
                     "replaced by a newer version")
            rows.append([td(r["version"], True), td(period_text(r["effective_from"], r["until"])), td(state),
                         td(bonus_text(r["thresholds"])), td(r["actor"]), td(utc(r["created"]))])
        body = f"""<h1>Top-up bonus rules</h1>{message(notice, error)}
<p class="muted">A top-up at HQ gets the bonus of the highest amount it reaches, under the newest version in force at
its time; a version is never changed. <a href="/admin/loyalty">Back to Loyalty</a></p>
<h2>New version</h2>
<form method="post" action="/admin/loyalty/bonus" id="bonus-form">
<label>Rules ({escape(BONUS_HINT)}; none: no bonus from then on)<br><textarea name="rules" id="bonus-rules" rows="5"
 cols="30" placeholder="500.00=50.00">{escape(form.get("rules", ""))}</textarea></label>
{text_input("In force from (UTC date-time, or now)", "effective", form.get("effective", "now"))}
{text_input("Until (UTC date-time; empty: open-ended)", "until", form.get("until", ""))}
<button id="save-bonus">Save as a new version</button></form>
<h2>Versions</h2>
{table("bonus-versions", ["Version", "In force (UTC)", "State", "Rules", "By", "Saved (UTC)"], rows,
       "No bonus rules yet.")}"""
        return show("Top-up bonus rules", body, who, status)

    @web.get("/admin/loyalty/bonus", response_class=HTMLResponse)
    def bonus(db: Db, who: Admin, notice: str = "") -> HTMLResponse:
        return bonus_page(db, who, {}, notice)

    @web.post("/admin/loyalty/bonus")
    def save_bonus(db: Db, who: Admin, rules: Text = "", effective: Text = "now", until: Text = "") -> Response:
        def work() -> TopupBonusRules:
            at = now()
            return stored_value.save_bonus_rules(db, who.name, at, parse_bonus_lines(rules), parse_when(effective, at),
                                                 parse_until(until, at))

        made, error = commit(db, work)
        if error:
            form = {"rules": rules, "effective": effective, "until": until}
            return bonus_page(db, who, form, error=error.message, status=error.status)
        return back("/admin/loyalty/bonus", f"Bonus rules v{made.version} saved: {bonus_text(json.loads(made.body))}.")

    return web
