"""The events that fail a batch, found in halves: one home for the consumer and the replay.

A batch is applied in one transaction; when that transaction fails, the batch is applied again
part by part, each part in its own transaction, and a part that fails is halved again, down to
single events - the culprits. A culprit costs about 2 log2(n) transactions instead of the n of
applying every event alone: for the consumer's backlog batches of 8000 messages, one by one
ran far past JetStream's ``ack_wait`` (issue 12, eighth pass).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from services.ledger.db import DatabaseUnavailable

T = TypeVar("T")
R = TypeVar("R")


async def apply_in_halves(
    items: Sequence[T],
    apply: Callable[[Sequence[T]], Awaitable[R]],
    applied: Callable[[Sequence[T], R], Awaitable[None]],
) -> list[tuple[T, Exception]]:
    """Apply ``items`` part by part through ``apply`` (one transaction each), in their order;
    ``applied`` follows each part that committed, outside the part's error handling (what it
    raises is not the part's fault: it propagates). Returns the single items that failed, with
    their errors. ``DatabaseUnavailable`` is never an item's fault either: it propagates at once.
    """
    failed: list[tuple[T, Exception]] = []
    middle = len(items) // 2  # the whole batch has failed already: start with its halves
    parts = [items[middle:], items[:middle]] if middle else [items] if items else []
    while parts:
        part = parts.pop()  # the first half is applied first (pushed last)
        try:
            result = await apply(part)
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            if len(part) == 1:
                failed.append((part[0], exc))
            else:
                middle = len(part) // 2
                parts += [part[middle:], part[:middle]]
            continue
        await applied(part, result)
    return failed
