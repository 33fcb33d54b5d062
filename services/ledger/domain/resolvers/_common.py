"""Shared, total parsing helpers and the resolver base class.

Every helper accepts ``object`` and returns ``None``/empty on anything unexpected, so a
resolver never raises on a malformed, templated or version-mismatched payload. The family
resolvers (``legacy``, ``basil``) override the few hooks where the shapes differ and fall back
to the other family's location, because an envelope's ``api_version`` does not always match
its object's shape.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, TypeGuard

from services.ledger.domain.money import parse_currency
from services.ledger.domain.normalised import (
    ChargeSnapshot,
    CreditNoteSnapshot,
    CustomerSnapshot,
    DiscountSnapshot,
    InvoicePaymentSnapshot,
    InvoiceSnapshot,
    NormalisedEvent,
    PauseCollection,
    PaymentMethodSnapshot,
    PendingUpdate,
    RefundSnapshot,
    ScheduleItem,
    SchedulePhase,
    ScheduleSnapshot,
    SubscriptionItem,
    SubscriptionSnapshot,
    TaxRateSnapshot,
)
from services.ledger.domain.resolvers.base import ApiVersion

_EMPTY: Mapping[str, Any] = {}


# Parsed JSON is plain dicts: ``type(v) is dict`` is checked first because ``isinstance``
# against the ``Mapping`` ABC costs ~10x more, and these helpers run ~100 times per event.


_NOT_MAPPINGS = frozenset({type(None), str, int, float, bool, list})


def is_map(value: object) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, answered without the ABC for JSON's own types."""
    kind = type(value)
    if kind is dict:
        return True
    if kind in _NOT_MAPPINGS:
        return False
    return isinstance(value, Mapping)


def as_map(value: object) -> Mapping[str, Any]:
    if type(value) is dict:  # the common case first, without a second call (issue 12)
        return value
    return value if is_map(value) else _EMPTY


def as_list(value: object) -> list[Any]:
    """A JSON list, or the ``data`` of a Stripe list object."""
    if isinstance(value, list):
        return value
    if is_map(value) and isinstance(value.get("data"), list):
        return list(value["data"])
    return []


def as_str(value: object) -> str | None:
    if type(value) is str:
        return value or None
    return value if isinstance(value, str) and value != "" else None


def as_int(value: object) -> int | None:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[return-value]
    if value is None or kind is bool:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def as_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str, float)):
        try:
            result = Decimal(str(value))
        except InvalidOperation:
            return None
        # finite and of sane magnitude (a huge exponent would make exact arithmetic explode)
        if not result.is_finite() or abs(result.adjusted()) > 30:
            return None
        return result
    return None


def ref_id(value: object) -> str | None:
    """An id from either a bare id string or an expanded object."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if is_map(value):
        return as_str(value.get("id"))
    return None


def plan_label(
    price: Mapping[str, Any], plan: Mapping[str, Any], price_id: str | None
) -> tuple[str | None, str | None, str | None]:
    """(nickname, lookup_key, display name) of a priced line: the name is the lookup key,
    else the nickname, else the legacy plan's name, else the price id."""
    nickname = as_str(price.get("nickname")) or as_str(plan.get("nickname"))
    lookup_key = as_str(price.get("lookup_key"))
    return nickname, lookup_key, lookup_key or nickname or as_str(plan.get("name")) or price_id


