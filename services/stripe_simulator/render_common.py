"""Pieces of Stripe object shapes shared by every API version family."""

from __future__ import annotations

from typing import Any

from .model import Charge, Customer, PaymentMethod, Price, Product

JSON = dict[str, Any]

EMPTY_ADDRESS: JSON = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}


def address(addr: dict[str, str | None] | None) -> JSON:
    """A full address dict (Stripe always sends all six keys)."""
    return dict(addr) if addr else dict(EMPTY_ADDRESS)


def shipping(customer_name: str, addr: dict[str, str | None] | None) -> JSON:
    """Shipping details block (charges and payment intents of the legacy shape carry one)."""
    return {
        "address": address(addr),
        "carrier": None,
        "name": customer_name,
        "phone": None,
        "tracking_number": None,
    }


def empty_list(url: str) -> JSON:
    """An embedded list object with no data."""
    return {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": url}


def embedded_list(data: list[JSON], url: str) -> JSON:
    """An embedded list object (``has_more`` is always false: the simulator embeds all)."""
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


def format_amount(amount: int, currency: str) -> str:
    """Human text for line descriptions (zero-decimal currencies have no minor unit)."""
    if currency == "jpy":
        return f"¥{amount:,}"
    symbol = {"usd": "$", "eur": "€"}.get(currency, currency.upper() + " ")
    return f"{symbol}{amount / 100:,.2f}"


def line_description(price: Price, quantity: int) -> str:
    """Description Stripe writes on subscription invoice lines."""
    every = (
        price.interval
        if price.interval_count == 1
        else (f"{price.interval_count} {price.interval}s")
    )
    return (
        f"{quantity} \u00d7 {price.product.name} "
        f"(at {format_amount(price.unit_amount, price.currency)} / {every})"
    )


def card_checks(cvc: str | None) -> JSON:
    """Card checks block."""
    return {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": cvc}


def billing_details(customer: Customer | None, with_tax_id: bool) -> JSON:
    """Billing details of a payment method / charge."""
    out: JSON = {
        "address": address(customer.address if customer else None),
        "email": customer.email if customer else None,
        "name": customer.name if customer else None,
        "phone": None,
    }
    if with_tax_id:
        out["tax_id"] = None
    return out


def outcome(charge: Charge, basil: bool) -> JSON:
    """Charge outcome block (approved or issuer decline)."""
    ok = charge.status == "succeeded"
    out: JSON = {
        "network_status": "approved_by_network" if ok else "declined_by_network",
        "reason": None if ok else "generic_decline",
        "risk_level": "normal",
        "risk_score": 20 + (charge.amount % 37),
        "seller_message": "Payment complete."
        if ok
        else "The bank did not return any further details with this decline.",
        "type": "authorized" if ok else "issuer_declined",
    }
    if basil:
        out = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            **out,
        }
    return out


def product(p: Product, basil: bool) -> JSON:
    """Product object."""
    out: JSON = {
        "id": p.id,
        "object": "product",
        "active": True,
        "attributes": [],
        "created": p.created,
        "default_price": None,
        "description": f"{p.name} plan",
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": p.name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": p.created,
        "url": None,
    }
    if not basil:
        del out["default_price"], out["marketing_features"]
    return out


_PRICE_CACHE: dict[tuple[str, bool], JSON] = {}
_PLAN_CACHE: dict[tuple[str, bool], JSON] = {}


def price(p: Price, basil: bool) -> JSON:
    """Price object (memoised: prices are immutable and embedded in most events).

    The returned dict is shared between events; callers that mutate objects must copy first.
    """
    key = (p.id, basil)
    hit = _PRICE_CACHE.get(key)
    if hit is None:
        hit = _PRICE_CACHE[key] = _price(p, basil)
    return hit


def plan(p: Price, basil: bool) -> JSON:
    """Legacy ``plan`` view of a price (memoised like :func:`price`)."""
    key = (p.id, basil)
    hit = _PLAN_CACHE.get(key)
    if hit is None:
        hit = _PLAN_CACHE[key] = _plan(p, basil)
    return hit


def _price(p: Price, basil: bool) -> JSON:
    recurring: JSON = {
        "aggregate_usage": None,
        "interval": p.interval,
        "interval_count": p.interval_count,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
    out: JSON = {
        "id": p.id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": p.nickname,
        "product": p.product.id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": p.unit_amount,
        "unit_amount_decimal": str(p.unit_amount),
    }
    if basil:
        del recurring["aggregate_usage"]
    else:
        del out["custom_unit_amount"], recurring["meter"]
    return out


def _plan(p: Price, basil: bool) -> JSON:
    out: JSON = {
        "id": p.id,
        "object": "plan",
        "active": True,
        "aggregate_usage": None,
        "amount": p.unit_amount,
        "amount_decimal": str(p.unit_amount),
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency,
        "interval": p.interval,
        "interval_count": p.interval_count,
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": p.nickname,
        "product": p.product.id,
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
    if basil:
        del out["aggregate_usage"]
    else:
        del out["meter"]
    return out


def card_pm_details(pm: PaymentMethod, basil: bool) -> JSON:
    """``payment_method_details`` of a card charge."""
    card: JSON = {
        "brand": pm.brand,
        "checks": card_checks("pass"),
        "country": "US",
        "exp_month": pm.exp_month,
        "exp_year": pm.exp_year,
        "fingerprint": pm.fingerprint,
        "funding": "credit",
        "installments": None,
        "last4": pm.last4,
        "mandate": None,
        "network": pm.brand,
        "three_d_secure": None,
        "wallet": None,
    }
    if basil:
        card.update(
            {
                "amount_authorized": None,
                "authorization_code": None,
                "extended_authorization": {"status": "disabled"},
                "incremental_authorization": {"status": "unavailable"},
                "multicapture": {"status": "unavailable"},
                "network_token": {"used": False},
                "network_transaction_id": None,
                "overcapture": {"maximum_amount_capturable": 0, "status": "unavailable"},
                "regulated_status": None,
                "transaction_link_id": None,
            }
        )
    return {"card": card, "type": "card"}
