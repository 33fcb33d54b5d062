"""Reads and writes of the ``drift`` schema (the only schema drift writes).

Discrepancies are deduplicated by fingerprint while open: a pass that finds the same
difference again bumps ``last_seen_at``; a pass whose scope covered it and did not find it
again sets ``resolved_at``. Nothing is deleted: every run and every finding is kept.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, and_, func, or_, select, text, true, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.drift.findings import Finding
from services.drift.tables import (
    accounts,
    discrepancies,
    high_water_marks,
    operations,
    runs,
)
from services.drift.tables import recovery_cutoffs as recovery_cutoffs_table

RUN_COUNTERS = (
    "subscriptions_checked",
    "subscriptions_total",
    "discrepancies_found",
    "events_recovered",
    "stripe_requests",
    "errors",
)


@dataclass(slots=True)
class RunCounters:
    """A pass's counters, written to its ``runs`` row as it goes (progress is visible)."""

    subscriptions_checked: int = 0
    subscriptions_total: int = 0
    discrepancies_found: int = 0
    events_recovered: int = 0
    stripe_requests: int = 0
    errors: int = 0

    def values(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RUN_COUNTERS}


@dataclass(frozen=True, slots=True)
class Scope:
    """What a pass covered: the open discrepancies it may resolve by not finding them again.

    ``accounts`` None means every account; ``kinds`` the kinds the pass looked for.
    """

    kinds: frozenset[str]
    accounts: frozenset[str] | None = None
    subscriptions: frozenset[str] | None = None


async def create_run(
    engine: AsyncEngine, run_id: str, scope: str, trigger: str, operator: str | None
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            runs.insert().values(
                id=run_id, scope=scope, trigger=trigger, status="running", operator=operator
            )
        )


async def save_progress(engine: AsyncEngine, run_id: str, counters: RunCounters) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(runs).where(runs.c.id == run_id).values(**counters.values()))


async def finish_run(
    engine: AsyncEngine,
    run_id: str,
    counters: RunCounters,
    *,
    failed: str | None = None,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                status="failed" if failed else "finished",
                finished_at=func.now(),
                error_message=failed,
                **counters.values(),
            )
        )


async def get_run(engine: AsyncEngine, run_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(select(runs).where(runs.c.id == run_id))).one_or_none()


async def list_runs(engine: AsyncEngine, limit: int, after: tuple[datetime, str] | None) -> Any:
    query = select(runs, func.count().over().label("total")).order_by(
        runs.c.started_at.desc(), runs.c.id.desc()
    )
    if after is not None:
        query = query.where(tuple_(runs.c.started_at, runs.c.id) < tuple_(*after))
    async with engine.connect() as conn:
        return (await conn.execute(query.limit(limit))).all()


async def record_findings(
    conn: AsyncConnection, run_id: str, findings: Sequence[Finding]
) -> list[Finding]:
    """Store findings; returns the ones that were not already open (new discrepancies)."""
    new: list[Finding] = []
    unique = {f.fingerprint: f for f in findings}
    for finding in unique.values():
        stmt = insert(discrepancies).values(
            fingerprint=finding.fingerprint,
            kind=finding.kind,
            severity=finding.level,
            account_id=finding.account_id,
            subscription_id=finding.subscription_id,
            stripe_event_id=finding.stripe_event_id,
            stripe_object_id=finding.stripe_object_id,
            field=finding.field,
            ledger_value=finding.ledger_value,
            stripe_value=finding.stripe_value,
            detail=finding.detail,
            run_id=run_id,
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[discrepancies.c.fingerprint],
            index_where=discrepancies.c.resolved_at.is_(None),
            set_={
                "last_seen_at": func.now(),
                # Named by the ledger's account once the ledger knows the customer.
                "account_id": stmt.excluded.account_id,
                "ledger_value": stmt.excluded.ledger_value,
                "stripe_value": stmt.excluded.stripe_value,
                "detail": stmt.excluded.detail,
            },
        ).returning(text("(xmax = 0) AS inserted"))
        inserted = (await conn.execute(upsert)).scalar_one()
        if inserted:
            new.append(finding)
    return new


