"""Every Kubernetes manifest under deploy/ validates against the Kubernetes API schemas.

The schemas come packaged with ``kubernetes-validate`` (PyPI), so the check is offline and
needs no cluster. ``strict`` mode refuses fields the API does not know (a typo such as
``readinesProbe`` would otherwise be silently ignored by the API server). Kustomize files are
not API objects and are checked for what they reference instead.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse the deployment files")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is a dev dependency"
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The oldest Kubernetes minor version the manifests promise to work on (deploy/README.md).
KUBERNETES_VERSION = "1.33"


def _manifest_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*.yaml") if p.name != "kustomization.yaml")


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in _manifest_files():
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc:
                name = doc.get("metadata", {}).get("name", index)
                docs.append((f"{path.relative_to(DEPLOY)}:{doc.get('kind')}/{name}", doc))
    return docs


def schema_problems(doc: dict[str, Any]) -> list[str]:
    """The schema violations of one resource (empty when it validates)."""
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [str(exc).splitlines()[0]]
    return []


DOCUMENTS = _documents()


def test_manifests_found() -> None:
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert {"Deployment", "StatefulSet", "Service", "PodDisruptionBudget", "Job"} <= kinds


@pytest.mark.parametrize(("where", "doc"), DOCUMENTS, ids=[where for where, _ in DOCUMENTS])
def test_manifest_validates_against_kubernetes_schema(where: str, doc: dict[str, Any]) -> None:
    assert schema_problems(doc) == [], where


def test_kustomizations_reference_existing_files() -> None:
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for resource in spec.get("resources", []):
            assert (kustomization.parent / resource).exists(), f"{kustomization}: {resource}"


def _first(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(doc for _, doc in DOCUMENTS if doc["kind"] == kind))


def test_misspelled_field_is_reported() -> None:
    deployment = _first("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe", {})
    assert schema_problems(deployment)


def test_wrong_type_is_reported() -> None:
    statefulset = _first("StatefulSet")
    statefulset["spec"]["replicas"] = "three"
    assert schema_problems(statefulset)


def _uses_database(container: dict[str, Any]) -> bool:
    return any(env.get("name") == "DATABASE_URL" for env in container.get("env", []))


def migration_wait_problems(doc: dict[str, Any]) -> list[str]:
    """A Deployment of the suite that uses the database must wait for the migrations first."""
    spec = doc["spec"]["template"]["spec"]
    if not any(_uses_database(c) for c in spec["containers"]):
        return []
    waits = [
        c
        for c in spec.get("initContainers", [])
        if c.get("args", [])[:1] == ["wait-for-migrations"]
    ]
    return [] if waits else [f"{doc['metadata']['name']}: no wait-for-migrations init container"]


def test_services_wait_for_the_migrations() -> None:
    entrypoint = (DEPLOY / "docker" / "entrypoint.sh").read_text()
    assert "wait-for-migrations)" in entrypoint
    deployments = [doc for _, doc in DOCUMENTS if doc["kind"] == "Deployment"]
    database_users = [
        d
        for d in deployments
        if any(_uses_database(c) for c in d["spec"]["template"]["spec"]["containers"])
    ]
    assert database_users
    for deployment in database_users:
        assert migration_wait_problems(deployment) == []


def test_missing_migration_wait_is_reported() -> None:
    deployment = next(
        copy.deepcopy(doc)
        for _, doc in DOCUMENTS
        if doc["kind"] == "Deployment" and doc["spec"]["template"]["spec"].get("initContainers")
    )
    del deployment["spec"]["template"]["spec"]["initContainers"]
    assert migration_wait_problems(deployment)
