"""Consistency of the deployment files: docker-compose.yml, deploy/ (Kustomize), the Dockerfile.

Fast and offline: the YAML is parsed with PyYAML, no cluster and no Docker engine are needed.
Every check is a function returning a list of problems, so the negative tests at the end can
show that a broken manifest is actually reported.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse the deployment files")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
COMPOSE = REPO_ROOT / "docker-compose.yml"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"

# Default ports (DESIGN.md section 6, deploy/README.md, services/*/settings.py).
EXPECTED_PORTS: dict[str, dict[str, int]] = {
    "ingest": {"http": 8090, "grpc": 50051, "admin": 9091},
    "ledger": {"grpc": 50052, "admin": 9092},
    "drift": {"grpc": 50053, "admin": 9093},
}
PORT_VARIABLES: dict[str, int] = {
    "INGEST_HTTP_PORT": 8090,
    "INGEST_GRPC_PORT": 50051,
    "INGEST_ADMIN_PORT": 9091,
    "LEDGER_GRPC_PORT": 50052,
    "LEDGER_ADMIN_PORT": 9092,
    "DRIFT_GRPC_PORT": 50053,
    "DRIFT_ADMIN_PORT": 9093,
    "GATEWAY_ADMIN_PORT": 9094,
}
# The process each compose service / Kubernetes workload runs.
COMMANDS: dict[str, list[str]] = {
    "ingest": ["python", "-m", "services.ingest"],
    "ledger": ["python", "-m", "services.ledger"],
    "drift": ["python", "-m", "services.drift"],
    "stripe-simulator": ["python", "-m", "services.stripe_simulator"],
    "migrate": ["alembic", "upgrade", "head"],
}
K8S_WORKLOAD_FOR: dict[str, str] = {
    "ingest": "ingest",
    "ledger": "ledger",
    "drift": "drift",
    "stripe-simulator": "stripe-simulator",
    "migrate": "billing-migrate",
}
SECRET_VARIABLES = frozenset(
    {"DATABASE_URL", "STRIPE_WEBHOOK_SECRETS", "STRIPE_API_KEY", "POSTGRES_PASSWORD"}
)
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "Job"})

Doc = dict[str, Any]


# ------------------------------------------------------------------------------- loading


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_docs(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def all_manifests() -> list[tuple[Path, Doc]]:
    """Every Kubernetes object under deploy/ (kustomization files excluded)."""
    found = []
    for path in yaml_files():
        for doc in load_docs(path):
            assert isinstance(doc, dict), f"{path}: a YAML document is not a mapping"
            if doc.get("kind") != "Kustomization":
                found.append((path, doc))
    return found


def of_kind(kind: str) -> list[Doc]:
    return [doc for _, doc in all_manifests() if doc.get("kind") == kind]


def named(kind: str, name: str) -> Doc:
    matches = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind} {name!r}, found {len(matches)}"
    return matches[0]


def compose() -> Doc:
    data = load_docs(COMPOSE)
    assert len(data) == 1
    return data[0]


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Doc) -> Iterator[Doc]:
    yield from pod_spec(workload).get("containers", [])


def container_ports(container: Doc) -> dict[str, int]:
    return {p["name"]: int(p["containerPort"]) for p in container.get("ports", [])}


def resolve_port(container: Doc, port: int | str) -> int:
    return container_ports(container)[port] if isinstance(port, str) else int(port)


# -------------------------------------------------------------------------------- checks


def kustomization_problems(directory: Path, seen: set[Path] | None = None) -> list[str]:
    """Every resource and patch file a kustomization names exists (recursively)."""
    seen = set() if seen is None else seen
    directory = directory.resolve()
    if directory in seen:
        return []
    seen.add(directory)
    files = [directory / n for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")]
    existing = [f for f in files if f.is_file()]
    if not existing:
        return [f"{directory}: no kustomization file"]
    (kustomization,) = load_docs(existing[0])
    problems = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        if target.is_dir():
            problems += kustomization_problems(target, seen)
        elif not target.is_file():
            problems.append(f"{existing[0]}: resource {entry!r} does not exist")
    for patch in kustomization.get("patches", []) + kustomization.get("patchesStrategicMerge", []):
        path = patch.get("path") if isinstance(patch, dict) else patch
        if isinstance(path, str) and not (directory / path).is_file():
            problems.append(f"{existing[0]}: patch {path!r} does not exist")
    for generator in kustomization.get("secretGenerator", []):
        if generator.get("literals"):
            problems.append(f"{existing[0]}: secretGenerator {generator.get('name')} has literals")
    return problems


def workload_problems(workload: Doc) -> list[str]:
    """Probes (long-running workloads), resources, non-root, read-only root filesystem."""
    name = f"{workload['kind']}/{workload['metadata']['name']}"
    spec = pod_spec(workload)
    pod_security = spec.get("securityContext", {})
    problems = []
    for container in containers(workload):
        where = f"{name} container {container['name']}"
        security = container.get("securityContext", {})
        if workload["kind"] != "Job":
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.append(f"{where}: no {probe}")
        resources = container.get("resources", {})
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(section, {}):
                    problems.append(f"{where}: no {section}.{resource}")
        if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
            problems.append(f"{where}: runAsNonRoot is not set")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            problems.append(f"{where}: runs as uid 0")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: privilege escalation allowed")
    return problems


def service_deployment_problems(deployment: Doc, expected: dict[str, int]) -> list[str]:
    """Ports, /healthz probes and scrape annotations on the admin port, graceful shutdown."""
    name = deployment["metadata"]["name"]
    (container,) = list(containers(deployment))
    problems = []
    ports = container_ports(container)
    if ports != expected:
        problems.append(f"{name}: container ports {ports} != {expected}")
    admin = expected["admin"]
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = container.get(probe_name, {})
        http = probe.get("httpGet")
        grpc = probe.get("grpc")
        if http is not None:
            if http.get("path") != "/healthz" or resolve_port(container, http["port"]) != admin:
                problems.append(f"{name}: {probe_name} is not GET /healthz on {admin}")
        elif not (probe_name == "readinessProbe" and grpc and grpc["port"] == expected["grpc"]):
            problems.append(f"{name}: {probe_name} is neither /healthz nor gRPC health")
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true":
        problems.append(f"{name}: no prometheus.io/scrape annotation")
    if annotations.get("prometheus.io/port") != str(admin):
        problems.append(f"{name}: prometheus.io/port is not the admin port {admin}")
    grace = pod_spec(deployment).get("terminationGracePeriodSeconds")
    if not isinstance(grace, int) or not 20 <= grace <= 60:
        problems.append(f"{name}: terminationGracePeriodSeconds {grace} not about 30")
    return problems


def secret_problems(manifests: list[Doc]) -> list[str]:
    """No Secret holds values; secret variables come only from secretKeyRef, never ConfigMaps."""
    problems = []
    for doc in manifests:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") == "Secret":
            for field in ("data", "stringData"):
                if any(str(v).strip() for v in (doc.get(field) or {}).values()):
                    problems.append(f"{name}: literal secret values in {field}")
        if doc.get("kind") == "ConfigMap":
            for key in SECRET_VARIABLES & set(doc.get("data") or {}):
                problems.append(f"{name}: secret variable {key} in a ConfigMap")
        if doc.get("kind") in WORKLOAD_KINDS:
            for container in containers(doc):
                for env in container.get("env", []):
                    if env["name"] in SECRET_VARIABLES and (
                        "value" in env or "secretKeyRef" not in env.get("valueFrom", {})
                    ):
                        problems.append(f"{name}: {env['name']} is not a secretKeyRef")
    return problems


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?])?([^}]*)\}")


def compose_secret_problems(services: dict[str, Doc]) -> list[str]:
    """Secrets in compose come from ${VAR}; only the simulator's sk_test_ key has a default."""
    problems = []
    for service_name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if key not in SECRET_VARIABLES:
                continue
            text = str(value)
            references = _INTERPOLATION.findall(text)
            secret_refs = [r for r in references if r[0] in SECRET_VARIABLES]
            if not secret_refs:
                problems.append(f"compose {service_name}: {key} is a literal, not ${{VAR}}")
            for variable, default in secret_refs:
                required = f"${{{variable}:?" in text
                if not required and default and not default.startswith("sk_test_"):
                    problems.append(f"compose {service_name}: {variable} has a real default")
    return problems


