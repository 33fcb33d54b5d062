"""`make run` pointed at a real Stripe account: no demo data, and a first-install import.

A company installing the suite already has customers whose history is older than the 30 days
Stripe's ``events.list`` keeps (issue 8, section 3b). When ``STRIPE_API_BASE`` names a Stripe
that is not `make run`'s own simulator and the ledger holds nothing yet, the stack asks drift's
``ImportBaseline`` to recover the window and baseline everything older before printing
``ready:``, so the first dashboard shows the real MRR. The simulator's demo deliveries are
skipped in that case: demo events must never enter a real account's ledger.
"""

from __future__ import annotations

import sqlalchemy as sa
from billing.drift.v1 import drift_pb2, drift_pb2_grpc

from services.common.grpc_client import sync_channel

# The import walks a whole account under the drift process's rate budget: minutes, not seconds.
IMPORT_TIMEOUT_SECONDS = 6 * 3600.0


def uses_simulator(stripe_api_base: str, simulator_url: str) -> bool:
    """True when the services' Stripe is `make run`'s own simulator (the demo world)."""
    return stripe_api_base.rstrip("/") == simulator_url.rstrip("/")


def ledger_is_empty(database_url: str) -> bool:
    """No billing event and no snapshot yet: the import has never run (or nothing arrived)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            has_rows = connection.execute(
                sa.text(
                    "SELECT EXISTS (SELECT 1 FROM ledger.billing_events)"
                    " OR EXISTS (SELECT 1 FROM ledger.stripe_snapshots)"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return not has_rows


def import_baseline(drift_target: str, token: str | None) -> str:
    """Run drift's ImportBaseline (resumable: a second call appends nothing twice)."""
    with sync_channel(drift_target, token=token) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        result = stub.ImportBaseline(
            drift_pb2.ImportBaselineRequest(operator="make-run first install"),
            timeout=IMPORT_TIMEOUT_SECONDS,
        )
    return (
        f"events_recovered={result.events_recovered}"
        f",customers_baselined={result.customers_baselined}"
        f",subscriptions_baselined={result.subscriptions_baselined}"
        f",already_done={result.already_done}"
    )
