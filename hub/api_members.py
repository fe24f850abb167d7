"""/api/v1/members: member profiles, their 360 view, tier, tags, photo, and CSV import and export.

Who may do what: HQ admins everything; a shop manager may search and read members
(profiles, photos, the 360 view with their own shop's sales only) but change nothing;
a member reads their own profile at /members/me. A refused change answers 400/404/409
with {"detail": ..., "code": ...} and changes nothing; a refused CSV file also lists
"errors": [{"line": ..., "problems": [...]}], every bad row of the file.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from hub import member_csv
from hub import members as rules
from hub.auth import ADMIN, MEMBER, SHOP_MANAGER, Gate, Principal
from hub.models import Member, MemberPhoto, TierChange


class MemberIn(BaseModel):
    name: str
    phone: str = Field("", description="digits, a leading + and separators; stored normalised, one member's only")
    birthday: str = Field("", description="YYYY-MM-DD, or '' when not known")
    category_id: int | None = Field(None, description="a member category (card type)")
    tier: int = 0
    tags: list[str] = []


class MemberPatch(BaseModel):
    """Only the fields sent change; category_id null clears the category."""

    name: str | None = None
    phone: str | None = None
    birthday: str | None = None
    category_id: int | None = None


class TierIn(BaseModel):
    tier: int
    reason: str = ""


class TagsIn(BaseModel):
    tags: list[str] = Field(description="the member's whole set of manual tags")


class TagOut(BaseModel):
    tag: str
    source: str = Field(description="'manual' for HQ's own tags; computed tags name their source")


class MemberOut(BaseModel):
    id: int
    name: str
    phone: str
    birthday: str
    category_id: int | None
    tier: int
    created: int
    tags: list[TagOut]
    photo: str | None = Field(description="where the photo is, when there is one")


class OwnProfile(BaseModel):
    id: int
    name: str
    phone: str
    birthday: str
    category_id: int | None
    tier: int
    tier_name: str


class CardRow(BaseModel):
    card_no: str
    state: str
    tier: int
    balance: int
    points: int
    pending_actions: int


class LedgerRow(BaseModel):
    time: int
    card_no: str
    account: str
    amount: int
    memo: str
    device_id: str


class SaleRow(BaseModel):
    time: int
    shop: str
    device_id: str
    seq: int
    card_no: str
    state: str
    total: int
    stored_value: int
    cash: int
    points_earned: int
    points_redeemed: int


class Overview(BaseModel):
    member: MemberOut
    category: str
    tier_name: str
    balance: int = Field(description="cents, over the member's cards (a replaced card's moved on)")
    points: int
    cards: list[CardRow]
    ledger: list[LedgerRow] = Field(description="stored value and points postings, newest first")
    sales: list[SaleRow] = Field(description="newest first (a shop manager sees their own shop's)")
    sales_count: int = Field(description="committed sales")
    sales_total: int = Field(description="cents, committed sales")
    tier_history: list[TierChange]


class TierOut(BaseModel):
    member: MemberOut
    changed: bool
    card_actions: list[str] = Field(description="the cards that get the new tier at their next tap")


class ImportOut(BaseModel):
    created: int
    updated: int
    unchanged: int


def refused(exc: rules.MemberError) -> JSONResponse:
    body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
    if isinstance(exc, member_csv.ImportRefused):
        body["errors"] = [{"line": b.line, "problems": list(b.problems)} for b in exc.bad]
    return JSONResponse(body, status_code=exc.status)


def member_out(db: Session, member: Member) -> MemberOut:
    assert member.id is not None
    tags = [TagOut(tag=t.tag, source=t.source) for t in rules.tags_of(db, [member.id])[member.id]]
    photo = f"/api/v1/members/{member.id}/photo" if rules.has_photo(db, member.id) else None
    return MemberOut(**member.model_dump(), tags=tags, photo=photo)


def members_out(db: Session, found: list[Member]) -> list[MemberOut]:
    ids = [m.id or 0 for m in found]
    tags = rules.tags_of(db, ids)
    photos = set(db.exec(select(MemberPhoto.member_id).where(col(MemberPhoto.member_id).in_(ids))))
    return [
        MemberOut(**m.model_dump(), tags=[TagOut(tag=t.tag, source=t.source) for t in tags[m.id or 0]],
                  photo=f"/api/v1/members/{m.id}/photo" if m.id in photos else None)
        for m in found
    ]


def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The uploaded file, read to one byte past limit at most (the checks then say it is too large)."""
    # Routes that write stay plain `def` (FastAPI runs them in its thread pool), so this reads the spooled file directly.
    return upload.file.read(limit + 1)