def nats_problems(manifests: list[Doc]) -> list[str]:
    """3-node JetStream cluster: replicas, routes via the headless service, file store on PVC."""
    problems = []
    sets = [
        d for d in manifests if d.get("kind") == "StatefulSet" and d["metadata"]["name"] == "nats"
    ]
    if len(sets) != 1:
        return ["no StatefulSet nats"]
    nats = sets[0]
    if nats["spec"].get("replicas") != 3:
        problems.append(f"nats replicas {nats['spec'].get('replicas')} != 3")
    headless_name = nats["spec"].get("serviceName")
    headless = [
        d
        for d in manifests
        if d.get("kind") == "Service" and d["metadata"]["name"] == headless_name
    ]
    if not headless or headless[0]["spec"].get("clusterIP") != "None":
        problems.append(f"nats serviceName {headless_name!r} is not a headless Service")
    config_maps = [
        d
        for d in manifests
        if d.get("kind") == "ConfigMap" and "nats.conf" in (d.get("data") or {})
    ]
    if len(config_maps) != 1:
        return [*problems, "no ConfigMap with nats.conf"]
    conf = config_maps[0]["data"]["nats.conf"]
    jetstream = re.search(r"^\s*jetstream\s*\{(?P<body>[^}]*)\}", conf, re.MULTILINE)
    if jetstream is None:
        problems.append("nats.conf does not enable jetstream")
        store_dir = None
    else:
        store = re.search(r"store_dir\s*:\s*(\S+)", jetstream["body"])
        store_dir = store.group(1).strip("\"'") if store else None
        if store_dir is None:
            problems.append("nats.conf jetstream has no store_dir")
    routes = set(re.findall(r"nats://([\w.-]+):6222", conf))
    wanted = {f"nats-{i}.{headless_name}" for i in range(3)}
    if routes != wanted:
        problems.append(f"nats.conf routes {sorted(routes)} != {sorted(wanted)}")
    claims = {t["metadata"]["name"] for t in nats["spec"].get("volumeClaimTemplates", [])}
    (container,) = list(containers(nats))
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if store_dir is not None and mounts.get(store_dir) not in claims:
        problems.append(f"jetstream store_dir {store_dir} is not on a PersistentVolumeClaim")
    return problems


