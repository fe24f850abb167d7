"""The hub's HTTP side: the versioned API under /api/v1 and the dashboard at /."""

import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hub import pages
from hub.api_auth import auth_routes, install_refusal_pages, login_pages
from hub.api_cards import card_routes
from hub.api_coupons import coupon_routes
from hub.api_lease import lease_routes
from hub.api_loyalty import loyalty_routes
from hub.api_master import master_routes
from hub.api_members import member_routes
from hub.api_notifications import notification_routes
from hub.api_plans import plan_routes
from hub.auth import ADMIN, MEMBER, SHOP_MANAGER, Gate, Principal, document_roles
from hub.downlinks import Latest, behind, latest_versions
from hub.models import Anomaly, Card, CardStock, Device, Sale, SaleLine
from hub.web_cards import card_pages
from hub.web_loyalty import loyalty_pages
from hub.web_master import master_pages
from hub.web_members import members_pages
from hub.web_offers import offers_pages


class DeviceOut(BaseModel):
    id: str
    shop: str
    online: bool
    firmware: str
    last_seq: int
    acked_seq: int
    head_seq: int
    backlog: int
    last_seen: int
    prices_version: int = 0  # the downlink versions the device says it holds
    hotlist_version: int = 0
    actions_version: int = 0
    behind: dict[str, list[int]] = {}  # downlink -> [held, newest], for those it lacks the newest of


class SaleOut(BaseModel):
    device_id: str
    seq: int
    shop: str
    time: int
    state: str
    card_no: str
    total: int
    stored_value: int
    cash: int
    points_earned: int
    points_redeemed: int
    counter_after: int
    price_list_version: int = 0
    lines: list[dict[str, int]] = []


class CardOut(BaseModel):
    card_no: str
    uid: str
    member_id: int
    tier: int
    balance: int
    points: int
    last_counter: int
    sales: int


class Health(BaseModel):
    status: str
    database: bool
    mqtt: bool | None
    devices: int
    ingest: dict[str, int] = {}  # since this hub process started: messages, duplicates dropped, ...


def device_out(d: Device, latest: Latest | None = None) -> DeviceOut:
    # The backlog is what the device says it holds beyond what the hub committed.
    head = max(d.head_seq, d.last_seq)
    lag = behind(d, latest) if latest is not None else {}
    return DeviceOut(**d.model_dump(exclude={"password_hash", "created"}), backlog=max(0, head - d.acked_seq), behind=lag)


