"""HQ's card pages (/admin/cards: numbers, issuing at the desk reader, the hotlist, one card's page) and the
member's own page (/me).

Forms post, then redirect with a notice, or show the page again with the error and nothing
changed. A new card password is shown once, on the page that answers the form. Desk
operations open the PC/SC reader for the request and wait a moment for a card.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
from collections.abc import Callable
from html import escape
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from hub import cards, issuance
from hub.api_cards import default_master
from hub.auth import ADMIN, MEMBER, Gate, Principal
from hub.cards import CardOpError
from hub.forms import back, message, show
from hub.models import Card, Member
from hub.pages import table, td, when
from hub.web_notifications import my_inbox, notification_pages
from protocol.pricing import format_money

MEMBER_CHOICES = 1000  # members offered in the issue form's list
RECENT_CARDS = 50

LEVEL_CLASS = {"ok": "on", "warn": "muted", "bad": "off"}


# -- HTML pieces ----------------------------------------------------------------------





def card_link(card_no: str, link_id: str = "") -> str:
    ident = f' id="{escape(link_id)}"' if link_id else ""
    return f'<td><a href="/admin/cards/{quote(card_no)}"{ident}>{escape(card_no)}</a></td>'


def reader_select(field_id: str) -> str:
    """A choice of desk readers, or a clear line saying why there is none."""
    try:
        names = issuance.readers()
    except CardOpError as exc:
        return f'<p class="error" id="{field_id}-missing">Desk reader: {escape(exc.message)}</p>'
    if not names:
        return f'<p class="error" id="{field_id}-missing">No desk reader: plug one in (pcscd lists none).</p>'
    options = "".join(f'<option value="{escape(n)}">{escape(n)}</option>' for n in names)
    return f'<label>Reader <select name="reader" id="{field_id}">{options}</select></label>'


def button_form(action: str, label: str, button_id: str, fields: str = "") -> str:
    return (f'<form class="inline" method="post" action="{escape(action)}">{fields}'
            f'<button id="{escape(button_id)}">{escape(label)}</button></form>')


def action_rows(actions: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [td(a["number"], True), td(a["kind"]), td(format_money(a["amount"]), True), td(a["points"], True),
         td(a["state"]), td(a["note"]), td(a["actor"]), td(when(a["created"]))]
        for a in actions
    ]


ACTION_HEAD = ["#", "Kind", "Amount", "Points", "State", "Note", "By", "Queued"]


# -- form input -----------------------------------------------------------------------


def whole(text: str, what: str) -> int:
    raw = text.strip()
    if not raw.isdigit() or len(raw) > 12:
        raise CardOpError("bad_number", f"{what} must be a whole number, got {text!r}")
    return int(raw)


def card_pages(db_dependency: Callable[..., Any], gate: Gate, master: Callable[[], bytes] = default_master) -> APIRouter:
    """The /admin/cards pages and /me; db_dependency yields a Session, gate checks who may see each."""
    web = APIRouter(include_in_schema=False)
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Own = Annotated[Principal, Depends(gate.require(MEMBER))]

    def now() -> int:
        return int(gate.clock())

    # -- the cards home ---------------------------------------------------------------

    def home(db: Session, who: Principal, notice: str = "", error: str = "", status: int = 200,
             form: dict[str, str] | None = None) -> HTMLResponse:
        form = form or {}
        members = db.exec(select(Member).order_by(col(Member.name), col(Member.id)).limit(MEMBER_CHOICES)).all()
        chosen = form.get("member_id", "")
        member_opts = "".join(
            f'<option value="{m.id}"{" selected" if str(m.id) == chosen else ""}>{escape(m.name)} (member {m.id})</option>'
            for m in members
        )
        batches = [
            [td(b["batch"]), td(b["first"]), td(b["last"]), td(b["stock"], True), td(b["reserved"], True),
             td(b["issued"], True)]
            for b in cards.batches(db)
        ]
        unfinished = [
            [td(a.uid), td(a.card_no), td(a.member_id, True), td(a.replaces or "-"), td(a.tries, True),
             td(when(a.updated))]
            for a in cards.unfinished_issues(db)
        ]
        hotlist = [
            [card_link(e["card_no"], f"hot-{e['card_no']}"), td(e["uid"]), td(e["reason"]), td(when(e["time"])),
             td(e["version"], True)]
            for e in cards.hotlist_now(db)
        ]
        recent = [
            [card_link(c.card_no), td(c.uid), td(c.member_id, True), td(c.state), td(format_money(c.balance), True),
             td(c.points, True), td(when(c.issued))]
            for c in db.exec(select(Card).order_by(col(Card.issued).desc(), col(Card.card_no)).limit(RECENT_CARDS))
        ]
        body = f"""<h1>Cards</h1>{message(notice, error)}
