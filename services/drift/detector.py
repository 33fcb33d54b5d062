"""One drift pass: coverage, ledger signals, divergences, state comparison, resource audit.

Order matters. Events missing from the archive are recovered first, so the comparisons that
follow see the ledger after the recovered events had a chance to be projected. A state
difference is only reported once it survives a recheck after ``settle_seconds`` (a fresh
retrieve from Stripe and a fresh read of the ledger): a same-second burst, or an event
archived but not projected yet, settles; a real difference stays.

A *full* pass lists every subscription (100 per request, latest invoice expanded) and audits
the resources; an *incremental* pass reads only events newer than the high-water mark and
checks the subscriptions they touch (a quiet Stripe account costs a couple of requests).

Log-only: the pass writes drift's own tables, and its one repair is asking ingest to append
recovered events to the archive. It never holds a ledger lock: the ledger is read through
its gRPC reads, one short transaction per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import grpc
import stripe
from billing.common.v1 import common_pb2
from billing.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from billing.ledger.v1 import drift_inputs_pb2 as ledger_pb
from billing.ledger.v1 import ledger_pb2_grpc, queries_pb2
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.grpc_errors import FailedPrecondition, NotFound
from services.drift import store
from services.drift.compare import compare, decode_subscription_page
from services.drift.coverage import CoverageResult, ListedEvent, list_events, recover_missing
from services.drift.findings import (
    EXTRA_EVENT,
    MISSING_EVENT,
    MISSING_HISTORICAL,
    MISSING_UNRECOVERABLE,
    PAYLOAD_DIVERGENCE,
    STATE_MISMATCH,
    UNCLASSIFIED,
    UNSUPPORTED_VERSION,
    Finding,
)
from services.drift.stripe_calls import (
    RequestCount,
    StripeCaller,
    StripeUnavailable,
    created_slices,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
JSON = dict[str, Any]

RUNS = Counter("drift_runs_total", "Drift passes", ["trigger", "status"])
FOUND = Counter("drift_discrepancies_total", "New discrepancies", ["kind"])
RUN_SECONDS = Histogram("drift_run_seconds", "Drift pass duration", ["trigger"])

HWM_EVENTS = "events"
HWM_RESOURCES = "resources"
#: Re-read this much before a high-water mark: events created in the same second as the
#: mark, and events Stripe listed a little late, are seen again (and deduplicated).
HWM_MARGIN = 300
RETENTION = 30 * 86_400
PROGRESS_SECONDS = 2.0
#: States per message of a whole-account read (the ledger's largest batch).
STATE_BATCH = 5000
#: Pages whose ledger rows are being read at once (a whole-account pass).
PAGE_READS = 4
#: Ids per keyed "which of these does the ledger know" read (the ledger's limit).
KEYED_IDS = 10_000
#: Concurrent ``created`` slices of a whole-account subscription list (see created_slices).
LIST_SLICES = 8
#: Resource lists audited against the ledger's read models (subscriptions come from the
#: state comparison's own list).
AUDITED = {
    "invoice": "/v1/invoices",
    "charge": "/v1/charges",
    "refund": "/v1/refunds",
    "credit_note": "/v1/credit_notes",
}
#: The kinds the ledger's read models answer for (a finding's ``field`` names one).
KNOWN_KINDS = frozenset({"subscription", *AUDITED})
ALL_KINDS = frozenset(
    {
        MISSING_EVENT,
        MISSING_HISTORICAL,
        MISSING_UNRECOVERABLE,
        UNCLASSIFIED,
        UNSUPPORTED_VERSION,
        PAYLOAD_DIVERGENCE,
        STATE_MISMATCH,
        EXTRA_EVENT,
    }
)

Publish = Callable[[list[Finding], str], Awaitable[None]]


class StripeNotConfigured(FailedPrecondition):
    """No Stripe API key: nothing to compare with."""


@dataclass(slots=True)
class DriftDeps:
    """What a pass needs; built once by the service (tests build it too)."""

    engine: AsyncEngine
    caller: StripeCaller | None
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub
    settle_seconds: float = 2.0
    publish: Publish | None = None


@dataclass(slots=True)
class PassResult:
    run_id: str
    counters: store.RunCounters
    findings: list[Finding] = field(default_factory=list)
    new: list[Finding] = field(default_factory=list)
    recovered_ids: list[str] = field(default_factory=list)
    unrecoverable_subscriptions: list[str] = field(default_factory=list)


async def load_states(
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub, customer: str = ""
) -> dict[str, ledger_pb.SubscriptionState]:
    """The ledger's subscriptions (one customer's, or all), by id."""
    out: dict[str, ledger_pb.SubscriptionState] = {}
    request = ledger_pb.StreamSubscriptionStatesRequest(
        stripe_customer_id=customer, batch_size=0 if customer else STATE_BATCH
    )
    async for batch in ledger.StreamSubscriptionStates(request):
        for state in batch.states:
            out[state.subscription_id] = state
    return out


async def subscription_dates(ledger: ledger_pb2_grpc.LedgerServiceAsyncStub) -> list[int]:
    """Every subscription's date as the ledger knows it (no joins: a cheap read), the cut
    points of a whole-account list's slices."""
    request = ledger_pb.StreamSubscriptionStatesRequest(created_only=True, batch_size=STATE_BATCH)
    out: list[int] = []
    async for batch in ledger.StreamSubscriptionStates(request):
        out.extend(
            s.subscription_created.seconds
            for s in batch.states
            if s.HasField("subscription_created")
        )
    return out


