"""HQ's member pages: /admin/members (search, add, CSV import and export) and /admin/members/{id} (the 360 view).

Forms post, then redirect with a notice, or show the page again with the error and nothing
changed. HQ admins only; a shop manager reads members through the API (hub.api_members).
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import time
from collections.abc import Callable
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func
from sqlmodel import Session, col, select

from hub import forms, member_csv
from hub import members as rules
from hub.api_members import photo_response, read_upload
from hub.auth import ADMIN, Gate, Principal
from hub.forms import back, dropdown, message, text_input
from hub.models import Card, Member, MemberCategory, Tier
from hub.pages import page, table, td, when
from hub.refusal import Refusal
from protocol.pricing import format_money

LIST_ROWS = 100
CSV_HELP = (
    "Columns (a header row first): id, name, phone, birthday, category, tier, tags; only name is required. "
    "UTF-8 (Excel's CSV UTF-8); comma or semicolon separated. A file with any bad row imports nothing."
)
PROFILE_FIELDS = ("name", "phone", "birthday", "category_id")


# -- HTML pieces --------------------------------------------------------------------------------






def category_options(db: Session) -> list[tuple[str, str]]:
    found = db.exec(select(MemberCategory).order_by(col(MemberCategory.id)))
    return [("", "(none)")] + [(str(c.id), f"{c.id}: {c.name}") for c in found]


def tier_options(db: Session) -> list[tuple[str, str]]:
    tiers = {t.id: t.name for t in db.exec(select(Tier).order_by(col(Tier.id)))}
    return [(str(n), f"{n}: {name}") for n, name in {0: tiers.get(0, "base"), **tiers}.items()]


def tier_label(names: dict[int, str], tier: int) -> str:
    return f"{tier} ({names[tier]})" if tier in names else str(tier)


def whole_or_none(text: str, what: str) -> int | None:
    raw = text.strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit():
        raise rules.MemberError("bad_number", f"{what} must be a whole number, got {text!r}")
    return int(raw)




def commit(db: Session, work: Callable[[], Any]) -> tuple[Any, Refusal | None]:
    """forms.commit with the members' own commit: a phone another writer took meanwhile is a refusal too."""
    return forms.commit(db, work, rules.commit)

# -- the list page ------------------------------------------------------------------------------


def members_table(db: Session, found: list[Member]) -> str:
    ids = [m.id or 0 for m in found]
    cards = dict(
        db.exec(select(Card.member_id, func.count()).where(col(Card.member_id).in_(ids)).group_by(col(Card.member_id))).all()
    )
    tags = rules.tags_of(db, ids)
    names = rules.tier_names(db)
    rows = [
        [
            td(m.id, True),
            f'<td><a href="/admin/members/{m.id}" id="member-{m.id}">{escape(m.name)}</a></td>',
            td(m.phone or "-"),
            td(tier_label(names, m.tier)),
            td(cards.get(m.id or 0, 0), True),
            td(" ".join(t.tag for t in tags[m.id or 0]) or "-"),
        ]
        for m in found
    ]
    return table("members", ["No.", "Name", "Phone", "Tier", "Cards", "Tags"], rows, "No members found.")


def add_form(db: Session, form: dict[str, str]) -> str:
    return f"""<form method="post" action="/admin/members" id="add-member">
{text_input("Name", "name", form.get("name", ""), "required", "add-name")}
{text_input("Phone", "phone", form.get("phone", ""), 'placeholder="+49 151 2345678"', "add-phone")}
{text_input("Birthday", "birthday", form.get("birthday", ""), 'placeholder="1990-04-23"', "add-birthday")}
{dropdown("Category", "category_id", category_options(db), form.get("category_id", ""), "add-category")}
{dropdown("Tier", "tier", tier_options(db), form.get("tier", "0"), "add-tier")}
{text_input("Tags (separated by spaces)", "tags", form.get("tags", ""), "", "add-tags")}
<button id="add-button">Add member</button></form>"""


def import_errors(exc: Refusal) -> str:
    """Every bad row of a refused file, each by its line."""
    bad = exc.bad if isinstance(exc, member_csv.ImportRefused) else []
    rows = "".join(
        f'<li id="import-line-{b.line}">{escape(str(b))}</li>' for b in bad
    )
    count = len(bad)
    summary = f"Nothing was imported: {count} bad {'row' if count == 1 else 'rows'}." if bad else exc.message
    return f'<div id="import-errors"><p class="error" id="error">{escape(summary)}</p><ul>{rows}</ul></div>'