async def resolve_unseen(
    conn: AsyncConnection, scope: Scope, seen: Iterable[str], run_started: datetime
) -> int:
    """Resolve the open discrepancies of ``scope`` this pass did not find again."""
    conditions = [
        discrepancies.c.resolved_at.is_(None),
        discrepancies.c.kind.in_(sorted(scope.kinds)),
        discrepancies.c.last_seen_at < run_started,
    ]
    if scope.accounts is not None:
        conditions.append(discrepancies.c.account_id.in_(sorted(scope.accounts)))
    if scope.subscriptions is not None:
        conditions.append(discrepancies.c.subscription_id.in_(sorted(scope.subscriptions)))
    seen_list = sorted(set(seen))
    if seen_list:
        conditions.append(discrepancies.c.fingerprint.not_in(seen_list))
    result = await conn.execute(
        update(discrepancies).where(and_(*conditions)).values(resolved_at=func.now())
    )
    return result.rowcount or 0


_UPSERT_CHECKS = text(
    """
INSERT INTO drift.subscription_checks
    (subscription_id, account_id, stripe_customer_id, drift_checked_at, last_run_id)
SELECT s, a, c, now(), :run_id
FROM unnest(CAST(:subs AS text[]), CAST(:accounts AS text[]), CAST(:customers AS text[]))
    AS t(s, a, c)
ON CONFLICT (subscription_id) DO UPDATE SET
    account_id = EXCLUDED.account_id,
    stripe_customer_id = EXCLUDED.stripe_customer_id,
    drift_checked_at = EXCLUDED.drift_checked_at,
    last_run_id = EXCLUDED.last_run_id
"""
)
_UPSERT_ACCOUNTS = text(
    """
INSERT INTO drift.accounts (account_id, stripe_customer_id, checked_at, synced_at)
SELECT a, c, now(), CASE WHEN y THEN now() END
FROM unnest(CAST(:accounts AS text[]), CAST(:customers AS text[]), CAST(:synced AS boolean[]))
    AS t(a, c, y)
ON CONFLICT (account_id) DO UPDATE SET
    checked_at = EXCLUDED.checked_at,
    synced_at = COALESCE(EXCLUDED.synced_at, drift.accounts.synced_at)
"""
)


async def mark_checked(
    conn: AsyncConnection,
    run_id: str,
    checked: Sequence[tuple[str, str | None, str | None]],
    synced: Collection[str] = (),
) -> None:
    """Upsert ``(subscription id, account id, customer id)`` check rows and the accounts
    (one array statement each: 100,000 rows cost one round trip, not a giant VALUES list);
    the accounts in ``synced`` are marked synced by the same statement (see mark_synced).
    The caller refreshes the flags (refresh_flags) once its writes are done."""
    if not checked:
        return
    await conn.execute(
        _UPSERT_CHECKS,
        {
            "run_id": run_id,
            "subs": [sid for sid, _, _ in checked],
            "accounts": [account for _, account, _ in checked],
            "customers": [customer for _, _, customer in checked],
        },
    )
    owners: dict[str, str | None] = {}
    for _, account, customer in sorted(checked, key=lambda r: (r[1] or "", r[2] or "")):
        if account:
            owners[account] = customer
    await conn.execute(
        _UPSERT_ACCOUNTS,
        {
            "accounts": list(owners),
            "customers": list(owners.values()),
            "synced": [account in synced for account in owners],
        },
    )


#: The one statement of "this discrepancy raises its subject's drift flag": neither resolved by
#: a later pass nor acknowledged by an operator (DESIGN.md section 5). Every flag refresh and
#: every open-discrepancy count below is written with it.
FLAGGING = "{d}resolved_at IS NULL AND {d}acknowledged_at IS NULL"


def _refresh_flag(table: str, key: str) -> TextClause:
    """``has_drift_detected`` of every row of ``drift.<table>`` (keyed by ``key``) recomputed
    from its flagging discrepancies; only rows whose flag changes are written.

    Only two kinds of rows can change: the flagged ones (a discrepancy may have been
    resolved or acknowledged) and those with a flagging discrepancy. Those candidates are
    found with one scan and a hashed set; the per-row EXISTS runs for them alone, not for
    each of the 100,000 subscriptions of a full pass."""
    # table, key: this module's two call sites below, never input.
    return text(
        f"""
UPDATE drift.{table} t SET has_drift_detected = NOT t.has_drift_detected
WHERE (
    t.has_drift_detected
    OR t.{key} IN (
        SELECT d.{key} FROM drift.discrepancies d WHERE {FLAGGING.format(d="d.")}
    )
)
AND t.has_drift_detected <> EXISTS (
    SELECT 1 FROM drift.discrepancies d
    WHERE d.{key} = t.{key} AND {FLAGGING.format(d="d.")}
)
"""  # noqa: S608
    )


