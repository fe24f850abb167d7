"""HQ's offer pages: /admin/offers (coupon templates, issuing, the coupons) and /admin/plans (targeted plans, their
runs, badges).

The pages call what the API calls (hub.coupons, hub.plans, hub.badges): this module only reads
form input and shows results. Forms post, then redirect with a notice, or show the page again
with the error and nothing changed. Admins change and run; shop managers read.
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

from hub import badges as badge_rules
from hub import coupons
from hub import plans as plan_rules
from hub.auth import ADMIN, SHOP_MANAGER, Gate, Principal
from hub.forms import back, commit, dropdown, message, show, text_input
from hub.masterdata import MasterDataError, parse_money
from hub.members import MemberError, get_member, parse_tags
from hub.models import Badge, Coupon, CouponTemplate, Member, Plan, PlanRun, Product
from hub.pages import table, td, when
from hub.refusal import Refusal
from hub.web_master import parse_whole, percent
from protocol.pricing import format_money

COUPON_ROWS = 200  # coupons shown at once; a member filter shows theirs
RUN_ROWS = 50
NAMES_SHOWN = 20  # members named per run; the rest are counted
EXAMPLE_PLAN = """{"when": {"schedule": "monthly", "day": 1},
 "audience": {"tiers": [1, 2], "not_bought_within_days": 30},
 "actions": [{"notify": "Hello {name}, we miss you"}],
 "response_days": 14}"""
PLAN_HELP = (
    "when: {schedule: monthly, day} | {schedule: weekly, weekday} | {event: joined | tier_upgraded | birthday_month}; "
    "audience: tiers, tags, rfm, bought_within_days, not_bought_within_days, shop; "
    "actions: {coupon: template}, {notify: text}, {price: {shop, prices: {item: cents}, days}}; response_days. "
    "See docs/loyalty.md, Targeted plans."
)


# -- reading form input (pure) ------------------------------------------------------------------


def _bad(message_text: str) -> coupons.CouponError:
    return coupons.CouponError("bad_template", message_text)


def money(text: str, what: str) -> int:
    """An amount typed like 3.00 -> cents (empty: 0); the error names the field."""
    if not text.strip():
        return 0
    try:
        return parse_money(text)
    except MasterDataError as exc:
        raise _bad(f"{what}: {exc.message}") from None


def percent_bps(text: str) -> int:
    """'15', '12.5' or '12.5 %' -> basis points; the range is hub.coupons' to check."""
    raw = text.strip().removesuffix("%").strip()
    if not re.fullmatch(r"\d{1,7}(\.\d{1,2})?", raw):
        raise _bad(f"percent {text!r} is not a number like 15 or 12.5 (at most 2 decimals)")
    whole, _dot, frac = raw.partition(".")
    return int(whole) * 100 + int(frac.ljust(2, "0") or "0")


def template_value(kind: str, value: str, gift_item: str) -> int:
    """The template's value as hub.coupons takes it: cents off, basis points, or the gift's item number."""
    if kind == "gift":
        if value.strip():
            raise _bad("a gift coupon gives an item: put its number in Gift item and leave Value empty")
        return parse_whole(gift_item, "gift item") if gift_item.strip() else 0
    if gift_item.strip():
        raise _bad(f"a {kind} coupon gives no item: leave Gift item empty")
    if not value.strip():
        raise _bad(f"a {kind} coupon needs a value: " + ("money off, like 3.00" if kind == "fixed" else "a percent, like 15"))
    return money(value, "value") if kind == "fixed" else percent_bps(value)


def numbers(text: str, what: str) -> list[int]:
    """'1 2, 3' -> [1, 2, 3]; the error names the field and the word that is not a number."""
    out = []
    for word in re.split(r"[\s,;]+", text.strip()):
        if word:
            out.append(parse_whole(word, what))
    return out


def plan_json(text: str) -> Any:
    """The plan document typed into the form; PlanError saying where the JSON breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise plan_rules.PlanError("bad_json", f"the plan is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None


def plan_text(plan: Plan) -> str:
    """The plan's document as the forms show it, to edit."""
    return json.dumps(json.loads(plan.body), indent=1, sort_keys=True)


def switch_to(text: str) -> bool:
    """The on/off form's value: '1' on, '0' off."""
    if text not in ("0", "1"):
        raise plan_rules.PlanError("bad_active", f"active must be 1 (on) or 0 (off), got {text!r}")
    return text == "1"


