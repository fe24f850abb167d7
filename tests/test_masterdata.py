"""HQ's master data through the API: shops, products, price lists, tiers, parameters, and the audit log."""

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hub import masterdata as md
from hub.app import create_app
from hub.auth import ADMIN, new_login
from hub.db import make_engine, migrate
from hub.models import AuditEntry, PriceList, Product
from protocol.pricing import PriceList as ProtocolPriceList
from protocol.pricing import quote


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    return engine


@pytest.fixture
def api(engine):
    _password, token = new_login(engine, "alice", ADMIN, 0)
    return TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"})


def stock_shop(api) -> None:
    assert api.put("/api/v1/shops/north", json={"name": "North street"}).status_code == 200
    drinks = api.post("/api/v1/product-categories", json={"name": "Drinks"}).json()["id"]
    api.put("/api/v1/products/101", json={"name": "Espresso", "category_id": drinks})
    api.put("/api/v1/products/102", json={"name": "Gift card", "discountable": False})
    api.put("/api/v1/tiers/0", json={"name": "Member", "discount_bps": 0})
    api.put("/api/v1/tiers/1", json={"name": "Silver", "discount_bps": 500})
    made = api.post("/api/v1/price-lists", json={"prices": {"101": 250, "102": 2000}, "effective_from": 0})
    assert made.status_code == 201, made.text


def test_a_published_price_list_is_what_handhelds_accept_and_price_with(api):
    stock_shop(api)
    published = api.post("/api/v1/shops/north/prices/publish")
    assert published.status_code == 200, published.text
    body = published.json()
    assert body["version"] == 1 and body["changed"] is True
    doc = body["doc"]
    assert [(i["id"], i["name"], i["price"], i["category"], i["discountable"]) for i in doc["items"]] == [
        (101, "Espresso", 250, "Drinks", True), (102, "Gift card", 2000, "", False)
    ]
    price_list = ProtocolPriceList(doc)  # the handheld's own parser takes it
    sale = quote(price_list, [(101, 2), (102, 1)], tier=1)
    assert sale["discount"] == 25 and sale["total"] == 2475  # 5 % off the espressos only
    assert api.get("/api/v1/shops/north/prices").json()["version"] == 1


def test_publishing_again_makes_a_new_version_only_when_something_changed(api):
    stock_shop(api)
    assert api.post("/api/v1/shops/north/prices/publish").json()["version"] == 1
    again = api.post("/api/v1/shops/north/prices/publish").json()
    assert again["version"] == 1 and again["changed"] is False
    api.put("/api/v1/tiers/1", json={"name": "Silver", "discount_bps": 700})
    changed = api.post("/api/v1/shops/north/prices/publish").json()
    assert changed["version"] == 2 and changed["doc"]["tiers"][1]["discount_bps"] == 700


def test_a_shops_own_prices_win_over_the_global_list_from_their_effective_time(api):
    stock_shop(api)
    api.put("/api/v1/shops/south", json={"name": "South square"})
    api.post("/api/v1/price-lists", json={"shop_id": "north", "prices": {"101": 280}, "effective_from": 5000})
    api.post("/api/v1/price-lists", json={"prices": {"101": 260, "102": 2100}, "effective_from": 3000})

    def prices(shop: str, at: int) -> dict[int, int]:
        doc = api.get(f"/api/v1/shops/{shop}/prices/preview", params={"at": at}).json()
        return {item["id"]: item["price"] for item in doc["items"]}

    assert prices("north", 1000) == {101: 250, 102: 2000}
    assert prices("north", 4000) == {101: 260, 102: 2100}  # the newer global list
    assert prices("north", 6000) == {101: 280, 102: 2100}  # north's own espresso price
    assert prices("south", 6000) == {101: 260, 102: 2100}