def create_app(
    engine: Engine,
    mqtt_connected: Callable[[], bool | None] = lambda: None,
    ingest_stats: Callable[[], dict[str, int]] = dict,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The FastAPI app over engine; the callables report the MQTT bridge's state for /health."""
    app = FastAPI(title="Member-card hub", version="1", docs_url="/api/docs", openapi_url="/api/v1/openapi.json")
    gate = Gate(engine, clock)
    app.state.gate = gate

    def session() -> Iterator[Session]:
        with Session(engine) as s:
            yield s

    Db = Annotated[Session, Depends(session)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Staff = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER))]
    CardReader = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER, MEMBER))]
    api = APIRouter(prefix="/api/v1")

    @api.get("/health", response_model=Health, dependencies=[Depends(gate.public())])
    def health(db: Db) -> Health:
        count = db.exec(select(func.count()).select_from(Device)).one()
        return Health(status="ok", database=True, mqtt=mqtt_connected(), devices=count, ingest=ingest_stats())

    @api.get("/devices", response_model=list[DeviceOut])
    def devices(db: Db, who: Staff, shop: str | None = None) -> list[DeviceOut]:
        query = select(Device).order_by(Device.id)
        if who.role == SHOP_MANAGER:
            query = query.where(Device.shop == who.shop_id)
        if shop:
            query = query.where(Device.shop == shop)
        latest = latest_versions(db)
        return [device_out(d, latest) for d in db.exec(query)]

    @api.get("/devices/{device_id}", response_model=DeviceOut)
    def device(device_id: str, db: Db, who: Staff) -> DeviceOut:
        found = db.get(Device, device_id)
        if found is None or not who.may_see_shop(found.shop):
            raise HTTPException(404, f"no device {device_id!r}")
        return device_out(found, latest_versions(db))

    @api.get("/sales", response_model=list[SaleOut])
    def sales(
        db: Db,
        who: Staff,
        shop: str | None = None,
        device: str | None = None,
        card: str | None = None,
        since: Annotated[int | None, Query(description="unix seconds, inclusive")] = None,
        until: Annotated[int | None, Query(description="unix seconds, exclusive")] = None,
        state: str | None = "committed",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[SaleOut]:
        query = select(Sale).order_by(col(Sale.time).desc(), col(Sale.seq).desc()).limit(limit)
        if who.role == SHOP_MANAGER:
            query = query.where(Sale.shop == who.shop_id)
        for column, value in ((Sale.shop, shop), (Sale.device_id, device), (Sale.card_no, card), (Sale.state, state)):
            if value:
                query = query.where(column == value)
        if since is not None:
            query = query.where(Sale.time >= since)
        if until is not None:
            query = query.where(Sale.time < until)
        found = db.exec(query).all()
        lines: dict[tuple[str, int], list[dict[str, int]]] = {}
        if found:
            keys = {(s.device_id, s.seq) for s in found}
            for ln in db.exec(
                select(SaleLine)
                .where(col(SaleLine.device_id).in_({k[0] for k in keys}))
                .where(col(SaleLine.seq).in_({k[1] for k in keys}))
            ):
                if (ln.device_id, ln.seq) in keys:
                    lines.setdefault((ln.device_id, ln.seq), []).append({"item": ln.item, "qty": ln.qty, "price": ln.price})
        return [SaleOut(**s.model_dump(), lines=lines.get((s.device_id, s.seq), [])) for s in found]

    @api.get("/cards", response_model=list[CardOut])
    def cards(db: Db, who: Admin, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[CardOut]:
        return [CardOut(**c.model_dump()) for c in db.exec(select(Card).order_by(Card.card_no).limit(limit))]

    @api.get("/cards/{card_no}", response_model=CardOut)
    def card(card_no: str, db: Db, who: CardReader) -> CardOut:
        found = db.get(Card, card_no)
        if who.role == MEMBER and card_no != who.card_no:
            raise HTTPException(403, "a member may look up their own card only")
        if found is None:
            raise HTTPException(404, f"no card {card_no!r} on the hub")
        return CardOut(**found.model_dump())

    @api.get("/card-numbers", response_model=list[CardStock])
    def card_numbers(
        db: Db,
        who: Admin,
        state: str | None = "stock",
        batch: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> list[CardStock]:
        query = select(CardStock).order_by(CardStock.card_no).limit(limit)
        if state:
            query = query.where(CardStock.state == state)
        if batch:
            query = query.where(CardStock.batch == batch)
        return list(db.exec(query))

    @api.get("/anomalies", response_model=list[Anomaly])
    def anomalies(
        db: Db, who: Admin, device: str | None = None, code: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[Anomaly]:
        query = select(Anomaly).order_by(col(Anomaly.id).desc()).limit(limit)
        if device:
            query = query.where(Anomaly.device_id == device)
        if code:
            query = query.where(Anomaly.code == code)
        return list(db.exec(query))

    api.include_router(master_routes(session, gate))
    api.include_router(auth_routes(session, gate))
    api.include_router(card_routes(session, gate))
    api.include_router(member_routes(session, gate))
    api.include_router(plan_routes(session, gate))
    api.include_router(loyalty_routes(session, gate))
    api.include_router(coupon_routes(session, gate))
    api.include_router(lease_routes(session, gate))
    api.include_router(notification_routes(session, gate))
    app.include_router(api)
    app.include_router(login_pages(gate))
    app.include_router(card_pages(session, gate))
    app.include_router(members_pages(session, gate))
    app.include_router(master_pages(session, gate))
    app.include_router(loyalty_pages(session, gate))
    app.include_router(offers_pages(session, gate))
    install_refusal_pages(app)
    document_roles(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(db: Db, who: Staff) -> str:
        return pages.dashboard(_dashboard_data(db, int(clock()), who), who)

    return app


def _dashboard_data(db: Session, now: int, who: Principal) -> dict[str, Any]:
    day_start = now - now % 86400
    shop = [Sale.shop == who.shop_id] if who.role == SHOP_MANAGER else []
    today = select(Sale).where(Sale.state == "committed", Sale.time >= day_start, *shop)
    totals = db.exec(
        select(func.count(), func.coalesce(func.sum(Sale.total), 0)).where(
            Sale.state == "committed", Sale.time >= day_start, *shop
        )
    ).one()
    devices = select(Device).order_by(Device.id)
    if who.role == SHOP_MANAGER:
        devices = devices.where(Device.shop == who.shop_id)
    latest = latest_versions(db)
    # Anomalies are HQ's to look at: they name devices and cards of every shop.
    admin = who.role == ADMIN
    return {
        "now": now,
        "devices": [device_out(d, latest) for d in db.exec(devices)],
        "sales_today": totals[0],
        "turnover_today": totals[1],
        "recent_sales": list(db.exec(today.order_by(col(Sale.time).desc()).limit(20))),
        "anomalies": list(db.exec(select(Anomaly).order_by(col(Anomaly.id).desc()).limit(20))) if admin else [],
        "anomaly_count": db.exec(select(func.count()).select_from(Anomaly)).one() if admin else 0,
    }
