"""The demo's host-application directory: a few tenants that have not subscribed yet (so the
"never synced" banner and filter have something to show) with their users, memberships,
logins and sessions (so the Users pages are not empty).

Stripe's history comes through the simulator's webhooks; the directory is the host
application's own data, which reaches the ledger through ``DirectoryService`` as the host's
sync would send it. Ids are fixed and every call is an upsert (logins carry a ``login_id``),
so ``make run`` can seed on every start without duplicating anything. Times are relative to
today, like the rest of the demo.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.ledger.v1 import directory_pb2 as d
from billing.ledger.v1 import directory_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.common.grpc_client import sync_channel

#: (tenant id, name, days ago created, [(user id, first, last, role), ...])
TENANTS = (
    ("host-northwind", "Northwind Traders", 12,
     [("u-nw-1", "Nancy", "Davolio", d.MEMBERSHIP_ROLE_OWNER),
      ("u-nw-2", "Andrew", "Fuller", d.MEMBERSHIP_ROLE_MEMBER)]),
    ("host-contoso", "Contoso Labs", 5,
     [("u-co-1", "Kim", "Abercrombie", d.MEMBERSHIP_ROLE_OWNER)]),
    ("host-fabrikam", "Fabrikam Studio", 2,
     [("u-fa-1", "Jo", "Brown", d.MEMBERSHIP_ROLE_ADMIN),
      ("u-fa-2", "Ray", "Chow", d.MEMBERSHIP_ROLE_VIEWER)]),
)  # fmt: skip
BROWSERS = ("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "Mozilla/5.0 (Macintosh) Safari/18")


def _ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def seed(ledger_target: str, token: str | None, now: datetime | None = None) -> int:
    """Write the demo directory; returns the number of users. Idempotent."""
    now = now or datetime.now(UTC)
    users = 0
    with sync_channel(ledger_target, token=token) as channel:
        stub = directory_pb2_grpc.DirectoryServiceStub(channel)
        for tenant_id, name, age, members in TENANTS:
            created = now - timedelta(days=age)
            stub.UpsertTenant(
                d.UpsertTenantRequest(tenant_id=tenant_id, name=name, created_at=_ts(created)),
                timeout=30,
            )
            for n, (user_id, first, last, role) in enumerate(members):
                users += 1
                domain = tenant_id.removeprefix("host-")
                stub.UpsertUser(
                    d.UpsertUserRequest(
                        user_id=user_id,
                        first_name=first,
                        last_name=last,
                        email=f"{first}.{last}@{domain}.example".lower(),
                        created_at=_ts(created),
                    ),
                    timeout=30,
                )
                stub.UpsertMembership(
                    d.UpsertMembershipRequest(
                        user_id=user_id,
                        tenant_id=tenant_id,
                        role=role,
                        status=d.MEMBERSHIP_STATUS_ACTIVE,
                    ),
                    timeout=30,
                )
                agent = BROWSERS[n % len(BROWSERS)]
                ip = f"203.0.113.{10 + users}"
                # A failed attempt, then successful logins every three days until today.
                attempts = [(age - 0.5, d.LOGIN_OUTCOME_FAILURE)] + [
                    (float(days), d.LOGIN_OUTCOME_SUCCESS) for days in range(age, -1, -3)
                ]
                for i, (days_ago, outcome) in enumerate(attempts):
                    stub.RecordLogin(
                        d.RecordLoginRequest(
                            login_id=f"demo-{user_id}-{i}",
                            user_id=user_id,
                            tenant_id=tenant_id,
                            at=_ts(now - timedelta(days=days_ago, hours=2)),
                            method=d.LOGIN_METHOD_SSO if n else d.LOGIN_METHOD_PASSWORD,
                            outcome=outcome,
                            ip=ip,
                            user_agent=agent,
                        ),
                        timeout=30,
                    )
                stub.RecordSession(
                    d.RecordSessionRequest(
                        session_id=f"demo-session-{user_id}",
                        user_id=user_id,
                        started_at=_ts(now - timedelta(hours=5)),
                        last_seen_at=_ts(now - timedelta(minutes=20)),
                        ip=ip,
                        user_agent=agent,
                    ),
                    timeout=30,
                )
    return users
