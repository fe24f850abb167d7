"""The hub's tables: devices, journal records, sales, cards, the ledger, anomalies, and HQ's master data."""

from __future__ import annotations

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class Device(SQLModel, table=True):
    """A handheld registered with the hub, and what the hub knows of its sync."""

    id: str = Field(primary_key=True, max_length=64)
    shop: str = Field(index=True, max_length=64)
    password_hash: str
    created: int
    online: bool = False
    firmware: str = ""
    last_seen: int = 0  # unix seconds of the last message from it
    last_seq: int = 0  # highest seq received
    acked_seq: int = 0  # highest contiguous seq committed (and acknowledged)
    head_seq: int = 0  # the device's journal head, from its status
    prices_version: int = 0  # the downlink versions the device last reported holding
    hotlist_version: int = 0
    actions_version: int = 0
    lease_version: int = 0  # the offline lease (hub.lease) the device last reported holding


class Record(SQLModel, table=True):
    """Every journal record received, exactly once per (device, seq), as it came."""

    __table_args__ = (UniqueConstraint("device_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=64)
    seq: int
    kind: str = Field(max_length=8)
    time: int
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Sale(SQLModel, table=True):
    """A sale as the handheld journaled it; state follows its outcome record."""

    __table_args__ = (
        UniqueConstraint("device_id", "seq"),
        Index("ix_sale_card_counter", "card_no", "counter_after"),
        Index("ix_sale_time", "time"),
    )
    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=64)  # indexed by the unique (device_id, seq)
    seq: int
    shop: str = Field(max_length=64, index=True)
    time: int
    state: str = Field(default="pending", max_length=10)  # pending, committed, voided, unknown
    card_no: str = Field(max_length=16)  # indexed by ix_sale_card_counter
    uid: str = Field(max_length=20)
    member_id: int
    tier: int
    counter_before: int
    counter_after: int
    price_list_version: int
    firmware: str
    subtotal: int
    discount: int
    total: int
    points_redeemed: int
    points_value: int
    stored_value: int
    cash: int
    points_earned: int
    balance_after: int
    points_after: int
    coupon: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # the coupon redeemed (hub.coupons), 0: none
    coupon_value: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # cents it took off the total


class SaleLine(SQLModel, table=True):
    """One line of a sale (by the sale's device and seq): item, quantity, unit price in cents."""

    __table_args__ = (Index("ix_saleline_sale", "device_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=64)
    seq: int
    item: int
    qty: int
    price: int


class Card(SQLModel, table=True):
    """A member card as the ledger sees it; balance and points are ledger sums."""

    card_no: str = Field(primary_key=True, max_length=16)
    uid: str = Field(max_length=20, index=True)  # the desk finds a tapped card by it
    member_id: int
    tier: int
    balance: int = 0
    points: int = 0
    last_counter: int = 0
    # Until HQ issues cards through the hub, a card's opening balance is what the
    # earliest sale seen says the card held before it.
    opening_counter: int = 0
    opening_balance: int = 0
    opening_points: int = 0
    sales: int = 0
    state: str = Field(default="active", max_length=10)  # active, lost (hotlisted), replaced (hotlisted)
    password_hash: str = ""  # the member's card password (argon2), for the member's own pages
    replaced_by: str = Field(default="", max_length=16)
    issued: int = 0  # unix seconds; 0 for cards the hub first saw in a sale


class LedgerEntry(SQLModel, table=True):
    """One posting. Accounts: stored_value (cents owed to the member), points, cash, revenue."""

    __table_args__ = (Index("ix_ledger_card_account", "card_no", "account"),)
    id: int | None = Field(default=None, primary_key=True)
    time: int
    device_id: str = Field(max_length=64)
    seq: int
    card_no: str = Field(max_length=16)
    account: str = Field(max_length=16)
    amount: int
    memo: str = Field(default="", max_length=40)


class Anomaly(SQLModel, table=True):
    """Something the hub refused or that does not add up; listed for people to look at."""

    id: int | None = Field(default=None, primary_key=True)
    time: int = Field(index=True)  # when the hub saw it
    device_id: str = Field(default="", max_length=64, index=True)
    seq: int = 0
    card_no: str = Field(default="", max_length=16)
    code: str = Field(max_length=32, index=True)
    detail: str = Field(default="", max_length=400)


class Event(SQLModel, table=True):
    """An event record from a handheld (a refused card, a reader fault, a journal repair)."""

    __table_args__ = (UniqueConstraint("device_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(max_length=64)
    seq: int
    time: int
    code: str = Field(max_length=32, index=True)
    message: str = Field(default="", max_length=256)
    uid: str = Field(default="", max_length=20)


class CardStock(SQLModel, table=True):
    """A card number HQ has made (a batch), before and after it is issued to a member."""

    card_no: str = Field(primary_key=True, max_length=16)
    batch: str = Field(max_length=40, index=True)
    created: int
    state: str = Field(default="stock", max_length=10, index=True)  # stock, reserved (an IssueAttempt holds it), issued


class IssueAttempt(SQLModel, table=True):
    """A card being written at the HQ desk: its UID holds the card number until the card reads back right.

    A card pulled away mid-write leaves state "writing"; the next tap of the same UID
    finishes it. "written": verified and recorded as a Card in the same transaction.
    """

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=20, index=True)
    card_no: str = Field(max_length=16, unique=True)
    member_id: int
    tier: int
    balance: int  # cents written into the new card's purse
    points: int
    replaces: str = Field(default="", max_length=16)  # the old card of a replacement
    state: str = Field(default="writing", max_length=10, index=True)  # writing, written
    tries: int = 1
    actor: str = Field(max_length=64)
    started: int
    updated: int


class Member(SQLModel, table=True):
    """A member of the loyalty scheme; cards belong to members. hub.members holds the rules."""

    # A phone, when given, is one member's (normalised by hub.members.normalise_phone).
    __table_args__ = (
        Index("ix_member_phone", "phone", unique=True, sqlite_where=text("phone != ''"), postgresql_where=text("phone != ''")),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    phone: str = Field(default="", max_length=40)
    created: int
    birthday: str = Field(default="", max_length=10)  # YYYY-MM-DD; '' when not known
    category_id: int | None = Field(default=None, foreign_key="membercategory.id")
    tier: int = 0  # the member's current tier; their cards learn it through "tier" card actions
    referrer_id: int | None = Field(default=None, foreign_key="member.id")  # who referred them (hub.points)
    referred_at: int = 0  # unix seconds the referral was recorded; sales from then on earn the referrer points


class MemberTag(SQLModel, table=True):
    """A tag on a member: set by HQ (source "manual") or computed (e.g. "rfm", later)."""

    member_id: int = Field(foreign_key="member.id", primary_key=True)
    source: str = Field(default="manual", primary_key=True, max_length=16)
    tag: str = Field(primary_key=True, max_length=32, index=True)
    created: int


class MemberPhoto(SQLModel, table=True):
    """A member's photo (JPEG or PNG, checked by its first bytes); apart from Member so lists stay light."""

    member_id: int = Field(foreign_key="member.id", primary_key=True)
    content_type: str = Field(max_length=16)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sha256: str = Field(max_length=64)
    uploaded: int


class TierChange(SQLModel, table=True):
    """One change of a member's tier: when, from, to, why and who."""

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    time: int
    from_tier: int
    to_tier: int
    reason: str = Field(default="", max_length=200)
    actor: str = Field(max_length=64)
    rules_version: int = 0  # the TierRules version a review applied; 0 for a change made by hand


class Shop(SQLModel, table=True):
    """A shop; its handhelds sell from its price list."""

    id: str = Field(primary_key=True, max_length=32)  # a short code, e.g. "shop-1"
    name: str = Field(max_length=120)
    address: str = Field(default="", max_length=200)
    active: bool = True
    created: int


class ProductCategory(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    earns_points: bool = True  # False: what is paid for its products earns no points (gift cards, tobacco...)


class Product(SQLModel, table=True):
    """Something the shops sell; id is the item number on the handhelds and in sale records."""

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(max_length=80)
    category_id: int | None = Field(default=None, foreign_key="productcategory.id")
    merchant_id: int | None = Field(default=None, foreign_key="merchant.id")  # None: HQ's own product
    discountable: bool = True  # whether a tier discount applies
    active: bool = True


class PriceList(SQLModel, table=True):
    """Prices from a time on, for every shop (shop_id '') or one; never changed once made."""

    id: int | None = Field(default=None, primary_key=True)
    shop_id: str = Field(default="", max_length=32, index=True)
    effective_from: int
    created: int
    note: str = Field(default="", max_length=200)


class PriceListItem(SQLModel, table=True):
    price_list_id: int = Field(foreign_key="pricelist.id", primary_key=True)
    product_id: int = Field(foreign_key="product.id", primary_key=True)
    price: int  # cents


class PublishedPrices(SQLModel, table=True):
    """A version of the price list document a shop's handhelds are given (protocol.pricing's format)."""

    shop_id: str = Field(primary_key=True, max_length=32)
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    published: int
    sha256: str = Field(max_length=64)
    doc: str


class MemberCategory(SQLModel, table=True):
    """A card type (standard, staff, ...); its number is written on the card."""

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(max_length=80)
    description: str = Field(default="", max_length=200)


class Tier(SQLModel, table=True):
    """A member tier; its number is on the card, its discount applies to discountable items."""

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(max_length=40)
    discount_bps: int
    points_bps: int = 10000  # the points multiplier in basis points: 10000 earns x1, 15000 x1.5


class Param(SQLModel, table=True):
    """A system parameter HQ set (hub.masterdata.PARAMS lists them and their defaults)."""

    key: str = Field(primary_key=True, max_length=40)
    value: int


class AuditEntry(SQLModel, table=True):
    """Who changed what and when, with the row before and after (JSON)."""

    id: int | None = Field(default=None, primary_key=True)
    time: int = Field(index=True)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=16)
    entity: str = Field(max_length=32, index=True)
    entity_key: str = Field(max_length=64)
    before: str = ""
    after: str = ""


class Merchant(SQLModel, table=True):
    """A merchant selling through the shops; manages only its own products once HQ approved it."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    approved: bool = False
    created: int


class User(SQLModel, table=True):
    """A person who logs in: HQ admin, shop manager (of shop_id), merchant (of merchant_id).

    Members log in with their card number and card password instead (Card.password_hash).
    """

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    password_hash: str
    role: str = Field(max_length=16)  # admin, shop_manager, merchant
    shop_id: str = Field(default="", max_length=32)
    merchant_id: int | None = Field(default=None, foreign_key="merchant.id")
    active: bool = True
    created: int


class ApiToken(SQLModel, table=True):
    """A token for scripts, acting as its user; only its SHA-256 is kept."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(default="", max_length=64)
    token_hash: str = Field(max_length=64, unique=True)
    created: int
    revoked: bool = False


class WebSession(SQLModel, table=True):
    """A logged-in browser (by the SHA-256 of its cookie): a user, or a member by card number."""

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int | None = Field(default=None, foreign_key="user.id")
    card_no: str = Field(default="", max_length=16)
    created: int
    expires: int = Field(index=True)


class HotlistEntry(SQLModel, table=True):
    """One change to the hotlist; version orders them, so a device asks for what came after its own."""

    version: int | None = Field(default=None, primary_key=True)
    card_no: str = Field(max_length=16, index=True)
    uid: str = Field(max_length=20)
    listed: bool  # True: refuse this card from now on; False: taken off the list (unfrozen)
    reason: str = Field(default="", max_length=40)  # lost, replaced, found, ...
    time: int


class CardAction(SQLModel, table=True):
    """Something HQ decided for a card that the next handheld it taps on writes to it.

    number counts a card's actions 1, 2, 3, ...; the card keeps the highest it has
    applied, so an action is never applied twice. id orders all actions for the downlink.
    """

    __table_args__ = (UniqueConstraint("card_no", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    card_no: str = Field(max_length=16, index=True)
    number: int
    kind: str = Field(max_length=10)  # topup, tier, transfer
    amount: int = 0  # cents added to the stored value (negative takes away)
    points: int = 0
    tier: int = -1  # the new tier for kind "tier"
    note: str = Field(default="", max_length=120)
    actor: str = Field(default="", max_length=64)
    created: int
    state: str = Field(default="pending", max_length=10, index=True)  # pending, applied, cancelled
    applied_device: str = Field(default="", max_length=64)
    applied_seq: int = 0
    applied_time: int = 0


# -- tier reviews, tags, targeted plans, badges (hub.tiers, hub.tags, hub.plans, hub.badges) --------------------


class TierRules(SQLModel, table=True):
    """A version of the tier upgrade rules (hub.tiers' JSON); never changed once made, the newest applies."""

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    created: int
    actor: str = Field(max_length=64)
    body: str
    note: str = Field(default="", max_length=200)


class TierValidity(SQLModel, table=True):
    """Until when a member's tier holds without a review; a review from then on may downgrade it."""

    member_id: int = Field(foreign_key="member.id", primary_key=True)
    tier: int
    until: int  # unix seconds
    rules_version: int


class TierReview(SQLModel, table=True):
    """One run of the tier review job: when, with which rules, what it changed."""

    id: int | None = Field(default=None, primary_key=True)
    time: int = Field(index=True)
    period: str = Field(max_length=16)  # the review period it ran in, e.g. "2025-03" for monthly reviews
    rules_version: int
    actor: str = Field(max_length=64)
    reviewed: int = 0
    upgrades: int = 0
    downgrades: int = 0
    renewals: int = 0


class TierGift(SQLModel, table=True):
    """A tier's gift pack granted to a member: once per (member, tier, rules version), ever."""

    __table_args__ = (UniqueConstraint("member_id", "tier", "rules_version"),)
    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id")  # indexed by the unique key
    tier: int
    rules_version: int
    time: int
    points: int = 0
    coupons: str = "[]"  # JSON list of coupon template ids, granted as CouponGrant rows
    card_no: str = Field(default="", max_length=16)  # the card the points go to ('' while the member has none)
    action_id: int | None = None  # the "transfer" card action carrying the points


class CouponGrant(SQLModel, table=True):
    """A coupon (by its template) granted to a member by a tier gift pack or a plan run."""

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    template_id: int
    source: str = Field(max_length=8)  # "tier" (source_id: TierGift.id) or "plan" (source_id: PlanRun.id)
    source_id: int
    time: int
    redeemed: int = 0  # unix seconds it was redeemed; 0 while not


class Plan(SQLModel, table=True):
    """A version of a targeted plan (hub.plans' JSON: when, audience, actions); never changed once made."""

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str = Field(max_length=80)
    body: str
    active: bool = True
    created: int
    actor: str = Field(max_length=64)


class PlanRun(SQLModel, table=True):
    """One run of a plan: which version, why it ran, whom it reached, what it did."""

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(index=True)
    plan_version: int
    time: int
    trigger: str = Field(max_length=24)  # schedule, event, manual, rerun
    rerun_of: int | None = None  # the run whose responders (or non-responders) this run reached
    reached: int = 0
    summary: str = ""  # JSON: what each action did
    actor: str = Field(max_length=64)


class PlanRunMember(SQLModel, table=True):
    """A member a plan run reached."""

    run_id: int = Field(foreign_key="planrun.id", primary_key=True)
    member_id: int = Field(foreign_key="member.id", primary_key=True, index=True)


class Notification(SQLModel, table=True):
    """A message to a member (hub.notifications): queued, then delivered (shown or fetched, or pushed), then read."""

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    run_id: int | None = None
    time: int
    text: str = Field(max_length=500)
    state: str = Field(default="queued", max_length=10, index=True)  # queued, delivered, read
    delivered: int = 0  # unix seconds it reached the member; 0 while queued
    read: int = 0  # unix seconds the member marked it read; 0 while unread
    channel: str = Field(default="", max_length=16)  # what delivered it: "inbox" (/me, the API) or a gateway's name


class Badge(SQLModel, table=True):
    """An achievement members earn from a fact reaching a mark (hub.badges); it has no money value."""

    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=80)
    description: str = Field(default="", max_length=200)
    fact: str = Field(max_length=16)  # purchases, visits, spend, tier, member_days
    at_least: int
    active: bool = True
    created: int


class MemberBadge(SQLModel, table=True):
    """A badge a member earned, once."""

    member_id: int = Field(foreign_key="member.id", primary_key=True)
    code: str = Field(foreign_key="badge.code", primary_key=True, max_length=32)
    time: int


# -- points lots, debts, referrals, refunds, top-up bonuses (hub.points, hub.refunds, hub.stored_value) ----------


class PointsDebt(SQLModel, table=True):
    """A movement of a member's points debt: + what a deduction could not take from the card, - what a settlement took."""

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(index=True)
    card_no: str = Field(max_length=16)
    time: int
    amount: int
    action_id: int | None = None  # the card action whose application moved it
    memo: str = Field(default="", max_length=40)


class ReferralAward(SQLModel, table=True):
    """The referral points one synced sale earned the referrer: once per sale, even when the job runs twice."""

    sale_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    referrer_id: int = Field(index=True)
    member_id: int
    time: int
    points: int
    action_id: int | None = None  # the "referral" card action carrying them (one per referrer and run)
    # The rates it was computed with: a refund takes back down to what they give on what is left paid (hub.refunds).
    earn_per_100: int = 0
    referral_bps: int = 0


class Refund(SQLModel, table=True):
    """HQ refunding (part of) a synced sale; the card part goes to the card as one "refund" action."""

    id: int | None = Field(default=None, primary_key=True)
    sale_id: int = Field(index=True)
    time: int
    actor: str = Field(max_length=64)
    total: int  # cents refunded: stored_value + cash + points_value
    stored_value: int  # cents back onto the card
    cash: int  # cents paid back in cash at HQ
    points_value: int  # cents of the redeemed points given back
    points_back: int  # redeemed points given back
    points_taken: int  # earned points taken back
    card_no: str = Field(max_length=16)  # the card the action went to (the sale's, or the one that replaced it)
    action_id: int | None = None
    referral_points: int = 0  # points taken back from the referrer's award on the sale (hub.referrals.referral_taken)
    referral_action_id: int | None = None  # the "refund" action on the referrer's card taking them


class RefundLine(SQLModel, table=True):
    """One line of a refund: how many of an item."""

    refund_id: int = Field(foreign_key="refund.id", primary_key=True)
    item: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    qty: int
    price: int  # unit price in cents, as sold


class TopupBonusRules(SQLModel, table=True):
    """A version of the top-up bonus rules: thresholds [[pay at least, bonus], ...] in cents; never changed once made."""

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    effective_from: int
    until: int = 0  # 0: open-ended
    body: str  # JSON [[min_paid, bonus], ...] by min_paid
    created: int
    actor: str = Field(max_length=64)


class TopupBonus(SQLModel, table=True):
    """The bonus an HQ top-up got: paid and bonus (cents), by which rules version."""

    action_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    card_no: str = Field(max_length=16, index=True)
    time: int
    paid: int
    bonus: int
    rules_version: int


class Lease(SQLModel, table=True):
    """The offline lease a device was last issued (hub.lease): its terms, signed; version counts up per device."""

    device_id: str = Field(primary_key=True, max_length=64)
    version: int
    issued: int
    expires_after_s: int
    max_sv_per_sale: int
    max_sv_per_card_day: int
    max_sv_offline_total: int
    doc: str  # the signed document as sent


class LeaseOverride(SQLModel, table=True):
    """Lease terms HQ set for one device instead of the lease.* parameters (hub.lease); the whole set of limits."""

    device_id: str = Field(primary_key=True, max_length=64)
    expires_after_s: int
    max_sv_per_sale: int
    max_sv_per_card_day: int
    max_sv_offline_total: int
    set_at: int
    actor: str = Field(max_length=64)



class JobRun(SQLModel, table=True):
    """One run of a scheduled job (hub.scheduler): the time it ran as, whether it worked, what it did or why not."""

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=32, index=True)
    time: int  # the scheduler's now for this run (virtual in the simulator), not when the process ran it
    ok: bool
    summary: str = Field(max_length=400)


# -- coupons (hub.coupons) ----------------------------------------------------------------------------------------


class CouponTemplate(SQLModel, table=True):
    """What a coupon gives (protocol.coupon): kind fixed|percent|gift, value (cents|basis points|item), min spend, validity."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80)
    kind: str = Field(max_length=8)
    value: int
    min_spend: int = 0  # cents the total after the tier discount must reach
    valid_days: int  # a coupon holds this many days from its first valid day
    starts: int = 0  # first valid day (days since 1970-01-01, UTC; 0: the day it is issued)
    ends: int = 0  # last valid day of any coupon of it (0: none)
    active: bool = True
    created: int
    actor: str = Field(max_length=64)


class Coupon(SQLModel, table=True):
    """A coupon issued to a member: its terms, the card it goes onto (a "coupon" card action) and its redemption."""

    id: int | None = Field(default=None, primary_key=True)  # the coupon's id on the card
    template_id: int = Field(foreign_key="coupontemplate.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    card_no: str = Field(max_length=16, index=True)
    kind: str = Field(max_length=8)
    value: int
    min_spend: int
    valid_from: int  # days since 1970-01-01 (UTC)
    valid_until: int
    issued: int
    actor: str = Field(max_length=64)
    grant_id: int | None = Field(default=None, unique=True)  # the CouponGrant (tier gift pack, plan run) it fulfils
    action_id: int | None = Field(default=None, index=True)
    redeemed_device: str = Field(default="", max_length=64)
    redeemed_seq: int = 0
    redeemed: int = 0  # unix seconds of the sale that used it; 0 while not used
    expired: int = 0  # unix seconds the coupons job found it past its last day unused; 0 while not
    moved_to: int | None = None  # the coupon re-issued in its place on the card that replaced this one's card
    voided: int = 0  # unix seconds it stopped counting (its original was used on the old card after all); 0: not