def member_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The member routes; db_dependency yields a Session, gate checks who may use each."""
    api = APIRouter(tags=["members"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Staff = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER))]
    Own = Annotated[Principal, Depends(gate.require(MEMBER))]

    def change(db: Session, work: Callable[[], Any]) -> Any:
        """Run one change and commit it, or answer why it was refused with nothing written."""
        try:
            out = work()
            rules.commit(db)
        except rules.MemberError as exc:
            db.rollback()
            return refused(exc)
        return out

    @api.get("/members", response_model=list[MemberOut])
    def search(
        db: Db, who: Staff, q: str = "", limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[MemberOut]:
        """Members by name, phone, card number, tag or member number (q empty: the newest)."""
        return members_out(db, rules.search(db, q, limit))

    @api.post("/members", response_model=MemberOut, status_code=201)
    def add(body: MemberIn, db: Db, who: Admin) -> Any:
        done = change(db, lambda: rules.add_member(
            db, who.name, int(time.time()), body.name, body.phone, body.birthday, body.category_id, body.tier, body.tags
        ))
        if isinstance(done, JSONResponse):
            return done
        db.refresh(done)
        return member_out(db, done)

    @api.get("/members/me", response_model=OwnProfile)
    def own(db: Db, who: Own) -> Any:
        """The logged-in member's own profile."""
        member = db.get(Member, who.member_id) if who.member_id is not None else None
        if member is None:
            return refused(rules.MemberError("no_member", f"card {who.card_no} belongs to no member on the hub", 404))
        name = rules.tier_names(db).get(member.tier, "")
        return OwnProfile(**member.model_dump(), tier_name=name)

    @api.get("/members/export", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
    def export(db: Db, who: Admin) -> Response:
        """Every member as CSV (UTF-8 with a byte-order mark); the README's "Members" section lists the columns."""
        return Response(
            member_csv.export_members(db),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="members.csv"'},
        )

    @api.post("/members/import", response_model=ImportOut)
    def import_csv(file: Annotated[UploadFile, File(description="a CSV file")], db: Db, who: Admin) -> Any:
        """A whole CSV file of members, or (any bad row) nothing of it: every bad row is listed by line."""
        data = read_upload(file, member_csv.MAX_BYTES)
        done = change(db, lambda: member_csv.import_members(db, who.name, int(time.time()), data))
        if isinstance(done, JSONResponse):
            return done
        return ImportOut(created=done.created, updated=done.updated, unchanged=done.unchanged)

    @api.get("/members/{member_id}", response_model=MemberOut)
    def read(member_id: int, db: Db, who: Staff) -> Any:
        try:
            return member_out(db, rules.get_member(db, member_id))
        except rules.MemberError as exc:
            return refused(exc)

    @api.patch("/members/{member_id}", response_model=MemberOut)
    def patch(member_id: int, body: MemberPatch, db: Db, who: Admin) -> Any:
        changes = {k: getattr(body, k) for k in body.model_fields_set}
        for key in ("name", "phone", "birthday"):
            if key in changes and changes[key] is None:
                return refused(rules.MemberError("bad_request", f"{key} cannot be null; send \"\" to clear it"))
        done = change(db, lambda: rules.update_member(db, who.name, int(time.time()), member_id, changes))
        if isinstance(done, JSONResponse):
            return done
        db.refresh(done)
        return member_out(db, done)

    @api.get("/members/{member_id}/overview", response_model=Overview)
    def overview(member_id: int, db: Db, who: Staff) -> Any:
        """The 360 view: profile, cards, balance, points history, sales, tier history."""
        try:
            view = rules.overview(db, member_id, who.shop_id if who.role == SHOP_MANAGER else None)
        except rules.MemberError as exc:
            return refused(exc)
        category = view["category"]
        return Overview(
            member=member_out(db, view["member"]),
            category=category.name if category else "",
            tier_name=view["tier_names"].get(view["member"].tier, ""),
            balance=view["balance"],
            points=view["points"],
            cards=[CardRow(**c.model_dump(), pending_actions=view["pending_actions"].get(c.card_no, 0)) for c in view["cards"]],
            ledger=[LedgerRow(**e.model_dump()) for e in view["ledger"]],
            sales=[SaleRow(**s.model_dump()) for s in view["sales"]],
            sales_count=view["sales_count"],
            sales_total=view["sales_total"],
            tier_history=view["tier_history"],
        )

    @api.put("/members/{member_id}/tier", response_model=TierOut)
    def set_tier(member_id: int, body: TierIn, db: Db, who: Admin) -> Any:
        """Change the member's tier: recorded in their tier history, and queued for each active card."""
        now = int(time.time())
        done = change(db, lambda: rules.set_tier(db, who.name, now, member_id, body.tier, body.reason))
        if isinstance(done, JSONResponse):
            return done
        member = rules.get_member(db, member_id)
        return TierOut(member=member_out(db, member), changed=done is not None, card_actions=done or [])

    @api.put("/members/{member_id}/tags", response_model=MemberOut)
    def set_tags(member_id: int, body: TagsIn, db: Db, who: Admin) -> Any:
        """Set the member's manual tags (computed ones stay)."""
        done = change(db, lambda: rules.set_member_tags(db, who.name, int(time.time()), member_id, body.tags))
        if isinstance(done, JSONResponse):
            return done
        return member_out(db, rules.get_member(db, member_id))

    @api.get("/members/{member_id}/photo", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    def photo(member_id: int, db: Db, who: Staff) -> Response:
        return photo_response(db, member_id)

    @api.put("/members/{member_id}/photo", response_model=MemberOut)
    def put_photo(member_id: int, photo: Annotated[UploadFile, File(description="JPEG or PNG, at most 2 MiB")],
                  db: Db, who: Admin) -> Any:
        data = read_upload(photo, rules.MAX_PHOTO_BYTES)
        done = change(db, lambda: rules.set_photo(db, who.name, int(time.time()), member_id, data))
        if isinstance(done, JSONResponse):
            return done
        return member_out(db, rules.get_member(db, member_id))

    @api.delete("/members/{member_id}/photo", status_code=204, response_class=Response)
    def delete_photo(member_id: int, db: Db, who: Admin) -> Response:
        done = change(db, lambda: rules.remove_photo(db, who.name, int(time.time()), member_id))
        if isinstance(done, JSONResponse):
            return done
        if not done:
            return refused(rules.MemberError("no_photo", f"member {member_id} has no photo", 404))
        return Response(status_code=204)

    return api


def photo_response(db: Session, member_id: int) -> Response:
    """The stored photo with the type its bytes proved; the browser must not guess another."""
    photo = db.get(MemberPhoto, member_id)
    if photo is None:
        return refused(rules.MemberError("no_photo", f"member {member_id} has no photo", 404))
    return Response(
        photo.data,
        media_type=photo.content_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache", "ETag": f'"{photo.sha256}"'},
    )
