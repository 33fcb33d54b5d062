"""Dashboard aggregates, read from the pre-aggregated daily tables of migration 0004.

* **MRR trend** - point of day D = sum over subscriptions of the committed (forward) MRR of
  their latest billing event up to the end of D, where a row without subscription state
  carries the subscription's previous value (``ledger.committed_mrr_as_of``). Stored as
  per-day deltas (``query_mrr_daily``), so a point is a running sum, never a scan of events.
  The values are those ``compute_mrr`` produced when the events were projected: the KPI, the
  trend, the account list and the consistency check all read the one formula's output.
* **Net revenue** - ``query_revenue_daily``: paid invoices ex tax on their paid day, minus
  credit notes / uncovered refunds on their own day (rules in migration 0004).
* **MRR movements** - the same-currency committed-MRR changes per day by shape
  (``query_mrr_moves_daily``, migration 0012: signs before and after, rising, had MRR before,
  reactivation type, with the count and the summed change), each shape classified by
  ``services.ledger.domain.movements.mrr_movement`` on a representative pair: the category rule
  lives in the domain and depends only on the shape (tested), so the period's totals are a sum
  of a few rows per day instead of a group-by over every step. Steps whose currency changed
  are compared in platform units at query time and still come from ``query_mrr_steps``.
  ``mrr_movements_from_steps`` is the per-step computation the daily table must equal.
* **Accounts** - the KPI counts, signups per day and the plan distribution are sums over
  ``query_account_mix`` (migration 0012: live accounts per UTC creation day, plan and currency,
  with their committed MRR; the period bounds are whole UTC days, an unknown creation day is
  '-infinity', i.e. before every period), so they do not grow with the accounts (the counts
  and the plans come from one pass, ``account_mix``); the recent signups are an index range of
  ``query_accounts`` (live accounts only).
* **Directory activity** - the definitions of ``DirectoryStats``
  (:func:`services.ledger.directory.reads.directory_stats`): active users = listed users with a
  successful login in the window whose login tenant is none or not deleted; active sessions =
  the directory's 24-hour rule, its whole UTC hours summed from ``query_session_hourly``
  (migration 0019). Active users of the day-aligned windows are a sum over
  ``query_login_pairs`` (migration 0014: users per (counted login day, previous counted day));
  tests check the counts equal the per-user reading of ``query_login_days`` and
  ``directory_stats``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.directory.reads import SESSION_ACTIVITY_WINDOW
from services.ledger.directory.tables import memberships, sessions, tenants
from services.ledger.domain.classifier import BillingEventType
from services.ledger.domain.movements import MrrMovementCategory, mrr_movement
from services.ledger.queries.fx import Blend, Fx
from services.ledger.queries.inputs import Window
from services.ledger.queries.tables import query_account_mix as qam
from services.ledger.queries.tables import query_accounts as qa
from services.ledger.queries.tables import query_login_days as qld
from services.ledger.queries.tables import query_login_pairs as qlp
from services.ledger.queries.tables import query_mrr_daily as qmd
from services.ledger.queries.tables import query_mrr_moves_daily as qmm
from services.ledger.queries.tables import query_mrr_steps as qms
from services.ledger.queries.tables import query_mrr_totals as qmt
from services.ledger.queries.tables import query_revenue_daily as qrd
from services.ledger.queries.tables import query_session_hourly as qsh
from services.ledger.queries.tables import query_unlisted_users as quu
from services.ledger.queries.tables import subscriptions

Native = dict[str, int]  # currency -> minor units


@dataclass(slots=True)
class MrrCurve:
    """Committed and forward MRR (native, per currency) at the end of each listed day."""

    before: tuple[Native, Native]  # at the end of the day before the first point
    points: list[tuple[date, Native, Native]]


async def mrr_curve(conn: AsyncConnection, first_day: date, end_day: date) -> MrrCurve:
    """Points for every day in [first_day, end_day)."""
    base_rows = (
        await conn.execute(
            select(qmd.c.currency, func.sum(qmd.c.committed_delta), func.sum(qmd.c.forward_delta))
            .where(qmd.c.day < first_day)
            .group_by(qmd.c.currency)
        )
    ).all()
    committed: Native = {str(r[0]): int(r[1]) for r in base_rows}
    forward: Native = {str(r[0]): int(r[2]) for r in base_rows}
    before = (dict(committed), dict(forward))
    delta_rows = (
        await conn.execute(
            select(qmd.c.day, qmd.c.currency, qmd.c.committed_delta, qmd.c.forward_delta)
            .where(qmd.c.day >= first_day, qmd.c.day < end_day)
            .order_by(qmd.c.day, qmd.c.currency)
        )
    ).all()
    by_day: dict[date, list[Any]] = defaultdict(list)
    for row in delta_rows:
        by_day[row.day].append(row)
    points = []
    day = first_day
    while day < end_day:
        for row in by_day.get(day, ()):
            committed[row.currency] = committed.get(row.currency, 0) + int(row.committed_delta)
            forward[row.currency] = forward.get(row.currency, 0) + int(row.forward_delta)
        points.append((day, dict(committed), dict(forward)))
        day = date.fromordinal(day.toordinal() + 1)
    return MrrCurve(before, points)


async def mrr_at_end_of(conn: AsyncConnection, day: date) -> Native:
    """Committed MRR per currency at the end of ``day`` (the trend point of that day)."""
    rows = (
        await conn.execute(
            select(qmd.c.currency, func.sum(qmd.c.committed_delta))
            .where(qmd.c.day <= day)
            .group_by(qmd.c.currency)
        )
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


async def kpi_mrr(conn: AsyncConnection) -> Native:
    """Committed MRR per currency now stored on the subscriptions (compute_mrr's results),
    read from their per-currency totals (``query_mrr_totals``, migration 0014: kept by a
    trigger on subscriptions, diffed by VerifyLedger), a few rows whatever the size."""
    rows = (
        await conn.execute(select(qmt.c.currency, qmt.c.committed_mrr))
    ).all()
    return {str(r.currency): int(r.committed_mrr) for r in rows}


async def kpi_mrr_from_subscriptions(conn: AsyncConnection) -> Native:
    """The same figures summed over every subscription (the definition ``kpi_mrr``'s
    maintained totals must equal; tests compare the two)."""
    rows = (
        await conn.execute(
            select(subscriptions.c.currency, func.sum(subscriptions.c.committed_mrr))
            .where(subscriptions.c.currency.is_not(None))
            .group_by(subscriptions.c.currency)
        )
    ).all()
    return {str(r[0]): int(r[1]) for r in rows}


async def revenue_by_day(
    conn: AsyncConnection, first_day: date, end_day: date
) -> dict[date, Native]:
    rows = (
        await conn.execute(
            select(qrd.c.day, qrd.c.currency, qrd.c.amount).where(
                qrd.c.day >= first_day, qrd.c.day < end_day
            )
        )
    ).all()
    out: dict[date, Native] = defaultdict(dict)
    for row in rows:
        out[row.day][row.currency] = out[row.day].get(row.currency, 0) + int(row.amount)
    return out


@dataclass(slots=True)
class MovementTotals:
    """Per category: count and blended amount (platform minor units)."""

    counts: dict[MrrMovementCategory, int] = field(default_factory=dict)
    blends: dict[MrrMovementCategory, Blend] = field(default_factory=dict)
    converted_extra: dict[MrrMovementCategory, int] = field(default_factory=dict)
    unconverted: set[str] = field(default_factory=set)

    def add(
        self, category: MrrMovementCategory, count: int, total: int, currency: str, fx: Fx
    ) -> None:
        """``count`` movements of ``category`` whose amounts sum to ``total`` (native)."""
        self.counts[category] = self.counts.get(category, 0) + count
        self.blends.setdefault(category, Blend(fx)).add(total, currency)

    def amount(self, category: MrrMovementCategory) -> int:
        blend = self.blends.get(category)
        return (blend.total if blend else 0) + self.converted_extra.get(category, 0)

    def all_unconverted(self) -> set[str]:
        found = set(self.unconverted)
        for blend in self.blends.values():
            found |= blend.unconverted
        return found


def shape_representative(prev_sign: int, sign: int, rising: bool) -> tuple[int, int]:
    """An (MRR before, MRR after) pair with the given signs and direction.

    ``mrr_movement`` decides the category from the signs of before and after and the sign of
    their difference only (a test checks it on a grid of amounts), so classifying this pair
    classifies every step of the shape."""
    if prev_sign == sign:
        before = 10 * sign
        return before, before + (1 if rising else -1)
    return prev_sign, sign


async def mrr_movements(
    conn: AsyncConnection, w: Window, fx: Fx
) -> tuple[MovementTotals, MovementTotals]:
    """Movements of the period and of the prior period, by the domain rule: the same-currency
    ones from the daily shapes, the currency changes from their steps."""
    current = qmm.c.day >= w.start_day
    shape = (
        qmm.c.currency,
        qmm.c.prev_sign,
        qmm.c.sign,
        qmm.c.rising,
        qmm.c.had_mrr_before,
        qmm.c.reactivated,
    )
    rows = (
        await conn.execute(
            select(
                current.label("current"),
                *shape,
                func.sum(qmm.c.n).label("n"),
                func.sum(qmm.c.amount).label("amount"),
            )
            .where(qmm.c.day >= w.prior_start_day, qmm.c.day < w.end_day)
            .group_by(current, *shape)
        )
    ).all()
    now, prior = MovementTotals(), MovementTotals()
    for row in rows:
        n = int(row.n)
        if n == 0:
            continue
        before, after = shape_representative(int(row.prev_sign), int(row.sign), bool(row.rising))
        move = mrr_movement(
            before,
            after,
            had_mrr_before=bool(row.had_mrr_before),
            event_type=BillingEventType.SubscriptionReactivated if row.reactivated else None,
        )
        if move is not None:
            (now if row.current else prior).add(move.category, n, int(row.amount), row.currency, fx)
    for row in await _step_groups(conn, w, _currency_changed()):
        _classify(now if row.current else prior, row, fx)
    return now, prior


async def mrr_movements_from_steps(
    conn: AsyncConnection, w: Window, fx: Fx
) -> tuple[MovementTotals, MovementTotals]:
    """The same totals from every step of ``query_mrr_steps`` (the computation the daily
    shapes replace; tests compare the two)."""
    changed = or_(qms.c.committed != qms.c.prev_committed, _currency_changed())
    now, prior = MovementTotals(), MovementTotals()
    for row in await _step_groups(conn, w, changed):
        _classify(now if row.current else prior, row, fx)
    return now, prior


def _currency_changed() -> ColumnElement[bool]:
    """The predicate of the partial index query_mrr_steps_currency_change (0012)."""
    return and_(
        qms.c.prev_currency.is_not(None), qms.c.currency.is_distinct_from(qms.c.prev_currency)
    )


async def _step_groups(conn: AsyncConnection, w: Window, which: Any) -> list[Any]:
    """Steps of the period and the prior one matching ``which``, grouped by what the rule reads."""
    reactivated = qms.c.event_type == BillingEventType.SubscriptionReactivated.value
    current = qms.c.day >= w.start_day
    return list(
        (
            await conn.execute(
                select(
                    current.label("current"),
                    qms.c.currency,
                    qms.c.prev_currency,
                    qms.c.prev_committed,
                    qms.c.committed,
                    qms.c.had_mrr_before,
                    reactivated.label("reactivated"),
                    func.count().label("n"),
                )
                .where(qms.c.day >= w.prior_start_day, qms.c.day < w.end_day, which)
                .group_by(
                    current,
                    qms.c.currency,
                    qms.c.prev_currency,
                    qms.c.prev_committed,
                    qms.c.committed,
                    qms.c.had_mrr_before,
                    reactivated,
                )
            )
        ).all()
    )


def _classify(totals: MovementTotals, row: Any, fx: Fx) -> None:
    event_type = BillingEventType.SubscriptionReactivated if row.reactivated else None
    n = int(row.n)
    if row.prev_currency is None or row.prev_currency == row.currency:
        if row.currency is None:
            return
        move = mrr_movement(
            int(row.prev_committed),
            int(row.committed),
            had_mrr_before=bool(row.had_mrr_before),
            event_type=event_type,
        )
        if move is not None:
            totals.add(move.category, n, move.amount * n, row.currency, fx)
        return
    # The currency changed: compare in platform units (both sides need a rate).
    before = fx.convert(int(row.prev_committed), row.prev_currency)
    after = fx.convert(int(row.committed), row.currency) if row.currency else None
    if before is None or after is None:
        totals.unconverted |= {
            c for c in (row.prev_currency, row.currency) if c and fx.rate(c) is None
        }
        return
    move = mrr_movement(
        before, after, had_mrr_before=bool(row.had_mrr_before), event_type=event_type
    )
    if move is not None:
        totals.counts[move.category] = totals.counts.get(move.category, 0) + n
        totals.converted_extra[move.category] = (
            totals.converted_extra.get(move.category, 0) + move.amount * n
        )


@dataclass(frozen=True, slots=True)
class DirectoryActivity:
    active_users: int
    active_users_prior: int
    active_sessions: int


def unlisted_users() -> Any:
    """Users ``listed_user()`` leaves out: members of deleted tenants with no live membership.

    The complement of the directory's rule, computed as one small set (it starts from the
    memberships of deleted tenants) instead of two correlated subqueries per user; logins and
    sessions reference users by foreign key, so "not unlisted" is exactly "listed".
    """
    dm, dt = memberships.alias("dm"), tenants.alias("dt")
    lm, lt = memberships.alias("lm"), tenants.alias("lt")
    live_membership = exists(
        select(literal(1))
        .select_from(lm.join(lt, lt.c.tenant_id == lm.c.tenant_id))
        .where(lm.c.user_id == dm.c.user_id, lt.c.deleted_at.is_(None))
    )
    return (
        select(dm.c.user_id)
        .select_from(dm.join(dt, dt.c.tenant_id == dm.c.tenant_id))
        .where(dt.c.deleted_at.is_not(None), ~live_membership)
    )


async def directory_activity(conn: AsyncConnection, w: Window) -> DirectoryActivity:
    """DirectoryStats' active users (period and prior) and active sessions at ``as_of``."""
    now, prior = await active_users(conn, w)
    return DirectoryActivity(now, prior, await active_sessions(conn, w.as_of))


