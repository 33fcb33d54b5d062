"""The compose file of `make compose-check` differs from docker-compose.yml only as documented."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from tests.compose.localize import LOCAL_IMAGES, localize

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def test_only_networking_and_images_change() -> None:
    original = yaml.safe_load(COMPOSE.read_text())
    local = localize(copy.deepcopy(original))
    assert set(local["services"]) == set(original["services"])
    for name, service in local["services"].items():
        before = original["services"][name]
        assert "ports" not in service and "build" not in service
        assert service["network_mode"] == "host"
        assert f"{name}:127.0.0.1" in service["extra_hosts"]
        assert service["image"] == LOCAL_IMAGES.get(name, before["image"])
        for key in ("command", "environment", "healthcheck", "depends_on"):
            assert service.get(key) == before.get(key), (name, key)