def overlay(obj: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """The object before the change: top-level keys of ``previous_attributes`` replaced."""
    merged = dict(obj)
    merged.update(previous)
    return merged


#: The keys of a subscription object that ``BaseResolver.subscription_items`` reads.
_SUBSCRIPTION_ITEM_INPUTS = frozenset({"currency", "items", "plan", "quantity"})


class BaseResolver:
    """Common resolver; subclasses set ``family`` and override the shape hooks."""

    # Class attributes (ClassVar): the same value on the class and its instances, also when
    # compiled (mypyc makes an annotated class-level default a per-instance attribute).
    family: ClassVar[str] = "base"
    introduced: ClassVar[dt.date] = dt.date.min

    def accepts(self, version: ApiVersion) -> bool:  # pragma: no cover - overridden
        return False

    # ----------------------------------------------------------------- shape hooks
    def subscription_periods(
        self, obj: Mapping[str, Any], items: tuple[SubscriptionItem, ...]
    ) -> tuple[int | None, int | None]:
        raise NotImplementedError

    def invoice_subscription_id(self, obj: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    def invoice_charge_id(self, obj: Mapping[str, Any]) -> str | None:
        raise NotImplementedError

    # ----------------------------------------------------------------- envelope
    def resolve(self, event: Mapping[str, Any], version: ApiVersion) -> NormalisedEvent:
        data = as_map(event.get("data"))
        obj = as_map(data.get("object"))
        previous = dict(as_map(data.get("previous_attributes")))
        event_type = as_str(event.get("type")) or ""
        object_type = as_str(obj.get("object"))
        created = as_int(event.get("created"))
        if created is None:
            created = as_int(obj.get("created")) or 0

        sub = prev_sub = None
        invoice = charge = refund = credit_note = customer = None
        payment_method = invoice_payment = schedule = prev_schedule = None
        if object_type == "subscription":
            sub = self.subscription(obj)
            if previous:
                # The items are the costly part; when the change left every input of
                # ``subscription_items`` alone, the state before has the very same items.
                same = previous.keys().isdisjoint(_SUBSCRIPTION_ITEM_INPUTS)
                prev_sub = self.subscription(
                    overlay(obj, previous), items=sub.items if same else None
                )
        elif object_type == "invoice":
            invoice = self.invoice(obj)
        elif object_type == "charge":
            charge = self.charge(obj)
        elif object_type == "refund":
            refund = self.refund(obj)
        elif object_type == "credit_note":
            credit_note = self.credit_note(obj)
        elif object_type == "customer":
            customer = self.customer(obj, deleted=event_type == "customer.deleted")
        elif object_type == "payment_method":
            payment_method = self.payment_method(obj)
        elif object_type == "invoice_payment":
            invoice_payment = self.invoice_payment(obj)
        elif object_type == "subscription_schedule":
            schedule = self.schedule(obj)
            if previous:
                prev_schedule = self.schedule(overlay(obj, previous))

        if object_type == "customer":
            customer_id = ref_id(obj.get("id"))
        else:
            customer_id = ref_id(obj.get("customer"))
        return NormalisedEvent(
            event_id=as_str(event.get("id")),
            event_type=event_type,
            created=created,
            api_version=version.raw,
            family=self.family,
            object_type=object_type,
            object_id=as_str(obj.get("id")),
            customer_id=customer_id,
            tenant_id=self.tenant_id(obj, object_type),
            livemode=as_bool(event.get("livemode")),
            previous_attributes=previous,
            subscription=sub,
            previous_subscription=prev_sub,
            invoice=invoice,
            charge=charge,
            refund=refund,
            credit_note=credit_note,
            customer=customer,
            payment_method=payment_method,
            invoice_payment=invoice_payment,
            schedule=schedule,
            previous_schedule=prev_schedule,
        )

    @staticmethod
    def tenant_id(obj: Mapping[str, Any], object_type: str | None) -> str | None:
        """``customer.metadata.tenant_id`` (customer events or an expanded customer), else the
        object's own ``metadata.tenant_id``; ``None`` otherwise (the ledger maps customers to
        tenants through its directory)."""
        if object_type == "customer":
            return as_str(as_map(obj.get("metadata")).get("tenant_id"))
        expanded = as_map(obj.get("customer"))
        found = as_str(as_map(expanded.get("metadata")).get("tenant_id"))
        if found is not None:
            return found
        return as_str(as_map(obj.get("metadata")).get("tenant_id"))

    # ----------------------------------------------------------------- pieces
    @staticmethod
    def discount(value: object) -> DiscountSnapshot | None:
        if isinstance(value, str):
            return DiscountSnapshot(id=value, coupon_id=None)
        d = as_map(value)
        if not d:
            return None
        coupon_raw = d.get("coupon")
        if coupon_raw is None:  # basil+: discount.source.coupon
            coupon_raw = as_map(d.get("source")).get("coupon")
        coupon = as_map(coupon_raw)
        percent = as_decimal(coupon.get("percent_off"))
        return DiscountSnapshot(
            id=as_str(d.get("id")),
            coupon_id=ref_id(coupon_raw),
            percent_off=percent,
            amount_off=as_int(coupon.get("amount_off")),
            currency=parse_currency(coupon.get("currency")),
            duration=as_str(coupon.get("duration")),
            duration_in_months=as_int(coupon.get("duration_in_months")),
            start=as_int(d.get("start")),
            end=as_int(d.get("end")),
        )

    def discounts(self, obj: Mapping[str, Any]) -> tuple[tuple[DiscountSnapshot, ...], int]:
        """Known discounts (deduplicated by id/coupon) and the count of id-only references."""
        raw: list[Any] = []
        if obj.get("discount") is not None:
            raw.append(obj.get("discount"))
        raw.extend(as_list(obj.get("discounts")))
        known: list[DiscountSnapshot] = []
        seen: set[str] = set()
        unresolved = 0
        for entry in raw:
            snap = self.discount(entry)
            if snap is None:
                continue
            key = snap.id or snap.coupon_id or repr(snap)
            if key in seen:
                continue
            seen.add(key)
            if snap.percent_off is None and snap.amount_off is None:
                unresolved += 1
                continue
            known.append(snap)
        return tuple(known), unresolved

    @staticmethod
    def tax_rates(value: object) -> tuple[TaxRateSnapshot, ...]:
        """Tax rates (objects, or bare ids whose percentage is then unknown)."""
        out: list[TaxRateSnapshot] = []
        for entry in as_list(value):
            if isinstance(entry, str):
                out.append(TaxRateSnapshot(id=entry or None, percentage=None, inclusive=None))
            elif is_map(entry):
                out.append(
                    TaxRateSnapshot(
                        id=as_str(entry.get("id")),
                        percentage=as_decimal(entry.get("percentage")),
                        inclusive=as_bool(entry.get("inclusive")),
                    )
                )
        return tuple(out)

    def item(
        self,
        item: Mapping[str, Any],
        *,
        fallback_currency: str | None = None,
        default_quantity: int | None = 1,
    ) -> SubscriptionItem:
        """A subscription item (or a bare price/plan object wrapped as one)."""
        price_raw = item.get("price")
        plan_raw = item.get("plan")
        price = as_map(price_raw)
        plan = as_map(plan_raw)
        if item.get("object") in ("price", "plan"):  # bare price or plan
            price = item if item.get("object") == "price" else price
            plan = item if item.get("object") == "plan" else plan
        recurring = as_map(price.get("recurring"))
        unit_amount = as_int(price.get("unit_amount"))
        unit_amount_decimal = as_decimal(price.get("unit_amount_decimal"))
        tax_behavior = as_str(price.get("tax_behavior"))
        if unit_amount is None and unit_amount_decimal is None and price.get("id") is None:
            unit_amount = as_int(plan.get("amount"))
            unit_amount_decimal = as_decimal(plan.get("amount_decimal"))
        currency = parse_currency(price.get("currency")) if price else None
        if currency is None:
            currency = parse_currency(plan.get("currency")) or fallback_currency
        option_missing = False
        if price and fallback_currency is not None and currency not in (None, fallback_currency):
            # A multi-currency price billed in the subscription's currency: that currency's
            # option holds the amounts (MRR rule 2); without it the amount is unknown.
            option = as_map(as_map(price.get("currency_options")).get(fallback_currency.lower()))
            if option:
                unit_amount = as_int(option.get("unit_amount"))
                unit_amount_decimal = as_decimal(option.get("unit_amount_decimal"))
                tax_behavior = as_str(option.get("tax_behavior")) or tax_behavior
                currency = fallback_currency
            else:
                option_missing = True
        if price:
            interval = as_str(recurring.get("interval"))
            interval_count = as_int(recurring.get("interval_count"))
            usage_type = as_str(recurring.get("usage_type"))
        else:
            interval = as_str(plan.get("interval"))
            interval_count = as_int(plan.get("interval_count"))
            usage_type = as_str(plan.get("usage_type"))
        if interval is None:
            interval = as_str(plan.get("interval"))
        if interval_count is None or interval_count < 1:
            interval_count = 1
        price_id = ref_id(price_raw) if price_raw is not None else None
        if item.get("object") == "price":
            price_id = as_str(item.get("id"))
        if price_id is None:
            price_id = ref_id(plan_raw) if plan_raw is not None else None
            if item.get("object") == "plan":
                price_id = as_str(item.get("id"))
        nickname, lookup_key, plan_name = plan_label(price, plan, price_id)
        quantity = as_int(item.get("quantity"))
        if quantity is None and usage_type != "metered":
            quantity = default_quantity
        item_discounts: list[DiscountSnapshot] = []
        item_unresolved = 0
        for entry in as_list(item.get("discounts")):
            snap = self.discount(entry)
            if snap is None:
                continue
            if snap.percent_off is not None or snap.amount_off is not None:
                item_discounts.append(snap)
            else:
                item_unresolved += 1
        transform = as_map(price.get("transform_quantity")) or as_map(plan.get("transform_usage"))
        divide_by = as_int(transform.get("divide_by"))
        return SubscriptionItem(
            id=as_str(item.get("id")) if item.get("object") == "subscription_item" else None,
            price_id=price_id,
            product_id=ref_id(price.get("product")) or ref_id(plan.get("product")),
            plan=plan_name,
            nickname=nickname,
            lookup_key=lookup_key,
            unit_amount=unit_amount,
            unit_amount_decimal=unit_amount_decimal,
            currency=currency,
            interval=interval,
            interval_count=interval_count,
            quantity=quantity,
            usage_type=usage_type,
            billing_scheme=as_str(price.get("billing_scheme"))
            or as_str(plan.get("billing_scheme")),
            current_period_start=as_int(item.get("current_period_start")),
            current_period_end=as_int(item.get("current_period_end")),
            discounts=tuple(item_discounts),
            discount_refs_unresolved=item_unresolved,
            tax_behavior=tax_behavior,
            tax_rates=self.tax_rates(item.get("tax_rates")),
            transform_divide_by=divide_by if divide_by is not None and divide_by > 0 else None,
            transform_round=as_str(transform.get("round")),
            currency_option_missing=option_missing,
        )

    def subscription_items(self, obj: Mapping[str, Any]) -> tuple[SubscriptionItem, ...]:
        # Reads only the keys in ``_SUBSCRIPTION_ITEM_INPUTS`` (keep the two in step).
        currency = parse_currency(obj.get("currency"))
        raw_items = [i for i in as_list(obj.get("items")) if is_map(i)]
        if raw_items:
            return tuple(self.item(i, fallback_currency=currency) for i in raw_items)
        # 2014-era shape: one plan and a quantity directly on the subscription.
        if is_map(obj.get("plan")):
            return (
                self.item(
                    {"plan": obj.get("plan"), "quantity": obj.get("quantity")},
                    fallback_currency=currency,
                ),
            )
        return ()

    def subscription(
        self, obj: Mapping[str, Any], *, items: tuple[SubscriptionItem, ...] | None = None
    ) -> SubscriptionSnapshot:
        """``items``: ``subscription_items(obj)`` when the caller already has it."""
        if items is None:
            items = self.subscription_items(obj)
        currency = parse_currency(obj.get("currency"))
        if currency is None:
            currency = next((i.currency for i in items if i.currency), None)
        discounts, unresolved = self.discounts(obj)
        start, end = self.subscription_periods(obj, items)
        pause = as_map(obj.get("pause_collection"))
        pending = as_map(obj.get("pending_update"))
        pending_update = self.pending_update(pending, currency) if pending else None
        schedule_raw = obj.get("schedule")
        details = as_map(obj.get("cancellation_details"))
        return SubscriptionSnapshot(
            id=as_str(obj.get("id")),
            customer_id=ref_id(obj.get("customer")),
            status=as_str(obj.get("status")),
            currency=currency,
            items=items,
            discounts=discounts,
            discount_refs_unresolved=unresolved,
            default_tax_rates=self.tax_rates(obj.get("default_tax_rates")),
            automatic_tax=as_map(obj.get("automatic_tax")).get("enabled") is True,
            created=as_int(obj.get("created")),
            start_date=as_int(obj.get("start_date")) or as_int(obj.get("start")),
            trial_start=as_int(obj.get("trial_start")),
            trial_end=as_int(obj.get("trial_end")),
            cancel_at_period_end=obj.get("cancel_at_period_end") is True,
            cancel_at=as_int(obj.get("cancel_at")),
            canceled_at=as_int(obj.get("canceled_at")),
            ended_at=as_int(obj.get("ended_at")),
            current_period_start=start,
            current_period_end=end,
            pause_collection=(
                PauseCollection(as_str(pause.get("behavior")), as_int(pause.get("resumes_at")))
                if pause
                else None
            ),
            pending_update=pending_update,
            schedule_id=ref_id(schedule_raw),
            schedule=self.schedule(schedule_raw) if is_map(schedule_raw) else None,
            cancellation_reason=as_str(details.get("reason")),
            cancellation_feedback=as_str(details.get("feedback")),
            default_payment_method=ref_id(obj.get("default_payment_method")),
            latest_invoice_id=ref_id(obj.get("latest_invoice")),
            metadata=dict(as_map(obj.get("metadata"))),
        )

    def pending_update(self, pending: Mapping[str, Any], currency: str | None) -> PendingUpdate:
        """``subscription.pending_update``: the items waiting for a payment to succeed."""
        return PendingUpdate(
            subscription_items=tuple(
                self.item(i, fallback_currency=currency)
                for i in as_list(pending.get("subscription_items"))
                if is_map(i)
            ),
            expires_at=as_int(pending.get("expires_at")),
            trial_end=as_int(pending.get("trial_end")),
        )

    def schedule(self, obj: Mapping[str, Any]) -> ScheduleSnapshot:
        phases: list[SchedulePhase] = []
        for raw_phase in as_list(obj.get("phases")):
            phase = as_map(raw_phase)
            phase_currency = parse_currency(phase.get("currency"))
            items: list[ScheduleItem] = []
            for raw_item in as_list(phase.get("items")):
                entry = as_map(raw_item)
                price_raw = entry.get("price")
                if price_raw is None:
                    price_raw = entry.get("plan")
                expanded = (
                    self.item(
                        {
                            "price": price_raw,
                            "quantity": entry.get("quantity"),
                            "discounts": entry.get("discounts"),
                            "tax_rates": entry.get("tax_rates"),
                        },
                        fallback_currency=phase_currency,
                    )
                    if is_map(price_raw) and as_map(price_raw).get("unit_amount") is not None
                    else None
                )
                items.append(
                    ScheduleItem(
                        price_id=ref_id(price_raw),
                        quantity=as_int(entry.get("quantity")),
                        price=expanded,
                    )
                )
            phase_discounts, phase_unresolved = self.discounts(
                {
                    "discount": (
                        {"coupon": phase.get("coupon")} if phase.get("coupon") is not None else None
                    ),
                    "discounts": phase.get("discounts"),
                }
            )
            phases.append(
                SchedulePhase(
                    start_date=as_int(phase.get("start_date")),
                    end_date=as_int(phase.get("end_date")),
                    items=tuple(items),
                    currency=phase_currency,
                    discounts=phase_discounts,
                    discount_refs_unresolved=phase_unresolved,
                )
            )
        current = as_map(obj.get("current_phase"))
        return ScheduleSnapshot(
            id=as_str(obj.get("id")),
            subscription_id=ref_id(obj.get("subscription")),
            customer_id=ref_id(obj.get("customer")),
            status=as_str(obj.get("status")),
            end_behavior=as_str(obj.get("end_behavior")),
            current_phase_start=as_int(current.get("start_date")),
            current_phase_end=as_int(current.get("end_date")),
            phases=tuple(phases),
            released_at=as_int(obj.get("released_at")),
            released_subscription=ref_id(obj.get("released_subscription")),
            canceled_at=as_int(obj.get("canceled_at")),
            completed_at=as_int(obj.get("completed_at")),
        )

    def invoice(self, obj: Mapping[str, Any]) -> InvoiceSnapshot:
        status = as_str(obj.get("status"))
        paid = as_bool(obj.get("paid"))
        if paid is None and status is not None:
            paid = status == "paid"
        transitions = as_map(obj.get("status_transitions"))
        tax = as_int(obj.get("tax"))
        if tax is None and isinstance(obj.get("total_taxes"), list):
            tax = sum(as_int(as_map(t).get("amount")) or 0 for t in obj["total_taxes"])
        line_plans: list[str] = []
        for line in as_list(obj.get("lines")):
            entry = as_map(line)
            if entry.get("price") is None and entry.get("plan") is None:
                continue
            # Only the line's plan name is needed: the same label as its item's, without
            # building the whole item (a third of an invoice event's resolving time).
            price_raw, plan_raw = entry.get("price"), entry.get("plan")
            price_id = ref_id(price_raw) if price_raw is not None else None
            if price_id is None:
                price_id = ref_id(plan_raw) if plan_raw is not None else None
            name = plan_label(as_map(price_raw), as_map(plan_raw), price_id)[2]
            if name is not None and name not in line_plans:
                line_plans.append(name)
        return InvoiceSnapshot(
            id=as_str(obj.get("id")),
            customer_id=ref_id(obj.get("customer")),
            subscription_id=self.invoice_subscription_id(obj),
            status=status,
            billing_reason=as_str(obj.get("billing_reason")),
            currency=parse_currency(obj.get("currency")),
            amount_due=as_int(obj.get("amount_due")),
            amount_paid=as_int(obj.get("amount_paid")),
            amount_remaining=as_int(obj.get("amount_remaining")),
            total=as_int(obj.get("total")),
            subtotal=as_int(obj.get("subtotal")),
            tax=tax,
            attempt_count=as_int(obj.get("attempt_count")),
            attempted=as_bool(obj.get("attempted")),
            paid=paid,
            charge_id=self.invoice_charge_id(obj),
            payment_intent_id=ref_id(obj.get("payment_intent")),
            period_start=as_int(obj.get("period_start")),
            period_end=as_int(obj.get("period_end")),
            paid_at=as_int(transitions.get("paid_at")),
            marked_uncollectible_at=as_int(transitions.get("marked_uncollectible_at")),
            paid_out_of_band=as_bool(obj.get("paid_out_of_band")),
            line_plans=tuple(line_plans),
        )

    @staticmethod
    def _parent_subscription(obj: Mapping[str, Any]) -> str | None:
        parent = as_map(obj.get("parent"))
        found = ref_id(as_map(parent.get("subscription_details")).get("subscription"))
        if found is not None:
            return found
        for line in as_list(obj.get("lines")):
            line_parent = as_map(as_map(line).get("parent"))
            details = as_map(line_parent.get("subscription_item_details"))
            found = ref_id(details.get("subscription"))
            if found is not None:
                return found
        return None

    @staticmethod
    def _legacy_subscription(obj: Mapping[str, Any]) -> str | None:
        found = ref_id(obj.get("subscription"))
        if found is not None:
            return found
        for line in as_list(obj.get("lines")):
            found = ref_id(as_map(line).get("subscription"))
            if found is not None:
                return found
        return None

    def refund(self, obj: Mapping[str, Any]) -> RefundSnapshot:
        return RefundSnapshot(
            id=as_str(obj.get("id")),
            charge_id=ref_id(obj.get("charge")),
            payment_intent_id=ref_id(obj.get("payment_intent")),
            amount=as_int(obj.get("amount")),
            currency=parse_currency(obj.get("currency")),
            status=as_str(obj.get("status")),
            reason=as_str(obj.get("reason")),
            created=as_int(obj.get("created")),
        )

    def charge(self, obj: Mapping[str, Any]) -> ChargeSnapshot:
        refunds = tuple(self.refund(r) for r in as_list(obj.get("refunds")) if is_map(r))
        return ChargeSnapshot(
            id=as_str(obj.get("id")),
            customer_id=ref_id(obj.get("customer")),
            invoice_id=ref_id(obj.get("invoice")),
            payment_intent_id=ref_id(obj.get("payment_intent")),
            amount=as_int(obj.get("amount")),
            amount_captured=as_int(obj.get("amount_captured")),
            amount_refunded=as_int(obj.get("amount_refunded")),
            refunded=as_bool(obj.get("refunded")),
            currency=parse_currency(obj.get("currency")),
            status=as_str(obj.get("status")),
            paid=as_bool(obj.get("paid")),
            failure_code=as_str(obj.get("failure_code")),
            failure_message=as_str(obj.get("failure_message")),
            created=as_int(obj.get("created")),
            refunds=refunds,
        )

    def credit_note(self, obj: Mapping[str, Any]) -> CreditNoteSnapshot:
        refund_ids: list[str] = []
        refunded = 0
        single = obj.get("refund")  # legacy: one refund id/object
        if ref_id(single) is not None:
            refund_ids.append(ref_id(single) or "")
            refunded += as_int(as_map(single).get("amount")) or 0
        for entry in as_list(obj.get("refunds")):  # basil+: [{refund, amount_refunded}]
            e = as_map(entry)
            rid = ref_id(e.get("refund")) or ref_id(entry)
            if rid is None:  # clover+: type "payment_record_refund" (refunded off Stripe)
                continue
            if rid not in refund_ids:
                refund_ids.append(rid)
            refunded += as_int(e.get("amount_refunded")) or 0
        return CreditNoteSnapshot(
            id=as_str(obj.get("id")),
            invoice_id=ref_id(obj.get("invoice")),
            customer_id=ref_id(obj.get("customer")),
            amount=as_int(obj.get("amount")),
            total=as_int(obj.get("total")),
            currency=parse_currency(obj.get("currency")),
            status=as_str(obj.get("status")),
            type=as_str(obj.get("type")),
            reason=as_str(obj.get("reason")),
            refund_ids=tuple(refund_ids),
            refunded_amount=refunded if refund_ids else None,
            out_of_band_amount=as_int(obj.get("out_of_band_amount")),
            pre_payment_amount=as_int(obj.get("pre_payment_amount")),
            post_payment_amount=as_int(obj.get("post_payment_amount")),
            created=as_int(obj.get("created")),
            effective_at=as_int(obj.get("effective_at")),
            voided_at=as_int(obj.get("voided_at")),
        )

    def customer(self, obj: Mapping[str, Any], *, deleted: bool = False) -> CustomerSnapshot:
        address = obj.get("address")
        tax_ids = tuple(
            v
            for v in (
                as_str(as_map(t).get("value")) or as_str(as_map(t).get("id")) or as_str(t)
                for t in as_list(obj.get("tax_ids"))
            )
            if v is not None
        )
        return CustomerSnapshot(
            id=as_str(obj.get("id")),
            email=as_str(obj.get("email")),
            name=as_str(obj.get("name")),
            address=dict(address) if is_map(address) else None,
            tax_exempt=as_str(obj.get("tax_exempt")),
            tax_ids=tax_ids,
            default_payment_method=ref_id(
                as_map(obj.get("invoice_settings")).get("default_payment_method")
            ),
            default_source=ref_id(obj.get("default_source")),
            currency=parse_currency(obj.get("currency")),
            delinquent=as_bool(obj.get("delinquent")),
            deleted=deleted or obj.get("deleted") is True,
            metadata=dict(as_map(obj.get("metadata"))),
        )

    @staticmethod
    def payment_method(obj: Mapping[str, Any]) -> PaymentMethodSnapshot:
        card = as_map(obj.get("card"))
        return PaymentMethodSnapshot(
            id=as_str(obj.get("id")),
            customer_id=ref_id(obj.get("customer")),
            type=as_str(obj.get("type")),
            card_brand=as_str(card.get("brand")),
            card_last4=as_str(card.get("last4")),
            card_exp_month=as_int(card.get("exp_month")),
            card_exp_year=as_int(card.get("exp_year")),
        )

    @staticmethod
    def invoice_payment(obj: Mapping[str, Any]) -> InvoicePaymentSnapshot:
        payment = as_map(obj.get("payment"))
        return InvoicePaymentSnapshot(
            id=as_str(obj.get("id")),
            invoice_id=ref_id(obj.get("invoice")),
            amount_paid=as_int(obj.get("amount_paid")),
            amount_requested=as_int(obj.get("amount_requested")),
            currency=parse_currency(obj.get("currency")),
            status=as_str(obj.get("status")),
            payment_intent_id=ref_id(payment.get("payment_intent")),
            charge_id=ref_id(payment.get("charge")),
            paid_at=as_int(as_map(obj.get("status_transitions")).get("paid_at")),
            is_default=as_bool(obj.get("is_default")),
        )


def item_periods(items: tuple[SubscriptionItem, ...]) -> tuple[int | None, int | None]:
    """The subscription's period from its items: earliest start, latest end."""
    starts = [i.current_period_start for i in items if i.current_period_start is not None]
    ends = [i.current_period_end for i in items if i.current_period_end is not None]
    return (min(starts) if starts else None, max(ends) if ends else None)