async def active_sessions(conn: AsyncConnection, as_of: datetime) -> int:
    """Sessions of listed users seen in the 24 hours up to ``as_of`` and not revoked by then.

    The window (as_of - 24 h, as_of] is cut at the UTC hours: its whole hours are summed from
    ``query_session_hourly`` (migration 0019: the not-revoked sessions of listed users per hour
    of ``last_seen_at``, kept by triggers), and only the rest is read row by row: the partial
    hours at the two ends (none at the start when ``as_of`` is on the hour), the sessions of
    the first whole hour seen exactly at the window's open start, and the sessions revoked
    after ``as_of`` (none when ``as_of`` is now). So the cost follows one hour's sessions, not
    one day's: the range read every session seen in the 24 hours (33,000 rows at 200,000
    accounts in the bench). :func:`active_sessions_in_range` is that read, the definition this
    sum must equal (tests compare the two); it also serves a window shorter than an hour.
    """
    start = as_of - SESSION_ACTIVITY_WINDOW
    first_hour = _hour_ceil(start)
    end_hour = _hour_floor(as_of)
    if first_hour >= end_hour:
        return await active_sessions_in_range(conn, as_of)
    s = sessions.c
    listed = s.user_id.not_in(select(quu.c.user_id))
    not_revoked = or_(s.revoked_at.is_(None), s.revoked_at > as_of)
    whole_hours = (
        select(func.coalesce(func.sum(qsh.c.n), 0))
        .where(qsh.c.hour >= first_hour, qsh.c.hour < end_hour)
        .scalar_subquery()
    )
    # In the first whole hour's count but not in the window: seen exactly at its open start
    # (only when the start is on the hour, i.e. is that first hour).
    at_start = (
        select(func.count())
        .where(s.last_seen_at == start, s.revoked_at.is_(None), listed)
        .scalar_subquery()
        if first_hour == start
        else literal(0)
    )
    # In the window but in no hour's count: revoked after as_of.
    revoked_later = (
        select(func.count())
        .where(
            s.revoked_at > as_of,
            s.last_seen_at > start,
            s.last_seen_at >= first_hour,
            s.last_seen_at < end_hour,
            listed,
        )
        .scalar_subquery()
    )
    partial_hours = (
        select(func.count())
        .where(
            or_(
                and_(s.last_seen_at > start, s.last_seen_at < first_hour),
                and_(s.last_seen_at >= end_hour, s.last_seen_at <= as_of),
            ),
            s.started_at <= as_of,
            not_revoked,
            listed,
        )
        .scalar_subquery()
    )
    total = (
        await conn.execute(select(whole_hours - at_start + revoked_later + partial_hours))
    ).scalar_one()
    return int(total)


