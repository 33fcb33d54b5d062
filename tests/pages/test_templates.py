"""The templates whose data needs services this repository's test stack may not run (the
drift service's runs, discrepancies, sync results and diagnostics, refunds), rendered from
view-model objects built here: no template error can hide until production."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, g, render_template

import services.backoffice_gateway as package
from services.backoffice_gateway.auth.principal import Principal
from services.backoffice_gateway.errors import ApiError
from services.backoffice_gateway.formatting import Amount
from services.backoffice_gateway.pages import bp
from services.backoffice_gateway.views.accounts import AccountDetailView, AccountRow
from services.backoffice_gateway.views.actions import ActionResult
from services.backoffice_gateway.views.common import Money, Page
from services.backoffice_gateway.views.drift import (
    DiscrepancyFilters,
    DiscrepancyView,
    DriftOverview,
    DriftRunView,
)

NOW = datetime(2026, 12, 5, 22, 54, tzinfo=UTC)
ROOT = package.__path__[0]


@pytest.fixture(scope="module")
def app() -> Flask:
    flask_app = Flask("pages_templates", root_path=ROOT)
    flask_app.config["SECRET_KEY"] = "x"
    flask_app.register_blueprint(bp)
    flask_app.add_url_rule("/logout", "auth.logout", lambda: "")
    return flask_app


def render(app: Flask, template: str, role: str = "admin", **context: Any) -> str:
    with app.test_request_context("/accounts/acct_1?x=1"):
        g.principal = Principal(1, "ops", role, "session", csrf_token="tok-123")
        return render_template(template, banners=[], **context)


def account() -> AccountRow:
    usd = Money(4900, "USD")
    return AccountRow(
        account_id="acct_1",
        name="Alpha <Corp>",
        email="a@example.com",
        tenant_id="t_1",
        stripe_customer_ids=["cus_1"],
        plan="Pro",
        status="active",
        subscription_id="sub_1",
        committed_mrr=usd,
        forward_mrr=Money(0, "USD"),
        forward_differs=True,
        committed_mrr_platform=usd,
        renewal_at=NOW,
        created_at=NOW,
        deleted_at=None,
        drift_detected=True,
        unsynced=False,
        mixed_currency=False,
    )


def detail() -> AccountDetailView:
    return AccountDetailView(
        account=account(),
        plan=None,
        subscriptions=[],
        ltv=Money(123456, "JPY"),
        ltv_by_currency=[Money(123456, "JPY")],
        committed_mrr=Money(4900, "USD"),
        forward_mrr=Money(0, "USD"),
        users_total=3,
        users_active=1,
        platform_currency="USD",
        unconverted_currencies=[],
        as_of=NOW,
    )


def discrepancy(state: str = "open") -> DiscrepancyView:
    return DiscrepancyView(
        id="d1",
        kind="SubscriptionStateMismatch",
        severity="Critical",
        account_id="acct_1",
        subscription_id="sub_1",
        stripe_event_id="",
        stripe_object_id="sub_1",
        field="status",
        ledger_value="active",
        stripe_value="canceled",
        detail="status differs",
        run_id="r1",
        detected_at=NOW,
        resolved_at=None,
        acknowledged_at=NOW if state != "open" else None,
        acknowledged_by="ops" if state != "open" else "",
        acknowledgement_note="",
        state=state,
    )


def test_drift_page_with_runs_and_discrepancies(app: Flask) -> None:
    run = DriftRunView(
        id="r1",
        scope="all",
        trigger="manual",
        status="finished",
        started_at=NOW,
        finished_at=NOW,
        subscriptions_checked=10,
        subscriptions_total=10,
        discrepancies_found=1,
        events_recovered=2,
        stripe_requests=5,
        errors=0,
        duration_seconds=1.25,
        error_message="",
    )
    overview = DriftOverview(
        runs=[run],
        open_by_kind={"SubscriptionStateMismatch": 1},
        open_by_severity={"Critical": 1},
        open=[discrepancy()],
        acknowledged=[discrepancy("acknowledged")],
    )
    html = render(
        app,
        "drift.html",
        unavailable=None,
        overview=overview,
        filters=DiscrepancyFilters(),
        result=Page([discrepancy()], "", 1),
        kinds=("SubscriptionStateMismatch",),
        severities=("Warning", "Critical"),
        states=("open", "all"),
        csv_url="/api/x.csv",
        runs_csv_url="/api/r.csv",
        next_url=None,
        prev_url=None,
    )
    assert "SubscriptionStateMismatch" in html and "Run a drift pass now" in html
    assert (
        "1.2" in html
        and "10/10" in html
        and 'data-testid="acknowledged"' in html
        and 'name="csrf_token" value="tok-123"' in html
    )
    viewer = render(
        app,
        "drift.html",
        role="viewer",
        unavailable=None,
        overview=overview,
        filters=DiscrepancyFilters(),
        result=Page([], "", 0),
        kinds=(),
        severities=(),
        states=(),
        csv_url="",
        runs_csv_url="",
        next_url=None,
        prev_url=None,
    )
    assert "Run a drift pass now" not in viewer


def test_sync_steps_and_cutoff_dialog(app: Flask) -> None:
    diagnostic = SimpleNamespace(
        differences=1,
        stripe_customer_id="cus_1",
        fields=[
            SimpleNamespace(
                section="subscription:sub_1",
                field="status",
                ledger_value="active",
                stripe_value="canceled",
                differs=True,
            )
        ],
    )
    step1 = render(app, "sync.html", detail=detail(), diagnostic=diagnostic, error=None)
    assert "step 1 of 2" in step1 and "1</strong> difference found" in step1
    assert "Alpha &lt;Corp&gt;" in step1  # escaped
    unavailable = render(
        app,
        "sync.html",
        detail=detail(),
        diagnostic=None,
        error=ApiError(503, "unavailable", "drift unavailable"),
    )
    assert "could not be fetched" in unavailable and "Sync now" in unavailable
    result = ActionResult(
        "sync",
        "acct_1",
        True,
        "run r1: 0 events appended, clean=False",
        {
            "run": {},
            "events_appended": 0,
            "remaining": [
                {
                    "kind": "MissingHistoricalEventUnrecoverable",
                    "severity": "Critical",
                    "stripe_object_id": "sub_1",
                    "subscription_id": "sub_1",
                    "ledger_value": "",
                    "stripe_value": "x",
                }
            ],
            "clean": False,
            "unrecoverable_subscription_ids": ["sub_1", "sub_2"],
        },
    )
    step2 = render(
        app,
        "action_done.html",
        title="Sync with Stripe",
        back="/accounts/acct_1",
        result=result,
        error=None,
        detail=detail(),
        kind="sync",
        today="2026-12-05",
    )
    assert 'data-testid="cutoff-dialog"' in step2 and "step 2 of 2" in step2
    forms = re.findall(
        r'<form class="action" method="post" action="/accounts/acct_1/cutoff">', step2
    )
    assert len(forms) == 2
    assert step2.count('name="csrf_token" value="tok-123"') >= 2
    clean = ActionResult(
        "sync",
        "acct_1",
        True,
        "clean",
        {
            "events_appended": 3,
            "remaining": [],
            "clean": True,
            "unrecoverable_subscription_ids": [],
        },
    )
    assert "cutoff-dialog" not in render(
        app,
        "action_done.html",
        title="Sync",
        back="/",
        result=clean,
        error=None,
        detail=detail(),
        kind="sync",
        today="2026-12-05",
    )


def test_refund_form_shows_refundable_amounts(app: Flask) -> None:
    invoice = SimpleNamespace(
        number="INV-1", invoice_id="in_1", paid_at=NOW, amount_paid=Money(10000, "JPY")
    )
    html = render(
        app,
        "refund.html",
        detail=detail(),
        reasons=("duplicate",),
        idempotency_key="k1",
        error=None,
        invoices=[
            {"invoice": invoice, "refundable": Amount(7000, "JPY"), "refunded": Amount(3000, "JPY")}
        ],
    )
    assert "7,000 JPY" in html and "3,000 JPY" in html and "10,000 JPY" in html


def test_action_error_and_generic_result(app: Flask) -> None:
    failed = render(
        app,
        "action_done.html",
        title="Refund",
        back="/",
        result=None,
        error=ApiError(409, "failed_precondition", "refundable: 7000 JPY"),
    )
    assert 'data-testid="action-error"' in failed and "refundable: 7000 JPY" in failed
    ok = ActionResult(
        "refund",
        "ch_1",
        True,
        "refund re_1 succeeded",
        {"refund_id": "re_1", "amount": {"amount_minor": 500, "currency": "KWD"}},
    )
    html = render(app, "action_done.html", title="Refund", back="/", result=ok, error=None)
    assert "0.500 KWD" in html and "re_1" in html


def test_account_page_admin_menu_only_for_admins(app: Flask) -> None:
    context: dict[str, Any] = {
        "detail": detail(),
        "tab": "overview",
        "tabs": (),
        "recent_events": [],
    }
    admin = render(app, "account.html", **context)
    viewer = render(app, "account.html", role="viewer", **context)
    assert 'data-testid="admin-menu"' in admin and "Acknowledge drift" in admin
    assert 'data-testid="admin-menu"' not in viewer and "Acknowledge" not in viewer
    # forward MRR differs from the committed 49.00: the forward amount is struck through
    struck = '<s class="forward" title="Differs from the committed MRR (scheduled change)">'
    assert f"{struck}0.00 USD</s>" in admin
    same = dataclasses.replace(detail(), forward_mrr=Money(4900, "USD"))
    assert '<s class="forward"' not in render(app, "account.html", **{**context, "detail": same})


def test_dead_letters_with_retry_and_purge(app: Flask) -> None:
    from services.backoffice_gateway.views.dead_letters import DeadLetterRow

    rows = [
        DeadLetterRow(
            id=7,
            stream_seq=70,
            subject="stripe.events.invoice.paid",
            stripe_event_id="evt_7",
            error="boom",
            deliveries=5,
            first_failed_at=NOW,
            last_failed_at=NOW,
            status="dead",
            retries=0,
            resolved_at=None,
        ),
        DeadLetterRow(
            id=8,
            stream_seq=80,
            subject="ledger.replay",
            stripe_event_id="evt_8",
            error="",
            deliveries=1,
            first_failed_at=NOW,
            last_failed_at=NOW,
            status="resolved",
            retries=1,
            resolved_at=NOW,
        ),
    ]
    context: dict[str, Any] = {
        "status": "all",
        "statuses": ("all", "dead", "resolved"),
        "result": Page(rows, "", 2),
        "csv_url": "/x",
        "next_url": None,
        "prev_url": None,
    }
    admin = render(app, "dead_letters.html", **context)
    assert admin.count('action="/dead-letters/7/retry"') == 1
    assert 'action="/dead-letters/8/retry"' not in admin  # resolved: nothing to retry
    assert 'form="purge" name="id" value="8"' in admin and "Purge all resolved" in admin
    viewer = render(app, "dead_letters.html", role="viewer", **context)
    assert "retry" not in viewer and "Purge" not in viewer


def test_user_page_sessions_revocable_by_admins(app: Flask) -> None:
    from services.backoffice_gateway.views.users import (
        LoginView,
        MembershipView,
        SessionView,
        UserDetailView,
    )

    user = UserDetailView(
        user_id="u_1",
        email="u@example.com",
        first_name="Ada",
        last_name="L",
        created_at=NOW,
        memberships=[MembershipView("t_1", "Tenant One", "owner", "active", None, NOW)],
        recent_logins=[LoginView(1, NOW, "password", "success", "10.0.0.1", "Firefox", "t_1")],
        recent_logins_truncated=True,
        sessions=[
            SessionView("s_1", NOW, NOW, "10.0.0.1", "Firefox", None, "", True),
            SessionView("s_2", NOW, NOW, "10.0.0.2", "Chrome", NOW, "logout", False),
        ],
        sessions_truncated=False,
        as_of=NOW,
    )
    admin = render(app, "user.html", user=user)
    assert 'action="/users/u_1/sessions/s_1/revoke"' in admin
    assert "sessions/s_2/revoke" not in admin and "Only the most recent logins" in admin
    assert "Firefox" in admin and "password" in admin and "10.0.0.1" in admin
    assert "/revoke" not in render(app, "user.html", role="viewer", user=user)


def test_preview_links_keep_the_list_state_and_page(app: Flask) -> None:
    from services.backoffice_gateway.views.accounts import AccountFilters

    with app.test_request_context("/accounts?status=active&sort=mrr&page=T2&trail=T1"):
        g.principal = Principal(1, "ops", "viewer", "session", csrf_token="t")
        html = render_template(
            "accounts.html",
            filters=AccountFilters(statuses=["active"], sort="mrr"),
            result=Page([account()], "", 1),
            plans=[],
            statuses=("active",),
            sort_labels={"name": "Account"},
            preview=None,
            preview_id="",
            next_url=None,
            prev_url=None,
            first_url=None,
            csv_url="/c",
            banners=[],
        )
    link = re.findall(r'<a href="([^"]+)" data-pane=', html)[0].replace("&amp;", "&")
    assert link.startswith("/accounts?")
    assert "status=active" in link and "sort=mrr" in link
    assert "page=T2" in link and "trail=T1" in link and link.endswith("preview=acct_1")
    with app.test_request_context("/accounts?status=active&page=T2&preview=acct_1"):
        g.principal = Principal(1, "ops", "viewer", "session", csrf_token="t")
        open_pane = render_template(
            "accounts.html",
            filters=AccountFilters(statuses=["active"]),
            result=Page([account()], "", 1),
            plans=[],
            statuses=("active",),
            sort_labels={"name": "Account"},
            preview=detail(),
            preview_id="acct_1",
            next_url=None,
            prev_url=None,
            first_url=None,
            csv_url="/c",
            banners=[],
        )
    close = re.findall(r'<a href="([^"]+)" data-pane-close', open_pane)[0].replace("&amp;", "&")
    assert "page=T2" in close and "status=active" in close and "preview" not in close
