"""services/ledger/culprits.py: a failed batch applied in halves finds exactly its culprits,
applies everything else once and in order, and never blames an item for what is not its fault."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.ledger.culprits import apply_in_halves
from services.ledger.db import DatabaseUnavailable


class Ledger:
    """Parts fail when they hold a culprit; committed parts are recorded in order."""

    def __init__(self, culprits: set[int], away: bool = False) -> None:
        self.culprits = culprits
        self.away = away
        self.calls = 0
        self.committed: list[int] = []

    async def apply(self, part: Sequence[int]) -> int:
        self.calls += 1
        if self.away:
            raise DatabaseUnavailable("database away")
        if self.culprits & set(part):
            raise ValueError(f"bad {sorted(self.culprits & set(part))}")
        return len(part)

    async def applied(self, part: Sequence[int], result: int) -> None:
        assert result == len(part)
        self.committed.extend(part)


def halves(items: Sequence[int], ledger: Ledger) -> list[tuple[int, Exception]]:
    return asyncio.run(apply_in_halves(items, ledger.apply, ledger.applied))


def test_the_culprits_fail_alone_and_the_rest_is_applied_once_in_order() -> None:
    ledger = Ledger({5, 40})
    failed = halves(range(64), ledger)
    assert [item for item, _ in failed] == [5, 40]
    assert all(isinstance(exc, ValueError) for _, exc in failed)
    assert ledger.committed == [n for n in range(64) if n not in (5, 40)]
    assert ledger.calls <= 4 * 6 + 2  # ~2 log2(n) per culprit, not 64


def test_a_batch_that_no_longer_fails_is_applied_in_its_two_halves() -> None:
    ledger = Ledger(set())
    assert halves(range(10), ledger) == []
    assert (ledger.calls, ledger.committed) == (2, list(range(10)))


def test_one_item_and_none() -> None:
    one = Ledger({7})
    assert [item for item, _ in halves([7], one)] == [7]
    none = Ledger(set())
    assert halves([], none) == [] and none.calls == 0


def test_a_database_that_is_away_is_nobodys_fault() -> None:
    with pytest.raises(DatabaseUnavailable):
        halves(range(8), Ledger(set(), away=True))


def test_what_follows_a_commit_is_not_the_parts_fault() -> None:
    ledger = Ledger(set())

    async def ack_fails(part: Sequence[int], result: int) -> None:
        raise ConnectionError("ack lost")

    with pytest.raises(ConnectionError):
        asyncio.run(apply_in_halves(range(8), ledger.apply, ack_fails))
    assert ledger.calls == 1  # not halved and applied again
