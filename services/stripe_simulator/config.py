"""World configuration: everything that determines the generated history.

Two worlds built from equal configs are byte-identical, so every knob that changes the output
lives here (and nowhere else: no wall clock, no global random state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

LEGACY_VERSION = "2020-08-27"
BASIL_VERSION = "2025-03-31.basil"
#: The first API version with the "basil" shapes (periods on items, invoice.parent, ...).
BASIL_CUTOFF = "2025-03-31"

DEFAULT_API_VERSIONS: tuple[tuple[str, int], ...] = ((LEGACY_VERSION, 1), (BASIL_VERSION, 1))


def is_basil(api_version: str) -> bool:
    """Whether payloads for ``api_version`` use the 2025-03-31.basil shapes.

    Stripe versions are ISO dates (optionally suffixed), so a string compare orders them.
    """
    return api_version >= BASIL_CUTOFF


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Parameters of a generated world.

    ``api_versions`` is a weighted mix ``((version, weight), ...)``; customers are assigned a
    version round-robin over the weights so that even small worlds contain every family.
    ``extra_activity`` is the per-billing-cycle probability of incidental events (refunds,
    quantity changes, card changes) on top of each customer's headline scenario.
    """

    seed: int = 1
    tenants: int = 40
    months: int = 6
    start_date: date = date(2024, 1, 1)
    currencies: tuple[str, ...] = ("usd", "eur", "jpy")
    api_versions: tuple[tuple[str, int], ...] = DEFAULT_API_VERSIONS
    extra_activity: float = 0.1
    account_name: str = "Simulated Billing, Inc."

    @property
    def start_ts(self) -> int:
        """Epoch seconds of ``start_date`` at 00:00 UTC."""
        return int(
            datetime(
                self.start_date.year, self.start_date.month, self.start_date.day, tzinfo=UTC
            ).timestamp()
        )

    @property
    def end_ts(self) -> int:
        """Epoch seconds where the history stops (``months`` calendar months after start)."""
        from .clock import add_months

        return add_months(self.start_ts, self.months)

    def version_cycle(self) -> list[str]:
        """The weighted round-robin list of API versions customers are drawn from."""
        cycle: list[str] = []
        for version, weight in self.api_versions:
            cycle.extend([version] * max(0, int(weight)))
        if not cycle:
            raise ValueError("api_versions must have at least one positive weight")
        return cycle
