"""Read endpoints: the JSON twin of every page (and CSV of every list)."""

from __future__ import annotations

from typing import Any

from services.backoffice_gateway import preferences
from services.backoffice_gateway.api.registry import endpoint
from services.backoffice_gateway.api.spec import Param, page_params
from services.backoffice_gateway.audit import read_audit
from services.backoffice_gateway.auth.middleware import client_ip
from services.backoffice_gateway.auth.principal import current_principal
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.errors import forbidden
from services.backoffice_gateway.views import (
    accounts,
    dashboard,
    dead_letters,
    drift,
    events,
    invoices,
    users,
    webhooks,
)
from services.backoffice_gateway.views.common import Page

ACCOUNT = Param("account_id", description="account id (tenant id or Stripe customer id)")
USER = Param("user_id", description="directory user id")
EVENT = Param("event_id", description="Stripe event id")
SINCE = Param("since", "date-time", "from (inclusive), ISO-8601 date or date-time, UTC")
UNTIL = Param("until", "date-time", "until (exclusive), ISO-8601 date or date-time, UTC")


def _b() -> Any:
    return gateway().backends


@endpoint("/me", summary="The signed-in operator", tag="auth", billing=False)
def me(args: dict[str, Any]) -> dict[str, Any]:
    principal = current_principal()
    assert principal is not None
    cfg = gateway().config
    return {
        "username": principal.username,
        "role": principal.role,
        "via": principal.via,
        "csrf_token": principal.csrf_token,
        "utc_offset_minutes": principal.utc_offset_minutes,
        "billing_enabled": cfg.public_subscription_enabled,
        "platform_currency": cfg.platform_currency,
    }


@endpoint("/me/preferences", "POST", summary="The signed-in operator's preferences",
          tag="auth", billing=False,
          body=(Param("utc_offset_minutes", "integer", "offset shown beside UTC; null: none",
                      minimum=-720, maximum=840),))
def set_preferences(args: dict[str, Any]) -> dict[str, Any]:
    principal = current_principal()
    assert principal is not None
    preferences.set_utc_offset(
        gateway().store, principal, args["utc_offset_minutes"], client_ip()
    )
    return {"utc_offset_minutes": args["utc_offset_minutes"]}


@endpoint(
    "/dashboard", summary="Dashboard: KPIs, trends, distribution, movements", tag="dashboard",
    params=(Param("period", "integer", "7, 30 or 90 days", minimum=7, maximum=90, default=30),
            Param("as_of", "date-time", "end of the period (default now)")),
)
def get_dashboard(args: dict[str, Any]) -> dashboard.DashboardView:
    from services.backoffice_gateway.errors import bad_request

    if args["period"] not in dashboard.PERIODS:
        raise bad_request("period: 7, 30 or 90", parameter="period")
    gw = gateway()
    return dashboard.dashboard(gw.backends, args["period"], args["as_of"],
                               prior_trends=gw.prior_trends, cache=gw.dashboards)


ACCOUNT_LIST_PARAMS = (
    Param("q", description="substring of name, email or account id"),
    Param("plan", "array", "plans (any of); empty string: without a subscription"),
    Param("status", "array", "Stripe statuses (any of)",
          items_enum=("", *accounts.STATUSES)),
    Param("drift", "boolean", "only accounts with (true) / without (false) drift"),
    Param("never_synced", "boolean", "only accounts never synced (true) / synced (false)"),
    Param("sort", description="sort key", enum=accounts.SORT_KEYS, default="name"),
    Param("desc", "boolean", "descending", default=False),
    *page_params(),
)


def account_filters(args: dict[str, Any]) -> accounts.AccountFilters:
    return accounts.AccountFilters(
        search=args["q"] or "",
        plans=args["plan"],
        statuses=args["status"],
        drift=args["drift"],
        never_synced=args["never_synced"],
        sort=args["sort"],
        descending=args["desc"],
        page_size=args["page_size"],
        page_token=args["page_token"],
    )


@endpoint("/accounts", summary="Accounts", tag="accounts", params=ACCOUNT_LIST_PARAMS, csv=True)
def list_accounts(args: dict[str, Any]) -> Page[accounts.AccountRow]:
    return accounts.list_accounts(_b(), account_filters(args))


@endpoint("/plans", summary="Every plan the ledger knows, with its live accounts (the plan "
          "filter's choices)", tag="accounts")
def list_plans(args: dict[str, Any]) -> dict[str, Any]:
    return {"items": accounts.list_plans(_b())}