# --------------------------------------------------------------------------------- tests


def test_every_deploy_yaml_parses() -> None:
    files = yaml_files()
    assert files, "deploy/ has no YAML"
    for path in files:
        for doc in load_docs(path):
            assert isinstance(doc, dict), path
            if doc.get("kind") != "Kustomization":
                assert {"apiVersion", "kind", "metadata"} <= set(doc), path


@pytest.mark.parametrize("overlay", ["base", "overlays/dev"])
def test_kustomization_resources_exist(overlay: str) -> None:
    assert kustomization_problems(DEPLOY / overlay) == []


def test_every_yaml_under_deploy_is_used_by_a_kustomization() -> None:
    used: set[Path] = set()
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        (doc,) = load_docs(kustomization)
        used.add(kustomization.resolve())
        for entry in doc.get("resources", []):
            used.add((kustomization.parent / entry).resolve())
    assert {p.resolve() for p in yaml_files()} <= used


def test_workloads_have_probes_resources_and_run_as_non_root() -> None:
    workloads = [d for _, d in all_manifests() if d.get("kind") in WORKLOAD_KINDS]
    assert {w["metadata"]["name"] for w in workloads} >= {"ingest", "ledger", "nats", "postgres"}
    problems = [p for w in workloads for p in workload_problems(w)]
    assert problems == []


@pytest.mark.parametrize("name", sorted(EXPECTED_PORTS))
def test_service_deployments_match_default_ports(name: str) -> None:
    deployment = named("Deployment", name)
    assert service_deployment_problems(deployment, EXPECTED_PORTS[name]) == []
    service = named("Service", name)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {k: (v, k) for k, v in EXPECTED_PORTS[name].items()}


