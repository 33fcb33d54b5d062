"""A deterministic Stripe simulator: world generator, webhook signer/deliverer, REST subset."""

from .config import BASIL_VERSION, LEGACY_VERSION, WorldConfig, is_basil
from .delivery import DeliveryFaults, DeliveryReport, WebhookDeliverer
from .faults import ApiFaults
from .server import ServerSettings, SimulatorApp, SimulatorServer
from .signing import sign
from .world import World, generate_world, iter_event_bodies, iter_events, serialize_event

__all__ = [
    "BASIL_VERSION",
    "LEGACY_VERSION",
    "ApiFaults",
    "DeliveryFaults",
    "DeliveryReport",
    "ServerSettings",
    "SimulatorApp",
    "SimulatorServer",
    "WebhookDeliverer",
    "World",
    "WorldConfig",
    "generate_world",
    "is_basil",
    "iter_event_bodies",
    "iter_events",
    "serialize_event",
    "sign",
]
