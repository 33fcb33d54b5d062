"""The clover, dahlia and endive resolvers (issue 7), on Stripe's own current example objects
(``shared/fixtures/stripe_objects``, which already have the post-clover shapes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services.ledger.domain import compute_mrr
from services.ledger.domain.classifier import BillingEventType, Classification, classify_payload
from services.ledger.domain.normalised import NormalisedEvent
from services.ledger.domain.resolvers import (
    API_VERSION_NEWER_THAN_KNOWN,
    DEFAULT_REGISTRY,
    BasilResolver,
    CloverResolver,
    DahliaResolver,
    EndiveResolver,
    UnsupportedApiVersion,
    parse_api_version,
    resolve,
)
from tests.ledger.unit import builders as b

CLOVER = "2025-09-30.clover"
DAHLIA = "2026-05-27.dahlia"
ENDIVE = "2026-10-28.endive"
LATER = "2027-03-31.fig"
POST_CLOVER = [CLOVER, DAHLIA, "2026-08-26.dahlia", ENDIVE]
PRO = b.price(5000, price_id="price_pro", nickname="Pro")
SMALL = b.price(800, price_id="price_small", nickname="Small")
KINDS = [
    ("customer.subscription.created", "subscription"),
    ("invoice.paid", "invoice"),
    ("charge.refunded", "charge"),
    ("refund.created", "refund"),
    ("credit_note.created", "credit_note"),
    ("customer.updated", "customer"),
    ("payment_method.attached", "payment_method"),
    ("invoice_payment.paid", "invoice_payment"),
    ("subscription_schedule.created", "subscription_schedule"),
    ("customer.discount.created", "discount"),
]


def resolved(raw: dict[str, Any]) -> NormalisedEvent:
    result = resolve(raw)
    assert isinstance(result, NormalisedEvent), result
    return result


def classified(raw: dict[str, Any]) -> Classification:
    result = classify_payload(raw)
    assert isinstance(result, Classification), result
    return result


def test_families_reuse_their_parents_code() -> None:
    # only the release name and the date differ, except dahlia's pending-update discounts
    assert issubclass(EndiveResolver, DahliaResolver)
    assert issubclass(DahliaResolver, CloverResolver)
    assert issubclass(CloverResolver, BasilResolver)
    overridden = {
        name
        for cls in (CloverResolver, DahliaResolver, EndiveResolver)
        for name in vars(cls)
        if callable(vars(cls)[name]) and not name.startswith("__")
    }
    assert overridden == {"pending_update"}
    assert DEFAULT_REGISTRY.newest.family == "endive"
    assert DEFAULT_REGISTRY.families == ("legacy", "basil", "clover", "dahlia", "endive")


@pytest.mark.parametrize("version", POST_CLOVER)
@pytest.mark.parametrize(("event_type", "kind"), KINDS)
def test_stripe_example_objects_resolve_in_every_family(
    version: str, event_type: str, kind: str
) -> None:
    raw = b.event(event_type, b.stripe_object(kind), api_version=version)
    ev = resolved(raw)
    assert ev.family == version.split(".")[1] and ev.api_version == version
    assert ev.resolution_flags == ()
    assert classify_payload(raw) == classify_payload(raw)  # total and deterministic


def test_example_subscription_reads_periods_from_items_and_its_pending_discount() -> None:
    sub = resolved(
        b.event(
            "customer.subscription.updated", b.stripe_object("subscription"), api_version=DAHLIA
        )
    ).subscription
    assert sub is not None
    assert (
        sub.items[0].unit_amount == 2000
        and sub.items[0].price_id == "price_1PgafmB7WZ01zgkW6dKueIc5"
    )
    assert (sub.current_period_start, sub.current_period_end) == (1896570518, 976287773)
    # the example's pending_update.discount references a coupon it does not expand
    assert sub.pending_update is not None
    assert sub.pending_update.discounts == () and sub.pending_update.discount_refs_unresolved == 1


@pytest.mark.parametrize("version", POST_CLOVER)
def test_clover_discount_source_coupon_by_id_is_an_unresolved_reference(version: str) -> None:
    discount = b.stripe_object("discount")
    discount["source"] = {"type": "coupon", "coupon": "co_half"}  # clover: not expanded
    sub = b.subscription([b.item(PRO)], discounts=[discount])
    row = classified(b.event("customer.subscription.created", sub, api_version=version))
    assert row.committed_mrr_after == 5000  # terms unknown: not guessed
    assert "discount_terms_unknown" in row.flags


@pytest.mark.parametrize("version", POST_CLOVER)
def test_clover_discount_with_expanded_source_coupon_applies(version: str) -> None:
    discount = b.coupon_discount(percent_off=50)  # source.coupon expanded
    assert "coupon" not in discount and discount["source"]["coupon"]["percent_off"] == 50
    sub = b.subscription([b.item(PRO)], discounts=[discount])
    row = classified(b.event("customer.subscription.created", sub, api_version=version))
    assert row.committed_mrr_after == 2500
    assert "discount_terms_unknown" not in row.flags


def _pending_discount_sub() -> dict[str, Any]:
    pending = b.stripe_object("subscription")["pending_update"]
    pending.update(
        discount=b.coupon_discount(percent_off=20),
        discounts=[],
        subscription_items=None,
        expires_at=b.T0 + 86_400,
    )
    return b.subscription([b.item(PRO)], pending_update=pending)


@pytest.mark.parametrize("version", ["2026-05-27.dahlia", ENDIVE, LATER])
def test_dahlia_pending_update_discounts_set_forward_mrr(version: str) -> None:
    ev = resolved(
        b.event("customer.subscription.updated", _pending_discount_sub(), api_version=version)
    )
    assert ev.subscription is not None and ev.subscription.pending_update is not None
    assert [d.percent_off for d in ev.subscription.pending_update.discounts or ()] == [20]
    mrr = compute_mrr(ev.subscription, as_of=ev.created)
    assert (mrr.committed, mrr.forward) == (5000, 4000)
    assert "scheduled_change" in mrr.flags


def test_a_pending_discount_that_lowers_the_next_bill_is_a_scheduled_downgrade() -> None:
    sub = _pending_discount_sub()
    previous = {"pending_update": None}
    row = classified(b.event("customer.subscription.updated", sub, previous, api_version=DAHLIA))
    assert row.event_type is BillingEventType.SubscriptionDowngradeScheduled
    assert (row.previous_amount, row.new_amount, row.committed_mrr_after) == (5000, 4000, 5000)


@pytest.mark.parametrize("version", [b.BASIL, CLOVER])
def test_before_dahlia_pending_update_discounts_are_not_read(version: str) -> None:
    ev = resolved(
        b.event("customer.subscription.updated", _pending_discount_sub(), api_version=version)
    )
    assert ev.subscription is not None and ev.subscription.pending_update is not None
    assert ev.subscription.pending_update.discounts is None
    mrr = compute_mrr(ev.subscription, as_of=ev.created)
    assert (mrr.committed, mrr.forward) == (5000, 5000)


def test_pending_item_change_keeps_subscription_discounts_without_pending_ones() -> None:
    pending = {"subscription_items": [b.item(SMALL)], "expires_at": b.T0 + 86_400}
    sub = b.subscription(
        [b.item(PRO)], pending_update=pending, discounts=[b.coupon_discount(percent_off=50)]
    )
    ev = resolved(b.event("customer.subscription.updated", sub, api_version=ENDIVE))
    assert ev.subscription is not None
    mrr = compute_mrr(ev.subscription, as_of=ev.created)
    assert (mrr.committed, mrr.forward) == (2500, 400)


# ----------------------------------------------------------------- newer than every family
@pytest.mark.parametrize("version", [LATER, "2026-11-01.fig", "2031-01-01.zeta; beta=v2"])
def test_newer_than_known_is_classified_by_the_newest_resolver_and_flagged(version: str) -> None:
    raw = b.event(
        "customer.subscription.created", b.subscription([b.item(PRO)]), api_version=version
    )
    assert DEFAULT_REGISTRY.resolver_for(version) is None
    parsed = parse_api_version(version)
    assert parsed is not None and DEFAULT_REGISTRY.is_newer_than_known(parsed)
    ev = resolved(raw)
    assert (ev.family, ev.api_version) == ("endive", version)
    assert ev.resolution_flags == (API_VERSION_NEWER_THAN_KNOWN,)
    row = classified(raw)
    assert row.event_type is BillingEventType.SubscriptionCreated
    assert row.committed_mrr_after == 5000
    assert API_VERSION_NEWER_THAN_KNOWN in row.flags


@pytest.mark.parametrize(
    "version",
    ["2026-01-01.zinnia", "2026-09-30.fig", "2027-01-01", "2027-01-01.", "not-a-version", None],
)
def test_unknown_in_any_other_way_stays_unsupported(version: object) -> None:
    raw = b.event("customer.subscription.created", b.subscription())
    raw["api_version"] = version
    assert isinstance(resolve(raw), UnsupportedApiVersion)


def test_family_introduction_dates() -> None:
    assert [
        r.introduced
        for r in (BasilResolver(), CloverResolver(), DahliaResolver(), EndiveResolver())
    ] == [
        dt.date(2025, 3, 31),
        dt.date(2025, 9, 30),
        dt.date(2026, 3, 25),
        dt.date(2026, 9, 30),
    ]


def test_the_version_the_stripe_library_pins_is_a_known_family() -> None:
    """Drift reads Stripe through the ``stripe`` library, so its responses come in the pinned
    version: upgrading the library to a new family must come with a resolver."""
    import stripe

    pinned = str(stripe.api_version)
    resolver = DEFAULT_REGISTRY.resolver_for(pinned)
    assert resolver is not None, f"no resolver for the pinned {pinned}"
    ev = resolved(b.event("customer.subscription.created", b.subscription(), api_version=pinned))
    assert ev.resolution_flags == ()


@pytest.mark.parametrize("version", POST_CLOVER)
def test_credit_note_refunded_off_stripe_is_booked_by_the_credit_note(version: str) -> None:
    note = b.stripe_object("credit_note")
    note.update(
        type="post_payment",
        amount=3000,
        total=3000,
        post_payment_amount=3000,
        out_of_band_amount=None,
        refunds=[
            {
                "amount_refunded": 1000,
                "payment_record_refund": None,
                "refund": "re_1",
                "type": "refund",
            },
            {
                "amount_refunded": 1500,
                "payment_record_refund": {"payment_record": "pr_1", "refund_group": "g1"},
                "refund": None,
                "type": "payment_record_refund",
            },
        ],
    )
    ev = resolved(b.event("credit_note.created", note, api_version=version))
    assert ev.credit_note is not None
    assert (ev.credit_note.refund_ids, ev.credit_note.refunded_amount) == (("re_1",), 1000)
    row = classified(b.event("credit_note.created", note, api_version=version))
    # 1000 comes back as charge.refunded; the 2000 left (1500 off Stripe + 500 credit) is here
    assert (row.event_type, row.refund_amount) == (BillingEventType.PaymentRefunded, 2000)
