"""The supervisor restarts dead processes with growing, then reset, backoff."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from services.devstack import __main__ as devstack
from services.devstack.supervisor import STABLE_AFTER, Supervised, Supervisor


class FakeProcess:
    def __init__(self) -> None:
        self.code: int | None = None
        self.starts = 0
        self.fail_next_start = False

    def start(self) -> None:
        if self.fail_next_start:
            self.fail_next_start = False
            raise RuntimeError("port in use")
        self.starts += 1
        self.code = None


def test_restarts_with_backoff_and_logs(capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    supervisor = Supervisor(clock=lambda: now[0])
    proc = FakeProcess()
    supervisor.add(Supervised("ingest", proc.start, lambda: proc.code))

    proc.code = -9
    supervisor.tick()
    assert proc.starts == 0  # waits 1 s first
    now[0] = 1.0
    supervisor.tick()
    assert proc.starts == 1
    err = capsys.readouterr().err
    assert "supervisor: ingest exited with -9; restart 1 in 1.0 s" in err
    assert "ingest restarted (restart 1)" in err

    proc.code = 1  # crashes again at once: 2 s
    now[0] = 2.0
    supervisor.tick()
    now[0] = 3.5
    supervisor.tick()
    assert proc.starts == 1
    proc.fail_next_start = True
    now[0] = 4.0
    supervisor.tick()  # the start fails: one more crash, 4 s
    assert proc.starts == 1
    assert "did not start (port in use); next attempt in 4.0 s" in capsys.readouterr().err
    now[0] = 8.0
    supervisor.tick()
    assert proc.starts == 2

    now[0] = 8.0 + STABLE_AFTER  # a minute up: the backoff starts over
    supervisor.tick()
    proc.code = -15
    supervisor.tick()
    now[0] += 1.0
    supervisor.tick()
    assert proc.starts == 3


def test_tokens_file_is_private_and_sourceable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GRPC_ADMIN_TOKENS", "GRPC_READ_TOKENS", "GRPC_CLIENT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / devstack.TOKENS_FILE
    path.write_text("old")
    os.chmod(path, 0o644)
    tokens = devstack.grpc_tokens(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = dict(
        line.split("=", 1) for line in path.read_text().splitlines() if not line.startswith("#")
    )
    assert lines == tokens
    assert tokens["GRPC_CLIENT_TOKEN"] == tokens["GRPC_ADMIN_TOKENS"]
    assert (
        len(tokens["GRPC_READ_TOKENS"]) >= 32
        and tokens["GRPC_READ_TOKENS"] != tokens["GRPC_ADMIN_TOKENS"]
    )


def test_adding_a_service_is_one_entry() -> None:
    names = [spec.name for spec in devstack.SERVICES]
    assert names[:2] == ["ingest", "ledger"] and "stripe_simulator" in names
