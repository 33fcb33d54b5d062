"""Write a copy of docker-compose.yml for a machine without an image registry.

``make compose-check`` runs the project's own docker-compose.yml, changed only where this
machine requires it: PostgreSQL and NATS come from the images built locally from Debian's
packages, and every container shares the host's network (no other container networking is
allowed here), so published ports are dropped (host networking refuses them) and the compose
service names resolve to the loopback address through ``extra_hosts``. Everything else
(commands, environment, health checks, dependency order) is the file users run.

Usage: ``python -m tests.compose.localize docker-compose.yml > local.yml``
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

LOCAL_IMAGES = {"postgres": "billing-postgres:15", "nats": "billing-nats:2.9"}


def localize(compose: dict[str, Any]) -> dict[str, Any]:
    """The compose document with local images and host networking (see module docstring)."""
    services: dict[str, dict[str, Any]] = compose["services"]
    loopback = [f"{name}:127.0.0.1" for name in sorted(services)]
    for name, service in services.items():
        service.pop("ports", None)
        service.pop("build", None)
        service["network_mode"] = "host"
        service["extra_hosts"] = loopback
        if name in LOCAL_IMAGES:
            service["image"] = LOCAL_IMAGES[name]
    return compose


def main() -> None:
    document = yaml.safe_load(Path(sys.argv[1]).read_text())
    yaml.safe_dump(localize(document), sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
