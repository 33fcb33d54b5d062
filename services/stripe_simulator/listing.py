"""Stripe list pages over the simulator's object store in O(page), not O(store).

Why: a drift pass pages 100,000 subscriptions 100 at a time. Rebuilding and sorting the
whole store for every page (and finding the cursor by a linear search) made one walk
O(n^2): 400-900 ms a page at 20,000 subscriptions. The newest-first order of each kind is
kept here and rebuilt only when objects are *added*; an update replaces an object under its
id and keeps its ``created`` (Stripe's ``created`` never changes), so the order holds. A page
then walks forward from its cursor, skipping past an upper ``created`` bound by bisection
and stopping at a lower one, until it has ``limit + 1`` matches (exact ``has_more``).

The order is the one Stripe's lists use and the simulator always served: newest ``created``
first; objects created in the same second, the one stored last first.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Order:
    """One kind's ids newest first, each id's position, and ``-created`` ascending."""

    size: int
    ids: list[str]
    pos: dict[str, int]
    neg_created: list[int]


@dataclass(frozen=True, slots=True)
class CreatedBounds:
    """A ``created`` filter as inclusive integer bounds (``None``: unbounded)."""

    floor: int | None = None
    ceiling: int | None = None

    @classmethod
    def of(cls, spec: Any) -> CreatedBounds:
        """From Stripe's ``created`` parameter: an exact value or ``gt/gte/lt/lte``."""
        if spec is None:
            return cls()
        if not isinstance(spec, dict):
            exact = int(spec)
            return cls(exact, exact)
        bounds = {k: int(v) for k, v in spec.items()}
        floors = [bounds["gte"]] if "gte" in bounds else []
        floors += [bounds["gt"] + 1] if "gt" in bounds else []
        ceilings = [bounds["lte"]] if "lte" in bounds else []
        ceilings += [bounds["lt"] - 1] if "lt" in bounds else []
        return cls(max(floors, default=None), min(ceilings, default=None))

    def __contains__(self, created: int) -> bool:
        return (self.floor is None or created >= self.floor) and (
            self.ceiling is None or created <= self.ceiling
        )


class ListIndex:
    """Newest-first order of every kind of ``objects`` (the world's store), kept up to date."""

    def __init__(self, objects: dict[str, dict[str, JSON]]) -> None:
        self.objects = objects
        self._orders: dict[str, Order] = {}

    def order(self, kind: str) -> Order:
        """The kind's order, rebuilt when objects were added since it was built."""
        store = self.objects.get(kind, {})
        known = self._orders.get(kind)
        if known is not None and known.size == len(store):
            return known
        # Only (id, created) is kept per object while sorting: a packed store parses each
        # object as it is read, and 250,000 parsed invoices at once would not fit.
        # A packed store has them in its index (reading 250,000 invoices to sort them cost
        # seconds of the simulator's CPU in the middle of a drift pass).
        indexed = getattr(store, "created_pairs", None)
        pairs = (
            list(indexed())
            if indexed is not None
            else [(str(oid), int(obj.get("created", 0))) for oid, obj in store.items()]
        )
        pairs.reverse()
        pairs.sort(key=lambda p: p[1], reverse=True)
        ids = [oid for oid, _ in pairs]
        order = Order(
            size=len(store),
            ids=ids,
            pos={oid: i for i, oid in enumerate(ids)},
            neg_created=[-created for _, created in pairs],
        )
        self._orders[kind] = order
        return order

    def page(
        self,
        kind: str,
        *,
        limit: int,
        after: str | None,
        created: CreatedBounds,
        matches: Callable[[JSON], bool] | None,
    ) -> tuple[list[str], bool] | None:
        """The ids of up to ``limit`` matching objects after the cursor and whether more
        follow; ``None`` when ``after`` is not an object of this kind (the caller's 400).
        ``matches=None``: every object matches, so none is even read (the time bounds come
        from the order itself): a packed store then serves the page from its bytes."""
        order = self.order(kind)
        store = self.objects.get(kind, {})
        start = 0
        if after:
            at = order.pos.get(after)
            if at is None:
                return None
            start = at + 1
        if created.ceiling is not None:
            start = max(start, bisect.bisect_left(order.neg_created, -created.ceiling))
        below = None if created.floor is None else -created.floor
        found: list[str] = []
        ids, neg_created = order.ids, order.neg_created
        for i in range(start, len(ids)):
            if below is not None and neg_created[i] > below:
                break
            if matches is None or matches(store[ids[i]]):
                found.append(ids[i])
                if len(found) > limit:
                    break
        return found[:limit], len(found) > limit
