"""API version families in the simulator: which shapes a version gets, the demo's mix (every
family, most customers on the newest) and endpoint upgrades mid-life (issue 7)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from services.stripe_simulator import (
    BASIL_VERSION,
    CLOVER_VERSION,
    DAHLIA_VERSION,
    DEMO_API_VERSIONS,
    ENDIVE_VERSION,
    LEGACY_VERSION,
    Family,
    WorldConfig,
    family_of,
    generate_world,
    is_basil,
)
from services.stripe_simulator.__main__ import build_parser, parse_upgrades, settings_from_args


@pytest.mark.parametrize(
    ("version", "family"),
    [
        ("2020-08-27", Family.LEGACY),
        ("2024-09-30.acacia", Family.LEGACY),
        ("2025-03-31.basil", Family.BASIL),
        ("2025-08-27.basil", Family.BASIL),
        ("2025-09-30.clover", Family.CLOVER),
        ("2026-02-25.clover", Family.CLOVER),
        ("2026-03-25.dahlia", Family.DAHLIA),
        ("2026-08-26.dahlia", Family.DAHLIA),
        ("2026-10-28.endive", Family.ENDIVE),
        ("2027-03-31.fig", Family.ENDIVE),  # made up, later: the newest shapes
    ],
)
def test_family_of(version: str, family: Family) -> None:
    assert family_of(version) is family
    assert is_basil(version) == (family >= Family.BASIL)


def test_cli_defaults_are_the_demo_mix(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIM_API_VERSIONS", "SIM_API_VERSION_SPREAD", "SIM_API_VERSION_UPGRADES"):
        monkeypatch.delenv(name, raising=False)
    config, _ = settings_from_args(build_parser().parse_args([]))
    assert config.api_versions == DEMO_API_VERSIONS
    assert config.spread_versions is True
    assert config.api_version_upgrades == ((CLOVER_VERSION, ENDIVE_VERSION, 0.5),)


def test_cli_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    args = build_parser().parse_args(
        [
            "--api-versions",
            f"{BASIL_VERSION}:1",
            "--api-version-spread",
            "block",
            "--api-version-upgrades",
            "",
        ]
    )
    config, _ = settings_from_args(args)
    assert (config.spread_versions, config.api_version_upgrades) == (False, ())


@pytest.mark.parametrize("text", ["a>b", "a@0.5", ">b@0.5", "a>@0.5", "a>b@x"])
def test_bad_upgrade_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_upgrades(text)


@pytest.mark.parametrize(
    "upgrade",
    [(LEGACY_VERSION, ENDIVE_VERSION, 0.5), (BASIL_VERSION, DAHLIA_VERSION, 1.5)],
)
def test_world_config_refuses_impossible_upgrades(upgrade: tuple[str, str, float]) -> None:
    with pytest.raises(ValueError):
        WorldConfig(api_version_upgrades=(upgrade,))


def test_demo_world_mixes_every_family_most_on_the_newest() -> None:
    world = generate_world(
        WorldConfig(
            seed=1, tenants=40, months=4, api_versions=DEMO_API_VERSIONS, spread_versions=True
        )
    )
    signups = Counter(ev["api_version"] for ev in world.events if ev["type"] == "customer.created")
    assert set(signups) == {v for v, _ in DEMO_API_VERSIONS}
    assert signups.most_common(1)[0][0] == ENDIVE_VERSION
    assert signups[ENDIVE_VERSION] > sum(signups.values()) / 3


def test_an_endpoint_upgrade_switches_a_customer_mid_life() -> None:
    config = WorldConfig(
        seed=4,
        tenants=8,
        months=4,
        api_versions=((BASIL_VERSION, 1),),
        api_version_upgrades=((BASIL_VERSION, ENDIVE_VERSION, 0.5),),
    )
    world = generate_world(config)
    switch = config.start_ts + (config.end_ts - config.start_ts) // 2
    per_customer: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for ev in world.events:
        customer = ev["data"]["object"].get("customer")
        if isinstance(customer, str):
            per_customer[customer].append((ev["created"], ev["api_version"]))
    both = [
        seq
        for seq in per_customer.values()
        if {v for _, v in seq} == {BASIL_VERSION, ENDIVE_VERSION}
    ]
    assert both, "no customer has events in both versions"
    for seq in per_customer.values():
        for created, version in seq:
            assert version == (ENDIVE_VERSION if created >= switch else BASIL_VERSION)


def test_the_stripe_client_reads_a_demo_world_and_its_events_resolve() -> None:
    """The REST subset serves every family through the real ``stripe`` client, and what the
    client returns (events of every family) is what the ledger's resolvers accept."""
    import stripe

    from services.ledger.domain.normalised import NormalisedEvent
    from services.ledger.domain.resolvers import resolve
    from services.stripe_simulator.server import SimulatorServer

    world = generate_world(
        WorldConfig(
            seed=9, tenants=12, months=2, api_versions=DEMO_API_VERSIONS, spread_versions=True
        )
    )
    with SimulatorServer(world) as server:
        client = stripe.StripeClient(
            "sk_test_simulator", base_addresses={"api": server.url}, max_network_retries=0
        )
        events = list(client.v1.events.list({"limit": 100}).auto_paging_iter())
        subscriptions = list(client.v1.subscriptions.list({"limit": 100}).auto_paging_iter())
    assert {e.api_version for e in events} == {v for v, _ in DEMO_API_VERSIONS}
    families = set()
    for e in events:
        result = resolve(e.to_dict())
        assert isinstance(result, NormalisedEvent), result
        families.add(result.family)
    assert families == {"legacy", "basil", "clover", "dahlia", "endive"}
    modes = {s.to_dict().get("billing_mode", {}).get("type") for s in subscriptions}
    assert {"classic", "flexible"} <= modes
