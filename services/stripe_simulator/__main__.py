"""CLI: ``python -m services.stripe_simulator`` serves a generated world over HTTP.

Every flag has an environment-variable default so the simulator can run under docker/compose
with the same variables as the services it feeds (``STRIPE_WEBHOOK_SECRET[S]``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from .config import CLOVER_VERSION, DEMO_API_VERSIONS, ENDIVE_VERSION, WorldConfig
from .delivery import DeliveryFaults
from .faults import ApiFaults
from .packed import PackedWorld
from .server import ServerSettings, SimulatorApp
from .world import generate_world

log = logging.getLogger("stripe_simulator")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _secret_from_env() -> str | None:
    single = _env("STRIPE_WEBHOOK_SECRET")
    if single:
        return single
    many = _env("STRIPE_WEBHOOK_SECRETS")
    return many.split(",")[0].strip() if many else None


_DEMO_MIX = ",".join(f"{version}:{weight}" for version, weight in DEMO_API_VERSIONS)
#: The demo's clover customers have their endpoint upgraded to endive halfway through.
_DEMO_UPGRADES = f"{CLOVER_VERSION}>{ENDIVE_VERSION}@0.5"


def parse_upgrades(text: str) -> tuple[tuple[str, str, float], ...]:
    """``'FROM>TO@FRACTION,...'`` as ``((from, to, fraction), ...)`` (``ValueError`` if bad)."""
    out: list[tuple[str, str, float]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        versions, sep, fraction = part.partition("@")
        old, arrow, new = versions.partition(">")
        if not sep or not arrow or not old.strip() or not new.strip():
            raise ValueError(f"bad upgrade {part!r}: expected FROM>TO@FRACTION")
        out.append((old.strip(), new.strip(), float(fraction)))
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser (defaults come from the environment)."""
    p = argparse.ArgumentParser(
        prog="python -m services.stripe_simulator", description="Deterministic Stripe simulator"
    )
    p.add_argument("--host", default=_env("STRIPE_SIMULATOR_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(_env("STRIPE_SIMULATOR_PORT", "12111") or 0))
    p.add_argument("--seed", type=int, default=int(_env("SIM_SEED", "1") or 1))
    p.add_argument("--tenants", type=int, default=int(_env("SIM_TENANTS", "40") or 40))
    p.add_argument("--months", type=int, default=int(_env("SIM_MONTHS", "6") or 6))
    p.add_argument(
        "--start-date",
        default=_env("SIM_START_DATE", "2024-01-01"),
        help="first day of the history (YYYY-MM-DD)",
    )
    p.add_argument(
        "--signup-months",
        type=int,
        default=int(_env("SIM_SIGNUP_MONTHS", "0") or 0),
        help="months over which signups are spread (0: the first third of the history)",
    )
    p.add_argument("--currencies", default=_env("SIM_CURRENCIES", "usd,eur,jpy"))
    p.add_argument(
        "--api-versions",
        default=_env("SIM_API_VERSIONS", _DEMO_MIX),
        help="weighted mix, e.g. '2020-08-27:1,2025-03-31.basil:3' (default: every family,"
        " most customers on the newest)",
    )
    p.add_argument(
        "--api-version-spread",
        choices=("customer", "block"),
        default=_env("SIM_API_VERSION_SPREAD", "customer"),
        help="rotate versions per customer (every family even in a small world) or per block"
        " of one customer per scenario",
    )
    p.add_argument(
        "--api-version-upgrades",
        default=_env("SIM_API_VERSION_UPGRADES", _DEMO_UPGRADES),
        help="endpoint upgrades 'FROM>TO@FRACTION,...' (customers on FROM switch to TO after"
        " FRACTION of the history); empty for none",
    )
    p.add_argument("--webhook-url", default=_env("SIM_WEBHOOK_URL"))
    p.add_argument(
        "--webhook-secret",
        default=_secret_from_env(),
        help="signing secret (env STRIPE_WEBHOOK_SECRET / STRIPE_WEBHOOK_SECRETS)",
    )
    p.add_argument(
        "--api-key",
        default=_env("SIM_API_KEY"),
        help="the accepted secret key (default: any sk_test_...)",
    )
    p.add_argument("--fault-seed", type=int, default=int(_env("SIM_FAULT_SEED", "0") or 0))
    p.add_argument(
        "--error-429-rate", type=float, default=float(_env("SIM_ERROR_429_RATE", "0") or 0)
    )
    p.add_argument(
        "--error-5xx-rate", type=float, default=float(_env("SIM_ERROR_5XX_RATE", "0") or 0)
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        default=float(_env("SIM_RATE_LIMIT", "0") or 0),
        help="API requests per second (0 = unlimited)",
    )
    p.add_argument(
        "--rate-burst",
        type=int,
        default=int(_env("SIM_RATE_BURST", "10") or 10),
        help="requests allowed at once above the rate limit's steady rate",
    )
    p.add_argument(
        "--world-dir",
        default=_env("SIM_WORLD_DIR"),
        help="serve the packed world in this directory (packed.pack_world; it carries its"
        " own config, so the world flags above are ignored): a big world's bytes, not dicts",
    )
    p.add_argument("--drop-rate", type=float, default=float(_env("SIM_DROP_RATE", "0") or 0))
    p.add_argument(
        "--duplicate-rate", type=float, default=float(_env("SIM_DUPLICATE_RATE", "0") or 0)
    )
    p.add_argument("--alter-rate", type=float, default=float(_env("SIM_ALTER_RATE", "0") or 0))
    p.add_argument("--delay-rate", type=float, default=float(_env("SIM_DELAY_RATE", "0") or 0))
    p.add_argument("--reorder-window", type=int, default=int(_env("SIM_REORDER_WINDOW", "0") or 0))
    p.add_argument(
        "--concurrency", type=int, default=int(_env("SIM_DELIVERY_CONCURRENCY", "8") or 8)
    )
    p.add_argument(
        "--deliver-on-start",
        action="store_true",
        default=(_env("SIM_DELIVER_ON_START", "") or "").lower() in ("1", "true"),
    )
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    return p


def settings_from_args(args: argparse.Namespace) -> tuple[WorldConfig, ServerSettings]:
    """Translate parsed flags into the world config and server settings."""
    from datetime import date

    mix = []
    for part in args.api_versions.split(","):
        version, _, weight = part.strip().partition(":")
        mix.append((version, int(weight or 1)))
    config = WorldConfig(
        seed=args.seed,
        tenants=args.tenants,
        months=args.months,
        start_date=date.fromisoformat(args.start_date),
        currencies=tuple(c.strip() for c in args.currencies.split(",")),
        api_versions=tuple(mix),
        spread_versions=args.api_version_spread == "customer",
        api_version_upgrades=parse_upgrades(args.api_version_upgrades or ""),
        signup_months=args.signup_months,
    )
    settings = ServerSettings(
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        api_faults=ApiFaults(
            seed=args.fault_seed,
            error_429_rate=args.error_429_rate,
            error_5xx_rate=args.error_5xx_rate,
            rate_limit=args.rate_limit,
            burst=args.rate_burst,
        ),
        delivery_faults=DeliveryFaults(
            seed=args.fault_seed,
            drop_rate=args.drop_rate,
            duplicate_rate=args.duplicate_rate,
            alter_rate=args.alter_rate,
            delay_rate=args.delay_rate,
            reorder_window=args.reorder_window,
        ),
        delivery_concurrency=args.concurrency,
    )
    return config, settings


async def serve(
    config: WorldConfig,
    settings: ServerSettings,
    host: str,
    port: int,
    deliver_on_start: bool,
    world_dir: str | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then shut down cleanly."""
    world = PackedWorld(Path(world_dir)) if world_dir else generate_world(config)
    config = world.config
    app = SimulatorApp(world, settings)
    runner = web.AppRunner(app.make_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info(
        "stripe simulator on http://%s:%d: %d events, %d tenants, seed %d, webhook %s",
        host,
        port,
        len(world.events),
        config.tenants,
        config.seed,
        settings.webhook_url or "-",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if deliver_on_start and settings.webhook_url and settings.webhook_secret:
        report = await app.deliver_pending()
        log.info(
            "initial delivery: %s",
            {k: v for k, v in report.as_dict().items() if not k.endswith("_ids")},
        )
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    config, settings = settings_from_args(args)
    asyncio.run(
        serve(config, settings, args.host, args.port, args.deliver_on_start, args.world_dir)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
