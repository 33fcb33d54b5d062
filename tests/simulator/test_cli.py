"""CLI flags and their environment-variable defaults."""

from __future__ import annotations

import pytest

from services.stripe_simulator.__main__ import build_parser, settings_from_args


def test_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SIMULATOR_PORT", "12345")
    monkeypatch.setenv("SIM_SEED", "42")
    monkeypatch.setenv("SIM_TENANTS", "7")
    monkeypatch.setenv("SIM_MONTHS", "2")
    monkeypatch.setenv("SIM_WEBHOOK_URL", "http://127.0.0.1:1/webhook")
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", "whsec_a, whsec_b")
    args = build_parser().parse_args([])
    assert (args.port, args.seed, args.tenants, args.months) == (12345, 42, 7, 2)
    assert args.host == "127.0.0.1"
    config, settings = settings_from_args(args)
    assert config.seed == 42 and config.tenants == 7
    assert settings.webhook_url == "http://127.0.0.1:1/webhook"
    assert settings.webhook_secret == "whsec_a"
    assert "whsec_a" not in repr(settings)


def test_flags_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_single")
    args = build_parser().parse_args([
        "--port", "0", "--error-429-rate", "0.5", "--drop-rate", "0.2",
        "--api-versions", "2020-08-27:1", "--deliver-on-start"])
    config, settings = settings_from_args(args)
    assert settings.webhook_secret == "whsec_single"
    assert settings.api_faults.error_429_rate == 0.5
    assert settings.delivery_faults.drop_rate == 0.2
    assert config.api_versions == (("2020-08-27", 1),)
    assert args.deliver_on_start
