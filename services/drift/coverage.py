"""Event coverage: Stripe's ``events.list`` against the ingest archive.

What Stripe lists and the archive lacks is recovered through ingest's ``RecoverEvents`` (the
only repair drift makes: appending to the archive) and reported as ``MissingEvent``; what the
archive holds inside the listed window and Stripe does not know is ``ExtraEvent``. The window
is taken from what Stripe returned (its oldest and newest ``created``), never from a clock, so
the simulator's moved clock and real Stripe behave the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.drift.findings import EXTRA_EVENT, MISSING_EVENT, Finding
from services.drift.stripe_calls import RequestCount, StripeCaller

log = logging.getLogger(__name__)

JSON = dict[str, Any]
#: Ids per archive read (ingest's ``ids_only`` pages: two columns, no count).
ARCHIVE_PAGE = 10_000


@dataclass(slots=True)
class ListedEvent:
    event_id: str
    created: int
    customer: str | None
    subscription: str | None


@dataclass(slots=True)
class CoverageResult:
    findings: list[Finding] = field(default_factory=list)
    recovered_ids: list[str] = field(default_factory=list)
    oldest_listed: int | None = None
    newest_listed: int | None = None
    listed: int = 0
    #: Subscriptions the listed events are about (what an incremental pass re-checks).
    touched_subscriptions: set[str] = field(default_factory=set)


def _owner(obj: JSON) -> tuple[str | None, str | None]:
    """``(customer, subscription)`` an event's object concerns, when it says."""
    if obj.get("object") == "customer":
        return obj.get("id"), None
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if obj.get("object") == "subscription":
        return customer, obj.get("id")
    sub = obj.get("subscription")
    if isinstance(sub, dict):
        sub = sub.get("id")
    if sub is None:
        parent = (obj.get("parent") or {}).get("subscription_details") or {}
        sub = parent.get("subscription")
    return customer, sub


def listed_event(document: JSON) -> ListedEvent:
    obj = (document.get("data") or {}).get("object") or {}
    customer, sub = _owner(obj if isinstance(obj, dict) else {})
    return ListedEvent(str(document["id"]), int(document["created"]), customer, sub)


def _ts(epoch: int) -> Timestamp:
    ts = Timestamp()
    ts.FromSeconds(epoch)
    return ts


async def archived_ids(
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub, since: int, until: int
) -> set[str]:
    """Event ids the archive holds with Stripe ``created`` in [since, until]."""
    out: set[str] = set()
    token = ""
    while True:
        response = await ingest.ListEvents(
            ingest_pb2.ListEventsRequest(
                created=common_pb2.Period(start=_ts(since), end=_ts(until + 1)),
                page=common_pb2.PageRequest(page_size=ARCHIVE_PAGE, page_token=token),
                ids_only=True,
            )
        )
        out.update(e.event_id for e in response.events)
        token = response.page.next_page_token
        if not token:
            return out


async def list_events(
    caller: StripeCaller,
    count: RequestCount,
    *,
    since: int | None,
    customers: set[str] | None,
) -> tuple[dict[str, ListedEvent], CoverageResult]:
    """Walk events.list (from ``since``): the listing, and the subscriptions it touches."""
    result = CoverageResult()
    params: JSON = {"created": {"gte": since}} if since is not None else {}
    listed: dict[str, ListedEvent] = {}
    async for page in caller.pages("/v1/events", params, count):
        for document in page:
            ev = listed_event(document)
            listed[ev.event_id] = ev
            if ev.subscription and (customers is None or ev.customer in customers):
                result.touched_subscriptions.add(ev.subscription)
    result.listed = len(listed)
    if listed:
        result.oldest_listed = min(e.created for e in listed.values())
        result.newest_listed = max(e.created for e in listed.values())
    return listed, result


async def recover_missing(
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub,
    listed: dict[str, ListedEvent],
    result: CoverageResult,
    *,
    customers: set[str] | None,
    account_of: dict[str, str],
    since: int | None = None,
    mark: int | None = None,
) -> CoverageResult:
    """Recover what the archive misses of ``listed`` (MissingEvent), find extras.

    ``customers`` limits the findings to those customers' events (an account-scoped pass).
    ``since`` is where the listing started (None: Stripe's whole window, from the oldest
    event listed) and ``mark`` the previous pass's newest listed event: events.list returned
    every event created since ``since``, so an archived event created between ``since`` and
    the newer of ``mark`` and the newest listed is one Stripe does not know (ExtraEvent),
    whether the pass walked the whole window or only the events after its high-water mark.
    The archive is read over that window only (a regular pass: a few minutes of events).
    """
    low = since if since is not None else result.oldest_listed
    high = max(result.newest_listed or 0, mark or 0) or None
    if low is None or high is None or (not listed and customers is not None):
        return result
    archived = await archived_ids(ingest, low, high)

    def wanted(ev: ListedEvent) -> bool:
        return customers is None or (ev.customer is not None and ev.customer in customers)

    missing = [e for e in listed.values() if e.event_id not in archived and wanted(e)]
    if missing:
        result.recovered_ids = await _recover(ingest, missing, customers)
        recovered = set(result.recovered_ids)
        for ev in missing:
            result.findings.append(
                Finding(
                    kind=MISSING_EVENT,
                    account_id=account_of.get(ev.customer or "", ev.customer),
                    subscription_id=ev.subscription,
                    stripe_event_id=ev.event_id,
                    detail=(
                        "recovered from events.list"
                        if ev.event_id in recovered
                        else "in events.list, not archived; recovery did not append it"
                    ),
                )
            )
    if customers is None:
        for event_id in sorted(archived - listed.keys()):
            result.findings.append(
                Finding(
                    kind=EXTRA_EVENT,
                    stripe_event_id=event_id,
                    detail="archived, but unknown to Stripe's events.list",
                )
            )
    return result


async def _recover(
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub,
    missing: Iterable[ListedEvent],
    customers: set[str] | None,
) -> list[str]:
    """Ask ingest to append the missing events (one call per customer when scoped)."""
    events = list(missing)
    since = _ts(min(e.created for e in events))
    targets: list[str] = sorted(customers) if customers is not None else [""]
    appended: list[str] = []
    for customer in targets:
        response = await ingest.RecoverEvents(
            ingest_pb2.RecoverEventsRequest(since=since, customer=customer)
        )
        appended.extend(response.appended_event_ids)
    log.info(
        "events recovered",
        extra={"missing": len(events), "appended": len(appended)},
    )
    return appended
