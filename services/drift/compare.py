"""Compare one subscription as Stripe shows it with the ledger's row for it.

Pure functions over Stripe's JSON (any API version family) and the ledger's
``SubscriptionState``; the detector decides what to do with the differences.

Fields compared (issue 8): status, price, quantity, current period end, cancel at period end,
scheduled change (the schedule id), latest invoice (id, and its status when both sides know
the same invoice). Stripe's shapes moved between versions: from 2025-03-31 (basil) on, the
period lives on the subscription item, so the item's value is used when the top level has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import msgspec
import orjson
from billing.ledger.v1 import drift_inputs_pb2 as ledger_pb

JSON = dict[str, Any]


# The parts of a subscription list page that a pass reads: StripeView.of's fields, plus the
# id, ``created`` and ``customer`` (a subscription the ledger lacks is reported with them).
# Every other field - most of a page, which carries each latest invoice whole - is skipped
# by the decoder instead of being built into dicts. ``total=False``: a field Stripe leaves
# out stays absent, exactly as in the full parse.
class _Recurring(TypedDict, total=False):
    usage_type: Any


class _Price(TypedDict, total=False):
    id: Any
    recurring: _Recurring | None
    usage_type: Any


class _Item(TypedDict, total=False):
    price: _Price | None
    plan: _Price | None
    quantity: Any
    current_period_end: Any


class _Items(TypedDict, total=False):
    data: list[_Item]


class _Invoice(TypedDict, total=False):
    id: Any
    status: Any
    created: Any


class _Ref(TypedDict, total=False):
    id: Any


class _Subscription(TypedDict, total=False):
    id: Any
    created: Any
    customer: str | _Ref | None
    status: Any
    items: _Items | None
    quantity: Any
    current_period_end: Any
    cancel_at_period_end: Any
    schedule: str | _Ref | None
    latest_invoice: str | _Invoice | None


class _Page(TypedDict, total=False):
    data: list[_Subscription]
    has_more: Any


_PAGE_DECODER = msgspec.json.Decoder(_Page)


def decode_subscription_page(body: bytes) -> JSON:
    """A subscription list page as dicts of just the fields compared (see ``_Subscription``).

    Why: a page of 100 subscriptions with their latest invoices expanded is ~0.6-1 MB, and
    parsing all of it into dicts was most of a full pass's CPU per page; the typed decoder
    skips what is not read (about 4x faster). A page of a shape not foreseen here (a field
    of another type) is parsed whole instead: never a wrong comparison, only a slower page.
    Malformed JSON raises ``msgspec.DecodeError`` (the caller's invalid answer).
    """
    try:
        page: JSON = _PAGE_DECODER.decode(body)  # type: ignore[assignment]
    except msgspec.ValidationError:
        page = orjson.loads(body)
    return page


@dataclass(frozen=True, slots=True)
class FieldDiff:
    field: str
    ledger_value: str
    stripe_value: str


def _licensed_first_item(sub: JSON) -> JSON | None:
    items = (sub.get("items") or {}).get("data") or []
    for item in items:
        price = item.get("price") or item.get("plan") or {}
        recurring = price.get("recurring") or {}
        usage = recurring.get("usage_type") or price.get("usage_type")
        if usage != "metered":
            return item
    return items[0] if items else None


def _id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


@dataclass(slots=True)
class StripeView:
    """The compared fields of a Stripe subscription, as strings ('' when absent).

    Not frozen: two are built per subscription of a pass (100,000 of each), and a frozen
    dataclass sets each field through ``object.__setattr__``."""

    status: str
    price_id: str
    quantity: str
    current_period_end: str
    cancel_at_period_end: str
    schedule_id: str
    latest_invoice_id: str
    latest_invoice_status: str

    @classmethod
    def of(cls, sub: JSON) -> StripeView:
        item = _licensed_first_item(sub) or {}
        price = item.get("price") or item.get("plan") or {}
        period_end = sub.get("current_period_end") or item.get("current_period_end")
        quantity = item.get("quantity", sub.get("quantity"))
        invoice = sub.get("latest_invoice")
        return cls(
            status=str(sub.get("status") or ""),
            price_id=str(price.get("id") or ""),
            quantity=str(quantity) if quantity is not None else "",
            current_period_end=str(int(period_end)) if period_end else "",
            cancel_at_period_end=str(bool(sub.get("cancel_at_period_end"))).lower(),
            schedule_id=_id(sub.get("schedule")),
            latest_invoice_id=_id(invoice),
            latest_invoice_status=str(invoice.get("status") or "")
            if isinstance(invoice, dict)
            else "",
        )


def ledger_view(state: ledger_pb.SubscriptionState) -> StripeView:
    """The ledger's row in the same shape (strings), so one comparison serves both sides."""
    period_end = (
        str(state.current_period_end.seconds) if state.HasField("current_period_end") else ""
    )
    return StripeView(
        status=state.status,
        price_id=state.price_id,
        quantity=str(state.quantity) if state.quantity else "",
        current_period_end=period_end,
        cancel_at_period_end=str(state.cancel_at_period_end).lower(),
        schedule_id=state.schedule_id,
        latest_invoice_id=state.latest_invoice_id,
        latest_invoice_status=state.latest_invoice_status,
    )


_SIMPLE_FIELDS = (
    "status",
    "price_id",
    "quantity",
    "current_period_end",
    "cancel_at_period_end",
    "schedule_id",
)


def compare(stripe_sub: JSON, state: ledger_pb.SubscriptionState) -> list[FieldDiff]:
    """The fields where the ledger's row differs from Stripe's subscription."""
    theirs = StripeView.of(stripe_sub)
    ours = ledger_view(state)
    if ours == theirs:
        return []  # the usual case: every field equal, so no rule below can differ
    diffs = [
        FieldDiff(name, getattr(ours, name), getattr(theirs, name))
        for name in _SIMPLE_FIELDS
        if getattr(ours, name) != getattr(theirs, name)
    ]
    if theirs.latest_invoice_id and ours.latest_invoice_id != theirs.latest_invoice_id:
        # Only a ledger *behind* Stripe is drift: Stripe's pointer can lag a proration
        # invoice of the same subscription, which the ledger then rightly shows as newer.
        invoice = stripe_sub.get("latest_invoice")
        stripe_created = int(invoice.get("created") or 0) if isinstance(invoice, dict) else 0
        ledger_created = (
            state.latest_invoice_created.seconds if state.HasField("latest_invoice_created") else 0
        )
        if not ours.latest_invoice_id or not stripe_created or stripe_created > ledger_created:
            diffs.append(
                FieldDiff("latest_invoice", ours.latest_invoice_id, theirs.latest_invoice_id)
            )
    elif (
        theirs.latest_invoice_status
        and ours.latest_invoice_id == theirs.latest_invoice_id
        and ours.latest_invoice_status != theirs.latest_invoice_status
    ):
        diffs.append(
            FieldDiff(
                "latest_invoice_status", ours.latest_invoice_status, theirs.latest_invoice_status
            )
        )
    return diffs
