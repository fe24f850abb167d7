"""/api/v1 routes for member cards at HQ: batches, the desk reader (issue, replace, verify), states, top-ups, passwords.

HQ admins run cards; a shop manager may look a card up (read only); a member sees their
own card and changes its password. A refusal answers 400/403/404/409 (503 when pcscd
cannot be reached) with {"detail": ..., "code": ...} and nothing changed.
Desk operations open the PC/SC reader for the request and wait a moment for a card.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session

from hub import cards, issuance
from hub.auth import ADMIN, MEMBER, SHOP_MANAGER, Gate, Principal
from hub.cards import CardOpError
from hub.models import CardAction, IssueAttempt
from hub.refusal import commit_or_refuse, refused


class ReadersOut(BaseModel):
    readers: list[str] = Field(description="PC/SC reader names, as pcscd lists them")


class BatchIn(BaseModel):
    prefix: str = Field(description="leading digits, e.g. 9000")
    start: int = Field(default=1, description="first serial after the prefix")
    count: int


class BatchOut(BaseModel):
    batch: str
    first: str
    last: str
    count: int
    created: int = 0
    stock: int = 0
    reserved: int = 0
    issued: int = 0


class IssueIn(BaseModel):
    member_id: int
    reader: str | None = Field(default=None, description="PC/SC reader name; the first one when left out")
    password: str | None = Field(default=None, description="the card password; generated (and answered once) when left out")
    tier: int | None = Field(default=None, description="the member's tier when left out")
    balance: int = Field(default=0, description="opening stored value in cents")
    points: int = 0


class ReplaceIn(BaseModel):
    reader: str | None = None
    password: str | None = Field(default=None, description="a new card password; the old card's carries over when left out")


class IssuedOut(BaseModel):
    card: dict[str, Any]
    password: str | None = Field(default=None, description="the generated card password: shown this once, only its hash is kept")
    resumed: bool = Field(description="the card had been pulled away mid-write and this tap finished it")


class ReaderIn(BaseModel):
    reader: str | None = None


class TopupIn(BaseModel):
    amount: int = Field(description="cents paid at HQ")


class PasswordIn(BaseModel):
    old_password: str | None = Field(default=None, description="a member gives their current password")
    new_password: str | None = Field(default=None, description="HQ may leave it out to have one generated")


class PasswordOut(BaseModel):
    card_no: str
    password: str | None = Field(default=None, description="the generated password: shown this once")



def default_master() -> bytes:
    from hub.cli import master_key
    from hub.settings import Settings

    return master_key(Settings())


def card_routes(db_dependency: Callable[..., Any], gate: Gate, master: Callable[[], bytes] = default_master) -> APIRouter:
    """The card routes; db_dependency yields a Session, gate checks who may use each, master gives HQ's card key."""
    api = APIRouter(tags=["cards"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Lookup = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER, MEMBER))]
    OwnPassword = Annotated[Principal, Depends(gate.require(ADMIN, MEMBER))]

    def now() -> int:
        return int(gate.clock())

    change = commit_or_refuse

    @api.get("/readers", response_model=ReadersOut)
    def readers(who: Admin) -> Any:
        try:
            return ReadersOut(readers=issuance.readers())
        except CardOpError as exc:
            return refused(exc)

    @api.get("/card-batches", response_model=list[BatchOut])
    def batches(db: Db, who: Admin) -> Any:
        return cards.batches(db)

    @api.post("/card-batches", response_model=BatchOut, status_code=201)
    def add_batch(body: BatchIn, db: Db, who: Admin) -> Any:
        made = change(db, lambda: cards.make_batch(db, who.name, now(), body.prefix, body.start, body.count))
        if isinstance(made, JSONResponse):
            return made
        return next(b for b in cards.batches(db) if b["first"] == made[0])

    @api.get("/card-issues", response_model=list[IssueAttempt], description="issues at the desk not finished yet "
             "(the card was pulled away): tap the same card again to finish")
    def unfinished(db: Db, who: Admin) -> Any:
        return cards.unfinished_issues(db)

    @api.post("/card-issues", response_model=IssuedOut, status_code=201)
    def issue(body: IssueIn, who: Admin) -> Any:
        try:
            with issuance.open_desk(body.reader) as reader:
                done = issuance.issue(gate.engine, reader, master(), now(), who.name, member_id=body.member_id,
                                      tier=body.tier, balance=body.balance, points=body.points, password=body.password)
        except CardOpError as exc:
            return refused(exc)
        return IssuedOut(card=done.card, password=done.password, resumed=done.resumed)

    @api.post("/card-verifications", response_model=dict[str, Any],
              description="read the card on the desk reader and compare it with the hub (changes nothing)")
    def verify(body: ReaderIn, who: Admin) -> Any:
        try:
            with issuance.open_desk(body.reader) as reader:
                return issuance.verify(gate.engine, reader, master())
        except CardOpError as exc:
            return refused(exc)

    @api.get("/card-hotlist", response_model=list[dict[str, Any]], description="the cards on the hotlist now")
    def hotlist(db: Db, who: Admin) -> Any:
        return cards.hotlist_now(db)

    @api.get("/cards/{card_no}/detail", response_model=dict[str, Any],
             description="state, balance, points, pending actions, hotlist history, recent sales (a shop manager: "
             "their shop's only), anomalies (HQ only)")
    def detail(card_no: str, db: Db, who: Lookup) -> Any:
        try:
            card = cards.get_card(db, card_no)
            if who.role == MEMBER and card.card_no != who.card_no:
                raise CardOpError("not_your_card", "a member may look up their own card only", 403)
        except CardOpError as exc:
            return refused(exc)
        out = cards.card_detail(db, card)
        if who.role != ADMIN:
            out["anomalies"] = []  # HQ's to look into, like the dashboard's
        if who.role == SHOP_MANAGER:
            out["recent_sales"] = [s for s in out["recent_sales"] if s["shop"] == who.shop_id]
        return out

    @api.post("/cards/{card_no}/lost", response_model=dict[str, Any])
    def lost(card_no: str, db: Db, who: Admin) -> Any:
        done = change(db, lambda: cards.mark_lost(db, who.name, now(), card_no))
        return done if isinstance(done, JSONResponse) else cards.card_detail(db, done)

    @api.post("/cards/{card_no}/unfreeze", response_model=dict[str, Any])
    def unfreeze(card_no: str, db: Db, who: Admin) -> Any:
        done = change(db, lambda: cards.unfreeze(db, who.name, now(), card_no))
        return done if isinstance(done, JSONResponse) else cards.card_detail(db, done)

    @api.post("/cards/{card_no}/replace", response_model=IssuedOut, status_code=201,
              description="write the blank card on the desk reader in place of this card; its balance and points move")
    def replace(card_no: str, body: ReplaceIn, who: Admin) -> Any:
        try:
            with issuance.open_desk(body.reader) as reader:
                done = issuance.replace(gate.engine, reader, master(), now(), who.name, card_no, body.password)
        except CardOpError as exc:
            return refused(exc)
        return IssuedOut(card=done.card, password=done.password, resumed=done.resumed)

    @api.post("/cards/{card_no}/topups", response_model=CardAction, status_code=201,
              description="a top-up paid at HQ; pending until a handheld applies it at the card's next tap")
    def topup(card_no: str, body: TopupIn, db: Db, who: Admin) -> Any:
        return change(db, lambda: cards.topup(db, who.name, now(), card_no, body.amount))

    @api.post("/cards/{card_no}/password", response_model=PasswordOut,
              description="a member: their own card, old and new password; HQ: a reset (generated when left out)")
    def password(card_no: str, body: PasswordIn, db: Db, who: OwnPassword) -> Any:
        if who.role == MEMBER:
            if body.old_password is None or body.new_password is None:
                return refused(CardOpError("missing_password", "give old_password and new_password"))
            old, new = body.old_password, body.new_password
            done = change(db, lambda: cards.change_password(db, who.name, now(), who.card_no, card_no, old, new))
            return done if isinstance(done, JSONResponse) else PasswordOut(card_no=done.card_no)
        given = body.new_password
        done = change(db, lambda: cards.reset_password(db, who.name, now(), card_no, given))
        if isinstance(done, JSONResponse):
            return done
        return PasswordOut(card_no=cards.check_card_no(card_no), password=None if given else done)

    @api.post("/card-settlements", response_model=list[CardAction],
              description="move what replaced cards still hold (offline sales synced late) onto their new cards")
    def settle(db: Db, who: Admin) -> Any:
        done = change(db, lambda: cards.settle_replaced(db, who.name, now()))
        if isinstance(done, list):
            for action in done:
                db.refresh(action)
        return done

    return api