_REFRESH_SUBSCRIPTIONS = _refresh_flag("subscription_checks", "subscription_id")
_REFRESH_ACCOUNTS = _refresh_flag("accounts", "account_id")
_ADD_ACCOUNTS_OF_FINDINGS = text(
    """
INSERT INTO drift.accounts (account_id)
SELECT DISTINCT d.account_id FROM drift.discrepancies d
WHERE d.account_id IS NOT NULL AND d.resolved_at IS NULL
ON CONFLICT (account_id) DO NOTHING
"""
)


async def refresh_flags(conn: AsyncConnection) -> None:
    """``has_drift_detected`` = an open, unacknowledged discrepancy exists (two statements:
    the flags are what the banner reads, so they are kept exact after every change)."""
    await conn.execute(_ADD_ACCOUNTS_OF_FINDINGS)
    await conn.execute(_REFRESH_SUBSCRIPTIONS)
    await conn.execute(_REFRESH_ACCOUNTS)


async def mark_synced(conn: AsyncConnection, account_ids: Iterable[str]) -> None:
    """Accounts whose history a sync (or a full pass) confirmed complete."""
    ids = sorted(set(account_ids))
    if ids:
        await conn.execute(
            text(
                "INSERT INTO drift.accounts (account_id, synced_at)"
                " SELECT a, now() FROM unnest(CAST(:ids AS text[])) AS t(a)"
                " ON CONFLICT (account_id) DO UPDATE SET synced_at = now()"
            ),
            {"ids": ids},
        )


async def acknowledge(
    engine: AsyncEngine, account_id: str, operator: str, note: str
) -> tuple[int, datetime]:
    async with engine.begin() as conn:
        now = (await conn.execute(select(func.now()))).scalar_one()
        result = await conn.execute(
            update(discrepancies)
            .where(
                discrepancies.c.account_id == account_id,
                discrepancies.c.resolved_at.is_(None),
                discrepancies.c.acknowledged_at.is_(None),
            )
            .values(acknowledged_at=now, acknowledged_by=operator, acknowledgement_note=note)
        )
        stmt = insert(accounts).values(
            account_id=account_id,
            acknowledged_at=now,
            acknowledged_by=operator,
            acknowledgement_note=note,
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[accounts.c.account_id],
                set_={
                    "acknowledged_at": now,
                    "acknowledged_by": operator,
                    "acknowledgement_note": note,
                },
            )
        )
        await refresh_flags(conn)
    return result.rowcount or 0, now


@dataclass(frozen=True, slots=True)
class DiscrepancyFilter:
    account_id: str | None = None
    subscription_id: str | None = None
    kind: str | None = None
    severity: str | None = None
    include_acknowledged: bool = False
    include_resolved: bool = False


async def list_discrepancies(
    engine: AsyncEngine, flt: DiscrepancyFilter, limit: int, after_id: int | None
) -> tuple[list[Any], int]:
    conditions: list[Any] = [true()]
    if flt.account_id:
        conditions.append(discrepancies.c.account_id == flt.account_id)
    if flt.subscription_id:
        conditions.append(discrepancies.c.subscription_id == flt.subscription_id)
    if flt.kind:
        conditions.append(discrepancies.c.kind == flt.kind)
    if flt.severity:
        conditions.append(discrepancies.c.severity == flt.severity)
    if not flt.include_acknowledged:
        conditions.append(discrepancies.c.acknowledged_at.is_(None))
    if not flt.include_resolved:
        conditions.append(discrepancies.c.resolved_at.is_(None))
    where = and_(*conditions)
    page = select(discrepancies).where(where).order_by(discrepancies.c.id.desc()).limit(limit)
    if after_id is not None:
        page = page.where(discrepancies.c.id < after_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(page)).all()
        total = (
            await conn.execute(select(func.count()).select_from(discrepancies).where(where))
        ).scalar_one()
    return list(rows), int(total)


async def open_of_kind(engine: AsyncEngine, kind: str) -> list[Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(discrepancies).where(
                discrepancies.c.kind == kind, discrepancies.c.resolved_at.is_(None)
            )
        )
        return list(rows)