def test_ingest_has_a_disruption_budget() -> None:
    labels = named("Deployment", "ingest")["spec"]["selector"]["matchLabels"]
    budgets = [
        b for b in of_kind("PodDisruptionBudget") if b["spec"]["selector"]["matchLabels"] == labels
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"].get("minAvailable", 0) >= 1 or "maxUnavailable" in budgets[0]["spec"]
    assert named("Deployment", "ingest")["spec"]["replicas"] > budgets[0]["spec"]["minAvailable"]


def test_config_map_ports_match_defaults() -> None:
    data = named("ConfigMap", "billing-config")["data"]
    for variable, port in PORT_VARIABLES.items():
        assert data.get(variable) == str(port), variable
    assert data["INGEST_GRPC_ADDR"] == f"ingest:{EXPECTED_PORTS['ingest']['grpc']}"
    assert all(isinstance(v, str) for v in data.values()), "ConfigMap values must be strings"


def test_port_defaults_match_the_code() -> None:
    """Where a service's settings module exists, its env_int defaults are the expected ports."""
    pattern = re.compile(r'env_int\(\s*"(\w+_PORT)"\s*,\s*(\d+)\s*\)')
    found = {}
    for settings in (REPO_ROOT / "services").rglob("*.py"):
        found.update({k: int(v) for k, v in pattern.findall(settings.read_text(encoding="utf-8"))})
    checked = {k: v for k, v in found.items() if k in PORT_VARIABLES}
    assert "INGEST_HTTP_PORT" in checked, "ingest settings not found"
    assert checked == {k: PORT_VARIABLES[k] for k in checked}


def test_nats_is_a_three_node_jetstream_cluster() -> None:
    assert nats_problems([d for _, d in all_manifests()]) == []


def test_no_secret_values_in_manifests() -> None:
    assert secret_problems([d for _, d in all_manifests()]) == []
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        (doc,) = load_docs(kustomization)
        assert not any(g.get("literals") for g in doc.get("secretGenerator", [])), kustomization


def test_secrets_are_referenced_by_the_services() -> None:
    refs = {
        (name, env["name"])
        for name in ("ingest", "ledger")
        for container in containers(named("Deployment", name))
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert {
        ("ingest", "DATABASE_URL"),
        ("ingest", "STRIPE_WEBHOOK_SECRETS"),
        ("ingest", "STRIPE_API_KEY"),
        ("ledger", "DATABASE_URL"),
    } <= refs


def test_kubernetes_commands_match_compose() -> None:
    services = compose()["services"]
    workloads = {d["metadata"]["name"]: d for d in of_kind("Deployment") + of_kind("Job")}
    for name, command in COMMANDS.items():
        assert services[name]["command"] == command, name
        (container,) = list(containers(workloads[K8S_WORKLOAD_FOR[name]]))
        assert container.get("command", []) + container.get("args", []) == command, name


def test_entrypoint_aliases_run_the_same_modules() -> None:
    script = ENTRYPOINT.read_text(encoding="utf-8")
    aliases = dict(
        re.findall(r"^\s*([\w|\s-]+?)\)\s*\n\s*exec ([^\n;]+?)\s*(?:\"\$@\")", script, re.MULTILINE)
    )
    table = {alias.split("|")[0].strip(): " ".join(cmd.split()) for alias, cmd in aliases.items()}
    assert table["ingest"] == "python -m services.ingest"
    assert table["ledger"] == "python -m services.ledger"
    assert table["stripe-simulator"] == "python -m services.stripe_simulator"
    assert table["migrate"].startswith("alembic") and table["migrate"].endswith("upgrade head")
    for command in COMMANDS.values():
        if command[:2] == ["python", "-m"]:
            package = REPO_ROOT.joinpath(*command[2].split("."))
            assert package.is_dir(), f"{command[2]} has no package in the repository"


def test_compose_ports_environment_and_dependencies() -> None:
    services = compose()["services"]
    for name, ports in EXPECTED_PORTS.items():
        published = {int(str(p).rsplit(":", 1)[-1]) for p in services[name]["ports"]}
        assert published == set(ports.values()), name
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f"{ports['admin']}/healthz" in health, name
    env = {
        **services["ingest"]["environment"],
        **services["ledger"]["environment"],
        **services["drift"]["environment"],
        **services["backoffice-gateway"]["environment"],
    }
    for variable, port in PORT_VARIABLES.items():
        assert str(env[variable]) == str(port), variable
    assert env["INGEST_GRPC_ADDR"] == "ingest:50051"
    simulator = services["stripe-simulator"]
    assert simulator["environment"]["SIM_WEBHOOK_URL"] == "http://ingest:8090/webhooks/stripe"
    assert "127.0.0.1:12111:12111" in simulator["ports"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            wanted = condition["condition"]
            if wanted == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)
    for name in ("ingest", "ledger"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["nats"]["condition"] == "service_healthy"


def test_compose_infrastructure() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["nats"]["image"].startswith("nats:2.10")
    nats_command = services["nats"]["command"]
    assert "-js" in nats_command
    store = nats_command[nats_command.index("-sd") + 1]
    assert any(str(v).endswith(f":{store}") for v in services["nats"]["volumes"])
    assert set(compose()["volumes"]) >= {"pgdata", "natsdata"}


def test_compose_secrets_come_from_the_environment() -> None:
    assert compose_secret_problems(compose()["services"]) == []


def test_dockerfile_mirrors_make_proto() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    flags = set(re.findall(r"--(\w+_out)=", makefile))
    assert flags and flags == set(re.findall(r"--(\w+_out)=gen", dockerfile))
    assert "python:3.11-slim" in dockerfile
    assert "-exec touch {}/__init__.py" in dockerfile
    assert re.search(r"^ENV .*PYTHONPATH=/app/gen", dockerfile, re.MULTILINE | re.DOTALL)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "deploy/docker/entrypoint.sh" in dockerfile


# ------------------------------------------------------- the checks do catch broken files


def test_checks_report_broken_workloads() -> None:
    deployment = copy.deepcopy(named("Deployment", "ingest"))
    (container,) = list(containers(deployment))
    del container["livenessProbe"]
    del container["resources"]["limits"]
    container["ports"][0]["containerPort"] = 8091
    container["securityContext"]["readOnlyRootFilesystem"] = False
    pod_spec(deployment)["securityContext"].pop("runAsNonRoot")
    problems = workload_problems(deployment)
    assert any("livenessProbe" in p for p in problems)
    assert any("limits.cpu" in p for p in problems)
    assert any("runAsNonRoot" in p for p in problems)
    assert any("writable" in p for p in problems)
    assert service_deployment_problems(deployment, EXPECTED_PORTS["ingest"])


def test_checks_report_secret_values_and_small_nats(tmp_path: Path) -> None:
    leaked = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"STRIPE_API_KEY": "sk_live_123"},
    }
    assert secret_problems([leaked])
    deployment = copy.deepcopy(named("Deployment", "ledger"))
    (container,) = list(containers(deployment))
    container["env"] = [{"name": "DATABASE_URL", "value": "postgresql://u:p@h/db"}]
    assert secret_problems([deployment])
    assert compose_secret_problems({"x": {"environment": {"STRIPE_API_KEY": "sk_live_1"}}})
    assert compose_secret_problems(
        {"x": {"environment": {"STRIPE_API_KEY": "${STRIPE_API_KEY:-sk_live_1}"}}}
    )
    manifests = copy.deepcopy([d for _, d in all_manifests()])
    nats = next(
        d for d in manifests if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "nats"
    )
    nats["spec"]["replicas"] = 1
    assert nats_problems(manifests)
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    assert kustomization_problems(tmp_path)


# ------------------------------------------------------------------ network policies (issue 10)


def _policy_sources(service: str, port: int) -> list[Doc]:
    """The ``from`` peers of every base NetworkPolicy rule that opens ``port`` of ``service``."""
    peers: list[Doc] = []
    base = [d for path, d in all_manifests() if "overlays" not in path.parts]
    for doc in (d for d in base if d.get("kind") == "NetworkPolicy"):
        if doc["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/name") != service:
            continue
        for rule in doc["spec"].get("ingress", []):
            if any(p["port"] == port for p in rule.get("ports", [])):
                peers.extend(rule.get("from", []))
    return peers


def test_network_policies_restrict_every_port() -> None:
    base = [d for path, d in all_manifests() if "overlays" not in path.parts]
    policies = [d for d in base if d.get("kind") == "NetworkPolicy"]
    covered = {d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for d in policies}
    assert covered == {"ingest", "ledger", "drift", "backoffice-gateway"}
    gateway = {"podSelector": {"matchLabels": {"app": "backoffice-gateway"}}}
    drift = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "drift"}}}
    ledger = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "ledger"}}}
    assert _policy_sources("ledger", 50052) == [gateway, drift]
    assert _policy_sources("ingest", 50051) == [gateway, drift, ledger]
    (webhook_peer,) = _policy_sources("ingest", 8090)
    assert set(webhook_peer) == {"namespaceSelector"}  # the ingress controller only
    (operators_peer,) = _policy_sources("backoffice-gateway", 8080)
    assert set(operators_peer) == {"namespaceSelector"}  # the ingress controller only
    (scraper,) = _policy_sources("backoffice-gateway", 9094)
    assert scraper["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"}
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from") and rule.get("ports"), policy["metadata"]["name"]


def test_grpc_tokens_come_from_secrets() -> None:
    for name in ("ingest", "ledger"):
        (container,) = list(containers(named("Deployment", name)))
        refs = {
            env["name"]: env["valueFrom"]["secretKeyRef"]["key"]
            for env in container.get("env", [])
            if "secretKeyRef" in env.get("valueFrom", {})
        }
        assert refs["GRPC_ADMIN_TOKENS"] == "GRPC_ADMIN_TOKENS", name
        assert refs["GRPC_READ_TOKENS"] == "GRPC_READ_TOKENS", name
    (ledger,) = list(containers(named("Deployment", "ledger")))
    assert any(e["name"] == "GRPC_CLIENT_TOKEN" for e in ledger["env"])
    config = named("ConfigMap", "billing-config")["data"]
    assert not {k for k in config if k.startswith("GRPC_") and "TOKEN" in k}