<form id="card-search" method="get" action="/admin/cards/find">
<label>Card number <input name="card_no" id="search-card-no" value="{escape(form.get('card_no', ''))}"></label>
<button id="search-button">Find</button></form>
<h2>Issue a card</h2>
<p class="muted">Put a blank card on the desk reader, choose the member, then issue. A card pulled away mid-write
keeps its card number: put it back and issue again to finish.</p>
<form id="issue-form" method="post" action="/admin/cards/issue">
<label>Member <select name="member_id" id="issue-member">{member_opts}</select></label>
{reader_select("issue-reader")}
<label>Card password <input name="password" id="issue-password" type="password" autocomplete="new-password"
 placeholder="empty: generate one"></label>
<label>Opening balance <input name="balance" id="issue-balance" value="{escape(form.get('balance', '0.00'))}"></label>
<label>Opening points <input name="points" id="issue-points" value="{escape(form.get('points', '0'))}"></label>
<button id="issue-button">Issue the card on the reader</button></form>
<h2>Check a card</h2>
<form id="verify-form" method="post" action="/admin/cards/verify">{reader_select("verify-reader")}
<button id="verify-button">Read the card on the reader and compare</button></form>
<h2>Unfinished issues</h2>
{table("unfinished", ["UID", "Card number", "Member", "Replaces", "Tries", "Last try"], unfinished,
       "None: every card written at the desk was finished.")}
