"""HTML form pieces the admin pages share: fields, the notice or error line, redirect after a change, commit or refuse."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from hub.pages import page
from hub.refusal import Refusal


def message(notice: str = "", error: str = "") -> str:
    """The line under a page's title: what went wrong (error) or what was done (notice)."""
    if error:
        return f'<p class="error" id="error">{escape(error)}</p>'
    return f'<p class="notice" id="notice">{escape(notice)}</p>' if notice else ""


def text_input(label: str, name: str, value: Any = "", extra: str = "", field_id: str = "") -> str:
    return (
        f'<label>{escape(label)} <input name="{name}" id="{field_id or name}" value="{escape(str(value))}" {extra}></label>'
    )


def checkbox(label: str, name: str, checked: bool) -> str:
    on = " checked" if checked else ""
    return f'<label><input type="checkbox" name="{name}" id="{name}" value="1"{on}> {escape(label)}</label>'


def dropdown(label: str, name: str, options: list[tuple[str, str]], chosen: str, field_id: str = "") -> str:
    opts = "".join(
        f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(text)}</option>' for v, text in options
    )
    return f'<label>{escape(label)} <select name="{name}" id="{field_id or name}">{opts}</select></label>'


def show(title: str, body: str, who: Any, status: int = 200) -> HTMLResponse:
    return HTMLResponse(page(title, body, who), status_code=status)


def back(path: str, notice: str, **query: str) -> RedirectResponse:
    """Redirect after a change that worked (303: the browser follows with a GET)."""
    return RedirectResponse(f"{path}?{urlencode({**query, 'notice': notice})}", status_code=303)


def commit(
    db: Session, work: Callable[[], Any], finish: Callable[[Session], None] = lambda db: db.commit()
) -> tuple[Any, Refusal | None]:
    """Run one change and commit it (with finish); or roll it back whole and hand back why it was refused."""
    try:
        out = work()
        finish(db)
    except Refusal as exc:
        db.rollback()
        return None, exc
    return out, None
