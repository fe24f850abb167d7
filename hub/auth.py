"""Who is asking: users and their roles, passwords (argon2), API tokens, login sessions, and route gates.

Roles: HQ admin; shop manager (one shop); merchant (its own products, once HQ approved it);
member (their own card, logging in with card number and card password). Every route names
the roles it admits through Gate.require(); tests/test_roles.py proves the others are refused.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hub.models import ApiToken, Card, Merchant, Shop, User, WebSession
from hub.refusal import Refusal

ADMIN = "admin"
SHOP_MANAGER = "shop_manager"
MERCHANT = "merchant"
MEMBER = "member"
USER_ROLES = (ADMIN, SHOP_MANAGER, MERCHANT)  # kept in the user table; members log in by card
ROLES = (*USER_ROLES, MEMBER)
PUBLIC = "public"

COOKIE = "hub_session"
SESSION_SECONDS = 12 * 3600
MIN_PASSWORD = 8
# Wrong passwords in a row before a login name is refused for LOCK_SECONDS (guessing gets slow).
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")


class AuthError(Refusal):
    """A login, user or token change that was refused; nothing was changed."""


@dataclass(frozen=True)
class Principal:
    """The one asking, as the routes see them; name goes into the audit log."""

    role: str
    name: str
    user_id: int | None = None
    shop_id: str = ""
    merchant_id: int | None = None
    merchant_approved: bool = False
    member_id: int | None = None
    card_no: str = ""

    def may_see_shop(self, shop_id: str) -> bool:
        return self.role == ADMIN or (self.role == SHOP_MANAGER and self.shop_id == shop_id)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored_hash: str, password: str) -> bool:
    """Whether password matches; an empty or broken hash matches nothing."""
    try:
        return bool(stored_hash) and _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a token or cookie: its SHA-256 (they are random, so no salt is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError("weak_password", f"a password needs at least {MIN_PASSWORD} characters")


def add_user(
    db: Session, username: str, role: str, password: str, now: int, shop_id: str = "", merchant_id: int | None = None
) -> User:
    """A new login for a person; checks the role's shop or merchant exists."""
    if not username or len(username) > 64 or username.isdigit():
        raise AuthError("bad_username", "a user name is 1-64 characters and not all digits (those are card numbers)")
    if role not in USER_ROLES:
        raise AuthError("bad_role", f"role must be one of {', '.join(USER_ROLES)}; members log in with their card")
    if db.exec(select(User).where(User.username == username)).first() is not None:
        raise AuthError("user_exists", f"user {username!r} exists already", 409)
    if role == SHOP_MANAGER and (not shop_id or db.get(Shop, shop_id) is None):
        raise AuthError("unknown_shop", f"a shop manager needs an existing shop; no shop {shop_id!r}")
    if role == MERCHANT and (merchant_id is None or db.get(Merchant, merchant_id) is None):
        raise AuthError("unknown_merchant", f"a merchant user needs an existing merchant; no merchant {merchant_id!r}")
    check_new_password(password)
    user = User(
        username=username,
        password_hash=hash_password(password),
        role=role,
        shop_id=shop_id if role == SHOP_MANAGER else "",
        merchant_id=merchant_id if role == MERCHANT else None,
        created=now,
    )
    db.add(user)
    db.flush()
    return user


def set_password(db: Session, user: User, password: str) -> None:
    check_new_password(password)
    user.password_hash = hash_password(password)
    db.add(user)


def add_token(db: Session, user: User, name: str, now: int) -> str:
    """A new API token acting as user; the token itself is shown once and only its digest kept."""
    secret = new_secret("hub_")
    db.add(ApiToken(user_id=user.id or 0, name=name, token_hash=digest(secret), created=now))
    db.flush()
    return secret


def new_login(
    engine: Engine, username: str, role: str, now: int, shop_id: str = "", merchant_id: int | None = None
) -> tuple[str, str]:
    """Add a user with a generated password and one API token: (password, token). For set-up and scripts."""
    password = secrets.token_urlsafe(12)
    with Session(engine) as db:
        user = add_user(db, username, role, password, now, shop_id, merchant_id)
        token = add_token(db, user, "set-up", now)
        db.commit()
    return password, token


def _principal(db: Session, user: User) -> Principal:
    approved = False
    if user.role == MERCHANT and user.merchant_id is not None:
        merchant = db.get(Merchant, user.merchant_id)
        approved = merchant is not None and merchant.approved
    return Principal(
        role=user.role,
        name=user.username,
        user_id=user.id,
        shop_id=user.shop_id,
        merchant_id=user.merchant_id,
        merchant_approved=approved,
    )


def _member(card: Card) -> Principal:
    return Principal(role=MEMBER, name=f"card:{card.card_no}", member_id=card.member_id, card_no=card.card_no)


def identify(db: Session, bearer: str, cookie: str, now: int) -> Principal | None:
    """The principal behind a bearer token or a session cookie; None when neither is valid."""
    if bearer:
        token = db.exec(select(ApiToken).where(ApiToken.token_hash == digest(bearer))).first()
        if token is None or token.revoked:
            return None
        user = db.get(User, token.user_id)
        return _principal(db, user) if user is not None and user.active else None
    if cookie:
        session = db.get(WebSession, digest(cookie))
        if session is None or session.expires <= now:
            return None
        if session.user_id is not None:
            user = db.get(User, session.user_id)
            return _principal(db, user) if user is not None and user.active else None
        card = db.get(Card, session.card_no)
        return _member(card) if card is not None and card.state == "active" else None
    return None


