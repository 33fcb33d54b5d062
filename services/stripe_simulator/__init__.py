"""A deterministic Stripe simulator: world generator, webhook signer/deliverer, REST subset."""

from .config import (
    BASIL_VERSION,
    CLOVER_VERSION,
    DAHLIA_VERSION,
    DEMO_API_VERSIONS,
    ENDIVE_VERSION,
    LEGACY_VERSION,
    Family,
    WorldConfig,
    family_of,
    is_basil,
)
from .delivery import DeliveryFaults, DeliveryReport, WebhookDeliverer
from .faults import ApiFaults
from .server import ServerSettings, SimulatorApp, SimulatorServer
from .signing import sign
from .world import World, generate_world, iter_event_bodies, iter_events, serialize_event

__all__ = [
    "BASIL_VERSION",
    "CLOVER_VERSION",
    "DAHLIA_VERSION",
    "DEMO_API_VERSIONS",
    "ENDIVE_VERSION",
    "LEGACY_VERSION",
    "ApiFaults",
    "DeliveryFaults",
    "DeliveryReport",
    "Family",
    "ServerSettings",
    "SimulatorApp",
    "SimulatorServer",
    "WebhookDeliverer",
    "World",
    "WorldConfig",
    "family_of",
    "generate_world",
    "is_basil",
    "iter_event_bodies",
    "iter_events",
    "serialize_event",
    "sign",
]