async def active_sessions_in_range(conn: AsyncConnection, as_of: datetime) -> int:
    """The same count read row by row: an index range of ``sessions_last_seen`` over the 24
    hours. The unlisted users come from ``query_unlisted_users`` (migration 0016, the rows
    ``unlisted_users()`` computes, kept by the membership and tenant triggers)."""
    return int(
        (
            await conn.execute(
                select(func.count()).where(
                    sessions.c.started_at <= as_of,
                    or_(sessions.c.revoked_at.is_(None), sessions.c.revoked_at > as_of),
                    sessions.c.last_seen_at > as_of - SESSION_ACTIVITY_WINDOW,
                    sessions.c.last_seen_at <= as_of,
                    sessions.c.user_id.not_in(select(quu.c.user_id)),
                )
            )
        ).scalar_one()
    )


def _hour_floor(at: datetime) -> datetime:
    """The UTC hour ``at`` lies in (the hours of ``query_session_hourly``)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_ceil(at: datetime) -> datetime:
    """The first UTC hour boundary at or after ``at``."""
    floor = _hour_floor(at)
    return floor if floor == at else floor + timedelta(hours=1)


async def active_users(conn: AsyncConnection, w: Window) -> tuple[int, int]:
    """Active users of the period and of the prior one, from ``query_login_pairs``.

    A user is active in [a, b) exactly when one of its counted login days d in [a, b) has its
    previous counted day before a (there is exactly one such d: the first in the window), so
    the count is a sum over the pairs of the two windows' days: bounded by days, not users.
    """

    def users(start: date, end: date) -> Any:
        return func.coalesce(
            func.sum(qlp.c.n).filter(qlp.c.day >= start, qlp.c.day < end, qlp.c.prev_day < start),
            0,
        )

    row = (
        await conn.execute(
            select(users(w.start_day, w.end_day), users(w.prior_start_day, w.start_day)).where(
                qlp.c.day >= w.prior_start_day, qlp.c.day < w.end_day
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def active_users_by_user(conn: AsyncConnection, w: Window) -> tuple[int, int]:
    """The same counts read per user from ``query_login_days`` (migration 0012's way, the
    definition ``active_users`` must equal; tests compare the two)."""
    login_tenant = tenants.alias("login_tenant")
    # "the login tenant is none or not deleted" as an anti-join against the deleted tenants (a
    # few hundred) instead of an outer join of every tenant: the same rows, a 40% cheaper plan
    # at 50,000 accounts (migration 0012's measurements, bench/RESULTS.md).
    login_tenant_deleted = exists(
        select(literal(1)).where(
            login_tenant.c.tenant_id == func.nullif(qld.c.tenant_key, ""),
            login_tenant.c.deleted_at.is_not(None),
        )
    )
    in_period = qld.c.days.op("&&")(func.daterange(w.start_day, w.end_day))
    in_prior = qld.c.days.op("&&")(func.daterange(w.prior_start_day, w.start_day))
    unlisted = unlisted_users()
    per_user = (
        select(
            qld.c.user_id,
            func.bool_or(in_period).label("now"),
            func.bool_or(in_prior).label("prior"),
        )
        .where(
            ~login_tenant_deleted,
            qld.c.days.op("&&")(func.daterange(w.prior_start_day, w.end_day)),
            qld.c.user_id.not_in(unlisted),
        )
        .group_by(qld.c.user_id)
        .subquery()
    )
    active = (
        await conn.execute(
            select(func.count().filter(per_user.c.now), func.count().filter(per_user.c.prior))
        )
    ).one()
    return int(active[0]), int(active[1])


@dataclass(frozen=True, slots=True)
class AccountCounts:
    total: int  # live, created before the period end
    before_period: int  # live, created before the period start
    new: int
    new_prior: int


async def account_mix(conn: AsyncConnection, w: Window) -> tuple[AccountCounts, list[Any]]:
    """The KPI account counts and the plan distribution from one pass over ``query_account_mix``.

    The table holds days x plans x currencies (bounded by the history's days, 13,889 rows at
    200,000 accounts, as many as at 50,000); the counts are the sums of per-(plan, currency)
    filtered sums, and the plans the groups with accounts before the period end: one scan and
    one round trip (it was two statements, now the tests' oracle).
    """
    day = qam.c.created_day

    def n(*where: ColumnElement[bool]) -> Any:
        return func.sum(qam.c.n).filter(*where)

    rows = (
        await conn.execute(
            select(
                qam.c.plan,
                func.nullif(qam.c.currency, "").label("currency"),
                n(day < w.end_day).label("accounts"),
                func.sum(qam.c.committed_mrr).filter(day < w.end_day).label("mrr"),
                n(day < w.start_day).label("before_period"),
                n(day >= w.start_day, day < w.end_day).label("new"),
                n(day >= w.prior_start_day, day < w.start_day).label("new_prior"),
            ).group_by(qam.c.plan, qam.c.currency)
        )
    ).all()

    def total(column: str) -> int:
        return sum(int(getattr(r, column) or 0) for r in rows)

    counts = AccountCounts(
        total("accounts"), total("before_period"), total("new"), total("new_prior")
    )
    return counts, [r for r in rows if (r.accounts or 0) > 0]


async def signups_by_day(conn: AsyncConnection, w: Window) -> dict[date, int]:
    day = qam.c.created_day
    rows = (
        await conn.execute(
            select(day, func.sum(qam.c.n))
            .where(day >= w.start_day, day < w.end_day)
            .group_by(day)
        )
    ).all()
    return {r[0]: int(r[1]) for r in rows if r[1]}


async def recent_signups(conn: AsyncConnection, w: Window, limit: int) -> list[Any]:
    return list(
        (
            await conn.execute(
                select(*qa.c, literal(None).label("mrr_platform"))
                .where(qa.c.deleted_at.is_(None), qa.c.created_at < w.end)
                .order_by(qa.c.created_at.desc(), qa.c.account_id.desc())
                .limit(limit)
            )
        ).all()
    )


__all__ = [
    "AccountCounts",
    "DirectoryActivity",
    "MovementTotals",
    "MrrCurve",
    "account_mix",
    "active_sessions",
    "active_sessions_in_range",
    "active_users",
    "active_users_by_user",
    "directory_activity",
    "kpi_mrr",
    "kpi_mrr_from_subscriptions",
    "mrr_at_end_of",
    "mrr_curve",
    "mrr_movements",
    "mrr_movements_from_steps",
    "recent_signups",
    "revenue_by_day",
    "shape_representative",
    "signups_by_day",
    "unlisted_users",
]
