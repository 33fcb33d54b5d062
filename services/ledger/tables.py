"""Which columns of each ledger table the projection writes, and how conflicts resolve.

One description per table drives three things that must agree: the merge of several rows
for the same key inside a batch (Python), the upsert against the stored row (SQL), and the
diff of VerifyLedger. The conflict rules are what make the read models order-independent:

* ``latest`` columns are a snapshot: they take the values of the row whose version
  ``(state_event_created, state_event_id)`` is the greatest, whatever order rows arrive in;
* ``least`` / ``greatest`` columns are monotone (first subscribed, first paid, ...): they take
  the minimum / maximum over every row ever applied (NULLs ignored);
* ``sticky`` columns are ``latest`` columns holding facts that never change once known (a
  refund's customer and charge, an invoice's subscription, a creation time): a row whose
  object lacks the field (``NULL``) never erases a known value, whatever its version. Since
  every non-NULL value of such a column is the same, the result is still order-independent;
* ``derived`` columns are not written from events at all: the projection recomputes them from
  the other tables after each batch (e.g. an account's payment-method brand), so they too
  are a function of the applied set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

VERSION_COLUMNS = ("state_event_created", "state_event_id")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema(schema: str) -> str:
    """The schema name, refused unless it is a plain lower-case identifier (no quoting)."""
    if not _IDENT.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


def q(column: str) -> str:
    """Quote a column name (``interval`` is a keyword)."""
    return f'"{column}"'


@dataclass(frozen=True, slots=True)
class ReadModel:
    """A read-model table keyed by one Stripe object id."""

    name: str
    key: str
    latest: tuple[str, ...]
    least: tuple[str, ...] = ()
    greatest: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()
    sticky: frozenset[str] = frozenset()
    _columns: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.sticky <= set(self.latest):
            raise ValueError(f"{self.name}: sticky columns must be latest columns")
        columns = (self.key, *self.latest, *self.least, *self.greatest, *VERSION_COLUMNS)
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_names", frozenset(columns))

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of a projected row, in this order."""
        return self._columns

    def row(self, **values: Any) -> tuple[Any, ...]:
        """A row given by column name, as the tuple COPY and ``merge`` use (``columns``
        order). A missing or unknown name is a bug: ``ValueError``, never a shifted column."""
        if values.keys() != self._names:
            missing = sorted(self._names - values.keys())
            unknown = sorted(values.keys() - self._names)
            raise ValueError(f"{self.name} row: missing {missing}, unknown {unknown}")
        return tuple(map(values.__getitem__, self._columns))

    @property
    def version_index(self) -> int:
        return len(self.columns) - 2

    def merge(self, a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
        """The row that results from applying ``a`` and ``b`` (in either order)."""
        v = self.version_index
        newer, older = (b, a) if (b[v], b[v + 1]) > (a[v], a[v + 1]) else (a, b)
        if not self.least and not self.greatest and not self.sticky:
            return newer
        out = list(newer)
        for i, column in enumerate(self.latest, start=1):
            if column in self.sticky and out[i] is None:
                out[i] = older[i]
        start = 1 + len(self.latest)
        for i in range(start, start + len(self.least)):
            out[i] = _pick(min, newer[i], older[i])
        start += len(self.least)
        for i in range(start, start + len(self.greatest)):
            out[i] = _pick(max, newer[i], older[i])
        return tuple(out)

    def upsert_sql(self, schema: str, stage: str) -> str:
        """INSERT from the staging table, resolving conflicts by the rules above."""
        cols = ", ".join(q(c) for c in self.columns)
        newer = (
            "(EXCLUDED.state_event_created, EXCLUDED.state_event_id)"
            " > (t.state_event_created, t.state_event_id)"
        )
        sets = [
            f"{q(c)} = CASE WHEN {newer} THEN EXCLUDED.{q(c)} ELSE t.{q(c)} END"
            for c in (*self.latest, *VERSION_COLUMNS)
            if c not in self.sticky
        ]
        changed = [newer]
        for c in sorted(self.sticky):
            sets.append(
                f"{q(c)} = CASE WHEN {newer} THEN COALESCE(EXCLUDED.{q(c)}, t.{q(c)})"
                f" ELSE COALESCE(t.{q(c)}, EXCLUDED.{q(c)}) END"
            )
            changed.append(f"(t.{q(c)} IS NULL AND EXCLUDED.{q(c)} IS NOT NULL)")
        for fn, group in (("LEAST", self.least), ("GREATEST", self.greatest)):
            for c in group:
                sets.append(f"{q(c)} = {fn}(t.{q(c)}, EXCLUDED.{q(c)})")
                changed.append(f"t.{q(c)} IS DISTINCT FROM {fn}(t.{q(c)}, EXCLUDED.{q(c)})")
        return (  # identifiers only, all from this module or check_schema
            f"INSERT INTO {schema}.{self.name} AS t ({cols}) SELECT {cols} FROM {stage} "  # noqa: S608
            f"ON CONFLICT ({q(self.key)}) DO UPDATE SET {', '.join(sets)} "
            f"WHERE {' OR '.join(changed)}"
        )


def _pick(fn: Any, x: Any, y: Any) -> Any:
    if x is None:
        return y
    if y is None:
        return x
    return fn(x, y)


class BillingEventRow(NamedTuple):
    """One ``ledger.billing_events`` row as the projection writes it (named, still a tuple)."""

    stripe_event_id: str
    stripe_event_type: str
    event_type: str
    tenant_id: str | None
    stripe_customer_id: str | None
    subscription_id: str | None
    from_plan: str | None
    to_plan: str | None
    previous_amount: int | None
    new_amount: int | None
    amount_delta: int | None
    refund_amount: int | None
    committed_mrr: int | None
    forward_mrr: int | None
    currency: str | None
    occurred_at: datetime
    reason: str | None
    flags: list[str]
    api_version: str | None


class UnsupportedEventRow(NamedTuple):
    """One ``ledger.unsupported_events`` row."""

    stripe_event_id: str
    stripe_event_type: str | None
    api_version: str | None
    reason: str
    occurred_at: datetime | None
    #: ``Critical``: not classified (no billing row); ``Warning``: a version newer than every
    #: known family, classified by the newest resolver (``resolved_family``).
    severity: str = "Critical"
    resolved_family: str | None = None


BILLING_EVENT_COLUMNS: tuple[str, ...] = BillingEventRow._fields
UNSUPPORTED_COLUMNS: tuple[str, ...] = UnsupportedEventRow._fields

ACCOUNTS = ReadModel(
    "accounts",
    "stripe_customer_id",
    latest=(
        "tenant_id",
        "name",
        "email",
        "phone",
        "address",
        "address_country",
        "tax_exempt",
        "currency",
        "default_payment_method_id",
        "delinquent",
        "stripe_created_at",
    ),
    least=("deleted_at",),
    sticky=frozenset({"stripe_created_at"}),
    derived=(
        "tax_id",
        "payment_method_brand",
        "payment_method_last4",
        "payment_method_exp_month",
        "payment_method_exp_year",
    ),
)
PAYMENT_METHODS = ReadModel(
    "payment_methods",
    "payment_method_id",
    latest=("stripe_customer_id", "type", "brand", "last4", "exp_month", "exp_year"),
)
TAX_IDS = ReadModel("tax_ids", "tax_id", latest=("stripe_customer_id", "type", "value", "deleted"))
SUBSCRIPTIONS = ReadModel(
    "subscriptions",
    "subscription_id",
    latest=(
        "stripe_customer_id",
        "status",
        "plan",
        "price_id",
        "product_id",
        "unit_amount",
        "quantity",
        "interval",
        "interval_count",
        "currency",
        "current_period_start",
        "current_period_end",
        "trial_start",
        "trial_end",
        "cancel_at_period_end",
        "cancel_at",
        "canceled_at",
        "ended_at",
        "cancellation_reason",
        "paused",
        "schedule_id",
        "pending_plan",
        "pending_mrr",
        "pending_change_at",
        "committed_mrr",
        "forward_mrr",
        "mrr_flags",
    ),
    least=("subscribed_since",),
    sticky=frozenset({"stripe_customer_id"}),
    derived=("scheduled_plan", "scheduled_mrr", "scheduled_change_at"),
)
SUBSCRIPTION_SCHEDULES = ReadModel(
    "subscription_schedules",
    "schedule_id",
    latest=(
        "subscription_id",
        "stripe_customer_id",
        "status",
        "current_plan",
        "next_plan",
        "next_mrr",
        "next_phase_start",
        "released_at",
        "canceled_at",
    ),
    sticky=frozenset({"subscription_id", "stripe_customer_id"}),
)
PAYMENTS = ReadModel(
    "payments",
    "invoice_id",
    latest=(
        "stripe_customer_id",
        "subscription_id",
        "number",
        "status",
        "billing_reason",
        "currency",
        "amount_due",
        "amount_paid",
        "amount_remaining",
        "total",
        "subtotal",
        "tax",
        "amount_ex_tax",
        "amount_from_credit_balance",
        "attempt_count",
        "hosted_invoice_url",
        "invoice_pdf",
        "period_start",
        "period_end",
        "invoice_created",
        "marked_uncollectible_at",
        "invoice_charge_id",
        "invoice_payment_intent_id",
    ),
    least=("paid_at",),
    sticky=frozenset(
        {"stripe_customer_id", "subscription_id", "number", "currency", "invoice_created"}
    ),
    derived=(
        "payment_intent_id",
        "amount_refunded",
        "refunded_at",
        "amount_credited",
        "credit_noted_at",
    ),
)
INVOICE_PAYMENTS = ReadModel(
    "invoice_payments",
    "invoice_payment_id",
    latest=("invoice_id", "payment_intent_id", "charge_id", "amount_paid", "currency", "status"),
    least=("paid_at",),
    sticky=frozenset({"invoice_id", "currency"}),
)
REFUNDS = ReadModel(
    "refunds",
    "refund_id",
    latest=(
        "charge_id",
        "payment_intent_id",
        "stripe_customer_id",
        "amount",
        "currency",
        "status",
        "reason",
        "refund_created",
    ),
    sticky=frozenset(
        {"charge_id", "payment_intent_id", "stripe_customer_id", "currency", "refund_created"}
    ),
)
#: Charges, for the cumulative ``amount_refunded`` Stripe reports on each charge (from API
#: 2022-11-15 a charge.refunded event carries no refund list): net revenue takes the larger of
#: the refunds recorded and this total, so the same money is never counted twice.
CHARGES = ReadModel(
    "charges",
    "charge_id",
    latest=(
        "payment_intent_id",
        "invoice_id",
        "stripe_customer_id",
        "amount",
        "currency",
        "status",
        "charge_created",
    ),
    greatest=("amount_refunded", "refunded_at"),
    sticky=frozenset(
        {
            "payment_intent_id",
            "invoice_id",
            "stripe_customer_id",
            "amount",
            "currency",
            "charge_created",
        }
    ),
)
CREDIT_NOTES = ReadModel(
    "credit_notes",
    "credit_note_id",
    latest=(
        "invoice_id",
        "stripe_customer_id",
        "amount",
        "total",
        "currency",
        "status",
        "type",
        "reason",
        "refund_ids",
        "refunded_amount",
        "post_payment_amount",
        "out_of_band_amount",
        "credit_note_created",
        "voided_at",
    ),
    sticky=frozenset({"invoice_id", "stripe_customer_id", "currency", "credit_note_created"}),
)

READ_MODELS: tuple[ReadModel, ...] = (
    ACCOUNTS,
    PAYMENT_METHODS,
    TAX_IDS,
    SUBSCRIPTIONS,
    SUBSCRIPTION_SCHEDULES,
    PAYMENTS,
    INVOICE_PAYMENTS,
    REFUNDS,
    CREDIT_NOTES,
    CHARGES,
)
READ_MODEL_BY_NAME = {m.name: m for m in READ_MODELS}

#: Tables VerifyLedger rebuilds and diffs: (name, key column, columns never compared).
REBUILT_TABLES: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("billing_events", "stripe_event_id", frozenset({"id", "created_at"})),
    ("unsupported_events", "stripe_event_id", frozenset({"recorded_at"})),
    *((m.name, m.key, frozenset()) for m in READ_MODELS),
)