def test_an_inactive_product_leaves_the_price_list(api):
    stock_shop(api)
    api.put("/api/v1/products/102", json={"name": "Gift card", "discountable": False, "active": False})
    doc = api.get("/api/v1/shops/north/prices/preview").json()
    assert [i["id"] for i in doc["items"]] == [101]


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "code"),
    [
        ("/api/v1/shops/North%20St", "put", {"name": "x"}, 400, "bad_shop_id"),
        ("/api/v1/shops/north", "put", {"name": "  "}, 400, "bad_name"),
        ("/api/v1/products/0", "put", {"name": "Zero"}, 400, "bad_number"),
        ("/api/v1/products/103", "put", {"name": "Tea", "category_id": 99}, 404, "no_category"),
        ("/api/v1/price-lists", "post", {"prices": {"101": -5}}, 400, "bad_number"),
        ("/api/v1/price-lists", "post", {"prices": {"101": 100, "999": 100}}, 404, "no_product"),
        ("/api/v1/price-lists", "post", {"shop_id": "nowhere", "prices": {"101": 100}}, 404, "no_shop"),
        ("/api/v1/price-lists", "post", {"prices": {}}, 400, "empty_price_list"),
        ("/api/v1/tiers/1", "put", {"name": "Gold", "discount_bps": 10001}, 400, "bad_number"),
        ("/api/v1/tiers/256", "put", {"name": "Gold", "discount_bps": 100}, 400, "bad_number"),
        ("/api/v1/params/points.point_value", "put", {"value": 0}, 400, "bad_number"),
        ("/api/v1/params/no.such", "put", {"value": 1}, 404, "no_param"),
        ("/api/v1/product-categories", "post", {"name": "Drinks"}, 409, "duplicate"),
        ("/api/v1/shops/nowhere/prices/publish", "post", None, 404, "no_shop"),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_changes_nothing(api, engine, path, method, body, status, code):
    stock_shop(api)
    with Session(engine) as db:
        before = (md.count(db, AuditEntry), md.count(db, PriceList), [p.model_dump() for p in db.exec(select(Product))])
    answer = api.request(method.upper(), path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code and answer.json()["detail"]
    with Session(engine) as db:
        after = (md.count(db, AuditEntry), md.count(db, PriceList), [p.model_dump() for p in db.exec(select(Product))])
    assert after == before


def test_every_change_is_in_the_audit_log_with_who_and_before_and_after(api):
    stock_shop(api)
    api.put("/api/v1/products/101", json={"name": "Double espresso", "category_id": 1})
    api.put("/api/v1/params/points.earn_per_100", json={"value": 3})
    log = api.get("/api/v1/audit", params={"entity": "product", "key": "101"}).json()
    assert [e["action"] for e in log] == ["update", "create"]
    assert log[0]["actor"] == "alice" and log[0]["time"] > 0
    assert log[0]["before"]["name"] == "Espresso" and log[0]["after"]["name"] == "Double espresso"
    assert log[1]["before"] is None
    everything = api.get("/api/v1/audit", params={"limit": 1000}).json()
    assert {e["entity"] for e in everything} == {"shop", "productcategory", "product", "tier", "pricelist", "param"}
    price_list = next(e for e in everything if e["entity"] == "pricelist")
    assert price_list["after"]["prices"] == {"101": 250, "102": 2000}
    assert api.get("/api/v1/params").json()["points.earn_per_100"]["value"] == 3


@pytest.mark.parametrize(
    ("text", "cents"), [("12.50", 1250), ("12.5", 1250), ("12", 1200), ("0.07", 7), ("100000.00", 10_000_000)]
)
def test_prices_typed_as_text_become_cents(text, cents):
    assert md.parse_money(text) == cents


@pytest.mark.parametrize("text", ["12.505", "-1.00", "1,50", "abc", "", ".5", "100000.01", "1e3"])
def test_prices_in_a_bad_format_are_refused(text):
    with pytest.raises(md.MasterDataError) as err:
        md.parse_money(text)
    assert err.value.code == "bad_price" and text in err.value.message