def read_at_least(fact: str, text: str) -> int:
    """The badge's mark as typed: an amount like 100.00 for spend (-> cents), a whole number for the other facts."""
    if not text.strip():
        raise badge_rules.BadgeError("bad_number", "at least: give the mark the fact must reach, like 5")
    if fact != "spend":
        return parse_whole(text, "at least")
    try:
        return parse_money(text)
    except MasterDataError as exc:
        raise badge_rules.BadgeError("bad_number", f"at least: {exc.message}") from None


def mark_text(fact: str, mark: int) -> str:
    """A badge's mark as people read it: spend in money, the rest as counts."""
    return format_money(mark) if fact == "spend" else str(mark)


def shown_value(kind: str, value: int, items: dict[int, str]) -> str:
    """3.00 off, 15 % off, or the gift item with its name."""
    if kind == "fixed":
        return f"{format_money(value)} off"
    if kind == "percent":
        return f"{percent(value)} off"
    return f"item {value} ({items.get(value, '?')})"


def issue_notice(template_id: int, done: dict[str, Any], names: dict[int, str]) -> str:
    """Who got a coupon (and its number) and who was skipped, with the reason."""
    got = ", ".join(f"{names.get(m, '?')} (member {m}, coupon {c})" for m, c in done["got"])
    text = f"Template {template_id}: issued {len(done['got'])} " + ("coupon" if len(done["got"]) == 1 else "coupons")
    text += f" to {got}." if got else "."
    if done["skipped"]:
        text += " Skipped: " + "; ".join(f"member {s['member']}: {s['reason']}" for s in done["skipped"]) + "."
    return text


def run_summary(summary: dict[str, Any]) -> str:
    """What a run's actions did, in words."""
    parts = []
    if summary.get("coupons"):
        parts.append(f"{summary['coupons']} coupon grants")
    if summary.get("notifications"):
        parts.append(f"{summary['notifications']} notifications")
    if summary.get("price_lists"):
        parts.append("price lists " + ", ".join(str(i) for i in summary["price_lists"]))
    return ", ".join(parts) or "nothing"


def reached_text(ids: list[int], names: dict[int, str]) -> str:
    shown = ", ".join(names.get(i, f"member {i}") for i in ids[:NAMES_SHOWN])
    more = len(ids) - NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "") if ids else "nobody"


# -- what the pages show (reads) ---------------------------------------------------------------


