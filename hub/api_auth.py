"""Logging in and out (API and web form), who am I, API tokens, and HQ's users and merchants.

A browser gets an HttpOnly, SameSite=Lax session cookie, so another site cannot make it
post to the hub; scripts send `Authorization: Bearer <token>`.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub import auth, pages
from hub.auth import ADMIN, MEMBER, MERCHANT, USER_ROLES, AuthError, Gate, Principal
from hub.masterdata import audit, snapshot
from hub.models import Merchant, User
from hub.refusal import refused

HOME = {ADMIN: "/", auth.SHOP_MANAGER: "/", MERCHANT: "/merchant", MEMBER: "/me"}


class LoginIn(BaseModel):
    username: str = Field(description="a user name, or a 16-digit card number for a member")
    password: str


class Me(BaseModel):
    role: str
    name: str
    shop_id: str = ""
    merchant_id: int | None = None
    member_id: int | None = None
    card_no: str = ""


class UserIn(BaseModel):
    username: str
    role: str = Field(description=", ".join(USER_ROLES))
    password: str
    shop_id: str = ""
    merchant_id: int | None = None


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    shop_id: str
    merchant_id: int | None
    active: bool
    created: int


class TokenIn(BaseModel):
    name: str = ""


class TokenOut(BaseModel):
    token: str = Field(description="shown this once; the hub keeps only its SHA-256")
    name: str


class MerchantIn(BaseModel):
    name: str


def me_out(who: Principal) -> Me:
    return Me(**{k: getattr(who, k) for k in Me.model_fields})



def set_session(response: Response, cookie: str) -> None:
    response.set_cookie(auth.COOKIE, cookie, max_age=auth.SESSION_SECONDS, httponly=True, samesite="lax")


def auth_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """/login, /logout, /me, /tokens, /users, /merchants under /api/v1."""
    api = APIRouter(tags=["logins"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Anyone = Annotated[Principal, Depends(gate.require(*auth.ROLES))]
    Staff = Annotated[Principal, Depends(gate.require(*USER_ROLES))]

    @api.post("/login", response_model=Me, dependencies=[Depends(gate.public())])
    def login(body: LoginIn, response: Response) -> Any:
        try:
            who, cookie = gate.login(body.username, body.password)
        except AuthError as exc:
            return refused(exc)
        set_session(response, cookie)
        return me_out(who)

    @api.post("/logout", status_code=204, dependencies=[Depends(gate.public())])
    def logout(request: Request, response: Response) -> None:
        gate.logout(request.cookies.get(auth.COOKIE, ""))
        response.delete_cookie(auth.COOKIE)

    @api.get("/me", response_model=Me)
    def me(who: Anyone) -> Me:
        return me_out(who)

    @api.post("/tokens", response_model=TokenOut, status_code=201)
    def new_token(body: TokenIn, db: Db, who: Staff) -> TokenOut:
        user = db.get(User, who.user_id)
        assert user is not None  # gate admitted them, so the user exists
        secret = auth.add_token(db, user, body.name, int(time.time()))
        db.commit()
        return TokenOut(token=secret, name=body.name)

    @api.get("/users", response_model=list[UserOut])
    def users(db: Db, who: Admin) -> list[User]:
        return list(db.exec(select(User).order_by(col(User.id))))

    @api.post("/users", response_model=UserOut, status_code=201)
    def add_user(body: UserIn, db: Db, who: Admin) -> Any:
        now = int(time.time())
        try:
            user = auth.add_user(db, body.username, body.role, body.password, now, body.shop_id, body.merchant_id)
        except AuthError as exc:
            db.rollback()
            return refused(exc)
        audit(db, who.name, now, "create", user, user.username, None)
        db.commit()
        db.refresh(user)
        return user

    @api.get("/merchants", response_model=list[Merchant])
    def merchants(db: Db, who: Admin) -> list[Merchant]:
        return list(db.exec(select(Merchant).order_by(col(Merchant.id))))

    @api.post("/merchants", response_model=Merchant, status_code=201)
    def add_merchant(body: MerchantIn, db: Db, who: Admin) -> Any:
        try:
            merchant = new_merchant(db, who.name, int(time.time()), body.name)
        except AuthError as exc:
            return refused(exc)
        db.commit()
        db.refresh(merchant)
        return merchant

    @api.post("/merchants/{merchant_id}/approve", response_model=Merchant)
    def approve(merchant_id: int, db: Db, who: Admin, approved: bool = True) -> Any:
        try:
            merchant = approve_merchant(db, who.name, int(time.time()), merchant_id, approved)
        except AuthError as exc:
            return refused(exc)
        db.commit()
        db.refresh(merchant)
        return merchant

    return api


def new_merchant(db: Session, actor: str, now: int, name: str) -> Merchant:
    """A merchant HQ has signed up, not yet approved; audited."""
    name = name.strip()
    if not name or len(name) > 120:
        raise AuthError("bad_name", "a merchant's name is 1-120 characters")
    if db.exec(select(Merchant).where(Merchant.name == name)).first() is not None:
        raise AuthError("merchant_exists", f"merchant {name!r} exists already", 409)
    merchant = Merchant(name=name, created=now)
    db.add(merchant)
    db.flush()
    audit(db, actor, now, "create", merchant, str(merchant.id), None)
    return merchant


def approve_merchant(db: Session, actor: str, now: int, merchant_id: int, approved: bool = True) -> Merchant:
    """Let a merchant manage its products (or stop it); audited."""
    merchant = db.get(Merchant, merchant_id)
    if merchant is None:
        raise AuthError("no_merchant", f"no merchant {merchant_id}", 404)
    before = snapshot(merchant)
    merchant.approved = approved
    db.add(merchant)
    audit(db, actor, now, "approve" if approved else "unapprove", merchant, str(merchant_id), before)
    return merchant


def _safe_next(target: str) -> str:
    # Only paths on this hub: an open redirect would let a link send a fresh login elsewhere.
    return target if target.startswith("/") and not target.startswith("//") else ""


def login_pages(gate: Gate) -> APIRouter:
    """The web login form, its post and logout."""
    web = APIRouter(include_in_schema=False)

    @web.get("/login", response_class=HTMLResponse, dependencies=[Depends(gate.public())])
    def login_form(next: str = "") -> str:
        return pages.login(_safe_next(next), "")

    @web.post("/login", dependencies=[Depends(gate.public())])
    def login_post(
        username: Annotated[str, Form()], password: Annotated[str, Form()], next: Annotated[str, Form()] = ""
    ) -> Response:
        try:
            who, cookie = gate.login(username.strip(), password)
        except AuthError as exc:
            return HTMLResponse(pages.login(_safe_next(next), exc.message), status_code=exc.status)
        response = RedirectResponse(_safe_next(next) or HOME[who.role], status_code=303)
        set_session(response, cookie)
        return response

    @web.post("/logout", dependencies=[Depends(gate.public())])
    def logout_post(request: Request) -> Response:
        gate.logout(request.cookies.get(auth.COOKIE, ""))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(auth.COOKIE)
        return response

    return web


def install_refusal_pages(app: FastAPI) -> None:
    """Pages answer 401 with a redirect to the login form and 403 with a page saying why; the API keeps JSON."""

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if path.startswith("/api/") or exc.status_code not in (401, 403):
            return await http_exception_handler(request, exc)
        if exc.status_code == 401:
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        return HTMLResponse(pages.refused(str(exc.detail)), status_code=403)
