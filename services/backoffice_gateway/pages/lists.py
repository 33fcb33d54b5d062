"""The other lists and detail pages: users, billing events, invoices, webhook log (with the
raw payload), dead letters, drift and the audit log (admins only).

Each list keeps its filters in the URL, pages with keyset tokens and links its CSV export
(the JSON API's ``format=csv`` with the same filters).
"""

from __future__ import annotations

import json

from services.backoffice_gateway import audit as audit_log
from services.backoffice_gateway.auth.decorators import admin_required, login_required
from services.backoffice_gateway.context import gateway
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.pages import bp, urls
from services.backoffice_gateway.pages.render import page, require_billing
from services.backoffice_gateway.views import dead_letters as dl
from services.backoffice_gateway.views import drift as dr
from services.backoffice_gateway.views import events as ev
from services.backoffice_gateway.views import invoices as inv
from services.backoffice_gateway.views import users as us
from services.backoffice_gateway.views import webhooks as wh
from services.backoffice_gateway.views.banners import FALLBACK_STATUSES


def _paging(token: str) -> dict[str, str | None]:
    return {
        "next_url": urls.next_page(token) if token else None,
        "prev_url": urls.previous_page(),
    }


def _day_param(name: str) -> str | None:
    return urls.arg(name) or None


@bp.get("/users")
@login_required
def users() -> str:
    f = us.UserFilters(
        query=urls.arg("q"),
        tenant_id=urls.arg("tenant_id"),
        sort=urls.choice("sort", tuple(us.SORTS), "email"),
        descending=bool(urls.flag("desc")),
        page_size=urls.page_size(),
        page_token=urls.arg("page"),
    )
    result = us.list_users(gateway().backends, f)
    return page(
        "users.html",
        filters=f,
        result=result,
        csv_url=urls.csv_link(
            "/api/v1/users",
            {"q": f.query, "tenant_id": f.tenant_id, "sort": f.sort, "desc": f.descending},
        ),
        **_paging(result.next_page_token),
    )


@bp.get("/users/<user_id>")
@login_required
def user(user_id: str) -> str:
    urls.path_id(user_id)
    return page("user.html", user=us.user_detail(gateway().backends, user_id))


@bp.get("/events")
@login_required
def events() -> str:
    require_billing()
    f = ev.EventFilters(
        account_id=urls.arg("account_id"),
        since=urls.day("since"),
        until=urls.day("until", end=True),
        lens=urls.choice("lens", tuple(ev.LENSES), "all"),
        include_noop=bool(urls.flag("include_noop")),
        oldest_first=bool(urls.flag("oldest_first")),
        page_size=urls.page_size(),
        page_token=urls.arg("page"),
    )
    result = ev.list_events(gateway().backends, f)
    return page(
        "events.html",
        filters=f,
        result=result,
        lenses=tuple(ev.LENSES),
        since=_day_param("since"),
        until=_day_param("until"),
        csv_url=urls.csv_link(
            "/api/v1/events",
            {
                "account_id": f.account_id,
                "since": f.since.date().isoformat() if f.since else None,
                "until": f.until.date().isoformat() if f.until else None,
                "lens": f.lens,
                "include_noop": f.include_noop,
                "oldest_first": f.oldest_first,
            },
        ),
        **_paging(result.next_page_token),
    )


@bp.get("/invoices")
@login_required
def invoices() -> str:
    require_billing()
    f = inv.InvoiceFilters(
        account_id=urls.arg("account_id"),
        since=urls.day("since"),
        until=urls.day("until", end=True),
        lens=urls.choice("lens", tuple(inv.LENSES), "all"),
        oldest_first=bool(urls.flag("oldest_first")),
        page_size=urls.page_size(),
        page_token=urls.arg("page"),
    )
    result = inv.list_invoices(gateway().backends, f)
    return page(
        "invoices.html",
        filters=f,
        result=result,
        lenses=tuple(inv.LENSES),
        since=_day_param("since"),
        until=_day_param("until"),
        csv_url=urls.csv_link(
            "/api/v1/invoices",
            {
                "account_id": f.account_id,
                "since": f.since.date().isoformat() if f.since else None,
                "until": f.until.date().isoformat() if f.until else None,
                "lens": f.lens,
                "oldest_first": f.oldest_first,
            },
        ),
        **_paging(result.next_page_token),
    )