<h2>Hotlist</h2>
{table("hotlist", ["Card", "UID", "Reason", "Since", "Version"], hotlist, "No card is on the hotlist.")}
<h2>Card numbers</h2>
{table("batches", ["Batch", "First", "Last", "In stock", "Reserved", "Issued"], batches, "No card numbers yet.")}
<form id="batch-form" method="post" action="/admin/cards/batches">
<label>Prefix <input name="prefix" id="batch-prefix" value="{escape(form.get('prefix', ''))}" placeholder="9000"></label>
<label>First serial <input name="start" id="batch-start" value="{escape(form.get('start', '1'))}"></label>
<label>How many <input name="count" id="batch-count" value="{escape(form.get('count', ''))}"></label>
<button id="batch-button">Make the batch</button></form>
<h2>Newest cards</h2>
{table("cards", ["Card", "UID", "Member", "State", "Balance", "Points", "Issued"], recent, "No cards issued yet.")}"""
        return show("Cards", body, who, status)

    @web.get("/admin/cards", response_class=HTMLResponse)
    def cards_home(db: Db, who: Admin, notice: str = "") -> HTMLResponse:
        return home(db, who, notice)

    @web.get("/admin/cards/find", response_class=HTMLResponse)
    def find(db: Db, who: Admin, card_no: str = "") -> Response:
        try:
            card = cards.get_card(db, card_no)
        except CardOpError as exc:
            return home(db, who, error=exc.message, status=exc.status, form={"card_no": card_no})
        return RedirectResponse(f"/admin/cards/{quote(card.card_no)}", status_code=303)

    @web.post("/admin/cards/batches", response_class=HTMLResponse)
    def add_batch(
        db: Db, who: Admin, prefix: Annotated[str, Form()] = "", start: Annotated[str, Form()] = "1",
        count: Annotated[str, Form()] = "",
    ) -> Response:
        form = {"prefix": prefix, "start": start, "count": count}
        try:
            numbers = cards.make_batch(db, who.name, now(), prefix.strip(), whole(start, "The first serial"),
                                       whole(count, "How many"))
            db.commit()
        except CardOpError as exc:
            db.rollback()
            return home(db, who, error=exc.message, status=exc.status, form=form)
        return back("/admin/cards", f"{len(numbers)} card numbers in stock: {numbers[0]} .. {numbers[-1]}.")

    @web.post("/admin/cards/issue", response_class=HTMLResponse)
    def issue(
        db: Db, who: Admin, member_id: Annotated[str, Form()] = "", reader: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "", balance: Annotated[str, Form()] = "0",
        points: Annotated[str, Form()] = "0",
    ) -> Response:
        form = {"member_id": member_id, "balance": balance, "points": points}
        try:
            member = whole(member_id, "The member") if member_id.strip() else None
            cents = cards.parse_amount(balance or "0")
            pts = whole(points or "0", "Opening points")
            with issuance.open_desk(reader or None) as desk:
                done = issuance.issue(gate.engine, desk, master(), now(), who.name, member_id=member, balance=cents,
                                      points=pts, password=password or None)
        except CardOpError as exc:
            return home(db, who, error=exc.message, status=exc.status, form=form)
        return issued_page(who, done, "issued")

    def issued_page(who: Principal, done: issuance.Issued, verb: str) -> HTMLResponse:
        card = done.card
        secret = ""
        if done.password:
            secret = (f'<p>Card password: <code id="new-password">{escape(done.password)}</code> — give it to the member '
                      "now: it is not shown again (the hub keeps only its hash).</p>")
        resumed = '<p class="muted" id="resumed">This finished a write that had been cut off.</p>' if done.resumed else ""
        body = f"""<h1>Card {escape(card['card_no'])} {verb}</h1>
<p class="notice" id="notice">Card {escape(card['card_no'])} (UID {escape(card['uid'])}) is active for member
{card['member_id']}: balance {format_money(card['balance'])}, {card['points']} points.</p>{resumed}{secret}
<p><a href="/admin/cards/{quote(card['card_no'])}" id="card-link">Open card {escape(card['card_no'])}</a> ·
<a href="/admin/cards">Back to cards</a></p>"""
        return show(f"Card {card['card_no']} {verb}", body, who, 201)

    @web.post("/admin/cards/verify", response_class=HTMLResponse)
    def verify(db: Db, who: Admin, reader: Annotated[str, Form()] = "") -> Response:
        try:
            with issuance.open_desk(reader or None) as desk:
                report = issuance.verify(gate.engine, desk, master())
        except CardOpError as exc:
            return home(db, who, error=exc.message, status=exc.status)
        rows = [[td(f["level"], cls=LEVEL_CLASS.get(f["level"], "")), td(f["code"]), td(f["message"])]
                for f in report["findings"]]
        anomalies = [[td(when(a["time"])), td(a["code"]), td(a["device_id"] or "-"), td(a["detail"])]
                     for a in report["anomalies"]]
        on_card = report["card"]
        facts = ""
        if on_card:
            facts = table("on-card", ["Card", "Member", "Tier", "Counter", "Balance", "Points"], [[
                td(on_card["card_no"]), td(on_card["member_id"], True), td(on_card["tier"], True),
                td(on_card["counter"], True), td(format_money(on_card["balance"]), True), td(on_card["points"], True)]], "")
        hub_card = report["hub"]
        link = f'<p><a href="/admin/cards/{quote(hub_card["card_no"])}" id="card-link">Open card {escape(hub_card["card_no"])}' \
               "</a></p>" if hub_card else ""
        verdict = "matches the hub" if report["ok"] else "does not match the hub"
        body = f"""<h1>Card {escape(report['uid'])} {verdict}</h1>
