"""Issue 6 section 1 (and issue 10 item 1.1): each money rule through the real webhook path.

Every payload is built from Stripe's own example objects (``tests/ledger/unit/builders.py``),
changed only where the case needs it, signed and posted to the real ingest endpoint; the
ledger consumes it from JetStream into the real PostgreSQL. Each test reads the rows back.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from billing.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from psycopg.rows import dict_row

from services.ledger.app import LedgerService
from services.ledger.effects import project_event
from tests.helpers import eventually
from tests.ingest.conftest import WebhookClient
from tests.ledger.unit import builders as b

pytestmark = pytest.mark.integration


class Deliver:
    """Posts events (ids made unique for this test) and waits until the ledger has them."""

    def __init__(self, client: WebhookClient, db: psycopg.AsyncConnection[Any]) -> None:
        self.client = client
        self.db = db
        self.tag = uuid.uuid4().hex[:8]

    def eid(self, name: str) -> str:
        return f"evt_{name}_{self.tag}"

    async def __call__(self, *events: dict[str, Any]) -> None:
        bodies = []
        for ev in events:
            body = json.dumps(ev).encode()
            bodies.append(body)
            status, answer = await self.client.post(body)
            assert status == 200, answer
        expected = {
            e["id"] for e, body in zip(events, bodies, strict=True) if project_event(body).billing
        }

        async def arrived() -> bool:
            cur = await self.db.execute(
                "SELECT count(*) FROM ledger.billing_events WHERE stripe_event_id = ANY(%s)",
                (list(expected),),
            )
            row = await cur.fetchone()
            return row is not None and row[0] == len(expected)

        await eventually(arrived, attempts=600)

    async def row(self, event_id: str) -> dict[str, Any]:
        return await self.one(
            "SELECT * FROM ledger.billing_events WHERE stripe_event_id = %s", event_id
        )

    async def one(self, sql: str, *params: Any) -> dict[str, Any]:
        async with self.db.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, params)
            found = await cur.fetchone()
        assert found is not None, (sql, params)
        return dict(found)


@pytest.fixture
async def deliver(
    ledger: LedgerService, webhook_client: WebhookClient, db: psycopg.AsyncConnection[Any]
) -> Deliver:
    return Deliver(webhook_client, db)


def sub_event(d: Deliver, name: str, kind: str, sub: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return b.event(f"customer.subscription.{kind}", sub, event_id=d.eid(name), **kw)


# --------------------------------------------------------------------------- 1
async def test_1_deleting_what_never_committed_mrr_has_no_negative_delta(deliver: Deliver) -> None:
    ended: dict[str, Any] = {"ended_at": b.T0, "canceled_at": b.T0}
    cases = {
        "expired": b.subscription(sub_id="sub_exp", status="incomplete_expired", **ended),
        "paused": b.subscription(
            sub_id="sub_pause",
            status="canceled",
            pause_collection={"behavior": "void", "resumes_at": None},
            **ended,
        ),
        "was_incomplete": b.subscription(sub_id="sub_inc", status="canceled", **ended),
        "active": b.subscription(sub_id="sub_act", status="canceled", **ended),
    }
    events = [sub_event(deliver, k, "deleted", s) for k, s in cases.items()]
    events[2]["data"]["previous_attributes"] = {"status": "incomplete"}
    await deliver(*events)
    for name in ("expired", "paused", "was_incomplete"):
        row = await deliver.row(deliver.eid(name))
        assert (row["previous_amount"], row["amount_delta"], row["new_amount"]) == (0, 0, 0), name
    control = await deliver.row(deliver.eid("active"))
    assert (control["previous_amount"], control["amount_delta"]) == (2000, -2000)


# --------------------------------------------------------------------------- 2
async def test_2_upgrades_by_schedule_are_never_scheduled_downgrades(deliver: Deliver) -> None:
    created = sub_event(deliver, "sub", "created", b.subscription())
    # an intro price then the full price, known only by ids: direction unknown
    intro = b.schedule(
        [
            (b.T0 - 100, b.T0 + 100, [("price_intro", 1)]),
            (b.T0 + 100, b.T0 + 900, [("price_full", 1)]),
        ]
    )
    # the same ramp with prices expanded: a known upgrade
    ramp = b.schedule(
        [
            (b.T0 - 100, b.T0 + 100, [(b.price(1000, price_id="price_low"), 1)]),
            (b.T0 + 100, b.T0 + 900, [(b.price(2000, price_id="price_high"), 1)]),
        ],
        id="sub_sched_ramp",
    )
    await deliver(
        created,
        b.event(
            "subscription_schedule.created", intro, event_id=deliver.eid("intro"), created=b.T0 + 1
        ),
        b.event(
            "subscription_schedule.created", ramp, event_id=deliver.eid("ramp"), created=b.T0 + 2
        ),
    )
    unknown = await deliver.row(deliver.eid("intro"))
    assert unknown["event_type"] == "NoOp"
    assert "schedule_direction_unknown" in unknown["flags"]
    assert unknown["forward_mrr"] is None
    up = await deliver.row(deliver.eid("ramp"))
    assert up["event_type"] == "NoOp" and "schedule_direction:up" in up["flags"]
    sub = await deliver.one(
        "SELECT forward_mrr, scheduled_mrr FROM ledger.subscriptions WHERE subscription_id = %s",
        "sub_test",
    )
    # forward MRR does not drop for the unknown one; the known ramp is priced up
    assert sub["forward_mrr"] == 2000
    assert sub["scheduled_mrr"] in (None, 2000)
    cur = await deliver.db.execute(
        "SELECT count(*) FROM ledger.billing_events"
        " WHERE event_type = 'SubscriptionDowngradeScheduled'"
    )
    assert (await cur.fetchone()) == (0,)


# --------------------------------------------------------------------------- 3
async def test_3_mrr_excludes_inclusive_tax_and_agrees_with_net_revenue(deliver: Deliver) -> None:
    vat = {"id": "txr_vat", "object": "tax_rate", "percentage": 20.0, "inclusive": True}
    sales = {"id": "txr_sales", "object": "tax_rate", "percentage": 10.0, "inclusive": False}
    inclusive = b.price(1200, price_id="price_incl")
    inclusive["tax_behavior"] = "inclusive"
    incl_item = b.item(inclusive)
    incl_item["tax_rates"] = [vat]
    exclusive = b.price(1000, price_id="price_excl")
    exclusive["tax_behavior"] = "exclusive"
    default_rates = b.subscription(
        [b.item(exclusive)], sub_id="sub_excl", default_tax_rates=[sales]
    )
    inv = b.invoice(
        id="in_tax",
        subscription_id="sub_incl",
        total=1200,
        tax=200,
        total_excluding_tax=1000,
        amount_due=1200,
        amount_paid=1200,
        subtotal=1200,
    )
    await deliver(
        sub_event(deliver, "incl", "created", b.subscription([incl_item], sub_id="sub_incl")),
        sub_event(deliver, "excl", "created", default_rates),
        b.event("invoice.paid", inv, event_id=deliver.eid("inv")),
    )
    assert (await deliver.row(deliver.eid("incl")))["committed_mrr"] == 1000
    assert (await deliver.row(deliver.eid("excl")))["committed_mrr"] == 1000
    paid = await deliver.one(
        "SELECT amount_ex_tax FROM ledger.payments WHERE invoice_id = 'in_tax'"
    )
    assert paid["amount_ex_tax"] == 1000  # net revenue of the month == its MRR


# --------------------------------------------------------------------------- 4
async def test_4_package_pricing_uses_the_billed_quantity(deliver: Deliver) -> None:
    up = b.price(500, price_id="price_pack_up")
    up["transform_quantity"] = {"divide_by": 10, "round": "up"}
    down = b.price(500, price_id="price_pack_down")
    down["transform_quantity"] = {"divide_by": 10, "round": "down"}
    await deliver(
        sub_event(deliver, "up", "created", b.subscription([b.item(up, 25)], sub_id="sub_up")),
        sub_event(deliver, "dn", "created", b.subscription([b.item(down, 25)], sub_id="sub_dn")),
    )
    assert (await deliver.row(deliver.eid("up")))["committed_mrr"] == 1500  # 3 packages
    assert (await deliver.row(deliver.eid("dn")))["committed_mrr"] == 1000  # 2 packages


# --------------------------------------------------------------------------- 5
async def test_5_item_discounts_known_only_by_id_are_flagged(deliver: Deliver) -> None:
    it = b.item(b.price(2000))
    it["discounts"] = ["di_item_only_id"]
    known = b.item(b.price(2000, price_id="price_known"))
    known["discounts"] = [b.coupon_discount(percent_off=25.0)]
    await deliver(
        sub_event(deliver, "ids", "created", b.subscription([it], sub_id="sub_ids")),
        sub_event(deliver, "known", "created", b.subscription([known], sub_id="sub_known")),
    )
    row = await deliver.row(deliver.eid("ids"))
    assert "discount_terms_unknown" in row["flags"]
    assert row["committed_mrr"] == 2000  # an upper bound, and said so
    assert (await deliver.row(deliver.eid("known")))["committed_mrr"] == 1500


# --------------------------------------------------------------------------- 6
async def test_6_multi_currency_prices_use_the_currency_option(deliver: Deliver) -> None:
    with_option = b.price(2000, price_id="price_multi")
    with_option["currency_options"] = {
        "usd": {"unit_amount": 2000, "unit_amount_decimal": "2000", "tax_behavior": "exclusive"},
        "eur": {"unit_amount": 1800, "unit_amount_decimal": "1800", "tax_behavior": "exclusive"},
    }
    without = b.price(2000, price_id="price_usd_only")
    await deliver(
        sub_event(
            deliver,
            "eur",
            "created",
            b.subscription([b.item(with_option)], sub_id="sub_eur", currency="eur"),
        ),
        sub_event(
            deliver,
            "gbp",
            "created",
            b.subscription([b.item(without)], sub_id="sub_gbp", currency="gbp"),
        ),
    )
    eur = await deliver.row(deliver.eid("eur"))
    assert (eur["committed_mrr"], eur["currency"]) == (1800, "EUR")
    gbp = await deliver.row(deliver.eid("gbp"))
    assert "currency_option_missing" in gbp["flags"]
    assert gbp["currency"] == "GBP" and gbp["committed_mrr"] == 0  # flagged, never guessed


# --------------------------------------------------------------------------- 7
async def test_7_refunds_without_a_list_are_not_the_running_total(deliver: Deliver) -> None:
    inv = b.invoice(basil=False, id="in_ref", charge="ch_ref", payment_intent="pi_ref")
    charge = b.stripe_object("charge")
    charge.update(
        id="ch_ref",
        amount=2000,
        amount_refunded=1500,
        refunded=False,
        payment_intent="pi_ref",
        invoice="in_ref",
        customer="cus_test",
        currency="usd",
    )
    charge.pop("refunds", None)  # API 2022-11-15+: no list
    refund = b.stripe_object("refund")
    refund.update(
        id="re_second",
        amount=500,
        charge="ch_ref",
        payment_intent="pi_ref",
        currency="usd",
        status="succeeded",
        created=b.T0 + 5,
    )
    await deliver(
        b.event("invoice.paid", inv, event_id=deliver.eid("inv"), api_version=b.LEGACY),
        b.event("charge.refunded", charge, event_id=deliver.eid("ch"), created=b.T0 + 5),
        b.event("refund.created", refund, event_id=deliver.eid("re"), created=b.T0 + 5),
    )
    row = await deliver.row(deliver.eid("ch"))
    assert row["event_type"] == "PaymentRefunded"
    assert row["refund_amount"] is None and "refund_amount_unknown" in row["flags"]

    async def refunded() -> Any:
        found = await deliver.one(
            "SELECT amount_refunded FROM ledger.payments WHERE invoice_id = 'in_ref'"
        )
        return found["amount_refunded"] == 1500 and found

    # 1500 from the charge's total; the 500 refund object is part of it, not added to it
    await eventually(refunded)


# --------------------------------------------------------------------------- 8
async def test_8_schedule_phases_are_priced_with_the_discounts(deliver: Deliver) -> None:
    half = b.coupon_discount(percent_off=50.0)
    phases = [
        (b.T0 - 100, b.T0 + 100, [(b.price(4000, price_id="price_big"), 1)]),
        (b.T0 + 100, b.T0 + 900, [(b.price(3000, price_id="price_mid"), 1)]),
    ]
    sched = b.schedule(phases)
    for phase in sched["phases"]:
        phase["discounts"] = [{"coupon": half["source"]["coupon"], "discount": half["id"]}]
    sub = b.subscription(
        [b.item(b.price(4000, price_id="price_big"))],
        discounts=[half],
        schedule=sched,
    )
    await deliver(
        sub_event(deliver, "sub", "created", sub),
        b.event(
            "subscription_schedule.created", sched, event_id=deliver.eid("sch"), created=b.T0 + 1
        ),
    )
    sub_row = await deliver.row(deliver.eid("sub"))
    sch_row = await deliver.row(deliver.eid("sch"))
    assert sub_row["committed_mrr"] == 2000
    assert sub_row["forward_mrr"] == 1500
    assert sch_row["event_type"] == "SubscriptionDowngradeScheduled"
    assert (sch_row["previous_amount"], sch_row["new_amount"]) == (2000, 1500)
    assert sch_row["forward_mrr"] == sub_row["forward_mrr"]
    stored = await deliver.one(
        "SELECT next_mrr FROM ledger.subscription_schedules WHERE schedule_id = 'sub_sched_test'"
    )
    assert stored["next_mrr"] == 1500


# --------------------------------------------------------------------------- 9
async def test_9_an_expired_coupon_is_an_mrr_step(deliver: Deliver) -> None:
    coupon = b.coupon_discount(percent_off=25.0, duration="repeating", basil=False, end=b.T0 - 60)
    before = b.subscription(basil=False, discount=coupon)
    after = b.subscription(basil=False, discount=None)
    await deliver(
        sub_event(
            deliver, "c", "created", before, api_version=b.LEGACY, created=b.T0 - 3 * b.MONTH
        ),
        sub_event(
            deliver,
            "u",
            "updated",
            after,
            api_version=b.LEGACY,
            previous_attributes={"discount": coupon},
        ),
    )
    assert (await deliver.row(deliver.eid("c")))["committed_mrr"] == 1500
    row = await deliver.row(deliver.eid("u"))
    assert row["event_type"] == "SubscriptionUpgraded"
    assert (row["previous_amount"], row["new_amount"], row["amount_delta"]) == (1500, 2000, 500)


# --------------------------------------------------------------------------- 10
async def test_10_a_later_event_without_a_field_does_not_erase_it(deliver: Deliver) -> None:
    refund = b.stripe_object("refund")
    refund.update(
        id="re_keep",
        amount=700,
        charge="ch_keep",
        payment_intent="pi_keep",
        currency="usd",
        status="pending",
        created=b.T0,
    )
    refund["customer"] = "cus_keep"
    legacy = dict(refund, status="succeeded")
    legacy.pop("customer")
    legacy["charge"] = None
    await deliver(
        b.event("refund.created", refund, event_id=deliver.eid("c")),
        b.event("refund.updated", legacy, event_id=deliver.eid("u"), created=b.T0 + 60),
    )

    async def settled() -> Any:
        row = await deliver.one(
            "SELECT stripe_customer_id, charge_id, status FROM ledger.refunds"
            " WHERE refund_id = 're_keep'"
        )
        return row["status"] == "succeeded" and row

    row = await eventually(settled)
    assert (row["stripe_customer_id"], row["charge_id"]) == ("cus_keep", "ch_keep")


# --------------------------------------------------------------------------- issue 10 1.1
def _fixture(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((b.events_dir() / path).read_text(encoding="utf-8"))
    return data


async def test_invoice_upcoming_is_skipped_by_rule_and_rebuilds_cleanly(
    deliver: Deliver, ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub
) -> None:
    upcoming = sorted(
        str(p.relative_to(b.events_dir())) for p in b.events_dir().rglob("invoice.upcoming*.json")
    )
    assert upcoming, "the shared fixtures hold real invoice.upcoming payloads"
    events = []
    for n, path in enumerate(upcoming):
        ev = _fixture(path)
        ev["id"] = deliver.eid(f"upcoming{n}")
        events.append(ev)
    await deliver(*events)
    for ev in events:
        row = await deliver.row(ev["id"])
        assert row["event_type"] == "NoOp" and "invoice_preview" in row["flags"]
    cur = await deliver.db.execute("SELECT count(*) FROM ledger.dead_letters")
    assert (await cur.fetchone()) == (0,)
    verified = await ledger_stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
    assert (verified.mismatches, verified.unreadable, verified.failed) == (0, 0, 0)
    assert verified.examined >= len(events)
    replayed = await ledger_stub.ReplayArchive(ledger_pb2.ReplayArchiveRequest())
    assert (replayed.unreadable, replayed.dead_lettered) == (0, 0)


def _all_fixture_paths() -> list[Path]:
    return b.event_files()


async def test_every_real_event_projects_or_is_skipped_by_rule(
    deliver: Deliver, ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub
) -> None:
    events = []
    for n, path in enumerate(_all_fixture_paths()):
        ev = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(ev, dict) or not isinstance(ev.get("id"), str):
            continue
        ev["id"] = deliver.eid(f"fx{n}")
        events.append(ev)
    await deliver(*events)
    cur = await deliver.db.execute("SELECT stripe_event_id, error FROM ledger.dead_letters")
    assert await cur.fetchall() == []
    verified = await ledger_stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
    assert (verified.mismatches, verified.unreadable, verified.failed) == (0, 0, 0)


# --------------------------------------------------------------------------- 11
async def _archive(db: psycopg.AsyncConnection[Any], event_id: str, payload: bytes) -> None:
    """Put an event straight into the archive (as published: only replays will read it)."""
    await db.execute(
        "INSERT INTO ingest.stripe_events (event_id, event_type, api_version, stripe_created_at,"
        " livemode, payload, payload_sha256, recovery_source, published_at)"
        " VALUES (%s, 'customer.created', '2020-08-27', to_timestamp(%s), false, %s,"
        " sha256(%s), 'webhook', now())",
        (event_id, b.T0, payload, payload),
    )


def _customer_created(event_id: str) -> bytes:
    customer = {"id": f"cus_{event_id}", "object": "customer", "metadata": {}}
    return json.dumps(
        b.event("customer.created", customer, event_id=event_id, api_version="2020-08-27")
    ).encode()


async def test_11_replay_and_verify_report_bad_events_and_go_on(
    deliver: Deliver, ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub
) -> None:
    db = deliver.db
    good, bom, failing = deliver.eid("good"), deliver.eid("bom"), deliver.eid("failing")
    await db.execute(
        "CREATE FUNCTION public.refuse_replayed() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN IF NEW.stripe_event_id = '{failing}' THEN RAISE EXCEPTION 'planted failure';"
        " END IF; RETURN NEW; END $$"
    )
    await db.execute(
        "CREATE TRIGGER refuse_replayed BEFORE INSERT ON ledger.billing_events"
        " FOR EACH ROW EXECUTE FUNCTION public.refuse_replayed()"
    )
    await _archive(db, good, _customer_created(good))
    await _archive(db, bom, b"\xef\xbb\xbf" + _customer_created(bom))  # not readable JSON
    await _archive(db, failing, _customer_created(failing))

    for _ in range(2):  # a second replay refreshes the dead letter, it does not add one
        replayed = await ledger_stub.ReplayArchive(ledger_pb2.ReplayArchiveRequest())
        assert (replayed.examined, replayed.unreadable, replayed.dead_lettered) == (3, 1, 1)
    cur = await db.execute("SELECT stripe_event_id FROM ledger.billing_events")
    assert [r[0] for r in await cur.fetchall()] == [good]  # the rest of the batch went in
    cur = await db.execute(
        "SELECT stripe_event_id, subject, status, error, deliveries FROM ledger.dead_letters"
    )
    dead = await cur.fetchall()
    assert len(dead) == 1
    assert dead[0][:3] == (failing, "ledger.replay", "dead")
    assert "planted failure" in dead[0][3] and dead[0][4] == 2

    verified = await ledger_stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
    assert (verified.examined, verified.unreadable) == (3, 1)
    # the scratch rebuild has no planted trigger: the only difference is the dead-lettered row
    assert verified.mismatches_by_table["billing_events"] == 1


async def test_verify_ledger_covers_the_query_tables(
    deliver: Deliver, ledger_stub: ledger_pb2_grpc.LedgerServiceAsyncStub
) -> None:
    customer = b.stripe_object("customer")
    customer.update(id="cus_q", metadata={"tenant_id": "tenant-q"})
    await deliver(
        b.event("customer.created", customer, event_id=deliver.eid("cus")),
        sub_event(deliver, "sub", "created", b.subscription(customer="cus_q", sub_id="sub_q")),
    )
    clean = await ledger_stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
    assert clean.mismatches == 0, clean.sample
    assert {"query_accounts", "query_mrr_steps", "query_event_daily"} <= set(
        clean.mismatches_by_table
    )
    # a query row drifts from what the source tables say it must be
    await deliver.db.execute("UPDATE ledger.query_mrr_steps SET committed = committed + 1")
    drifted = await ledger_stub.VerifyLedger(ledger_pb2.VerifyLedgerRequest())
    assert drifted.mismatches_by_table["query_mrr_steps"] == 1
    found = [m for m in drifted.sample if m.table == "query_mrr_steps"]
    assert found[0].kind == "different" and list(found[0].columns) == ["committed"]
    # the check changed nothing: the drift is still there, no rebuild was committed
    cur = await deliver.db.execute("SELECT committed FROM ledger.query_mrr_steps")
    assert await cur.fetchall() == [(2001,)]