async def resolve_listed(engine: AsyncEngine, kind: str, event_ids: Collection[str]) -> None:
    """Resolve the open ``kind`` discrepancies about events Stripe lists after all (an
    ExtraEvent seen while Stripe's listing lagged): passes after the first read a window
    of events only, so what they do not find again is not resolved by omission."""
    rows = await open_of_kind(engine, kind)
    await resolve_ids(engine, [r.id for r in rows if r.stripe_event_id in event_ids])


async def resolve_ids(engine: AsyncEngine, ids: Sequence[int]) -> None:
    if not ids:
        return
    async with engine.begin() as conn:
        await conn.execute(
            update(discrepancies)
            .where(discrepancies.c.id.in_(list(ids)))
            .values(resolved_at=func.now())
        )
        await refresh_flags(conn)


async def open_for_accounts(engine: AsyncEngine, account_ids: Iterable[str]) -> list[Any]:
    ids = sorted(set(account_ids))
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(discrepancies)
            .where(
                discrepancies.c.account_id.in_(ids),
                discrepancies.c.resolved_at.is_(None),
            )
            .order_by(discrepancies.c.id.desc())
        )
        return list(rows)


_SUMMARY = text(
    """
SELECT
  (SELECT count(*) FROM drift.accounts WHERE has_drift_detected) AS accounts_with_drift,
  (SELECT coalesce(array_agg(account_id ORDER BY account_id), '{}') FROM (
      SELECT account_id FROM drift.accounts WHERE has_drift_detected
      ORDER BY account_id LIMIT :few) x) AS drift_ids,
  (SELECT count(*) FROM drift.accounts WHERE synced_at IS NULL) AS never_synced,
  (SELECT coalesce(array_agg(account_id ORDER BY account_id), '{}') FROM (
      SELECT account_id FROM drift.accounts WHERE synced_at IS NULL
      ORDER BY account_id LIMIT :few) y) AS never_synced_ids,
  (SELECT max(started_at) FROM drift.runs) AS last_run_at,
  (SELECT count(*) FROM drift.discrepancies
      WHERE {flagging}) AS open_discrepancies,
  (SELECT count(*) FROM drift.discrepancies
      WHERE {flagging} AND severity = 'Critical')
      AS critical_discrepancies
""".replace("{flagging}", FLAGGING.format(d=""))
)


async def summary(engine: AsyncEngine, few: int = 5) -> Any:
    """The banner's figures in one statement over drift's own (indexed) tables."""
    async with engine.connect() as conn:
        return (await conn.execute(_SUMMARY, {"few": few})).one()


async def get_high_water_mark(engine: AsyncEngine, name: str) -> int | None:
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                select(high_water_marks.c.stripe_created).where(high_water_marks.c.name == name)
            )
        ).scalar_one_or_none()
    return int(value) if value is not None else None


async def set_high_water_mark(conn: AsyncConnection, name: str, created: int) -> None:
    stmt = insert(high_water_marks).values(name=name, stripe_created=created)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[high_water_marks.c.name],
            set_={
                "stripe_created": func.greatest(
                    high_water_marks.c.stripe_created, stmt.excluded.stripe_created
                ),
                "updated_at": func.now(),
            },
        )
    )


async def audit_operation(
    engine: AsyncEngine,
    *,
    operation: str,
    target: str,
    operator: str,
    parameters: dict[str, Any],
    outcome: str,
    error: str | None,
    idempotency_key: str | None,
    stripe_object_id: str | None,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            operations.insert().values(
                operation=operation,
                target=target,
                operator=operator,
                parameters=parameters,
                outcome=outcome,
                error=error,
                idempotency_key=idempotency_key,
                stripe_object_id=stripe_object_id,
            )
        )


async def list_operations(
    engine: AsyncEngine, target: str | None, limit: int, after_id: int | None
) -> list[Any]:
    query = select(operations).order_by(operations.c.id.desc()).limit(limit)
    if target:
        query = query.where(or_(operations.c.target == target))
    if after_id is not None:
        query = query.where(operations.c.id < after_id)
    async with engine.connect() as conn:
        return list(await conn.execute(query))


async def recovery_cutoffs(engine: AsyncEngine) -> dict[str, int]:
    """Subscription id -> cutoff (epoch seconds): gaps before it are no longer reported."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(recovery_cutoffs_table.c.subscription_id, recovery_cutoffs_table.c.cutoff)
        )
        return {r.subscription_id: int(r.cutoff.timestamp()) for r in rows}
