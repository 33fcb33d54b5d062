"""The gateway's own data (schema ``gateway``): operators, sessions, API tokens, login
attempts and the audit log. Nothing here is billing data: that stays behind gRPC."""

from services.backoffice_gateway.store.db import Store

__all__ = ["Store"]
