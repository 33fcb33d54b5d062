"""The per-application objects every blueprint needs, reachable from ``current_app``.

``gateway()`` returns them for the running app; gwui's pages use it the same way the API does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app

from services.backoffice_gateway.backends import Backends
from services.backoffice_gateway.config import GatewayConfig
from services.backoffice_gateway.store import Store
from services.backoffice_gateway.views.banners import BannerCache
from services.backoffice_gateway.views.dashboard import DashboardCache, PriorTrendCache

EXTENSION = "gateway"


@dataclass
class Gateway:
    config: GatewayConfig
    store: Store
    backends: Backends
    banners: BannerCache
    prior_trends: PriorTrendCache = field(default_factory=lambda: PriorTrendCache(300.0))
    dashboards: DashboardCache = field(default_factory=lambda: DashboardCache(0.0))


def gateway() -> Gateway:
    value: Gateway = current_app.extensions[EXTENSION]
    return value
