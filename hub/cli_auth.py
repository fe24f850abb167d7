"""`hub user|token|merchant`: logins for HQ staff, API tokens for scripts, merchants and their approval."""

from __future__ import annotations

import argparse
import secrets
import sys

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub import auth
from hub.api_auth import approve_merchant, new_merchant
from hub.cli_master import run_change
from hub.masterdata import audit
from hub.models import ApiToken, Merchant, User

COMMANDS = ("user", "token", "merchant")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="people who log in (admin, shop manager, merchant)")
    usub = user.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add", help="add a login; prints a generated password unless --password-stdin")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=auth.USER_ROLES)
    add.add_argument("--shop", default="", help="the shop a shop manager runs")
    add.add_argument("--merchant", type=int, help="the merchant id a merchant user acts for")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin instead")
    passwd = usub.add_parser("passwd", help="set a new password (generated unless --password-stdin)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    usub.add_parser("list")
    token = sub.add_parser("token", help="API tokens for scripts (Authorization: Bearer ...)")
    tsub = token.add_subparsers(dest="action", required=True)
    tadd = tsub.add_parser("add", help="a new token for a user, printed once")
    tadd.add_argument("username")
    tadd.add_argument("--name", default="", help="what the token is for")
    trev = tsub.add_parser("revoke", help="stop a token working")
    trev.add_argument("id", type=int)
    tsub.add_parser("list")
    merchant = sub.add_parser("merchant", help="merchants and HQ's approval of them")
    msub = merchant.add_subparsers(dest="action", required=True)
    madd = msub.add_parser("add", help="sign up a merchant (not yet approved)")
    madd.add_argument("name")
    for name, text in (("approve", "let a merchant manage its products"), ("suspend", "stop a merchant managing them")):
        m = msub.add_parser(name, help=text)
        m.add_argument("id", type=int)
    msub.add_parser("list")


def _password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    return secrets.token_urlsafe(12), True


def run(args: argparse.Namespace, engine: Engine) -> int:
    """One command; a refusal prints why and exits 2 with nothing written."""
    return run_change(args, engine, _run)


def _user(db: Session, username: str) -> User:
    user = db.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise auth.AuthError("no_user", f"no user {username!r}: add one with `hub user add`", 404)
    return user


def _run(args: argparse.Namespace, db: Session, actor: str, now: int) -> list[str]:
    command, action = args.command, args.action
    if command == "user" and action == "add":
        password, generated = _password(args.password_stdin)
        user = auth.add_user(db, args.username, args.role, password, now, args.shop, args.merchant)
        audit(db, actor, now, "create", user, user.username, None)
        return [f"user {user.username} ({user.role})"] + ([f"password: {password}"] if generated else [])
    if command == "user" and action == "passwd":
        user = _user(db, args.username)
        password, generated = _password(args.password_stdin)
        auth.set_password(db, user, password)
        audit(db, actor, now, "password", user, user.username, None)
        return [f"user {user.username}: password changed"] + ([f"password: {password}"] if generated else [])
    if command == "user":
        return [
            f"{u.id}\t{u.username}\t{u.role}\t{u.shop_id or (u.merchant_id or '')}\t{'' if u.active else 'inactive'}"
            for u in db.exec(select(User).order_by(col(User.id)))
        ]
    if command == "token" and action == "add":
        secret = auth.add_token(db, _user(db, args.username), args.name, now)
        return [secret]
    if command == "token" and action == "revoke":
        token = db.get(ApiToken, args.id)
        if token is None:
            raise auth.AuthError("no_token", f"no token {args.id}", 404)
        token.revoked = True
        db.add(token)
        return [f"token {args.id} revoked"]
    if command == "token":
        names = {u.id: u.username for u in db.exec(select(User))}
        return [
            f"{t.id}\t{names.get(t.user_id, '?')}\t{t.name}\t{'revoked' if t.revoked else 'active'}"
            for t in db.exec(select(ApiToken).order_by(col(ApiToken.id)))
        ]
    if command == "merchant" and action == "add":
        merchant = new_merchant(db, actor, now, args.name)
        return [f"merchant {merchant.id}: {merchant.name} (awaiting approval)"]
    if command == "merchant" and action in ("approve", "suspend"):
        merchant = approve_merchant(db, actor, now, args.id, action == "approve")
        return [f"merchant {merchant.id}: {'approved' if merchant.approved else 'suspended'}"]
    return [
        f"{m.id}\t{m.name}\t{'approved' if m.approved else 'awaiting approval'}"
        for m in db.exec(select(Merchant).order_by(col(Merchant.id)))
    ]
