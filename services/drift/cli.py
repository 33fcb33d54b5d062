"""``python -m services.drift import-baseline``: the first-install import from a shell."""

from __future__ import annotations

import argparse
import logging
import sys

from billing.drift.v1 import drift_pb2, drift_pb2_grpc

from services.common.grpc_client import aio_channel
from services.common.logs import configure_logging
from services.drift.settings import DriftSettings

log = logging.getLogger("drift.cli")


async def import_baseline_main() -> None:
    """Ask the running drift service to import (it owns the rate budget); prints the result."""
    parser = argparse.ArgumentParser(prog="python -m services.drift import-baseline")
    parser.add_argument("--operator", default="cli")
    parser.add_argument("--target", default=None, help="drift gRPC address")
    args = parser.parse_args(sys.argv[2:])
    settings = DriftSettings.from_env()
    configure_logging("drift-cli", settings.log_level)
    target = args.target or f"127.0.0.1:{settings.grpc_port}"
    async with aio_channel(target) as channel:
        stub = drift_pb2_grpc.DriftServiceStub(channel)
        result = await stub.ImportBaseline(drift_pb2.ImportBaselineRequest(operator=args.operator))
    print(result)
