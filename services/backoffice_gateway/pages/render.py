"""What every template gets: formatting filters, the operator, the banners, the navigation.

Also the one ``page()`` helper the routes use to render, so the billing switch, the
operator's offset and the CSRF token are handled in one place.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import abort, g, render_template, request

from services.backoffice_gateway import formatting
from services.backoffice_gateway.auth.principal import Principal, current_principal
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.pages import bp, urls

#: (endpoint, label, billing surface?, admin only?)
NAVIGATION = (
    ("pages.dashboard", "Dashboard", True, False),
    ("pages.accounts", "Accounts", True, False),
    ("pages.users", "Users", False, False),
    ("pages.events", "Billing events", True, False),
    ("pages.invoices", "Invoices", True, False),
    ("pages.webhooks", "Webhooks", True, False),
    ("pages.dead_letters", "Dead letters", True, False),
    ("pages.drift", "Drift", True, False),
    ("pages.audit", "Audit log", False, True),
)


def billing_enabled() -> bool:
    return bool(gateway().config.public_subscription_enabled)


def require_billing() -> None:
    """Billing pages do not exist when PUBLIC_SUBSCRIPTION_ENABLED=false (404, like the API)."""
    if not billing_enabled():
        abort(404)


def operator_offset(principal: Principal | None) -> int | None:
    """The operator's UTC offset: their profile's when set, else what their browser said."""
    if principal is not None and principal.utc_offset_minutes is not None:
        return principal.utc_offset_minutes
    return formatting.parse_offset(request.cookies.get("tzoffset"))


@bp.app_template_filter("money")
def _money(value: object) -> str:
    return formatting.format_money(value)


@bp.app_template_filter("delta")
def _delta(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return formatting.format_count_delta(value)
    return formatting.format_delta(value)


@bp.app_template_filter("dt")
def _dt(value: object) -> str:
    return formatting.format_datetime(value, operator_offset(current_principal()))


@bp.app_template_filter("day")
def _day(value: object) -> str:
    return formatting.format_date(value)


@bp.app_template_filter("iso")
def _iso(value: object) -> str:
    return formatting.iso_utc(value)


@bp.app_template_global("money_platform")
def _money_platform(native: object, platform: object) -> str:
    return formatting.format_money_with_platform(native, platform)


@bp.app_template_global("url_with")
def _url_with(**changes: object) -> str:
    return urls.with_args(changes)


@bp.app_template_global("url_keep_page")
def _url_keep_page(**changes: object) -> str:
    """Like ``url_with`` but on the same page of the list (closing the side pane)."""
    return urls.with_args(changes, keep_page=True)


@bp.app_template_global("preview_url")
def _preview_url(account_id: str) -> str:
    """This list's URL with ``preview=<id>``: the rest of the query is encoded once per
    request (a list of 100 rows would otherwise rebuild it 100 times)."""
    prefix = g.get("_preview_prefix")
    if prefix is None:
        base = urls.with_args({"preview": None}, keep_page=True)
        prefix = g._preview_prefix = base + ("&" if "?" in base else "?") + "preview="
    return str(prefix) + quote(account_id, safe="")


@bp.app_template_global("sort_link")
def _sort_link(key: str, current: str, descending: bool) -> tuple[str, str]:
    return urls.sort_link(key, current, descending)


@bp.app_template_global("change_class")
def _change_class(value: object) -> str:
    """``up`` / ``down`` / ``flat`` for a change (count or money)."""
    amount = value if isinstance(value, int) else getattr(value, "amount_minor", None)
    if not isinstance(amount, int) or amount == 0:
        return "flat"
    return "up" if amount > 0 else "down"


@bp.app_context_processor
def _common() -> dict[str, Any]:
    principal = current_principal()
    billing = billing_enabled() if _has_gateway() else True
    nav = [
        (endpoint, label)
        for endpoint, label, is_billing, admin_only in NAVIGATION
        if (billing or not is_billing)
        and (not admin_only or (principal is not None and principal.is_admin))
    ]
    return {
        "principal": principal,
        "is_admin": principal is not None and principal.is_admin,
        "csrf_token": principal.csrf_token if principal is not None else "",
        "nav": nav,
        "billing": billing,
    }


def _has_gateway() -> bool:
    from flask import current_app

    return "gateway" in current_app.extensions


def page(template: str, **context: Any) -> str:
    """Render a full page with the banners (fetched server-side too, so a first paint
    already shows them; app.js then keeps them fresh)."""
    return render_template(template, banners=banner_list(), **context)


def banner_list() -> list[dict[str, Any]]:
    """The banners as plain dicts (the same shape ``/banners.json`` serves to app.js)."""
    if not billing_enabled() or current_principal() is None:
        return []
    gw = gateway()
    try:
        view = gw.banners.get(gw.backends)
    except ApiError as exc:  # both drift and the ledger away: say so instead of failing
        return [
            {
                "kind": "unavailable",
                "level": "critical",
                "title": "Data quality unknown",
                "message": exc.message,
                "href": "",
                "link_text": "",
            }
        ]
    titles = {
        "drift_detected": "Drift detected",
        "never_synced": "Never synced",
        "mrr_mismatch": "MRR mismatch",
    }
    return [
        {
            "kind": b.kind,
            "level": b.severity,
            "title": titles.get(b.kind, b.kind),
            "message": b.message,
            "href": b.link,
            "link_text": "Show",
        }
        for b in view.banners
    ]