class Gate:
    """Logins and the role check each route declares, over one database."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.failures: dict[str, tuple[int, float]] = {}  # login name -> (wrong passwords in a row, last at)

    def login(self, username: str, password: str) -> tuple[Principal, str]:
        """Check a user name (or card number) and password; the principal and a new session cookie value."""
        now = self.clock()
        count, last = self.failures.get(username, (0, 0.0))
        if count >= MAX_FAILURES and now - last < LOCK_SECONDS:
            minutes = int((LOCK_SECONDS - (now - last)) // 60) + 1
            raise AuthError("locked", f"too many wrong passwords for {username!r}; try again in {minutes} min", 429)
        with Session(self.engine) as db:
            who = self._check(db, username, password)
            if who is None:
                self.failures[username] = (count + 1, now)
                raise AuthError("bad_login", "wrong user name or password", 401)
            self.failures.pop(username, None)
            cookie = new_secret()
            db.add(
                WebSession(
                    token_hash=digest(cookie),
                    user_id=who.user_id,
                    card_no=who.card_no,
                    created=int(now),
                    expires=int(now) + SESSION_SECONDS,
                )
            )
            db.commit()
        return who, cookie

    @staticmethod
    def _check(db: Session, username: str, password: str) -> Principal | None:
        if username.isdigit():
            card = db.get(Card, username)
            if card is not None and card.state == "active" and check_password(card.password_hash, password):
                return _member(card)
            return None
        user = db.exec(select(User).where(User.username == username)).first()
        if user is None:
            check_password(_DUMMY_HASH, password)  # the same time as a wrong password: names do not leak
            return None
        return _principal(db, user) if user.active and check_password(user.password_hash, password) else None

    def logout(self, cookie: str) -> None:
        with Session(self.engine) as db:
            session = db.get(WebSession, digest(cookie))
            if session is not None:
                db.delete(session)
                db.commit()

    def who(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else ""
        with Session(self.engine) as db:
            return identify(db, bearer, request.cookies.get(COOKIE, ""), int(self.clock()))

    def require(self, *roles: str) -> Callable[[Request], Principal]:
        """A dependency admitting only roles: 401 when nobody is logged in, 403 for another role."""

        def check(request: Request) -> Principal:
            who = self.who(request)
            if who is None:
                raise HTTPException(
                    401, "log in first (a session cookie from /login, or Authorization: Bearer <token>)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if who.role not in roles:
                raise HTTPException(403, f"a {who.role} may not use this; it is for: {', '.join(roles)}")
            if who.role == MERCHANT and not who.merchant_approved:
                raise HTTPException(403, "this merchant is not approved by HQ yet")
            return who

        check.roles = roles  # type: ignore[attr-defined]  # read by tests/test_roles.py and the docs
        return check

    def public(self) -> Callable[[Request], Principal | None]:
        """A dependency for routes anyone may use (health, the login page); the principal if any."""

        def anyone(request: Request) -> Principal | None:
            return self.who(request)

        anyone.roles = (PUBLIC,)  # type: ignore[attr-defined]
        return anyone


def route_roles(app: object) -> list[tuple[str, str, tuple[str, ...]]]:
    """(method, path, roles) of every route of app, for the role tests and the docs; roles () = undeclared."""
    out = []
    for top in getattr(app, "routes", []):
        # FastAPI >= 0.120 keeps included routers whole; older versions copy their routes up.
        contexts = top.effective_route_contexts() if hasattr(top, "effective_route_contexts") else [top]
        for ctx in contexts:
            route = getattr(ctx, "original_route", ctx)
            dependant = getattr(route, "dependant", None)
            if dependant is None:
                continue  # the docs and the OpenAPI document themselves
            roles: tuple[str, ...] = ()
            for dep in dependant.dependencies:
                roles += getattr(dep.call, "roles", ())
            for method in sorted(getattr(route, "methods", ())):
                out.append((method, getattr(ctx, "path", getattr(route, "path", "")), roles))
    return out


def document_roles(app: Any) -> None:
    """Write each API route's roles into the OpenAPI document (x-roles, and a line of its description)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema: dict[str, Any] = build()
        for method, path, roles in route_roles(app):
            operation = schema.get("paths", {}).get(path, {}).get(method.lower())
            if operation is not None:
                operation["x-roles"] = list(roles)
                operation["description"] = (operation.get("description", "") + f"\n\nRoles: {', '.join(roles)}").strip()
        return schema

    app.openapi = openapi


def roles_table(app: Any) -> str:
    """The routes and pages with their roles, as the Markdown table docs/roles.md holds."""
    lines = ["| method | path | roles |", "| --- | --- | --- |"]
    lines += [f"| {m} | `{p}` | {', '.join(r)} |" for m, p, r in sorted(route_roles(app), key=lambda x: (x[1], x[0]))]
    return "\n".join(lines) + "\n"