<p class="{'notice' if report['ok'] else 'error'}" id="verdict">{'OK' if report['ok'] else 'Problems found'}</p>
{facts}
<h2>Findings</h2>{table("findings", ["", "Check", "What was found"], rows, "Nothing to say.")}
<h2>Anomalies on record</h2>{table("anomalies", ["Time", "Code", "Device", "Detail"], anomalies, "None.")}
{link}<p><a href="/admin/cards">Back to cards</a></p>"""
        return show("Card check", body, who)

    @web.post("/admin/cards/settle", response_class=HTMLResponse)
    def settle(db: Db, who: Admin) -> Response:
        done = cards.settle_replaced(db, who.name, now())
        moved = [(a.card_no, a.amount, a.points) for a in done]
        db.commit()
        if not moved:
            return back("/admin/cards", "Nothing to settle.")
        text = "; ".join(f"{format_money(amount)} and {points} points to {no}" for no, amount, points in moved)
        return back("/admin/cards", f"Pending transfers queued: {text}.")

    # -- one card ---------------------------------------------------------------------

    def card_page(db: Session, who: Principal, card_no: str, notice: str = "", error: str = "",
                  status: int = 200) -> HTMLResponse:
        try:
            card = cards.get_card(db, card_no)
        except CardOpError as exc:
            return home(db, who, error=exc.message, status=exc.status, form={"card_no": card_no})
        d = cards.card_detail(db, card)
        path = f"/admin/cards/{quote(card.card_no)}"
        buttons = []
        if d["state"] == "active":
            buttons.append(button_form(f"{path}/lost", "Report lost", "lost-button"))
        if d["state"] == "lost":
            buttons.append(button_form(f"{path}/unfreeze", "Unfreeze", "unfreeze-button"))
        forms = ""
        if d["state"] in ("active", "lost"):
            forms += f"""<h2>Replace</h2><form id="replace-form" method="post" action="{path}/replace">
<p class="muted">Put a blank card on the reader: it becomes this member's card with this card's balance, points and
pending actions; this card goes on the hotlist for good.</p>{reader_select("replace-reader")}
<button id="replace-button">Replace with the card on the reader</button></form>"""
        if d["state"] == "active":
            forms += f"""<h2>Top up (paid at HQ)</h2><form id="topup-form" method="post" action="{path}/topup">
<label>Amount <input name="amount" id="topup-amount" placeholder="20.00"></label>
<button id="topup-button">Top up</button></form>"""
        if d["state"] != "replaced":
            forms += f"""<h2>Card password</h2><form id="password-form" method="post" action="{path}/password">
<label>New password <input name="password" id="reset-password" type="password" autocomplete="new-password"
 placeholder="empty: generate one"></label><button id="password-button">Set the password</button></form>"""
        if d["state"] == "replaced" and (d["balance"] or d["points"]):
            buttons.append(button_form("/admin/cards/settle", "Settle onto the new card", "settle-button"))
        links = "".join(f'<p>Replaced by <a href="/admin/cards/{quote(n)}" id="replaced-by">{escape(n)}</a></p>'
                        for n in [d["replaced_by"]] if n)
        links += "".join(f'<p>Replaces <a href="/admin/cards/{quote(n)}">{escape(n)}</a></p>' for n in d["replaces"])
        facts = [
            ["State", f'<b id="card-state">{escape(d["state"])}</b> <span class="muted">{escape(d["state_meaning"])}</span>'],
            ["On the hotlist", f'<span id="card-hotlisted">{"yes" if d["hotlisted"] else "no"}</span>'],
            ["Member", f'{escape(d["member_name"])} (member {d["member_id"]})'],
            ["UID", escape(d["uid"])],
            ["Balance", f'<span id="card-balance">{format_money(d["balance"])}</span>'],
            ["Pending top-ups", f'<span id="card-pending-topups">{format_money(d["pending_topups"])}</span>'],
            ["Points", f'<span id="card-points">{d["points"]}</span>'],
            ["Tier", str(d["tier"])],
            ["Card counter (last seen)", str(d["last_counter"])],
            ["Issued", when(d["issued"])],
            ["Card password", "set" if d["has_password"] else "not set"],
        ]
        fact_rows = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in facts)
        hot = [[td(e["version"], True), td("listed" if e["listed"] else "taken off"), td(e["reason"]), td(when(e["time"]))]
               for e in d["hotlist"]]
        sales = [[td(when(s["time"])), td(s["device_id"]), td(s["seq"], True), td(s["state"]),
                  td(format_money(s["total"]), True), td(format_money(s["stored_value"]), True)] for s in d["recent_sales"]]
        anomalies = [[td(when(a["time"])), td(a["code"]), td(a["device_id"] or "-"), td(a["detail"])] for a in d["anomalies"]]
        body = f"""<h1>Card {escape(card.card_no)}</h1>{message(notice, error)}