def list_page(db: Session, who: Principal, q: str, notice: str = "", error_html: str = "",
              form: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    found = rules.search(db, q, LIST_ROWS)
    what = f"Members matching {q!r}" if q.strip() else "Newest members"
    body = f"""<h1>Members</h1>{error_html or message(notice)}
<form method="get" action="/admin/members" id="search">
<label>Name, phone, card number or tag <input name="q" id="q" value="{escape(q)}" autofocus></label>
<button id="search-button">Search</button></form>
<h2>{escape(what)}</h2>
{members_table(db, found)}
<h2>Add a member</h2>
{add_form(db, form or {})}
<h2>Import and export</h2>
<p><a href="/admin/members/export.csv" id="export" download>Download all members (CSV)</a></p>
<form method="post" action="/admin/members/import" id="import" enctype="multipart/form-data">
<label>CSV file <input type="file" name="file" id="import-file" accept=".csv,text/csv" required></label>
<button id="import-button">Import</button></form>
<p class="muted">{escape(CSV_HELP)}</p>"""
    return HTMLResponse(page("Members", body, who), status_code=status)


# -- the 360 page ---------------------------------------------------------------------------------


def profile_values(member: Member) -> dict[str, str]:
    return {
        "name": member.name, "phone": member.phone, "birthday": member.birthday,
        "category_id": "" if member.category_id is None else str(member.category_id),
    }


def member_page(db: Session, who: Principal, member_id: int, notice: str = "", error: str = "",
                form: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    view = rules.overview(db, member_id)
    m: Member = view["member"]
    names: dict[int, str] = view["tier_names"]
    values = form or profile_values(m)
    category = view["category"]
    photo = (f'<img src="/admin/members/{m.id}/photo" id="photo" alt="photo of {escape(m.name)}" '
             'style="max-width:160px;max-height:200px;float:right">') if view["has_photo"] else ""
    tags = " ".join(f'<span class="tag">{escape(t.tag)}</span>' + ("" if t.source == rules.MANUAL else
                    f' <span class="muted">({escape(t.source)})</span>') for t in view["tags"]) or "-"
    profile = table("profile", ["", ""], [
        [td("Phone"), td(m.phone or "-", cls="phone")],
        [td("Birthday"), td(m.birthday or "-")],
        [td("Category"), td(f"{category.id}: {category.name}" if category else "-")],
        [td("Tier"), td(tier_label(names, m.tier))],
        [td("Tags"), f'<td id="tags">{tags}</td>'],
        [td("Member since"), td(when(m.created))],
    ], "")
    cards = [
        [td(c.card_no), td(c.state), td(tier_label(names, c.tier)), td(format_money(c.balance), True), td(c.points, True),
         td(view["pending_actions"].get(c.card_no, 0), True), td(when(c.issued) if c.issued else "-")]
        for c in view["cards"]
    ]
    ledger = [
        [td(when(e.time)), td(e.card_no), td("balance" if e.account == "stored_value" else "points"),
         td(format_money(e.amount) if e.account == "stored_value" else e.amount, True), td(e.memo or "-"), td(e.device_id)]
        for e in view["ledger"]
    ]
    sales = [
        [td(when(s.time)), td(s.shop), td(s.card_no), td(s.state), td(format_money(s.total), True),
         td(format_money(s.stored_value), True), td(format_money(s.cash), True), td(s.points_earned, True),
         td(s.points_redeemed, True)]
        for s in view["sales"]
    ]
    history = [
        [td(when(h.time)), td(tier_label(names, h.from_tier)), td(tier_label(names, h.to_tier)), td(h.reason or "-"),
         td(h.actor)]
        for h in view["tier_history"]
    ]
    manual = " ".join(t.tag for t in view["tags"] if t.source == rules.MANUAL)
    remove = (f'<form method="post" action="/admin/members/{m.id}/photo/delete" class="inline">'
              '<button id="remove-photo">Remove photo</button></form>') if view["has_photo"] else ""
    body = f"""<p><a href="/admin/members">&larr; Members</a></p>
{photo}<h1 id="member-name">{escape(m.name)}</h1><p class="muted">Member {m.id}</p>{message(notice, error)}
{profile}
<div class="tiles">
 <div class="tile">Balance<b id="balance">{format_money(view["balance"])}</b></div>
 <div class="tile">Points<b id="points">{view["points"]}</b></div>
 <div class="tile">Sales<b id="sales-count">{view["sales_count"]}</b></div>
 <div class="tile">Spent<b id="sales-total">{format_money(view["sales_total"])}</b></div>
</div>
<h2>Cards</h2>
{table("cards", ["Card", "State", "Tier", "Balance", "Points", "Pending actions", "Issued"], cards, "No cards yet.")}
<h2>Balance and points history</h2>
{table("ledger", ["Time", "Card", "Account", "Amount", "Memo", "Device"], ledger, "No postings yet.")}
<h2>Sales</h2>
{table("sales", ["Time", "Shop", "Card", "State", "Total", "Stored value", "Cash", "Points earned", "Points redeemed"],
       sales, "No sales yet.")}
<h2>Tier history</h2>
{table("tier-history", ["Time", "From", "To", "Reason", "By"], history, "The tier never changed.")}
<h2>Edit</h2>
<form method="post" action="/admin/members/{m.id}" id="profile-form">
{text_input("Name", "name", values.get("name", ""), "required")}
{text_input("Phone", "phone", values.get("phone", ""))}
{text_input("Birthday (YYYY-MM-DD)", "birthday", values.get("birthday", ""))}
{dropdown("Category", "category_id", category_options(db), values.get("category_id", ""))}
<button id="save-profile">Save profile</button></form>
<form method="post" action="/admin/members/{m.id}/tier" id="tier-form">
{dropdown("Tier", "tier", tier_options(db), str(m.tier))}
{text_input("Reason", "reason", "", 'placeholder="why the tier changes"')}
<button id="save-tier">Change tier</button>
<span class="muted">Each active card gets the new tier at its next tap.</span></form>
<form method="post" action="/admin/members/{m.id}/tags" id="tags-form">
{text_input("Tags (separated by spaces)", "tags", manual, "", "tag-list")}
<button id="save-tags">Save tags</button></form>
<form method="post" action="/admin/members/{m.id}/photo" id="photo-form" enctype="multipart/form-data">
<label>Photo (JPEG or PNG, at most {rules.MAX_PHOTO_BYTES // 2**20} MiB)
<input type="file" name="photo" id="photo-file" accept="image/jpeg,image/png" required></label>
<button id="upload-photo">Upload photo</button></form>{remove}"""
    return HTMLResponse(page(f"Member {m.id}: {m.name}", body, who), status_code=status)


# -- the routes ------------------------------------------------------------------------------------


def members_pages(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The pages /admin/members and /admin/members/{id}, and their forms."""
    web = APIRouter(include_in_schema=False)
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]

    def missing(who: Principal, member_id: int) -> HTMLResponse:
        body = (f'<h1>No such member</h1><p class="error" id="error">No member {member_id}.</p>'
                '<p><a href="/admin/members">Members</a></p>')
        return HTMLResponse(page("No such member", body, who), status_code=404)

    def after(db: Session, who: Principal, member_id: int, work: Callable[[], Any], notice: str | Callable[[Any], str],
              form: dict[str, str] | None = None) -> Response:
        """Commit a change to a member and go back to their page (notice: text, or made from what work returned),
        or show the page again with the error."""
        if db.get(Member, member_id) is None:
            return missing(who, member_id)
        out, error = commit(db, work)
        if error is not None:
            return member_page(db, who, member_id, error=error.message, form=form, status=error.status)
        return back(f"/admin/members/{member_id}", notice if isinstance(notice, str) else notice(out))

    @web.get("/admin/members", response_class=HTMLResponse)
    def members(db: Db, who: Admin, q: str = "", notice: str = "") -> HTMLResponse:
        return list_page(db, who, q, notice)

    @web.post("/admin/members")
    def add(
        db: Db, who: Admin, name: Annotated[str, Form()] = "", phone: Annotated[str, Form()] = "",
        birthday: Annotated[str, Form()] = "", category_id: Annotated[str, Form()] = "",
        tier: Annotated[str, Form()] = "0", tags: Annotated[str, Form()] = "",
    ) -> Response:
        form = {"name": name, "phone": phone, "birthday": birthday, "category_id": category_id, "tier": tier, "tags": tags}
        made, error = commit(db, lambda: rules.add_member(
            db, who.name, int(time.time()), name, phone, birthday, whole_or_none(category_id, "category"),
            whole_or_none(tier, "tier") or 0, [tags],
        ))
        if error is not None:
            return list_page(db, who, "", error_html=message(error=error.message), form=form, status=error.status)
        return back(f"/admin/members/{made.id}", f"Member {made.id} added.")

    @web.get("/admin/members/export.csv")
    def export(db: Db, who: Admin) -> Response:
        return Response(
            member_csv.export_members(db),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="members.csv"'},
        )

    @web.post("/admin/members/import")
    def import_csv(db: Db, who: Admin, file: Annotated[UploadFile, File()]) -> Response:
        data = read_upload(file, member_csv.MAX_BYTES)
        done, error = commit(db, lambda: member_csv.import_members(db, who.name, int(time.time()), data))
        if error is not None:
            return list_page(db, who, "", error_html=import_errors(error), status=error.status)
        name = file.filename or "the file"
        return back("/admin/members", f"Imported {name}: {done.created} new, {done.updated} changed, "
                                      f"{done.unchanged} unchanged.")

    @web.get("/admin/members/{member_id}", response_class=HTMLResponse)
    def member(member_id: int, db: Db, who: Admin, notice: str = "") -> HTMLResponse:
        if db.get(Member, member_id) is None:
            return missing(who, member_id)
        return member_page(db, who, member_id, notice)

    @web.post("/admin/members/{member_id}")
    def save_profile(
        member_id: int, db: Db, who: Admin, name: Annotated[str, Form()] = "", phone: Annotated[str, Form()] = "",
        birthday: Annotated[str, Form()] = "", category_id: Annotated[str, Form()] = "",
    ) -> Response:
        form = {"name": name, "phone": phone, "birthday": birthday, "category_id": category_id}
        return after(db, who, member_id, lambda: rules.update_member(db, who.name, int(time.time()), member_id, {
            "name": name, "phone": phone, "birthday": birthday, "category_id": whole_or_none(category_id, "category"),
        }), "Profile saved.", form)

    @web.post("/admin/members/{member_id}/tier")
    def save_tier(member_id: int, db: Db, who: Admin, tier: Annotated[str, Form()] = "",
                  reason: Annotated[str, Form()] = "") -> Response:
        def work() -> list[str] | None:
            number = whole_or_none(tier, "tier")
            if number is None:
                raise rules.MemberError("bad_tier", "choose a tier")
            return rules.set_tier(db, who.name, int(time.time()), member_id, number, reason)

        def notice(cards: list[str] | None) -> str:
            if cards is None:
                return "The member has that tier already."
            return f"Tier changed to {tier}; " + (
                f"card {', '.join(cards)} gets it at the next tap." if cards else "no active card to write it to."
            )

        return after(db, who, member_id, work, notice)

    @web.post("/admin/members/{member_id}/tags")
    def save_tags(member_id: int, db: Db, who: Admin, tags: Annotated[str, Form()] = "") -> Response:
        return after(db, who, member_id, lambda: rules.set_member_tags(db, who.name, int(time.time()), member_id, [tags]),
                     "Tags saved.")

    @web.post("/admin/members/{member_id}/photo")
    def upload_photo(member_id: int, db: Db, who: Admin, photo: Annotated[UploadFile, File()]) -> Response:
        data = read_upload(photo, rules.MAX_PHOTO_BYTES)
        return after(db, who, member_id, lambda: rules.set_photo(db, who.name, int(time.time()), member_id, data),
                     "Photo saved.")

    @web.post("/admin/members/{member_id}/photo/delete")
    def delete_photo(member_id: int, db: Db, who: Admin) -> Response:
        return after(db, who, member_id, lambda: rules.remove_photo(db, who.name, int(time.time()), member_id),
                     "Photo removed.")

    @web.get("/admin/members/{member_id}/photo")
    def photo(member_id: int, db: Db, who: Admin) -> Response:
        return photo_response(db, member_id)

    return web
