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
"""


DEVICE_HEAD = ["Device", "Shop", "State", "Firmware", "Acked seq", "Backlog", "Last seen"]
SALE_HEAD = ["Time", "Device", "Seq", "Card", "Total", "Stored value", "Cash"]
ANOMALY_HEAD = ["Time", "Code", "Device", "Seq", "Detail"]
NUMERIC_HEAD = {"Acked seq", "Backlog", "Seq", "Total", "Stored value", "Cash"}  # right-aligned, like their cells


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) if ts else "never"


def _table(table_id: str, head: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p id="{table_id}" class="muted">{escape(empty)}</p>'
    cells = "".join(f'<th class="n">{escape(h)}</th>' if h in NUMERIC_HEAD else f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>'


def _td(text: object, numeric: bool = False, cls: str = "") -> str:
    klass = " ".join(c for c in ("n" if numeric else "", cls) if c)
    return f'<td class="{klass}">{escape(str(text))}</td>' if klass else f"<td>{escape(str(text))}</td>"


def dashboard(data: dict[str, Any]) -> str:
    """Devices with their state and backlog, today's sales, anomalies."""
    devices = [
        [
            _td(d.id),
            _td(d.shop),
            _td("online" if d.online else "offline", cls="on" if d.online else "off"),
            _td(d.firmware or "-"),
            _td(d.acked_seq, True),
            _td(d.backlog, True),
            _td(_when(d.last_seen)),
        ]
        for d in data["devices"]
    ]
    sales = [
        [
            _td(_when(s.time)),
            _td(s.device_id),
            _td(s.seq, True),
            _td("..." + s.card_no[-4:]),
            _td(format_money(s.total), True),
            _td(format_money(s.stored_value), True),
            _td(format_money(s.cash), True),
        ]
        for s in data["recent_sales"]
    ]
    anomalies = [
        [_td(_when(a.time)), _td(a.code), _td(a.device_id or "-"), _td(a.seq or "", True), _td(a.detail)]
        for a in data["anomalies"]
    ]
    online = sum(1 for d in data["devices"] if d.online)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Hub dashboard</title><style>{STYLE}</style></head>
<body>
<h1>Member-card hub</h1>
<p class="muted">As of {_when(data["now"])} UTC; refreshes every 5 seconds. API: <a href="/api/docs">/api/docs</a></p>
<div class="tiles">
 <div class="tile">Sales today<b id="sales-today">{data["sales_today"]}</b></div>
 <div class="tile">Turnover today<b id="turnover-today">{format_money(data["turnover_today"])}</b></div>
 <div class="tile">Devices online<b id="devices-online">{online}/{len(data["devices"])}</b></div>
 <div class="tile">Anomalies<b id="anomaly-count">{data["anomaly_count"]}</b></div>
</div>
<h2>Devices</h2>
{_table("devices", DEVICE_HEAD, devices, "No devices yet: hub device add ID --shop SHOP")}
<h2>Today's sales</h2>
{_table("sales", SALE_HEAD, sales, "No sales today yet.")}
<h2>Anomalies</h2>
{_table("anomalies", ANOMALY_HEAD, anomalies, "No anomalies.")}
</body></html>"""
