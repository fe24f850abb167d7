"""A change the rules refuse: a code, a message that says what was wrong, and the HTTP status that says so.

Each area names its own kind (MasterDataError, CardOpError, MemberError, AuthError); the
API answers any of them the same way, and nothing of the refused change is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session, SQLModel


class Refusal(ValueError):
    """Why a change was refused; status is the HTTP status that says so."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def refused(exc: Refusal) -> JSONResponse:
    """The API's answer to a refusal: {"detail": what was wrong, "code": a stable name for it}."""
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status)


def commit_or_refuse(db: Session, work: Callable[[], Any]) -> Any:
    """Run one change and commit it, or answer why it was refused with nothing written.

    Rows the change hands back are loaded again after the commit (which expired them),
    so the answer shows them as stored.
    """
    try:
        out = work()
        db.commit()
    except Refusal as exc:
        db.rollback()
        return refused(exc)
    for row in out if isinstance(out, (list, tuple)) else [out]:
        if isinstance(row, SQLModel):
            db.refresh(row)
    return out