def member_names(db: Session, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {int(i or 0): n for i, n in db.exec(select(Member.id, Member.name).where(col(Member.id).in_(ids))).all()}


def item_names(db: Session) -> dict[int, str]:
    return {p.id: p.name for p in db.exec(select(Product))}


def templates_table(db: Session) -> str:
    items = item_names(db)
    rows = [
        [td(t.id, True), td(t.name), td(t.kind), td(shown_value(t.kind, t.value, items)), td(format_money(t.min_spend), True),
         td(t.valid_days, True), td(coupons.show_day(t.starts) or "-"), td(coupons.show_day(t.ends) or "-"),
         td("yes" if t.active else "no", cls="on" if t.active else "off")]
        for t in coupons.templates(db)
    ]
    head = ["No.", "Name", "Kind", "Gives", "Min spend", "Valid days", "Starts", "Ends", "Active"]
    return table("templates", head, rows, "No coupon templates yet.")


def coupons_table(db: Session, member_id: int | None) -> str:
    found = coupons.coupons(db, member_id, limit=COUPON_ROWS)
    names = member_names(db, sorted({c["member_id"] for c in found}))
    template_names = {t.id: t.name for t in coupons.templates(db)}
    items = item_names(db)
    rows = [
        [td(c["id"], True), td(f"{names.get(c['member_id'], '?')} ({c['member_id']})"), td(c["card_no"]),
         td(template_names.get(c["template_id"], c["template_id"])), td(shown_value(c["kind"], c["value"], items)),
         td(f"{c['from']} .. {c['until']}"), td(c["state"], cls="state"), td(when(c["issued"])),
         td(f"{when(c['redeemed'])} by {c['redeemed_device']} #{c['redeemed_seq']}" if c["redeemed"] else "-")]
        for c in found
    ]
    head = ["Coupon", "Member", "Card", "Template", "Gives", "Valid", "State", "Issued", "Redeemed"]
    total = coupons.count_coupons(db, member_id) if len(found) == COUPON_ROWS else len(found)
    more = f'<p class="muted">The newest {COUPON_ROWS} of {total}.</p>' if total > COUPON_ROWS else ""
    return table("coupons", head, rows, "No coupons.") + more


def template_form(form: dict[str, str]) -> str:
    kinds = [("fixed", "fixed: money off"), ("percent", "percent off"), ("gift", "gift: an item free")]
    return f"""<form method="post" action="/admin/offers/templates" id="template-form">
{text_input("Name", "name", form.get("name", ""), "required", "template-name")}
{dropdown("Kind", "kind", kinds, form.get("kind", "fixed"), "template-kind")}
{text_input("Value (fixed: money off, like 3.00; percent: like 15)", "value", form.get("value", ""), "", "template-value")}
{text_input("Gift item (a gift's item number)", "gift_item", form.get("gift_item", ""), "", "template-gift")}
{text_input("Minimum spend (after the tier discount, like 20.00)", "min_spend", form.get("min_spend", ""),
            'placeholder="0.00"', "template-min-spend")}
{text_input("Valid days (from the first valid day)", "valid_days", form.get("valid_days", "30"), "", "template-days")}
{text_input("Starts (YYYY-MM-DD, empty: the day it is issued)", "starts", form.get("starts", ""), "", "template-starts")}
{text_input("Ends (YYYY-MM-DD, empty: none)", "ends", form.get("ends", ""), "", "template-ends")}
<button id="add-template">Add template</button></form>"""


def issue_form(db: Session, form: dict[str, str]) -> str:
    options = [(str(t.id), f"{t.id}: {t.name}") for t in coupons.templates(db) if t.active]
    if not options:
        return '<p class="muted" id="issue-form">Add a template first.</p>'
    return f"""<form method="post" action="/admin/offers/issue" id="issue-form">
{dropdown("Template", "template_id", options, form.get("template_id", ""), "issue-template")}
{text_input("Members (numbers, separated by spaces)", "members", form.get("members", ""), "", "issue-members")}
<p class="muted">Or a group, when no member is named: the members of any of these tiers, with any of these tags.</p>
{text_input("Tiers (numbers)", "tiers", form.get("tiers", ""), "", "issue-tiers")}
{text_input("Tags", "tags", form.get("tags", ""), "", "issue-tags")}
<button id="issue-button">Issue</button></form>"""


def plans_table(db: Session) -> str:
    newest = select(func.max(PlanRun.id)).group_by(col(PlanRun.plan_id))
    last = {r.plan_id: (r.time, r.reached) for r in db.exec(select(PlanRun).where(col(PlanRun.id).in_(newest)))}
    rows = []
    for p in plan_rules.plans(db):
        doc = json.loads(p.body)
        ran = last.get(p.id)
        rows.append([
            td(p.id, True), f'<td><a href="/admin/plans/{p.id}" id="plan-{p.id}">{escape(p.name)}</a></td>',
            td(p.version, True), td("on" if p.active else "off", cls="on" if p.active else "off"),
            td(json.dumps(doc["when"])), td(json.dumps(doc["audience"]) if doc["audience"] else "everyone"),
            td(json.dumps(doc["actions"])), td(f"{when(ran[0])}, reached {ran[1]}" if ran else "never"),
        ])
    head = ["No.", "Name", "Version", "State", "When", "Audience", "Actions", "Last run"]
    return table("plans", head, rows, "No plans yet.")


def badges_table(db: Session, admin: bool = False) -> str:
    held = badge_rules.holders(db)
    rows = []
    for b in badge_rules.all_badges(db):
        row = [td(b.code), td(b.name), td(b.description or "-"), td(f"{b.fact} at least {mark_text(b.fact, b.at_least)}"),
               td("yes" if b.active else "no", cls="on" if b.active else "off"), td(held.get(b.code, 0), True)]
        change = f'<td><a href="/admin/plans?badge={escape(b.code)}#badge-form" id="edit-badge-{escape(b.code)}">change</a></td>'
        rows.append(row + [change] if admin else row)
    head = ["Code", "Name", "Description", "Earned when", "Active", "Members"] + ([""] if admin else [])
    return table("badges", head, rows, "No badges yet.")


def badge_form(values: dict[str, str]) -> str:
    """Define a badge, or change one by its code (members keep those already granted)."""
    facts = [(f, f"{f}: {meaning}") for f, meaning in badge_rules.FACTS.items()]
    on = " checked" if values.get("active", "1") else ""
    return f"""<form method="post" action="/admin/badges" id="badge-form">
{text_input("Code (a-z, 0-9, -; an existing code changes that badge)", "code", values.get("code", ""), "required",
            "badge-code")}
{text_input("Name", "name", values.get("name", ""), "required", "badge-name")}
{text_input("Description", "description", values.get("description", ""), "", "badge-description")}
{dropdown("Earned when", "fact", facts, values.get("fact", "purchases"), "badge-fact")}
{text_input("reaches at least (spend: an amount like 500.00)", "at_least", values.get("at_least", ""), "",
            "badge-at-least")}
<label><input type="checkbox" name="active" id="badge-active" value="1"{on}> Active (earned from now on)</label>
<button id="save-badge">Save badge</button></form>"""


def badge_values(db: Session, code: str) -> dict[str, str]:
    """The badge form filled in with badge code's fields (empty when there is no such badge)."""
    found = db.get(Badge, code) if code else None
    if found is None:
        return {}
    return {"code": found.code, "name": found.name, "description": found.description, "fact": found.fact,
            "at_least": mark_text(found.fact, found.at_least), "active": "1" if found.active else ""}


def rerun_buttons(plan_id: int, run_id: int) -> str:
    """The two re-runs of one run: its responders, or the others."""
    return "".join(
        f'<form class="inline" method="post" action="/admin/plans/{plan_id}/rerun"><input type="hidden" name="run_id" '
        f'value="{run_id}">{extra}<button id="{button}-{run_id}">{label}</button></form> '
        for button, label, extra in (("rerun", "responders", ""),
                                     ("remind", "the others", '<input type="hidden" name="non_responders" value="1">')))


def runs_table(db: Session, plan_id: int, admin: bool) -> str:
    found = plan_rules.runs(db, plan_id, RUN_ROWS)
    reached = {r.id or 0: plan_rules.reached(db, r.id or 0) for r in found}
    names = member_names(db, sorted({m for ids in reached.values() for m in ids}))
    rows = []
    for r in found:
        ids = reached[r.id or 0]
        who = escape(reached_text(ids, names))
        if admin and ids:  # the member pages are HQ's
            who = ", ".join(f'<a href="/admin/members/{m}">{escape(names.get(m, str(m)))}</a>' for m in ids[:NAMES_SHOWN])
            who += f" and {len(ids) - NAMES_SHOWN} more" if len(ids) > NAMES_SHOWN else ""
        trigger = f"rerun of run {r.rerun_of}" if r.rerun_of else r.trigger
        row = [td(r.id, True), td(when(r.time)), td(trigger), td(r.plan_version, True), td(r.reached, True),
               f'<td class="who">{who}</td>', td(run_summary(json.loads(r.summary or "{}"))), td(r.actor)]
        rows.append(row + [f"<td>{rerun_buttons(plan_id, r.id or 0)}</td>"] if admin else row)
    head = ["Run", "When", "Trigger", "Version", "Reached", "Who", "What it did", "By"] + (["Re-run on"] if admin else [])
    return table("runs", head, rows, "The plan has not run yet.")


# -- the routes ----------------------------------------------------------------------------------


def offers_pages(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The pages /admin/offers and /admin/plans, and their forms."""
    web = APIRouter(include_in_schema=False)
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Staff = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER))]
    Text = Annotated[str, Form()]

    def now() -> int:
        return int(gate.clock())

    # -- coupons --

    def offers_page(db: Session, who: Principal, member: str = "", notice: str = "", error: str = "",
                    template: dict[str, str] | None = None, issue: dict[str, str] | None = None,
                    status: int = 200) -> HTMLResponse:
        member_id = None
        if member.strip():
            try:
                member_id = get_member(db, parse_whole(member, "member")).id
            except Refusal as exc:
                error, status = error or exc.message, exc.status if status == 200 else status
        admin = who.role == ADMIN
        change = f"""<h2>Add a template</h2>
{template_form(template or {})}
<h2>Issue coupons</h2>
<p class="muted">Each member gets one on their newest active card; a card holds two unused coupons at most.</p>
{issue_form(db, issue or {})}""" if admin else ""
        listed = "" if member.strip() and member_id is None else coupons_table(db, member_id)
        body = f"""<h1>Offers</h1>{message(notice, error)}
<p class="muted">Coupons are bound to the member's card and spent on it (docs/coupons.md).
<a href="/admin/plans" id="to-plans">Targeted plans and badges</a></p>
<h2>Coupon templates</h2>
{templates_table(db)}
{change}
<h2>Coupons</h2>
<form method="get" action="/admin/offers" id="coupon-filter">
<label>Member number <input name="member" id="filter-member" value="{escape(member)}"></label>
<button id="filter-button">Show</button> <a href="/admin/offers">all</a></form>
{listed}"""
        return show("Offers", body, who, status)

    @web.get("/admin/offers", response_class=HTMLResponse)
    def offers(db: Db, who: Staff, member: str = "", notice: str = "") -> HTMLResponse:
        return offers_page(db, who, member, notice)

    @web.post("/admin/offers/templates")
    def add_template(db: Db, who: Admin, name: Text = "", kind: Text = "fixed", value: Text = "", gift_item: Text = "",
                     min_spend: Text = "", valid_days: Text = "30", starts: Text = "", ends: Text = "") -> Response:
        form = {"name": name, "kind": kind, "value": value, "gift_item": gift_item, "min_spend": min_spend,
                "valid_days": valid_days, "starts": starts, "ends": ends}

        def work() -> CouponTemplate:
            return coupons.add_template(db, who.name, now(), name, kind, template_value(kind, value, gift_item),
                                        money(min_spend, "minimum spend"), parse_whole(valid_days, "valid days"),
                                        starts.strip(), ends.strip())

        made, error = commit(db, work)
        if error:
            return offers_page(db, who, error=error.message, template=form, status=error.status)
        return back("/admin/offers", f"Template {made.id} added: {made.name}.")

    @web.post("/admin/offers/issue")
    def issue(db: Db, who: Admin, template_id: Text = "", members: Text = "", tiers: Text = "",
              tags: Text = "") -> Response:
        form = {"template_id": template_id, "members": members, "tiers": tiers, "tags": tags}

        def work() -> dict[str, Any]:
            chosen = numbers(members, "member")
            group_tiers, group_tags = numbers(tiers, "tier"), parse_tags(tags)
            if not chosen and not group_tiers and not group_tags:
                raise MemberError("no_members", "name members, or a tier or a tag for a group")
            number = parse_whole(template_id, "template")
            done = coupons.issue_to(db, who.name, now(), number, chosen or coupons.group(db, group_tiers, group_tags))
            got = db.exec(select(Coupon.member_id, Coupon.id).where(col(Coupon.id).in_(done["issued"]))
                          .order_by(col(Coupon.id))).all()
            return done | {"got": [(int(m), int(c or 0)) for m, c in got]}

        done, error = commit(db, work)
        if error:
            return offers_page(db, who, error=error.message, issue=form, status=error.status)
        names = member_names(db, [m for m, _c in done["got"]])
        return back("/admin/offers", issue_notice(done["template"], done, names))

    # -- plans and badges --

    def plans_page(db: Session, who: Principal, notice: str = "", error: str = "", form: dict[str, str] | None = None,
                   status: int = 200, badge: dict[str, str] | None = None) -> HTMLResponse:
        values = form or {"name": "", "plan": EXAMPLE_PLAN}
        admin = who.role == ADMIN
        add = f"""<h2>Add a plan</h2>
<form method="post" action="/admin/plans" id="plan-form">
{text_input("Name", "name", values["name"], "required", "plan-name")}
<label>The plan (JSON)<br><textarea name="plan" id="plan-json" rows="8" cols="90">{escape(values["plan"])}</textarea>
</label><p class="muted">{escape(PLAN_HELP)}</p>
<button id="add-plan">Add plan</button></form>""" if admin else ""
        define = f"<h3>Define or change a badge</h3>{badge_form(badge or {})}" if admin else ""
        body = f"""<h1>Targeted plans</h1>{message(notice, error)}
<p class="muted"><a href="/admin/offers">Coupons</a></p>
{plans_table(db)}
{add}
<h2>Badges</h2>
<p class="muted">Achievements shown to members; they have no money value.</p>
{badges_table(db, admin)}
{define}"""
        return show("Plans", body, who, status)

    def plan_page(db: Session, who: Principal, plan: Plan, notice: str = "", error: str = "",
                  status: int = 200, edit: dict[str, str] | None = None) -> HTMLResponse:
        doc = json.loads(plan.body)
        details = table("plan", ["Version", "State", "Made", "By", "Responses counted for"], [[
            td(plan.version, True), td("on" if plan.active else "off", cls="on" if plan.active else "off"),
            td(when(plan.created)), td(plan.actor), td(f"{doc['response_days']} days after a run")]], "")
        last = plan_rules.runs(db, plan.id, 1)
        rerun = f"""<form class="inline" method="post" action="/admin/plans/{plan.id}/rerun" id="rerun-form">
<input type="hidden" name="run_id" value="{last[0].id}">
<button id="rerun">Re-run on the last run's responders (run {last[0].id})</button></form>
<form class="inline" method="post" action="/admin/plans/{plan.id}/rerun" id="remind-form">
<input type="hidden" name="run_id" value="{last[0].id}"><input type="hidden" name="non_responders" value="1">
<button id="remind">Re-run on those who did not respond to it</button></form>""" if last else ""
        run = f"""<h2>Run</h2>
<form class="inline" method="post" action="/admin/plans/{plan.id}/run" id="run-form">
<button id="run-now">Run now</button></form>
{rerun}
<p class="muted">A re-run reaches the members of a run who bought within {doc['response_days']} days after it or
redeemed a coupon it granted (or the others); the audience is not applied again. Each run below can be re-run too.</p>
""" if who.role == ADMIN else ""
        values = edit or {"name": plan.name, "plan": plan_text(plan)}
        state = f"""<form class="inline" method="post" action="/admin/plans/{plan.id}/active" id="switch-form">
<input type="hidden" name="active" value="{0 if plan.active else 1}">
<button id="switch-plan">{"Switch off" if plan.active else "Switch on"}</button></form>
<span class="muted">An off plan keeps its runs but runs no more (on schedule, on events or by hand) until
switched on.</span>"""
        change = f"""<h2>Change</h2>
{state}
<form method="post" action="/admin/plans/{plan.id}/edit" id="edit-form">
{text_input("Name", "name", values["name"], "required", "edit-name")}
<label>The plan (JSON)<br><textarea name="plan" id="edit-json" rows="10" cols="90">{escape(values["plan"])}</textarea>
</label><p class="muted">{escape(PLAN_HELP)} Saving makes the next version; runs keep the version they used.</p>
<button id="save-plan">Save as the next version</button></form>""" if who.role == ADMIN else ""
        body = f"""<p><a href="/admin/plans">&larr; Plans</a></p>
<h1 id="plan-title">Plan {plan.id}: {escape(plan.name)}</h1>{message(notice, error)}
{details}
<pre id="plan-body">{escape(json.dumps(doc, indent=1, sort_keys=True))}</pre>
{run}
{change}
<h2>Runs</h2>
{runs_table(db, plan.id, who.role == ADMIN)}"""
        return show(f"Plan {plan.id}: {plan.name}", body, who, status)

    def missing_plan(who: Principal, exc: Refusal) -> HTMLResponse:
        body = f'<h1>No such plan</h1>{message(error=exc.message)}<p><a href="/admin/plans">Plans</a></p>'
        return show("No such plan", body, who, exc.status)

    @web.get("/admin/plans", response_class=HTMLResponse)
    def plans(db: Db, who: Staff, notice: str = "", badge: str = "") -> HTMLResponse:
        return plans_page(db, who, notice, badge=badge_values(db, badge))

    @web.post("/admin/plans")
    def add_plan(db: Db, who: Admin, name: Text = "", plan: Text = "") -> Response:
        made, error = commit(db, lambda: plan_rules.add_plan(db, who.name, now(), name, plan_json(plan)))
        if error:
            return plans_page(db, who, error=error.message, form={"name": name, "plan": plan}, status=error.status)
        return back(f"/admin/plans/{made.id}", f"Plan {made.id} added.")

    @web.get("/admin/plans/{plan_id}", response_class=HTMLResponse)
    def plan(plan_id: int, db: Db, who: Staff, notice: str = "") -> HTMLResponse:
        try:
            found = plan_rules.current_plan(db, plan_id)
        except Refusal as exc:
            return missing_plan(who, exc)
        return plan_page(db, who, found, notice)

    def after_change(db: Session, who: Principal, plan_id: int, work: Callable[[], Plan], said: Callable[[Plan], str],
                     edit: dict[str, str] | None = None) -> Response:
        """Make the plan's next version with work(); its page with the notice said(new), or the reason and the form."""
        try:
            version = plan_rules.current_plan(db, plan_id).version
        except Refusal as exc:
            return missing_plan(who, exc)
        new, error = commit(db, work)
        if error:
            return plan_page(db, who, plan_rules.current_plan(db, plan_id), error=error.message, status=error.status,
                             edit=edit)
        if new.version == version:  # hub.plans makes no version for the same plan again
            return back(f"/admin/plans/{plan_id}", f"Plan {plan_id} unchanged: it is as version {version} already.")
        return back(f"/admin/plans/{plan_id}", said(new))

    @web.post("/admin/plans/{plan_id}/active")
    def switch(plan_id: int, db: Db, who: Admin, active: Text = "") -> Response:
        def work() -> Plan:
            return plan_rules.change_plan(db, who.name, now(), plan_id, active=switch_to(active))

        def said(new: Plan) -> str:
            return f"Plan {plan_id} switched {'on' if new.active else 'off'} (version {new.version})."

        return after_change(db, who, plan_id, work, said)

    @web.post("/admin/plans/{plan_id}/edit")
    def edit(plan_id: int, db: Db, who: Admin, name: Text = "", plan: Text = "") -> Response:
        def work() -> Plan:
            return plan_rules.change_plan(db, who.name, now(), plan_id, name, plan_json(plan))

        def said(new: Plan) -> str:
            return f"Plan {plan_id} saved as version {new.version}."

        return after_change(db, who, plan_id, work, said, {"name": name, "plan": plan})

    @web.post("/admin/badges")
    def save_badge(db: Db, who: Admin, code: Text = "", name: Text = "", fact: Text = "", at_least: Text = "",
                   description: Text = "", active: Text = "") -> Response:
        form = {"code": code, "name": name, "fact": fact, "at_least": at_least, "description": description,
                "active": active}

        def work() -> Badge:
            return badge_rules.save_badge(db, who.name, now(), code.strip(), name, fact, read_at_least(fact, at_least),
                                          description.strip(), bool(active))

        saved, error = commit(db, work)
        if error:
            return plans_page(db, who, error=error.message, badge=form, status=error.status)
        return back("/admin/plans", f"Badge {saved.code} saved: {saved.fact} at least {mark_text(saved.fact, saved.at_least)}"
                    + ("." if saved.active else " (inactive)."))

    def after_run(db: Session, who: Principal, plan_id: int, work: Callable[[], PlanRun]) -> Response:
        try:
            plan_rules.current_plan(db, plan_id)
        except Refusal as exc:
            return missing_plan(who, exc)
        done, error = commit(db, work)
        if error:
            return plan_page(db, who, plan_rules.current_plan(db, plan_id), error=error.message, status=error.status)
        ids = plan_rules.reached(db, done.id or 0)
        what = f"rerun of run {done.rerun_of}" if done.rerun_of else done.trigger
        notice = f"Run {done.id} ({what}) reached {len(ids)}: {reached_text(ids, member_names(db, ids))}."
        return back(f"/admin/plans/{plan_id}", notice)

    @web.post("/admin/plans/{plan_id}/run")
    def run_now(plan_id: int, db: Db, who: Admin) -> Response:
        return after_run(db, who, plan_id, lambda: plan_rules.run_plan(db, who.name, now(), plan_id))

    @web.post("/admin/plans/{plan_id}/rerun")
    def rerun(plan_id: int, db: Db, who: Admin, run_id: Text = "", non_responders: Text = "") -> Response:
        def work() -> PlanRun:
            run = parse_whole(run_id, "run") if run_id.strip() else None  # none: the plan's last run
            return plan_rules.rerun(db, who.name, now(), plan_id, run, bool(non_responders))

        return after_run(db, who, plan_id, work)

    return web
