"""Disaster recovery (``SetRecoveryCutoff``) and the first-install import (``ImportBaseline``).

Not built yet in this revision: both answer FAILED_PRECONDITION saying so.
"""

from __future__ import annotations

from billing.drift.v1 import drift_pb2 as pb

from services.common.grpc_errors import FailedPrecondition
from services.drift.detector import DriftDeps


class Recovery:
    def __init__(self, deps: DriftDeps) -> None:
        self.deps = deps

    async def set_cutoff(
        self, request: pb.SetRecoveryCutoffRequest
    ) -> pb.SetRecoveryCutoffResponse:
        raise FailedPrecondition("SetRecoveryCutoff is not implemented yet")

    async def import_baseline(self, operator: str) -> pb.ImportBaselineResponse:
        raise FailedPrecondition("ImportBaseline is not implemented yet")