async def states_of(
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub, ids: list[str]
) -> dict[str, ledger_pb.SubscriptionState]:
    """The ledger's rows of these subscriptions (one page of Stripe's list), by id."""
    out: dict[str, ledger_pb.SubscriptionState] = {}
    for start in range(0, len(ids), KEYED_IDS):
        request = ledger_pb.StreamSubscriptionStatesRequest(
            subscription_ids=ids[start : start + KEYED_IDS], batch_size=STATE_BATCH
        )
        async for batch in ledger.StreamSubscriptionStates(request):
            for state in batch.states:
                out[state.subscription_id] = state
    return out


async def known_objects(
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub, kind: str, ids: Iterable[str]
) -> set[str]:
    """Which of ``ids`` the ledger's read model of ``kind`` holds (keyed lookups of up to
    KEYED_IDS ids: a pass audits the resources created since its mark, not every id)."""
    wanted = sorted(set(ids))
    out: set[str] = set()
    for start in range(0, len(wanted), KEYED_IDS):
        request = ledger_pb.StreamKnownObjectsRequest(
            kind=kind, ids=wanted[start : start + KEYED_IDS], batch_size=KEYED_IDS
        )
        async for batch in ledger.StreamKnownObjects(request):
            out.update(batch.ids)
    return out


async def customer_accounts(
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub, customers: Iterable[str]
) -> dict[str, ledger_pb.CustomerAccount]:
    """The ledger's account of each of ``customers`` it knows (keyed lookups of up to
    KEYED_IDS ids); a customer the ledger knows nothing of is absent."""
    wanted = sorted(set(customers))
    out: dict[str, ledger_pb.CustomerAccount] = {}
    for start in range(0, len(wanted), KEYED_IDS):
        response = await ledger.LookupCustomerAccounts(
            ledger_pb.LookupCustomerAccountsRequest(
                stripe_customer_ids=wanted[start : start + KEYED_IDS]
            )
        )
        out.update((a.stripe_customer_id, a) for a in response.accounts)
    return out


