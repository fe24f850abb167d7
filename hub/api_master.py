"""/api/v1 routes for HQ's master data: shops, products, price lists, member categories, tiers, parameters, audit.

Writes go through hub.masterdata (checks, the change and its audit entry in one
transaction); a refused change answers 400/404/409 with {"detail": ..., "code": ...}.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at run time.
import json
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, SQLModel, col, select

from hub import masterdata as md
from hub.models import AuditEntry, MemberCategory, PriceList, PriceListItem, Product, ProductCategory, Shop, Tier


class ShopIn(BaseModel):
    name: str
    address: str = ""
    active: bool = True


class CategoryIn(BaseModel):
    name: str


class ProductIn(BaseModel):
    name: str
    category_id: int | None = None
    discountable: bool = True
    active: bool = True


class PriceListIn(BaseModel):
    shop_id: str = Field("", description="'' for every shop, else one shop's own prices")
    effective_from: int | None = Field(None, description="unix seconds; now when left out")
    prices: dict[int, int] = Field(description="product id -> price in cents")
    note: str = ""


class PriceListOut(BaseModel):
    id: int
    shop_id: str
    effective_from: int
    created: int
    note: str
    prices: dict[int, int]


class MemberCategoryIn(BaseModel):
    name: str
    description: str = ""


class TierIn(BaseModel):
    name: str
    discount_bps: int = Field(description="basis points: 500 is 5 %")


class ParamIn(BaseModel):
    value: int


class PublishedOut(BaseModel):
    shop_id: str
    version: int
    published: int
    changed: bool
    doc: dict[str, Any]


class AuditOut(BaseModel):
    id: int
    time: int
    actor: str
    action: str
    entity: str
    entity_key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def refused(exc: md.MasterDataError) -> JSONResponse:
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status)


def master_routes(db_dependency: Callable[..., Any], actor_dependency: Callable[..., str]) -> APIRouter:
    """The master-data routes; db_dependency yields a Session, actor_dependency names who is asking."""
    api = APIRouter()
    Db = Annotated[Session, Depends(db_dependency)]
    Actor = Annotated[str, Depends(actor_dependency)]

    def change(db: Session, work: Callable[[], Any]) -> Any:
        """Run one change and commit it, or answer why it was refused with nothing written."""
        try:
            out = work()
            db.commit()
        except md.MasterDataError as exc:
            db.rollback()
            return refused(exc)
        for row in out if isinstance(out, tuple) else (out,):
            if isinstance(row, SQLModel):
                db.refresh(row)  # the commit expired it; the answer shows it as stored
        return out

    @api.get("/shops", response_model=list[Shop], tags=["master data"])
    def shops(db: Db) -> list[Shop]:
        return list(db.exec(select(Shop).order_by(col(Shop.id))))

    @api.put("/shops/{shop_id}", response_model=Shop, tags=["master data"])
    def put_shop(shop_id: str, body: ShopIn, db: Db, actor: Actor) -> Any:
        return change(db, lambda: md.save_shop(db, actor, int(time.time()), shop_id, body.name, body.address, body.active))

    @api.get("/product-categories", response_model=list[ProductCategory], tags=["master data"])
    def categories(db: Db) -> list[ProductCategory]:
        return list(db.exec(select(ProductCategory).order_by(col(ProductCategory.id))))

    @api.post("/product-categories", response_model=ProductCategory, status_code=201, tags=["master data"])
    def add_category(body: CategoryIn, db: Db, actor: Actor) -> Any:
        return change(db, lambda: md.save_category(db, actor, int(time.time()), body.name))

    @api.put("/product-categories/{category_id}", response_model=ProductCategory, tags=["master data"])
    def put_category(category_id: int, body: CategoryIn, db: Db, actor: Actor) -> Any:
        return change(db, lambda: md.save_category(db, actor, int(time.time()), body.name, category_id))

    @api.get("/products", response_model=list[Product], tags=["master data"])
    def products(db: Db, active: bool | None = None) -> list[Product]:
        query = select(Product).order_by(col(Product.id))
        if active is not None:
            query = query.where(Product.active == active)
        return list(db.exec(query))

    @api.put("/products/{product_id}", response_model=Product, tags=["master data"])
    def put_product(product_id: int, body: ProductIn, db: Db, actor: Actor) -> Any:
        return change(db, lambda: md.save_product(
            db, actor, int(time.time()), product_id, body.name, body.category_id, body.discountable, body.active
        ))

    def price_list_out(db: Session, price_list: PriceList) -> PriceListOut:
        items = db.exec(select(PriceListItem).where(PriceListItem.price_list_id == price_list.id))
        return PriceListOut(**price_list.model_dump(), prices={i.product_id: i.price for i in items})

    @api.get("/price-lists", response_model=list[PriceListOut], tags=["master data"])
    def price_lists(db: Db, shop_id: str | None = None) -> list[PriceListOut]:
        query = select(PriceList).order_by(col(PriceList.id))
        if shop_id is not None:
            query = query.where(PriceList.shop_id == shop_id)
        return [price_list_out(db, pl) for pl in db.exec(query)]

    @api.post("/price-lists", response_model=PriceListOut, status_code=201, tags=["master data"])
    def add_price_list(body: PriceListIn, db: Db, actor: Actor) -> Any:
        made = change(db, lambda: md.add_price_list(
            db, actor, int(time.time()), body.prices, body.shop_id, body.effective_from, body.note
        ))
        return made if isinstance(made, JSONResponse) else price_list_out(db, made)

    @api.get("/shops/{shop_id}/prices", response_model=PublishedOut, tags=["master data"])
    def published_prices(shop_id: str, db: Db) -> Any:
        found = md.latest_prices(db, shop_id)
        if found is None:
            return refused(md.MasterDataError("not_published", f"no price list published for shop {shop_id!r}", 404))
        return PublishedOut(**found.model_dump(exclude={"doc", "sha256"}), changed=False, doc=json.loads(found.doc))

    @api.get("/shops/{shop_id}/prices/preview", tags=["master data"])
    def preview_prices(shop_id: str, db: Db, at: Annotated[int | None, Query(description="unix seconds")] = None) -> Any:
        try:
            return md.shop_prices(db, shop_id, int(time.time()) if at is None else at)
        except md.MasterDataError as exc:
            return refused(exc)

    @api.post("/shops/{shop_id}/prices/publish", response_model=PublishedOut, tags=["master data"])
    def publish(shop_id: str, db: Db, actor: Actor) -> Any:
        done = change(db, lambda: md.publish_prices(db, actor, int(time.time()), shop_id))
        if isinstance(done, JSONResponse):
            return done
        published, changed = done
        return PublishedOut(**published.model_dump(exclude={"doc", "sha256"}), changed=changed, doc=json.loads(published.doc))

    @api.get("/member-categories", response_model=list[MemberCategory], tags=["master data"])
    def member_categories(db: Db) -> list[MemberCategory]:
        return list(db.exec(select(MemberCategory).order_by(col(MemberCategory.id))))

    @api.put("/member-categories/{category_id}", response_model=MemberCategory, tags=["master data"])
    def put_member_category(category_id: int, body: MemberCategoryIn, db: Db, actor: Actor) -> Any:
        return change(db, lambda: md.save_member_category(
            db, actor, int(time.time()), category_id, body.name, body.description
        ))

    @api.get("/tiers", response_model=list[Tier], tags=["master data"])
    def tiers(db: Db) -> list[Tier]:
        return list(db.exec(select(Tier).order_by(col(Tier.id))))

    @api.put("/tiers/{tier}", response_model=Tier, tags=["master data"])
    def put_tier(tier: int, body: TierIn, db: Db, actor: Actor) -> Any:
        return change(db, lambda: md.save_tier(db, actor, int(time.time()), tier, body.name, body.discount_bps))

    @api.get("/params", tags=["master data"])
    def params(db: Db) -> dict[str, dict[str, Any]]:
        values = md.params(db)
        return {key: {"value": values[key], "default": spec[0], "min": spec[1], "max": spec[2], "meaning": spec[3]}
                for key, spec in md.PARAMS.items()}

    @api.put("/params/{key}", tags=["master data"])
    def put_param(key: str, body: ParamIn, db: Db, actor: Actor) -> Any:
        done = change(db, lambda: md.set_param(db, actor, int(time.time()), key, body.value))
        return done if isinstance(done, JSONResponse) else {"key": done.key, "value": done.value}

    @api.get("/audit", response_model=list[AuditOut], tags=["master data"])
    def audit(
        db: Db, entity: str | None = None, key: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[AuditOut]:
        return [audit_out(e) for e in md.audit_log(db, entity, key, limit)]

    return api


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        **entry.model_dump(exclude={"before", "after"}),
        before=json.loads(entry.before) if entry.before else None,
        after=json.loads(entry.after) if entry.after else None,
    )
