"""World configuration: everything that determines the generated history.

Two worlds built from equal configs are byte-identical, so every knob that changes the output
lives here (and nowhere else: no wall clock, no global random state).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime

LEGACY_VERSION = "2020-08-27"
BASIL_VERSION = "2025-03-31.basil"
CLOVER_VERSION = "2025-09-30.clover"
DAHLIA_VERSION = "2026-05-27.dahlia"
ENDIVE_VERSION = "2026-10-28.endive"
#: The first API version with the "basil" shapes (periods on items, invoice.parent, ...).
BASIL_CUTOFF = "2025-03-31"

DEFAULT_API_VERSIONS: tuple[tuple[str, int], ...] = ((LEGACY_VERSION, 1), (BASIL_VERSION, 1))
#: The demo's mix (``make run``): every family, most customers on the newest.
DEMO_API_VERSIONS: tuple[tuple[str, int], ...] = (
    (LEGACY_VERSION, 1),
    (BASIL_VERSION, 1),
    (CLOVER_VERSION, 1),
    (DAHLIA_VERSION, 1),
    (ENDIVE_VERSION, 5),
)


class Family(enum.IntEnum):
    """API version families whose payload shapes the simulator renders, oldest first.

    Each family's shapes are its parent's plus the differences listed in its ``render_*``
    module; :class:`~.render_shared.FamilyRenderer` compares against these levels.
    """

    LEGACY = 0
    BASIL = 1
    CLOVER = 2
    DAHLIA = 3
    ENDIVE = 4


#: Release name -> (first version date, family).
_RELEASES: dict[str, tuple[str, Family]] = {
    "basil": ("2025-03-31", Family.BASIL),
    "clover": ("2025-09-30", Family.CLOVER),
    "dahlia": ("2026-03-25", Family.DAHLIA),
    "endive": ("2026-09-30", Family.ENDIVE),
}
_NEWEST_DATE, NEWEST_FAMILY = max(_RELEASES.values())


def family_of(api_version: str) -> Family:
    """The family whose shapes payloads of ``api_version`` have.

    A release name dated after the newest family (a made-up later version such as
    ``2027-03-31.fig``) is rendered in the newest shapes: what Stripe's next release looks like
    until it changes something. Undotted dates and ``.acacia`` split at ``BASIL_CUTOFF``.
    """
    day, _, rest = api_version.partition(".")
    release = rest.split(";")[0].strip()
    if release in _RELEASES:
        return _RELEASES[release][1]
    if release and day[:10] > _NEWEST_DATE:
        return NEWEST_FAMILY
    return Family.BASIL if day[:10] >= BASIL_CUTOFF else Family.LEGACY


def is_basil(api_version: str) -> bool:
    """Whether payloads for ``api_version`` use the 2025-03-31.basil shapes (or a later
    family's, which all keep them)."""
    return family_of(api_version) >= Family.BASIL


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Parameters of a generated world.

    ``api_versions`` is a weighted mix ``((version, weight), ...)``; customers are assigned a
    version round-robin over the weights so that even small worlds contain every family.
    ``extra_activity`` is the per-billing-cycle probability of incidental events (refunds,
    quantity changes, card changes) on top of each customer's headline scenario.

    ``spread_versions`` chooses how customers get their version: ``False`` (default) in
    blocks of ``len(SCENARIOS)`` consecutive customers, so a world of ``k`` blocks covers every
    scenario in the first ``k`` versions of the cycle; ``True`` rotates within blocks too
    (customer ``i`` gets ``cycle[(i % S + i // S) % len(cycle)]``), so even a small world
    shows every version of a long mix (the demo). ``api_version_upgrades`` are endpoint
    upgrades: ``(from, to, fraction)`` switches every customer on ``from`` to ``to`` once
    ``fraction`` of the history has passed (events after it are rendered in ``to``). Both
    versions must be on the same side of the basil cut (ids and the ``invoice_payment``
    objects differ across it). ``signup_months`` widens the signup window (see the field).
    """

    seed: int = 1
    tenants: int = 40
    months: int = 6
    start_date: date = date(2024, 1, 1)
    currencies: tuple[str, ...] = ("usd", "eur", "jpy")
    api_versions: tuple[tuple[str, int], ...] = DEFAULT_API_VERSIONS
    extra_activity: float = 0.1
    account_name: str = "Simulated Billing, Inc."
    spread_versions: bool = False
    api_version_upgrades: tuple[tuple[str, str, float], ...] = ()
    #: Months over which signups are spread from ``start_date`` (0: the first third of the
    #: history). The demo spreads them over the whole history so every week has new customers.
    signup_months: int = 0

    def __post_init__(self) -> None:
        for old, new, fraction in self.api_version_upgrades:
            if is_basil(old) != is_basil(new):
                raise ValueError(f"upgrade {old} -> {new} crosses the basil cut")
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"upgrade fraction {fraction} is not within [0, 1]")

    def version_for(self, idx: int, cycle: list[str], scenarios: int) -> str:
        """The API version customer ``idx`` signs up with (see ``spread_versions``)."""
        block = idx // scenarios
        if self.spread_versions:
            return cycle[(idx % scenarios + block) % len(cycle)]
        return cycle[block % len(cycle)]

    def upgrade_of(self, api_version: str) -> tuple[str, int] | None:
        """``(new version, epoch seconds)`` of the endpoint upgrade of ``api_version``."""
        for old, new, fraction in self.api_version_upgrades:
            if old == api_version:
                return new, self.start_ts + int((self.end_ts - self.start_ts) * fraction)
        return None

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
