"""/api/v1 routes for HQ's master data: shops, products, price lists, member categories, tiers, parameters, audit.

Each route names the roles it admits (hub.auth); shop managers see their own shop only,
merchants their own products only.

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
from sqlmodel import Session, col, select

from hub import masterdata as md
from hub.auth import ADMIN, MERCHANT, SHOP_MANAGER, Gate, Principal
from hub.models import (
    AuditEntry,
    MemberCategory,
    PriceList,
    PriceListItem,
    Product,
    ProductCategory,
    PublishedPrices,
    Shop,
    Tier,
)
from hub.refusal import commit_or_refuse, refused


class ShopIn(BaseModel):
    name: str
    address: str = ""
    active: bool = True


class CategoryIn(BaseModel):
    name: str
    earns_points: bool | None = Field(default=None, description="false: its products earn no points; absent: unchanged")


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
    points_bps: int = Field(default=10000, description="points multiplier in basis points: 10000 earns x1, 15000 x1.5")


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



def master_routes(db_dependency: Callable[..., Any], gate: Gate) -> APIRouter:
    """The master-data routes; db_dependency yields a Session, gate checks who may use each."""
    api = APIRouter(tags=["master data"])
    Db = Annotated[Session, Depends(db_dependency)]
    Admin = Annotated[Principal, Depends(gate.require(ADMIN))]
    Staff = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER))]
    Catalogue = Annotated[Principal, Depends(gate.require(ADMIN, SHOP_MANAGER, MERCHANT))]
    ProductEditor = Annotated[Principal, Depends(gate.require(ADMIN, MERCHANT))]

    change = commit_or_refuse

    def own_shop(who: Principal, shop_id: str) -> None:
        if not who.may_see_shop(shop_id):
            raise md.MasterDataError("not_your_shop", f"a shop manager of {who.shop_id!r} may not touch shop {shop_id!r}", 403)

    @api.get("/shops", response_model=list[Shop])
    def shops(db: Db, who: Staff) -> list[Shop]:
        return [s for s in db.exec(select(Shop).order_by(col(Shop.id))) if who.may_see_shop(s.id)]

    @api.put("/shops/{shop_id}", response_model=Shop)
    def put_shop(shop_id: str, body: ShopIn, db: Db, who: Admin) -> Any:
        return change(db, lambda: md.save_shop(db, who.name, int(time.time()), shop_id, body.name, body.address, body.active))

    @api.get("/product-categories", response_model=list[ProductCategory])
    def categories(db: Db, who: Catalogue) -> list[ProductCategory]:
        return list(db.exec(select(ProductCategory).order_by(col(ProductCategory.id))))

    @api.post("/product-categories", response_model=ProductCategory, status_code=201)
    def add_category(body: CategoryIn, db: Db, who: Admin) -> Any:
        return change(db, lambda: md.save_category(db, who.name, int(time.time()), body.name,
                                                       earns_points=body.earns_points))

    @api.put("/product-categories/{category_id}", response_model=ProductCategory)
    def put_category(category_id: int, body: CategoryIn, db: Db, who: Admin) -> Any:
        return change(db, lambda: md.save_category(db, who.name, int(time.time()), body.name, category_id,
                                                       body.earns_points))

    @api.get("/products", response_model=list[Product])
    def products(db: Db, who: Catalogue, active: bool | None = None) -> list[Product]:
        query = select(Product).order_by(col(Product.id))
        if active is not None:
            query = query.where(Product.active == active)
        if who.role == MERCHANT:
            query = query.where(Product.merchant_id == who.merchant_id)
        return list(db.exec(query))

    @api.put("/products/{product_id}", response_model=Product)
    def put_product(product_id: int, body: ProductIn, db: Db, who: ProductEditor) -> Any:
        merchant = who.merchant_id if who.role == MERCHANT else None
        return change(db, lambda: md.save_product(
            db, who.name, int(time.time()), product_id, body.name, body.category_id, body.discountable, body.active, merchant
        ))

    def price_list_out(db: Session, price_list: PriceList) -> PriceListOut:
        items = db.exec(select(PriceListItem).where(PriceListItem.price_list_id == price_list.id))
        return PriceListOut(**price_list.model_dump(), prices={i.product_id: i.price for i in items})

    @api.get("/price-lists", response_model=list[PriceListOut])
    def price_lists(db: Db, who: Staff, shop_id: str | None = None) -> list[PriceListOut]:
        query = select(PriceList).order_by(col(PriceList.id))
        if shop_id is not None:
            query = query.where(PriceList.shop_id == shop_id)
        return [price_list_out(db, pl) for pl in db.exec(query) if not pl.shop_id or who.may_see_shop(pl.shop_id)]

    @api.post("/price-lists", response_model=PriceListOut, status_code=201)
    def add_price_list(body: PriceListIn, db: Db, who: Catalogue) -> Any:
        def work() -> PriceList:
            if who.role == SHOP_MANAGER and body.shop_id != who.shop_id:
                own_shop(who, body.shop_id or "(every shop)")
            if who.role == MERCHANT:
                md.check_merchant_owns(db, who.merchant_id or 0, list(body.prices))
            return md.add_price_list(db, who.name, int(time.time()), body.prices, body.shop_id, body.effective_from, body.note)

        made = change(db, work)
        return made if isinstance(made, JSONResponse) else price_list_out(db, made)

    @api.get("/shops/{shop_id}/prices", response_model=PublishedOut)
    def published_prices(shop_id: str, db: Db, who: Staff) -> Any:
        if not who.may_see_shop(shop_id):
            return refused(md.MasterDataError("not_your_shop", f"not your shop: {shop_id!r}", 403))
        found = md.latest_prices(db, shop_id)
        if found is None:
            return refused(md.MasterDataError("not_published", f"no price list published for shop {shop_id!r}", 404))
        return PublishedOut(**found.model_dump(exclude={"doc", "sha256"}), changed=False, doc=json.loads(found.doc))

    @api.get("/shops/{shop_id}/prices/preview")
    def preview_prices(
        shop_id: str, db: Db, who: Staff, at: Annotated[int | None, Query(description="unix seconds")] = None
    ) -> Any:
        try:
            own_shop(who, shop_id)
            return md.shop_prices(db, shop_id, int(time.time()) if at is None else at)
        except md.MasterDataError as exc:
            return refused(exc)

    @api.post("/shops/{shop_id}/prices/publish", response_model=PublishedOut)
    def publish(shop_id: str, db: Db, who: Staff) -> Any:
        def work() -> tuple[PublishedPrices, bool]:
            own_shop(who, shop_id)
            return md.publish_prices(db, who.name, int(time.time()), shop_id)

        done = change(db, work)
        if isinstance(done, JSONResponse):
            return done
        published, changed = done
        return PublishedOut(**published.model_dump(exclude={"doc", "sha256"}), changed=changed, doc=json.loads(published.doc))

    @api.get("/member-categories", response_model=list[MemberCategory])
    def member_categories(db: Db, who: Staff) -> list[MemberCategory]:
        return list(db.exec(select(MemberCategory).order_by(col(MemberCategory.id))))

    @api.put("/member-categories/{category_id}", response_model=MemberCategory)
    def put_member_category(category_id: int, body: MemberCategoryIn, db: Db, who: Admin) -> Any:
        return change(db, lambda: md.save_member_category(
            db, who.name, int(time.time()), category_id, body.name, body.description
        ))

    @api.get("/tiers", response_model=list[Tier])
    def tiers(db: Db, who: Staff) -> list[Tier]:
        return list(db.exec(select(Tier).order_by(col(Tier.id))))

    @api.put("/tiers/{tier}", response_model=Tier)
    def put_tier(tier: int, body: TierIn, db: Db, who: Admin) -> Any:
        return change(db, lambda: md.save_tier(db, who.name, int(time.time()), tier, body.name, body.discount_bps,
                                                   body.points_bps))

    @api.get("/params")
    def params(db: Db, who: Staff) -> dict[str, dict[str, Any]]:
        values = md.params(db)
        return {key: {"value": values[key], "default": spec[0], "min": spec[1], "max": spec[2], "meaning": spec[3]}
                for key, spec in md.PARAMS.items()}

    @api.put("/params/{key}")
    def put_param(key: str, body: ParamIn, db: Db, who: Admin) -> Any:
        done = change(db, lambda: md.set_param(db, who.name, int(time.time()), key, body.value))
        return done if isinstance(done, JSONResponse) else {"key": done.key, "value": done.value}

    @api.get("/audit", response_model=list[AuditOut])
    def audit(
        db: Db, who: Admin, entity: str | None = None, key: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AuditOut]:
        return [audit_out(e) for e in md.audit_log(db, entity, key, limit)]

    return api


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        **entry.model_dump(exclude={"before", "after"}),
        before=json.loads(entry.before) if entry.before else None,
        after=json.loads(entry.after) if entry.after else None,
    )