@endpoint("/accounts/<account_id>", summary="One account", tag="accounts", path_params=(ACCOUNT,))
def get_account(args: dict[str, Any]) -> accounts.AccountDetailView:
    return accounts.account_detail(_b(), args["account_id"])


EVENT_PARAMS = (
    SINCE, UNTIL,
    Param("lens", description="lens", enum=tuple(events.LENSES), default="all"),
    Param("include_noop", "boolean", "include NoOp rows", default=False),
    Param("oldest_first", "boolean", "oldest first", default=False),
    *page_params(),
)


def event_filters(args: dict[str, Any], account_id: str = "") -> events.EventFilters:
    return events.EventFilters(
        account_id=account_id or args.get("account_id") or "",
        since=args["since"],
        until=args["until"],
        lens=args["lens"],
        include_noop=args["include_noop"],
        oldest_first=args["oldest_first"],
        page_size=args["page_size"],
        page_token=args["page_token"],
    )


@endpoint("/events", summary="Billing events", tag="events",
          params=(Param("account_id", description="only this account"), *EVENT_PARAMS), csv=True)
def list_events(args: dict[str, Any]) -> Page[events.EventRow]:
    return events.list_events(_b(), event_filters(args))


@endpoint("/accounts/<account_id>/events", summary="An account's billing events", tag="accounts",
          path_params=(ACCOUNT,), params=EVENT_PARAMS, csv=True)
def list_account_events(args: dict[str, Any]) -> Page[events.EventRow]:
    return events.list_events(_b(), event_filters(args, args["account_id"]))


INVOICE_PARAMS = (
    SINCE, UNTIL,
    Param("lens", description="lens", enum=tuple(invoices.LENSES), default="all"),
    Param("oldest_first", "boolean", "oldest first", default=False),
    *page_params(),
)


def invoice_filters(args: dict[str, Any], account_id: str = "") -> invoices.InvoiceFilters:
    return invoices.InvoiceFilters(
        account_id=account_id or args.get("account_id") or "",
        since=args["since"],
        until=args["until"],
        lens=args["lens"],
        oldest_first=args["oldest_first"],
        page_size=args["page_size"],
        page_token=args["page_token"],
    )


@endpoint("/invoices", summary="Invoices, credit notes and refunds", tag="invoices",
          params=(Param("account_id", description="only this account"), *INVOICE_PARAMS),
          csv=True)
def list_invoices(args: dict[str, Any]) -> Page[invoices.InvoiceRowView]:
    return invoices.list_invoices(_b(), invoice_filters(args))


@endpoint("/accounts/<account_id>/invoices", summary="An account's invoices", tag="accounts",
          path_params=(ACCOUNT,), params=INVOICE_PARAMS, csv=True)
def list_account_invoices(args: dict[str, Any]) -> Page[invoices.InvoiceRowView]:
    return invoices.list_invoices(_b(), invoice_filters(args, args["account_id"]))


USER_PARAMS = (
    Param("q", description="substring of email, name or tenant name"),
    Param("sort", description="sort key", enum=tuple(users.SORTS), default="email"),
    Param("desc", "boolean", "descending", default=False),
    *page_params(),
)


def user_filters(args: dict[str, Any], tenant_id: str = "") -> users.UserFilters:
    return users.UserFilters(
        query=args["q"] or "",
        tenant_id=tenant_id or args.get("tenant_id") or "",
        sort=args["sort"],
        descending=args["desc"],
        page_size=args["page_size"],
        page_token=args["page_token"],
    )


@endpoint("/users", summary="Users", tag="users", billing=False,
          params=(Param("tenant_id", description="only members of this tenant"), *USER_PARAMS),
          csv=True)
def list_users(args: dict[str, Any]) -> Page[users.UserRow]:
    return users.list_users(_b(), user_filters(args))


@endpoint("/accounts/<account_id>/users", summary="An account's users", tag="accounts",
          path_params=(ACCOUNT,), params=USER_PARAMS, csv=True)
def list_account_users(args: dict[str, Any]) -> Page[users.UserRow]:
    return users.list_users(_b(), user_filters(args, args["account_id"]))


@endpoint("/users/<user_id>", summary="One user: memberships, logins, sessions", tag="users",
          path_params=(USER,), billing=False)
def get_user(args: dict[str, Any]) -> users.UserDetailView:
    return users.user_detail(_b(), args["user_id"])