<table id="card-facts"><tbody>{fact_rows}</tbody></table>{links}
<p>{" ".join(buttons)}</p>{forms}
<h2>Pending actions</h2>
<p class="muted">Reach the card at its next tap on a handheld; the ledger posts them when the handheld reports them.</p>
{table("pending", ACTION_HEAD, action_rows(d["pending"]), "None pending.")}
<h2>Hotlist history</h2>{table("hotlist-history", ["Version", "Change", "Reason", "Time"], hot, "Never on the hotlist.")}
<h2>All card actions</h2>{table("actions", ACTION_HEAD, action_rows(d["actions"]), "None.")}
<h2>Recent sales</h2>{table("sales", ["Time", "Device", "Seq", "State", "Total", "Stored value"], sales, "No sales yet.")}
<h2>Anomalies</h2>{table("anomalies", ["Time", "Code", "Device", "Detail"], anomalies, "None.")}
<p><a href="/admin/cards">Back to cards</a></p>"""
        return show(f"Card {card.card_no}", body, who, status)

    @web.get("/admin/cards/{card_no}", response_class=HTMLResponse)
    def one_card(card_no: str, db: Db, who: Admin, notice: str = "") -> HTMLResponse:
        return card_page(db, who, card_no, notice)

    def card_change(db: Session, who: Principal, card_no: str, work: Callable[[], Any], notice: str) -> Response:
        try:
            work()
            db.commit()
        except CardOpError as exc:
            db.rollback()
            return card_page(db, who, card_no, error=exc.message, status=exc.status)
        return back(f"/admin/cards/{quote(cards.check_card_no(card_no))}", notice)

    @web.post("/admin/cards/{card_no}/lost", response_class=HTMLResponse)
    def lost(card_no: str, db: Db, who: Admin) -> Response:
        return card_change(db, who, card_no, lambda: cards.mark_lost(db, who.name, now(), card_no),
                           "Reported lost: the card is on the hotlist; handhelds refuse it once they sync.")

    @web.post("/admin/cards/{card_no}/unfreeze", response_class=HTMLResponse)
    def unfreeze(card_no: str, db: Db, who: Admin) -> Response:
        return card_change(db, who, card_no, lambda: cards.unfreeze(db, who.name, now(), card_no),
                           "Unfrozen: the card is off the hotlist and in use again.")

    @web.post("/admin/cards/{card_no}/topup", response_class=HTMLResponse)
    def topup(card_no: str, db: Db, who: Admin, amount: Annotated[str, Form()] = "") -> Response:
        def work() -> None:
            cards.topup(db, who.name, now(), card_no, cards.parse_amount(amount))

        return card_change(db, who, card_no, work, f"Top-up of {amount.strip()} queued: the card gets it at its next tap "
                           "on a handheld.")

    @web.post("/admin/cards/{card_no}/password", response_class=HTMLResponse)
    def reset_password(card_no: str, db: Db, who: Admin, password: Annotated[str, Form()] = "") -> Response:
        try:
            chosen = cards.reset_password(db, who.name, now(), card_no, password or None)
            db.commit()
        except CardOpError as exc:
            db.rollback()
            return card_page(db, who, card_no, error=exc.message, status=exc.status)
        if password:
            return back(f"/admin/cards/{quote(cards.check_card_no(card_no))}", "Password set.")
        body = f"""<h1>New password for card {escape(cards.check_card_no(card_no))}</h1>
