"""Which PostgreSQL the tests use: testcontainers only when nothing would have to be pulled."""

from __future__ import annotations

import os

import pytest

from tests import servers


def test_no_engine_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTS_NO_DOCKER", "1")
    assert servers.postgres_source() == "embedded"


def test_engine_without_the_image_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "docker_available", lambda: True)
    monkeypatch.setattr(servers, "local_image_present", lambda image: False)
    assert servers.postgres_source() == "embedded"


def test_engine_with_the_image_means_testcontainers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def present(image: str) -> bool:
        seen.append(image)
        return True

    monkeypatch.setattr(servers, "docker_available", lambda: True)
    monkeypatch.setattr(servers, "local_image_present", present)
    assert servers.postgres_source() == "testcontainers"
    assert seen == [servers.POSTGRES_IMAGE]


def test_missing_image_is_not_present_and_nothing_is_pulled() -> None:
    if not servers.docker_available():
        assert servers.local_image_present("billing-suite-no-such-image:never") is False
        return
    import docker

    client = docker.from_env(timeout=2)
    before = {tag for image in client.images.list() for tag in image.tags}
    assert servers.local_image_present("billing-suite-no-such-image:never") is False
    after = {tag for image in client.images.list() for tag in image.tags}
    assert after == before


def test_the_required_postgres_source_was_used(pg: object) -> None:
    """`make compose-check` asks for testcontainers: a silent fallback must fail the run."""
    required = os.environ.get("TESTS_REQUIRE_POSTGRES_SOURCE")
    if required is None:
        assert os.environ["TESTS_POSTGRES_SOURCE"] in {"embedded", "testcontainers"}
        return
    assert os.environ["TESTS_POSTGRES_SOURCE"] == required
