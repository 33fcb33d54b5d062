"""free_port picks below the kernel's ephemeral range, where no outgoing connection can take
the port between the pick and the server's bind (the benches' "address already in use")."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from services.devstack import embedded
from services.devstack.embedded import _ephemeral_low, free_port


def test_ports_are_below_the_ephemeral_range_bindable_and_never_repeated() -> None:
    low = _ephemeral_low()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(embedded._PORTS_FROM <= port < low for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("0.0.0.0", ports[-1]))  # free on every address, as promised


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_handed_out", set())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        busy = next(p for p in range(24000, 26000) if _binds(taken, p))
        taken.listen()
        spare = next(p for p in range(busy + 1, 26000) if _free(p))
        picks: Iterator[int] = iter([busy, spare])
        monkeypatch.setattr(embedded.random.SystemRandom, "randrange", lambda *a: next(picks))
        assert free_port() == spare


def _binds(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return _binds(probe, port)
