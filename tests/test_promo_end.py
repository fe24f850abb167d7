"""A plan's promotion ends on time at the handhelds: the hourly prices job publishes the normal price after its days.

Real SQLite and the real scheduler on a virtual clock; a shop that never published is left alone.
"""

import json

from sqlmodel import Session, col, select

from hub import plans, scheduler
from hub.masterdata import add_price_list, latest_prices, publish_prices, save_product
from hub.models import JobRun, PublishedPrices
from tests.plans_world import add_member, at, buy, hub_db

HOUR = 3600


def published(engine, shop):
    """(version, espresso's price) of every document the shop published, oldest first."""
    with Session(engine) as db:
        rows = db.exec(select(PublishedPrices).where(PublishedPrices.shop_id == shop).order_by(col(PublishedPrices.version)))
        return [(r.version, {i["id"]: i["price"] for i in json.loads(r.doc)["items"]}[101]) for r in rows]


def prices_runs(engine):
    with Session(engine) as db:
        return [r.summary for r in db.exec(select(JobRun).where(JobRun.job == "prices").order_by(col(JobRun.id)))]


def test_a_three_day_promotion_is_published_at_its_start_and_the_normal_price_after_day_three(tmp_path):
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        save_product(db, "hq", 0, 101, "Espresso")
        add_price_list(db, "hq", 0, {101: 250})
        publish_prices(db, "hq", at("2025-05-01"), "north")  # north's handhelds get published prices; south's not
        ana = add_member(db, "Ana", at("2025-01-01"))
        buy(db, ana, 1000, at("2025-05-20"))
        plans.add_plan(db, "hq", at("2025-05-01"), "Espresso days", {
            "when": {"schedule": "monthly", "day": 2},
            "audience": {"shop": "north"},
            "actions": [{"price": {"shop": "north", "prices": {"101": 199}, "days": 3}}],
        })
        db.commit()
    assert published(engine, "north") == [(1, 250)]

    start = at("2025-06-02T00:00")
    runs = scheduler.run_due(engine, start)
    assert all(r.ok for r in runs)
    assert published(engine, "north") == [(1, 250), (2, 199)]  # the plan's run publishes the promotion
    assert prices_runs(engine) == ["no shop's prices changed since its last publish"]

    # Every hour of the three days: nothing new is published (the same content never twice).
    for hour in range(1, 3 * 24):
        assert all(r.ok for r in scheduler.run_due(engine, start + hour * HOUR))
    assert published(engine, "north") == [(1, 250), (2, 199)]
    assert published(engine, "south") == []

    # The end list takes effect at day 3; the job's first tick at or after it publishes the normal price.
    end = start + 3 * 86400
    runs = scheduler.run_due(engine, end)
    assert all(r.ok for r in runs) and runs[-1].job == "prices"
    assert published(engine, "north") == [(1, 250), (2, 199), (3, 250)]
    assert prices_runs(engine)[-1] == "published north v3"
    with Session(engine) as db:
        last = latest_prices(db, "north")
        assert last is not None and last.published == end
    scheduler.run_due(engine, end + HOUR)
    assert published(engine, "north")[-1] == (3, 250) and len(published(engine, "north")) == 3
    assert published(engine, "south") == []  # never published: its handhelds keep what they were given


def test_a_shop_with_nothing_left_to_sell_is_reported_and_the_others_still_publish(tmp_path):
    engine = hub_db(tmp_path)
    with Session(engine) as db:
        save_product(db, "hq", 0, 101, "Espresso")
        save_product(db, "hq", 0, 102, "Tea")
        add_price_list(db, "hq", 0, {101: 250}, "north")
        add_price_list(db, "hq", 0, {102: 180}, "south")
        publish_prices(db, "hq", 0, "north")
        publish_prices(db, "hq", 0, "south")
        add_price_list(db, "hq", 0, {101: 260}, "north", effective_from=at("2025-06-01"))
        save_product(db, "hq", 0, 102, "Tea", active=False)  # south sells nothing now
        db.commit()
    run = scheduler.run_job(engine, scheduler.job_named("prices"), at("2025-06-01T01:00"))
    assert run.ok
    assert run.summary == "published north v2; south not published: shop 'south' has no priced, active product yet"
    assert published(engine, "north") == [(1, 250), (2, 260)]