@endpoint(
    "/webhooks", summary="Webhook log (the archive)", tag="webhooks", csv=True,
    params=(
        Param("type", description="exact Stripe event type"),
        SINCE, UNTIL,
        Param("account_id", description="only events of this account"),
        Param("outcome", description="publication outcome", enum=webhooks.OUTCOMES,
              default="all"),
        *page_params(),
    ),
)
def list_webhooks(args: dict[str, Any]) -> Page[webhooks.WebhookRow]:
    return webhooks.list_webhooks(
        _b(),
        webhooks.WebhookFilters(
            type=args["type"] or "",
            since=args["since"],
            until=args["until"],
            account_id=args["account_id"] or "",
            outcome=args["outcome"],
            page_size=args["page_size"],
            page_token=args["page_token"],
        ),
    )


@endpoint("/webhooks/<event_id>", summary="One archived event with its raw payload",
          tag="webhooks", path_params=(EVENT,))
def get_webhook(args: dict[str, Any]) -> webhooks.WebhookDetail:
    return webhooks.webhook_detail(_b(), args["event_id"])


@endpoint(
    "/dead-letters", summary="Dead letters", tag="dead_letters", csv=True,
    params=(Param("status", description="status", enum=tuple(dead_letters.STATUSES),
                  default="all"), *page_params()),
)
def list_dead_letters(args: dict[str, Any]) -> Page[dead_letters.DeadLetterRow]:
    return dead_letters.list_dead_letters(
        _b(), args["status"], args["page_size"], args["page_token"]
    )


@endpoint("/drift", summary="Drift overview: runs, open and acknowledged discrepancies",
          tag="drift")
def get_drift(args: dict[str, Any]) -> drift.DriftOverview:
    return drift.drift_overview(_b())


@endpoint("/drift/runs", summary="Drift runs", tag="drift", params=page_params(20), csv=True)
def list_drift_runs(args: dict[str, Any]) -> Page[drift.DriftRunView]:
    return drift.list_runs(_b(), args["page_size"], args["page_token"])


@endpoint(
    "/drift/discrepancies", summary="Discrepancies", tag="drift", csv=True,
    params=(
        Param("account_id", description="only this account"),
        Param("subscription_id", description="only this subscription"),
        Param("kind", description="kind", enum=("", *drift.KINDS), default=""),
        Param("severity", description="severity", enum=("", *drift.SEVERITIES), default=""),
        Param("state", description="state", enum=drift.STATES, default="open"),
        *page_params(),
    ),
)
def list_discrepancies(args: dict[str, Any]) -> Page[drift.DiscrepancyView]:
    return drift.list_discrepancies(
        _b(),
        drift.DiscrepancyFilters(
            account_id=args["account_id"] or "",
            subscription_id=args["subscription_id"] or "",
            kind=args["kind"],
            severity=args["severity"],
            state=args["state"],
            page_size=args["page_size"],
            page_token=args["page_token"],
        ),
    )


@endpoint("/accounts/<account_id>/diagnostic",
          summary="Stripe's view and the ledger's of one account, side by side", tag="drift",
          path_params=(ACCOUNT,))
def get_diagnostic(args: dict[str, Any]) -> drift.DiagnosticView:
    return drift.diagnostic(_b(), args["account_id"])


@endpoint("/operations", summary="Stripe operations performed for operators", tag="drift",
          csv=True, params=(Param("target", description="only this Stripe object"),
                            *page_params()))
def list_operations(args: dict[str, Any]) -> Page[drift.OperationView]:
    return drift.list_operations(_b(), args["target"] or "", args["page_size"],
                                 args["page_token"])


@endpoint("/banners", summary="Banners: drift, never synced, MRR mismatch", tag="banners")
def get_banners(args: dict[str, Any]) -> Any:
    gw = gateway()
    return gw.banners.get(gw.backends)


@endpoint(
    "/audit", summary="Audit log (admins)", tag="audit", csv=True, billing=False,
    params=(
        Param("target", description="only this target"),
        Param("operator", description="only this operator"),
        Param("action", description="only this action"),
        *page_params(),
    ),
)
def list_audit(args: dict[str, Any]) -> Any:
    principal = current_principal()
    if principal is None or not principal.is_admin:
        raise forbidden()
    return read_audit(
        gateway().store,
        page_size=args["page_size"],
        page_token=args["page_token"],
        target=args["target"] or None,
        operator=args["operator"] or None,
        action=args["action"] or None,
    )