@bp.get("/webhooks")
@login_required
def webhooks() -> str:
    require_billing()
    f = wh.WebhookFilters(
        type=urls.arg("type"),
        since=urls.day("since"),
        until=urls.day("until", end=True),
        account_id=urls.arg("account_id"),
        outcome=urls.choice("outcome", wh.OUTCOMES, "all"),
        page_size=urls.page_size(),
        page_token=urls.arg("page"),
    )
    result = wh.list_webhooks(gateway().backends, f)
    return page(
        "webhooks.html",
        filters=f,
        result=result,
        outcomes=wh.OUTCOMES,
        since=_day_param("since"),
        until=_day_param("until"),
        csv_url=urls.csv_link(
            "/api/v1/webhooks",
            {
                "type": f.type,
                "since": f.since.date().isoformat() if f.since else None,
                "until": f.until.date().isoformat() if f.until else None,
                "account_id": f.account_id,
                "outcome": f.outcome,
            },
        ),
        **_paging(result.next_page_token),
    )


@bp.get("/webhooks/<event_id>")
@login_required
def webhook(event_id: str) -> str:
    require_billing()
    urls.path_id(event_id)
    detail = wh.webhook_detail(gateway().backends, event_id)
    pretty = (
        json.dumps(detail.payload, indent=2, ensure_ascii=False)
        if detail.payload is not None
        else detail.payload_text
    )
    return page("webhook.html", detail=detail, pretty=pretty)


@bp.get("/dead-letters")
@login_required
def dead_letters() -> str:
    require_billing()
    status = urls.choice("status", tuple(dl.STATUSES), "dead")
    result = dl.list_dead_letters(gateway().backends, status, urls.page_size(), urls.arg("page"))
    return page(
        "dead_letters.html",
        status=status,
        statuses=tuple(dl.STATUSES),
        result=result,
        csv_url=urls.csv_link("/api/v1/dead-letters", {"status": status}),
        **_paging(result.next_page_token),
    )


@bp.get("/drift")
@login_required
def drift() -> str:
    require_billing()
    f = dr.DiscrepancyFilters(
        account_id=urls.arg("account_id"),
        kind=urls.choice("kind", ("", *dr.KINDS), ""),
        severity=urls.choice("severity", ("", *dr.SEVERITIES), ""),
        state=urls.choice("state", dr.STATES, "open"),
        page_size=urls.page_size(),
        page_token=urls.arg("page"),
    )
    gw = gateway()
    try:
        overview = dr.drift_overview(gw.backends)
        result = dr.list_discrepancies(gw.backends, f)
    except ApiError as exc:
        if exc.status not in FALLBACK_STATUSES:
            raise
        # The drift service is away (not deployed, restarting): the page says so instead of
        # failing, and the rest of the back-office keeps working.
        return page(
            "drift.html",
            unavailable=exc,
            filters=f,
            kinds=dr.KINDS,
            severities=dr.SEVERITIES,
            states=dr.STATES,
            csv_url="",
            runs_csv_url="",
            overview=None,
            result=None,
            next_url=None,
            prev_url=None,
        )
    return page(
        "drift.html",
        unavailable=None,
        overview=overview,
        filters=f,
        result=result,
        kinds=dr.KINDS,
        severities=dr.SEVERITIES,
        states=dr.STATES,
        csv_url=urls.csv_link(
            "/api/v1/drift/discrepancies",
            {"account_id": f.account_id, "kind": f.kind, "severity": f.severity, "state": f.state},
        ),
        runs_csv_url=urls.csv_link("/api/v1/drift/runs", {}),
        **_paging(result.next_page_token),
    )


@bp.get("/audit")
@admin_required
def audit() -> str:
    target = urls.arg("target")
    operator = urls.arg("operator")
    action = urls.arg("action")
    result = audit_log.read_audit(
        gateway().store,
        page_size=urls.page_size(),
        page_token=urls.arg("page"),
        target=target or None,
        operator=operator or None,
        action=action or None,
    )
    return page(
        "audit.html",
        result=result,
        target=target,
        operator=operator,
        action=action,
        csv_url=urls.csv_link(
            "/api/v1/audit", {"target": target, "operator": operator, "action": action}
        ),
        **_paging(result.next_page_token),
    )
