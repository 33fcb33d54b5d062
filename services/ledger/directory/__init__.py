"""The tenant/user directory of the host SaaS application, served by the ledger service.

Wire it into the ledger's gRPC server with ``register(grpc_server, engine)``.
"""

from services.ledger.directory.servicer import SERVICE_NAME, DirectoryServicer, register

__all__ = ["SERVICE_NAME", "DirectoryServicer", "register"]
