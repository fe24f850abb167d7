"""The hub's web pages, rendered on the server as plain HTML (no build step, no scripts needed)."""

from __future__ import annotations

import time
from html import escape
from typing import Any

from protocol.pricing import format_money

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;min-width:40rem} td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
td.n,th.n{text-align:right} td.n{font-variant-numeric:tabular-nums}
.on{color:#0a7a2f;font-weight:600} .off{color:#a33;font-weight:600} .muted{color:#777}
.tiles{display:flex;gap:1rem} .tile{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem}
.tile b{display:block;font-size:1.4rem}
nav{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ddd;padding-bottom:.5rem;margin-bottom:1rem}
nav form{margin-left:auto} .error{color:#a33;font-weight:600} .notice{color:#0a7a2f;font-weight:600}
form.inline{display:inline} label{display:block;margin:.4rem 0} input,select{padding:.2rem .4rem}
"""

# (path, label, roles that see the link); the routes themselves check the roles again.
NAV = [
    ("/", "Dashboard", ("admin", "shop_manager")),
    ("/admin/shops", "Shops", ("admin",)),
    ("/admin/products", "Products", ("admin",)),
    ("/admin/prices", "Prices", ("admin", "shop_manager")),
    ("/admin/members", "Members", ("admin",)),
    ("/admin/cards", "Cards", ("admin",)),
    ("/admin/loyalty", "Loyalty", ("admin",)),
    ("/admin/offers", "Offers", ("admin", "shop_manager")),
    ("/admin/plans", "Plans", ("admin", "shop_manager")),
    ("/admin/settings", "Settings", ("admin",)),
    ("/admin/audit", "Audit", ("admin",)),
    ("/merchant", "My products", ("merchant",)),
    ("/me", "My card", ("member",)),
]


DEVICE_HEAD = ["Device", "Shop", "State", "Firmware", "Acked seq", "Backlog", "Downlinks", "Last seen"]
SALE_HEAD = ["Time", "Device", "Seq", "Card", "Total", "Stored value", "Cash"]
ANOMALY_HEAD = ["Time", "Code", "Device", "Seq", "Detail"]
NUMERIC_HEAD = {"Acked seq", "Backlog", "Seq", "Total", "Stored value", "Cash"}  # right-aligned, like their cells


def when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "never"


def table(table_id: str, head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p id="{table_id}" class="muted">{escape(empty)}</p>'
    cells = "".join(f'<th class="n">{escape(h)}</th>' if h in NUMERIC_HEAD else f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>'


def td(text: object, numeric: bool = False, cls: str = "") -> str:
    klass = " ".join(c for c in ("n" if numeric else "", cls) if c)
    return f'<td class="{klass}">{escape(str(text))}</td>' if klass else f"<td>{escape(str(text))}</td>"


def page(title: str, body: str, who: Any = None, refresh: int = 0) -> str:
    """A whole page: the navigation for who's role (None: logged out), then body (already HTML)."""
    nav = ""
    if who is not None:
        links = "".join(f'<a href="{path}">{escape(label)}</a>' for path, label, roles in NAV if who.role in roles)
        nav = (
            f'<nav>{links}<form method="post" action="/logout"><span class="muted">{escape(who.name)} ({escape(who.role)})'
            '</span> <button id="logout">Log out</button></form></nav>'
        )
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{meta}
<title>{escape(title)}</title><style>{STYLE}</style></head>
<body>{nav}
{body}
</body></html>"""


def login(next_path: str, error: str) -> str:
    """The login form: staff with a user name, members with their card number."""
    message = f'<p class="error" id="error">{escape(error)}</p>' if error else ""
    return page(
        "Log in",
        f"""<h1>Member-card hub</h1>{message}
<form method="post" action="/login" id="login">
<label>User name or card number <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{escape(next_path)}">
<button>Log in</button></form>""",
    )


def refused(detail: str) -> str:
    return page("Not allowed", f'<h1>Not allowed</h1><p class="error" id="error">{escape(detail)}</p><p><a href="/">Back</a></p>')


def lag(behind: dict[str, list[int]]) -> str:
    """What a device lacks: 'prices v3 of v4, hotlist v10 of v12', or 'up to date'."""
    return ", ".join(f"{kind} v{have} of v{newest}" for kind, (have, newest) in sorted(behind.items())) or "up to date"


def dashboard(data: dict[str, Any], who: Any = None) -> str:
    """Devices with their state and backlog, today's sales, anomalies."""
    devices = [
        [
            td(d.id),
            td(d.shop),
            td("online" if d.online else "offline", cls="on" if d.online else "off"),
            td(d.firmware or "-"),
            td(d.acked_seq, True),
            td(d.backlog, True),
            td(lag(d.behind), cls="off" if d.behind else ""),
            td(when(d.last_seen)),
        ]
        for d in data["devices"]
    ]
    sales = [
        [
            td(when(s.time)),
            td(s.device_id),
            td(s.seq, True),
            td("..." + s.card_no[-4:]),
            td(format_money(s.total), True),
            td(format_money(s.stored_value), True),
            td(format_money(s.cash), True),
        ]
        for s in data["recent_sales"]
    ]
    anomalies = [
        [td(when(a.time)), td(a.code), td(a.device_id or "-"), td(a.seq or "", True), td(a.detail)]
        for a in data["anomalies"]
    ]
    online = sum(1 for d in data["devices"] if d.online)
    body = f"""<h1>Member-card hub</h1>
<p class="muted">As of {when(data["now"])} UTC; refreshes every 5 seconds. API: <a href="/api/docs">/api/docs</a></p>
<div class="tiles">
 <div class="tile">Sales today<b id="sales-today">{data["sales_today"]}</b></div>
 <div class="tile">Turnover today<b id="turnover-today">{format_money(data["turnover_today"])}</b></div>
 <div class="tile">Devices online<b id="devices-online">{online}/{len(data["devices"])}</b></div>
 <div class="tile">Anomalies<b id="anomaly-count">{data["anomaly_count"]}</b></div>
</div>
<h2>Devices</h2>
{table("devices", DEVICE_HEAD, devices, "No devices yet: hub device add ID --shop SHOP")}
<h2>Today's sales</h2>
{table("sales", SALE_HEAD, sales, "No sales today yet.")}
<h2>Anomalies</h2>
{table("anomalies", ANOMALY_HEAD, anomalies, "No anomalies.")}"""
    return page("Hub dashboard", body, who, refresh=5)