async def side_by_side(*works: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather`` whose first failure cancels the others and waits for them: a pass
    that failed must not leave its other lists paging on (spending the shared Stripe budget,
    comparing pages) after its run was recorded as failed."""
    tasks = [asyncio.ensure_future(work) for work in works]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _before_cutoff(invoice: Any, cutoff: int | None) -> bool:
    if cutoff is None or not isinstance(invoice, dict):
        return False
    return int(invoice.get("created") or 0) < cutoff


async def account_customers(
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub, account_id: str
) -> set[str]:
    """The Stripe customers of an account, as the ledger knows them (NotFound otherwise)."""
    try:
        detail = await ledger.GetAccount(queries_pb2.GetAccountRequest(account_id=account_id))
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        if account_id.startswith("cus_"):
            return {account_id}
        raise NotFound(f"unknown account: {account_id}") from None
    customers = set(detail.account.stripe_customer_ids)
    if account_id.startswith("cus_"):
        customers.add(account_id)
    if not customers:
        raise NotFound(f"account {account_id} has no Stripe customer")
    return customers


def _customer_of(obj: JSON) -> str | None:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return str(customer) if customer else None


def _subscription_of(obj: JSON) -> str | None:
    sub = obj.get("subscription")
    if isinstance(sub, dict):
        sub = sub.get("id")
    if not sub:
        parent = (obj.get("parent") or {}).get("subscription_details") or {}
        sub = parent.get("subscription")
    return str(sub) if sub else None


class _Pass:
    """State of one running pass (kept apart from the module functions for readability)."""

    def __init__(
        self,
        deps: DriftDeps,
        caller: StripeCaller,
        run_id: str,
        account_id: str | None,
        incremental: bool,
    ) -> None:
        self.deps = deps
        self.caller = caller
        self.run_id = run_id
        self.account_id = account_id
        self.incremental = incremental
        self.counters = store.RunCounters()
        self.count = RequestCount()
        self.findings: list[Finding] = []
        self.account_of: dict[str, str] = {}
        self.customers: set[str] | None = None
        self.unrecoverable: set[str] = set()
        self.checked: dict[str, tuple[str | None, str | None]] = {}
        #: What the comparison could not settle at once (see recheck).
        self.suspects: list[str] = []
        self.missing_subs: dict[str, JSON] = {}
        #: A whole-account pass: the ledger's subscription dates, and the rows read so far.
        self.dates: list[int] = []
        self.states: dict[str, ledger_pb.SubscriptionState] = {}
        self.new: list[Finding] = []
        self.known: dict[str, set[str]] = {}
        self.charge_customer: dict[str, str] = {}
        self.recovered_ids: list[str] = []
        self.started = time.monotonic()

    # -------------------------------------------------------------- helpers
    def account(self, customer: str | None) -> str | None:
        if customer is None:
            return None
        return self.account_of.get(customer, customer)

    async def name_accounts(self) -> None:
        """Name by the ledger's account what the pass could only name by its Stripe customer.

        The pass learns accounts from the ledger's subscription rows; a customer none of
        whose subscriptions the ledger knows (all its events lost, a customer with no
        subscription) is asked for by id: the ledger's account of the customer (its link,
        its tenant, or its own row), the name the back-office opens. A customer the ledger
        does not know at all has no account yet: its findings and check rows keep the
        Stripe customer id, the only name there is (and the one the ledger will give it
        when its history arrives without a tenant); the pass that follows the recovery
        renames the open findings (record_findings updates ``account_id``)."""
        named = {f.account_id for f in self.findings} | {a for a, _ in self.checked.values()}
        unnamed = {a for a in named if a and a.startswith("cus_") and a not in self.account_of}
        if not unnamed:
            return
        found = await customer_accounts(self.deps.ledger, unnamed)
        rename = {c: a.account_id for c, a in found.items() if a.account_id}
        if not rename:
            return
        self.account_of.update(rename)
        self.findings = [
            replace(f, account_id=rename[f.account_id]) if f.account_id in rename else f
            for f in self.findings
        ]
        self.checked = {
            sid: (rename.get(a or "", a), c) for sid, (a, c) in self.checked.items()
        }

    def sync_counters(self) -> None:
        self.counters.stripe_requests = self.count.requests
        self.counters.discrepancies_found = len({f.fingerprint for f in self.findings})

    async def progress_loop(self) -> None:
        """Saves the counters every couple of seconds and logs done/total and the rate."""
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            self.sync_counters()
            await store.save_progress(self.deps.engine, self.run_id, self.counters)
            elapsed = max(1e-6, time.monotonic() - self.started)
            log.info(
                "drift pass progress",
                extra={
                    "run_id": self.run_id,
                    "done": self.counters.subscriptions_checked,
                    "total": self.counters.subscriptions_total,
                    "stripe_requests": self.count.requests,
                    "requests_per_second": round(self.count.requests / elapsed, 1),
                },
            )

    # -------------------------------------------------------------- scope
    async def resolve_scope(self) -> dict[str, ledger_pb.SubscriptionState]:
        """The ledger's subscriptions in scope; an account's Stripe customers come from the
        ledger's account (a ``cus_`` id is accepted as its own account)."""
        if self.account_id is None and self.incremental:
            return {}  # read per customer of the touched subscriptions (run)
        if self.account_id is None:
            # A whole account: each page's rows are read by id as the page arrives
            # (compare_pages); here only the dates that cut Stripe's list into slices.
            self.dates = await subscription_dates(self.deps.ledger)
            return {}
        else:
            self.customers = await account_customers(self.deps.ledger, self.account_id)
            states = await self.current_states()
        for state in states.values():
            if state.stripe_customer_id and state.account_id:
                self.account_of[state.stripe_customer_id] = state.account_id
        if self.account_id is not None:
            for customer in self.customers or ():
                self.account_of.setdefault(customer, self.account_id)
        return states

    # -------------------------------------------------------------- steps
    async def list_events(self) -> tuple[dict[str, ListedEvent], CoverageResult, int | None]:
        # After the first pass every pass reads only events newer than the high-water mark
        # (minus a margin); the first one walks Stripe's whole 30-day window.
        mark = await store.get_high_water_mark(self.deps.engine, HWM_EVENTS)
        since = mark - HWM_MARGIN if mark is not None else None
        listed, result = await list_events(
            self.caller, self.count, since=since, customers=self.customers
        )
        return listed, result, since

    async def recover(
        self, listed: dict[str, ListedEvent], result: CoverageResult, since: int | None
    ) -> CoverageResult:
        mark = await store.get_high_water_mark(self.deps.engine, HWM_EVENTS)
        result = await recover_missing(
            self.deps.ingest,
            listed,
            result,
            customers=self.customers,
            account_of=self.account_of,
            since=since,
            mark=mark,
        )
        await store.resolve_listed(self.deps.engine, EXTRA_EVENT, listed.keys())
        self.counters.events_recovered += len(result.recovered_ids)
        self.recovered_ids.extend(result.recovered_ids)
        return result

    async def touched_subscriptions(self, touched: set[str]) -> list[JSON]:
        """The subscriptions an incremental pass re-checks, one retrieve each."""
        out: list[JSON] = []
        for sid in sorted(touched):
            try:
                sub = await self.caller.request(
                    "get", f"/v1/subscriptions/{sid}", self.count, expand=["latest_invoice"]
                )
            except stripe.InvalidRequestError:
                continue
            if self.customers is None or _customer_of(sub) in self.customers:
                out.append(sub)
        return out

    def subscription_pages(self) -> AsyncIterator[list[JSON]]:
        """Stripe's subscriptions in scope (all statuses, latest invoice expanded), page by
        page: a whole Stripe account in ``created`` slices walked side by side (the slices
        cut at the ledger's subscription dates), an account's customers one query each."""
        params: JSON = {"status": "all", "expand": ["data.latest_invoice"]}
        if self.customers is not None:
            queries = [{**params, "customer": c} for c in sorted(self.customers)]
        else:
            queries = [{**params, **cut} for cut in created_slices(self.dates, LIST_SLICES)]
        return self.caller.pages_side_by_side(
            "/v1/subscriptions", queries, self.count, decode=decode_subscription_page
        )

    async def stripe_resources(self, since: int | None) -> dict[str, dict[str, JSON]]:
        """Every audited kind's resources (created since ``since``), the lists side by side."""
        kinds = list(AUDITED.items())
        found = await asyncio.gather(*(self._resources(k, p, since) for k, p in kinds))
        return {kind: objects for (kind, _), objects in zip(kinds, found, strict=True)}

    async def _resources(self, kind: str, path: str, since: int | None) -> dict[str, JSON]:
        objects: dict[str, JSON] = {}
        targets: list[JSON] = [{"created": {"gte": since}} if since is not None else {}]
        if self.customers is not None and kind in ("invoice", "charge", "credit_note"):
            targets = [{**targets[0], "customer": c} for c in sorted(self.customers)]
        for query in targets:
            async for page in self.caller.pages(path, query, self.count):
                for obj in page:
                    if self.customers is None or _customer_of(obj) in self.customers:
                        objects[obj["id"]] = obj
        return objects

    async def signals(self) -> None:
        """Unclassified / unsupported-version events as the ledger flags them."""
        response = await self.deps.ledger.ListDriftSignals(ledger_pb.ListDriftSignalsRequest())
        for signal in response.signals:
            account = signal.account_id or self.account(signal.stripe_customer_id or None)
            if self.customers is not None and signal.stripe_customer_id not in self.customers:
                continue
            self.findings.append(
                Finding(
                    kind=signal.kind,
                    severity=signal.severity or None,
                    account_id=account,
                    subscription_id=signal.subscription_id or None,
                    stripe_event_id=signal.stripe_event_id,
                    field="api_version" if signal.kind == UNSUPPORTED_VERSION else None,
                    stripe_value=signal.api_version or None,
                    detail=f"{signal.stripe_event_type}: {signal.detail}",
                )
            )

    async def divergences(self) -> None:
        """Same event id received with different bytes (ingest's divergence log)."""
        token = ""
        while True:
            response = await self.deps.ingest.ListDivergences(
                ingest_pb2.ListDivergencesRequest(
                    page=common_pb2.PageRequest(page_size=500, page_token=token)
                )
            )
            for d in response.divergences:
                customer = sub = None
                with contextlib.suppress(ValueError, AttributeError, TypeError):
                    obj = json.loads(d.divergent_payload)["data"]["object"]
                    customer = obj.get("id") if obj.get("object") == "customer" else None
                    customer = customer or _customer_of(obj)
                    sub = obj.get("id") if obj.get("object") == "subscription" else None
                    sub = sub or _subscription_of(obj)
                if self.customers is not None and customer not in self.customers:
                    continue
                self.findings.append(
                    Finding(
                        kind=PAYLOAD_DIVERGENCE,
                        account_id=self.account(customer),
                        subscription_id=sub,
                        stripe_event_id=d.event_id,
                        field="payload_sha256",
                        ledger_value=d.original_sha256,
                        stripe_value=d.divergent_sha256,
                        detail="same event id received with different bytes; original kept",
                    )
                )
            token = response.page.next_page_token
            if not token:
                return

    def audit_missing(
        self,
        kind: str,
        obj: JSON,
        window_start: int,
        cutoff_of: dict[str, int],
        sub_of_customer_cutoff: dict[str, int],
    ) -> None:
        """A Stripe resource the ledger never saw: recoverable inside the window."""
        created = int(obj.get("created") or 0)
        customer = _customer_of(obj) or self.charge_customer.get(str(obj.get("charge") or ""))
        sub = obj["id"] if kind == "subscription" else _subscription_of(obj)
        cutoff = cutoff_of.get(sub or "") or sub_of_customer_cutoff.get(customer or "")
        if cutoff is not None and created < cutoff:
            return
        recoverable = created >= window_start
        if not recoverable and sub:
            self.unrecoverable.add(sub)
        self.findings.append(
            Finding(
                kind=MISSING_HISTORICAL if recoverable else MISSING_UNRECOVERABLE,
                account_id=self.account(customer),
                subscription_id=sub,
                stripe_object_id=obj["id"],
                field=kind,
                stripe_value=str(created),
                detail=(
                    f"{kind} {obj['id']} has no archived event"
                    + ("" if recoverable else "; outside events.list's 30 days: needs a cutoff")
                ),
            )
        )

    def compare_page(
        self, page: list[JSON], states: dict[str, ledger_pb.SubscriptionState]
    ) -> None:
        """Compare one page of Stripe's subscriptions with the ledger's rows (no waiting, so
        it overlaps the next pages' requests): a difference, or a subscription the ledger
        lacks, is only a suspect until :meth:`recheck`."""
        for sub in page:
            sid = str(sub["id"])
            if sid in self.checked:
                continue  # listed twice (a cursor moved past a concurrent change)
            state = states.get(sid)
            if state is None:
                self.missing_subs[sid] = sub
            elif compare(sub, state):
                self.suspects.append(sid)
            self.counters.subscriptions_checked += 1
            customer = _customer_of(sub)
            self.checked[sid] = (self.account(customer), customer)
        self.counters.subscriptions_total = max(
            self.counters.subscriptions_total, self.counters.subscriptions_checked
        )

    async def compare_pages(
        self,
        pages: AsyncIterator[list[JSON]],
        states: dict[str, ledger_pb.SubscriptionState] | None,
    ) -> None:
        """Compare every page with ``states``, or (``None``: a whole account) with the
        ledger's rows of that page, read by id while the next pages are requested: the
        ledger's 100,000 rows are never one long read before the first comparison."""
        if states is not None:
            async for page in pages:
                self.compare_page(page, states)
            return
        reads = asyncio.Semaphore(PAGE_READS)
        running: list[asyncio.Future[None]] = []

        async def keyed(page: list[JSON]) -> None:
            try:
                rows = await states_of(self.deps.ledger, [str(sub["id"]) for sub in page])
            finally:
                reads.release()
            self.remember(rows)
            # No check row is written here: a pass that fails later must leave the previous
            # check state as it was, so save() writes every check row once the run succeeded.
            self.compare_page(page, rows)

        try:
            async for page in pages:
                await reads.acquire()
                running.append(asyncio.ensure_future(keyed(page)))
            await asyncio.gather(*running)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def remember(self, states: dict[str, ledger_pb.SubscriptionState]) -> None:
        """Keep the rows read (the recovery cutoffs' customers) and their accounts."""
        self.states.update(states)
        for state in states.values():
            if state.stripe_customer_id and state.account_id:
                self.account_of[state.stripe_customer_id] = state.account_id

    async def recheck(
        self, window_start: int, cutoff_of: dict[str, int], customer_cutoff: dict[str, int]
    ) -> None:
        """A suspect is reported only if it survives the settle delay: the ledger read again
        (only the customers concerned) and the subscription retrieved again from Stripe."""
        if not self.suspects and not self.missing_subs:
            return
        await asyncio.sleep(self.deps.settle_seconds)
        concerned = {self.checked[sid][1] for sid in self.suspects}
        concerned |= {_customer_of(sub) for sub in self.missing_subs.values()}
        states = await self.current_states({c for c in concerned if c})
        for sid, sub in self.missing_subs.items():
            if sid not in states:
                self.audit_missing("subscription", sub, window_start, cutoff_of, customer_cutoff)
        for sid in self.suspects:
            state = states.get(sid)
            if state is None:
                continue
            fresh = await self.caller.request(
                "get", f"/v1/subscriptions/{sid}", self.count, expand=["latest_invoice"]
            )
            for diff in compare(fresh, state):
                if diff.field.startswith("latest_invoice") and _before_cutoff(
                    fresh.get("latest_invoice"), cutoff_of.get(sid)
                ):
                    continue  # an invoice older than the recovery cutoff: a known gap
                self.findings.append(
                    Finding(
                        kind=STATE_MISMATCH,
                        account_id=self.account(_customer_of(fresh)),
                        subscription_id=sid,
                        stripe_object_id=sid,
                        field=diff.field,
                        ledger_value=diff.ledger_value,
                        stripe_value=diff.stripe_value,
                        detail=f"ledger state from event {state.state_event_id}",
                    )
                )

    async def current_states(
        self, only: set[str] | None = None
    ) -> dict[str, ledger_pb.SubscriptionState]:
        """The ledger's rows in scope; ``only``: just these customers' (incremental)."""
        if only is not None:
            out: dict[str, ledger_pb.SubscriptionState] = {}
            for customer in sorted(only):
                for sid, state in (await load_states(self.deps.ledger, customer)).items():
                    out[sid] = state
                    if state.account_id:
                        self.account_of[customer] = state.account_id
            return out
        if self.customers is None:
            return await load_states(self.deps.ledger)
        scoped: dict[str, ledger_pb.SubscriptionState] = {}
        for customer in sorted(self.customers):
            scoped.update(await load_states(self.deps.ledger, customer))
        return scoped

    async def audit_resources(
        self,
        resources: dict[str, dict[str, JSON]],
        window_start: int,
        cutoff_of: dict[str, int],
        customer_cutoff: dict[str, int],
    ) -> None:
        pending: dict[str, list[JSON]] = {}
        for charge in resources.get("charge", {}).values():
            owner = _customer_of(charge)
            if owner:
                self.charge_customer[charge["id"]] = owner
        for kind, objects in resources.items():
            known = await known_objects(self.deps.ledger, kind, objects)
            pending[kind] = [obj for oid, obj in objects.items() if oid not in known]
        if any(pending.values()):
            await asyncio.sleep(self.deps.settle_seconds)
        for kind, unknown in pending.items():
            if not unknown:
                continue
            known = await known_objects(self.deps.ledger, kind, (o["id"] for o in unknown))
            for obj in unknown:
                if obj["id"] not in known:
                    self.audit_missing(kind, obj, window_start, cutoff_of, customer_cutoff)

    async def resolve_known_resources(self, cutoff_of: dict[str, int]) -> None:
        """Passes after the first list only new resources, so an open "no archived event"
        finding is resolved by looking again: the ledger knows the object now (recovered),
        or a recovery cutoff covers its subscription."""
        rows = [
            row
            for kind in (MISSING_HISTORICAL, MISSING_UNRECOVERABLE)
            for row in await store.open_of_kind(self.deps.engine, kind)
            if self.customers is None or row.account_id in self.scope_accounts()
        ]
        named: dict[str, set[str]] = {}
        for row in rows:
            if row.field in KNOWN_KINDS and row.stripe_object_id:
                named.setdefault(row.field, set()).add(row.stripe_object_id)
        known: set[str] = set()
        for kind, ids in named.items():
            known |= await known_objects(self.deps.ledger, kind, ids)
        done: list[int] = []
        for row in rows:
            covered = (
                row.subscription_id in cutoff_of
                and int(row.stripe_value or 0) < cutoff_of[row.subscription_id]
            )
            if row.stripe_object_id in known or covered:
                done.append(row.id)
        await store.resolve_ids(self.deps.engine, done)

    def scope_accounts(self) -> set[str]:
        return {self.account_id or "", *(self.account(c) or "" for c in self.customers or ())}

    async def resolve_recovered_events(self) -> None:
        """Open MissingEvent discrepancies whose event is archived now are resolved."""
        rows = await store.open_of_kind(self.deps.engine, MISSING_EVENT)
        done: list[int] = []
        for row in rows:
            if row.stripe_event_id is None:
                continue
            try:
                await self.deps.ingest.GetEvent(
                    ingest_pb2.GetEventRequest(event_id=row.stripe_event_id)
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    continue
                raise
            done.append(row.id)
        await store.resolve_ids(self.deps.engine, done)

    # -------------------------------------------------------------- the pass
    async def step(self, name: str, work: Awaitable[T]) -> T:
        """Await one step of the pass and log how long it took (where a slow pass goes)."""
        began = time.monotonic()
        result = await work
        log.info(
            "drift pass step",
            extra={
                "run_id": self.run_id,
                "step": name,
                "seconds": round(time.monotonic() - began, 3),
                "stripe_requests": self.count.requests,
            },
        )
        return result

    async def run(self) -> None:
        """Compare first (what the ledger shows now, settled), then recover missing events,
        then audit resources: a change whose webhook was lost is reported as a mismatch and
        its event recovered; the next pass (or a sync) finds both cleared."""
        engine = self.deps.engine
        mark = await store.get_high_water_mark(engine, HWM_EVENTS)
        self.incremental = self.incremental and mark is not None
        states = await self.step("ledger states", self.resolve_scope())
        res_mark = await store.get_high_water_mark(engine, HWM_RESOURCES)
        res_since = res_mark - HWM_MARGIN if res_mark is not None else None
        if self.incremental:
            listed, coverage, since = await self.list_events()
            touched = await self.touched_subscriptions(set(coverage.touched_subscriptions))
            if self.customers is None:
                states = await self.current_states({c for c in map(_customer_of, touched) if c})
            self.compare_page(touched, states)
            resources = await self.stripe_resources(res_since)
        else:
            # The lists are independent cursors: walked side by side, they share the budget;
            # each subscription page is compared as it arrives.
            self.counters.subscriptions_total = max(len(states), len(self.dates))
            (listed, coverage, since), _, resources = await self.step(
                "stripe lists and compare",
                side_by_side(
                    self.list_events(),
                    self.compare_pages(
                        self.subscription_pages(), states if self.customers is not None else None
                    ),
                    self.stripe_resources(res_since),
                ),
            )
            states = self.states if self.customers is None else states
        self.counters.subscriptions_total = len(self.checked)
        newest = max(coverage.newest_listed or 0, mark or 0)
        window_start = (newest or int(time.time())) - RETENTION
        cutoff_of = await store.recovery_cutoffs(engine)
        customer_cutoff: dict[str, int] = {}
        for sid, cutoff in cutoff_of.items():
            state = states.get(sid)
            if state is not None and state.stripe_customer_id:
                prev = customer_cutoff.get(state.stripe_customer_id, 0)
                customer_cutoff[state.stripe_customer_id] = max(prev, cutoff)
        await self.step("recheck", self.recheck(window_start, cutoff_of, customer_cutoff))
        coverage = await self.step("recover", self.recover(listed, coverage, since))
        self.findings.extend(coverage.findings)
        await self.step("signals", self.signals())
        await self.step("divergences", self.divergences())
        await self.step(
            "audit", self.audit_resources(resources, window_start, cutoff_of, customer_cutoff)
        )
        await self.step("resolve events", self.resolve_recovered_events())
        if not self.incremental:
            await self.step("resolve resources", self.resolve_known_resources(cutoff_of))
        await self.step("name accounts", self.name_accounts())
        newest_resource = max(
            (int(o.get("created") or 0) for objs in resources.values() for o in objs.values()),
            default=0,
        )
        await self.step(
            "save",
            self.save(
                coverage,
                newest_resource,
                self.incremental,
                set(self.checked),
                full_window=since is None,
            ),
        )

    async def save(
        self,
        coverage: CoverageResult,
        newest_resource: int,
        incremental: bool,
        checked_subs: set[str],
        *,
        full_window: bool,
    ) -> list[Finding]:
        engine = self.deps.engine
        started = (await store.get_run(engine, self.run_id)).started_at
        # Kinds a pass re-examines completely; resource findings are re-checked one by one
        # (resolve_known_resources) unless the pass walked the whole window.
        kinds = ALL_KINDS if full_window else ALL_KINDS - {EXTRA_EVENT}
        if not full_window:
            kinds = kinds - {MISSING_HISTORICAL, MISSING_UNRECOVERABLE}
        if self.customers is not None:
            scope = store.Scope(kinds=kinds, accounts=frozenset(self.scope_accounts()))
        elif incremental:
            # Only the subscriptions it looked at: everything else was not re-examined.
            scope = store.Scope(
                kinds=frozenset({STATE_MISMATCH}), subscriptions=frozenset(checked_subs)
            )
        else:
            scope = store.Scope(kinds=kinds)
        async with engine.begin() as conn:
            new = await store.record_findings(conn, self.run_id, self.findings)
            await store.resolve_unseen(conn, scope, (f.fingerprint for f in self.findings), started)
            synced: set[str] = set()
            if not incremental and self.customers is None:
                # Synced: the account's history is complete as far as Stripe can tell (no
                # gap left open by this pass); the banner counts the others as never synced.
                gaps = {
                    f.account_id
                    for f in self.findings
                    if f.kind in (MISSING_HISTORICAL, MISSING_UNRECOVERABLE, MISSING_EVENT)
                }
                synced = {a for a, _ in self.checked.values() if a and a not in gaps}
            # Every check row of the pass, in the transaction that records its outcome: a
            # pass that dies half-way never gets here and leaves the previous checks intact.
            checked = [(sid, a, c) for sid, (a, c) in self.checked.items()]
            await store.mark_checked(conn, self.run_id, checked, synced=synced)
            if coverage.newest_listed and self.customers is None:
                await store.set_high_water_mark(conn, HWM_EVENTS, coverage.newest_listed)
            if newest_resource and self.customers is None:
                await store.set_high_water_mark(conn, HWM_RESOURCES, newest_resource)
            await store.refresh_flags(conn)
        self.new = new
        return new


async def run_pass(
    deps: DriftDeps,
    *,
    account_id: str | None,
    trigger: str,
    operator: str | None = None,
    incremental: bool = False,
) -> PassResult:
    """Run one pass to the end; the run row shows its counters while it goes."""
    if deps.caller is None:
        raise StripeNotConfigured("Stripe is not configured (STRIPE_API_KEY)")
    run_id = uuid.uuid4().hex
    scope = f"account:{account_id}" if account_id else "all"
    await store.create_run(deps.engine, run_id, scope, trigger, operator)
    state = _Pass(deps, deps.caller, run_id, account_id, incremental)
    progress = asyncio.create_task(state.progress_loop())
    began = time.monotonic()
    failure: str | None = None
    try:
        await state.run()
    except (StripeUnavailable, grpc.aio.AioRpcError, stripe.StripeError) as exc:
        failure = f"{type(exc).__name__}: {exc}"[:500]
        state.counters.errors += 1
        log.warning("drift pass failed", extra={"run_id": run_id, "error": failure})
    except NotFound:
        failure = "unknown account"
        raise
    except BaseException as exc:
        # Not handled here (a bug, the database away, the caller gone): re-raised, but the
        # run is recorded as failed with it, never as finished.
        failure = f"{type(exc).__name__}: {exc}"[:500]
        state.counters.errors += 1
        raise
    finally:
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
        state.sync_counters()
        await store.finish_run(deps.engine, run_id, state.counters, failed=failure)
        RUNS.labels(trigger=trigger, status="failed" if failure else "finished").inc()
        RUN_SECONDS.labels(trigger=trigger).observe(time.monotonic() - began)
    new = state.new
    for finding in new:
        FOUND.labels(kind=finding.kind).inc()
    if new and deps.publish is not None:
        await deps.publish(new, run_id)
    log.info(
        "drift pass finished",
        extra={
            "run_id": run_id,
            "scope": scope,
            "checked": state.counters.subscriptions_checked,
            "found": state.counters.discrepancies_found,
            "new": len(new),
            "recovered": state.counters.events_recovered,
            "stripe_requests": state.counters.stripe_requests,
            "seconds": round(time.monotonic() - began, 2),
        },
    )
    return PassResult(
        run_id=run_id,
        counters=state.counters,
        findings=state.findings,
        new=new,
        recovered_ids=state.recovered_ids,
        unrecoverable_subscriptions=sorted(state.unrecoverable),
    )