<p>Card password: <code id="new-password">{escape(chosen)}</code> — give it to the member now: it is not shown again.</p>
<p><a href="/admin/cards/{quote(cards.check_card_no(card_no))}" id="card-link">Back to the card</a></p>"""
        return show("New card password", body, who)

    @web.post("/admin/cards/{card_no}/replace", response_class=HTMLResponse)
    def replace(card_no: str, db: Db, who: Admin, reader: Annotated[str, Form()] = "") -> Response:
        try:
            with issuance.open_desk(reader or None) as desk:
                done = issuance.replace(gate.engine, desk, master(), now(), who.name, card_no)
        except CardOpError as exc:
            return card_page(db, who, card_no, error=exc.message, status=exc.status)
        return issued_page(who, done, f"replaces {cards.check_card_no(card_no)}")

    # -- the member's own page ----------------------------------------------------------

    def me_page(db: Session, who: Principal, notice: str = "", error: str = "", status: int = 200) -> HTMLResponse:
        card = db.get(Card, who.card_no)
        if card is None:  # the gate admitted them, so the card was there a moment ago
            return show("My card", '<p class="error" id="error">Your card is not on the hub.</p>', who, 404)
        d = cards.card_detail(db, card)
        sales = [[td(when(s["time"])), td(s["shop"]), td(format_money(s["total"]), True),
                  td(format_money(s["stored_value"]), True), td(s["points_earned"], True), td(s["points_redeemed"], True)]
                 for s in d["recent_sales"] if s["state"] == "committed"]
        pending = ""
        if d["pending_topups"]:
            pending = (f'<p id="me-pending">Top-ups on their way: <b>{format_money(d["pending_topups"])}</b> — your card '
                       "gets them the next time you tap it in a shop.</p>")
        body = f"""<h1>My card {escape(card.card_no)}</h1>{message(notice, error)}
<div class="tiles">
 <div class="tile">Balance<b id="me-balance">{format_money(d["balance"])}</b></div>
 <div class="tile">Points<b id="me-points">{d["points"]}</b></div>
 <div class="tile">Tier<b id="me-tier">{d["tier"]}</b></div>
</div>{pending}
{my_inbox(db, who, now())}
<h2>Recent purchases</h2>
{table("my-sales", ["Time", "Shop", "Total", "From balance", "Points earned", "Points used"], sales, "No purchases yet.")}
<h2>Change my password</h2>
<form id="password-form" method="post" action="/me/password">
<label>Current password <input name="old_password" id="old-password" type="password" autocomplete="current-password"></label>
<label>New password <input name="new_password" id="new-password" type="password" autocomplete="new-password"></label>
<label>New password again <input name="repeat" id="repeat-password" type="password" autocomplete="new-password"></label>
<button id="password-button">Change password</button></form>"""
        return show("My card", body, who, status)

    @web.get("/me", response_class=HTMLResponse)
    def me(db: Db, who: Own, notice: str = "") -> HTMLResponse:
        return me_page(db, who, notice)

    @web.post("/me/password", response_class=HTMLResponse)
    def my_password(
        db: Db, who: Own, old_password: Annotated[str, Form()] = "", new_password: Annotated[str, Form()] = "",
        repeat: Annotated[str, Form()] = "",
    ) -> Response:
        try:
            if new_password != repeat:
                raise CardOpError("password_mismatch", "the two new passwords differ; nothing was changed")
            cards.change_password(db, who.name, now(), who.card_no, who.card_no, old_password, new_password)
            db.commit()
        except CardOpError as exc:
            db.rollback()
            return me_page(db, who, error=exc.message, status=exc.status)
        return back("/me", "Password changed.")

    web.include_router(notification_pages(db_dependency, gate, me_page))
    return web
