"""Operator authentication: passwords, sessions, API tokens, CSRF, throttling, roles."""

from services.backoffice_gateway.auth.decorators import admin_required, login_required
from services.backoffice_gateway.auth.principal import Principal, current_principal

__all__ = ["Principal", "admin_required", "current_principal", "login_required"]
