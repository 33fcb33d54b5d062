"""The gateway's /metrics: requests counted and timed by endpoint (the route's rule) and
status, served on its own admin port by the gunicorn master with every worker's counts, and
not on the operators' port."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from services.devstack.embedded import free_port
from tests.conftest import REPO_ROOT
from tests.gateway.conftest import VIEWER, signed_in

pytestmark = pytest.mark.integration


def _count(endpoint: str, method: str, status: str) -> float:
    labels = {"endpoint": endpoint, "method": method, "status": status}
    return REGISTRY.get_sample_value("gateway_http_requests_total", labels) or 0.0


def test_requests_counted_by_route_and_status(app: Flask) -> None:
    viewer = signed_in(app, VIEWER)
    rule = "/api/v1/accounts/<account_id>"
    ok, missing = _count(rule, "GET", "200"), _count(rule, "GET", "404")
    assert viewer.client.get("/api/v1/accounts/t_alpha").status_code == 200
    assert viewer.client.get("/api/v1/accounts/cus_b").status_code == 200
    assert viewer.client.get("/api/v1/accounts/nobody").status_code == 404
    assert _count(rule, "GET", "200") == ok + 2, "one label per route, not per account id"
    assert _count(rule, "GET", "404") == missing + 1
    timed = REGISTRY.get_sample_value(
        "gateway_http_request_duration_seconds_count",
        {"endpoint": rule, "method": "GET", "status": "200"},
    )
    assert timed is not None and timed >= 2
    unmatched = _count("<unmatched>", "GET", "404")
    viewer.client.get("/no/such/page/at/all")
    assert _count("<unmatched>", "GET", "404") == unmatched + 1


def test_no_metrics_on_the_operators_port(app: Flask) -> None:
    anonymous = app.test_client().get("/metrics")
    assert anonymous.status_code in (302, 401, 404)
    assert b"gateway_http_requests_total" not in anonymous.get_data()
    viewer = signed_in(app, VIEWER)
    signed = viewer.client.get("/metrics")
    assert signed.status_code == 404 and b"gateway_http" not in signed.get_data()


def _get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def test_admin_port_adds_up_every_worker(gw_database_url: str, tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": gw_database_url,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_WORKERS": "2",
        "GATEWAY_BOOTSTRAP_FILE": str(tmp_path / "first-admin"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "LEDGER_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "INGEST_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "DRIFT_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "HOME": str(tmp_path / "home"),  # where gunicorn would put its control socket
    }
    env.pop("XDG_RUNTIME_DIR", None)
    (tmp_path / "home").mkdir()
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_999999.db").write_bytes(b"stale file of an earlier run")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.backoffice_gateway", "serve"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(admin, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.2)
        for _ in range(6):  # spread over both workers by the kernel
            assert _get(port, "/login")[0] == 200
        status, body = _get(admin, "/metrics")
        assert status == 200
        found = re.findall(
            r'gateway_http_requests_total\{endpoint="/login",method="GET",status="200"\} (\S+)',
            body,
        )
        assert [float(v) for v in found] == [6.0], body[:2000]
        assert "gateway_http_request_duration_seconds_bucket" in body
        health = _get(admin, "/healthz")
        assert health[0] == 200 and '"database": true' in health[1]
        assert _get(admin, "/other")[0] == 404
        assert "gateway_http" not in _get(port, "/metrics")[1]
        # no runtime control socket (gunicorn >= 25.1): nothing listens besides the two ports
        assert list((tmp_path / "home").iterdir()) == []
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
