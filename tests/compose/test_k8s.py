"""compose/k8s: manifests that parse, a kustomization listing every one of them, and a cluster
equivalent to compose — same workloads, images, settings, and readiness probes mirroring compose's
healthchecks."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.compose.stack_files import (
    COMPOSE_DIR,
    K8S_DIR,
    KUSTOMIZATION,
    jobs,
    k8s_files,
    k8s_kind,
    k8s_objects,
    long_running,
    services,
    workloads,
)

NOT_ON_KUBERNETES = {"jupyter"}  # the notebooks run on the learner's machine, not in the cluster
NAMESPACED = {"ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "Job", "PersistentVolumeClaim"}


def kustomization() -> dict[str, Any]:
    return yaml.safe_load(KUSTOMIZATION.read_text())


# --- the manifests --------------------------------------------------------------------------------
def test_every_manifest_parses_into_named_objects() -> None:
    assert k8s_objects()
    for path, doc in k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path
        assert doc["metadata"].get("name"), f"{path.name}: an object without a name"


def test_kustomization_lists_every_manifest_and_only_those() -> None:
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed))
    assert all((K8S_DIR / resource).is_file() for resource in listed)
    assert {str(path.relative_to(K8S_DIR)) for path in k8s_files()} == set(listed)


def test_everything_lives_in_the_labs_namespace() -> None:
    namespace = kustomization()["namespace"]
    assert set(k8s_kind("Namespace")) == {namespace}
    for path, doc in k8s_objects():
        assert doc["kind"] == "Namespace" or doc["kind"] in NAMESPACED, f"{path.name}: unexpected {doc['kind']}"
        assert doc["metadata"].get("namespace", namespace) == namespace, path.name


def test_names_are_unique_per_kind() -> None:
    seen = [(doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_objects()]
    assert len(seen) == len(set(seen))


# --- equivalent to compose --------------------------------------------------------------------------
def test_workloads_are_composes_long_running_services() -> None:
    assert set(workloads()) == set(long_running()) - NOT_ON_KUBERNETES


def test_jobs_are_composes_jobs() -> None:
    assert set(k8s_kind("Job")) == set(jobs())


@pytest.mark.parametrize("name", sorted(workloads()))
def test_workload_runs_the_image_compose_runs(name: str) -> None:
    (container,) = workloads()[name]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == services()[name]["image"]


@pytest.mark.parametrize("name", sorted(k8s_kind("Job")))
def test_job_runs_the_image_compose_runs(name: str) -> None:
    (container,) = k8s_kind("Job")[name]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == services()[name]["image"]


# --- readiness ----------------------------------------------------------------------------------------
def compose_check(test: list[str]) -> tuple:
    """A compose healthcheck as ("http", port, path) or ("exec", argv)."""
    text = " ".join(test[1:])
    if match := re.search(r"https?://(?:127\.0\.0\.1|localhost):(\d+)(/[^\s'\"]*)", text):
        return ("http", int(match[1]), match[2])
    if match := re.search(r"/dev/tcp/[\w.]+/(\d+).*GET (/\S*) HTTP", text):  # bash without curl
        return ("http", int(match[1]), match[2])
    return ("exec", tuple(test[1:]))


def k8s_check(probe: dict[str, Any]) -> tuple:
    if "httpGet" in probe:
        return ("http", probe["httpGet"]["port"], probe["httpGet"]["path"])
    return ("exec", tuple(probe["exec"]["command"]))


@pytest.mark.parametrize("name", sorted(workloads()))
def test_every_container_has_a_readiness_probe(name: str) -> None:
    for container in workloads()[name]["spec"]["template"]["spec"]["containers"]:
        assert "readinessProbe" in container, f"{name}/{container['name']} has no readiness probe"


@pytest.mark.parametrize("name", sorted(workloads()))
def test_readiness_probe_mirrors_the_compose_healthcheck(name: str) -> None:
    (container,) = workloads()[name]["spec"]["template"]["spec"]["containers"]
    assert k8s_check(container["readinessProbe"]) == compose_check(services()[name]["healthcheck"]["test"])


# --- wiring -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(workloads()))
def test_workload_selects_its_own_pods(name: str) -> None:
    spec = workloads()[name]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def service_ports() -> dict[str, set[int]]:
    return {name: {p["port"] for p in svc["spec"]["ports"]} for name, svc in k8s_kind("Service").items()}


def test_every_service_selects_a_workload_and_targets_its_ports() -> None:
    for name, service in k8s_kind("Service").items():
        selector = service["spec"]["selector"]
        matches = [
            w for w in workloads().values() if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"service {name} selects {len(matches)} workloads"
        (container,) = matches[0]["spec"]["template"]["spec"]["containers"]
        container_ports = {p["containerPort"] for p in container.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports, name


def test_every_address_in_the_settings_is_a_service_port() -> None:
    ports = service_ports()
    for key, value in k8s_kind("ConfigMap")["feedlab-config"]["data"].items():
        if key in ("FEEDLAB_PUBLIC_API_URL", "FEEDLAB_S3_PUBLIC_ENDPOINT"):
            continue  # what a browser outside the cluster uses (through port-forward)
        if "://" in str(value) or re.fullmatch(r"[\w.-]+:\d+", str(value)):
            address = urlsplit(value if "://" in value else f"tcp://{value}")
            assert address.port in ports.get(address.hostname, set()), f"{key}={value}: no such Service port"


def test_volume_claims_exist() -> None:
    claims = set(k8s_kind("PersistentVolumeClaim"))
    for name, obj in (workloads() | k8s_kind("Job")).items():
        for volume in obj["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name


def scrape_targets(config: dict[str, Any]) -> set[str]:
    return {t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]}


def test_prometheus_scrapes_what_it_scrapes_in_compose() -> None:
    inline = yaml.safe_load(k8s_kind("ConfigMap")["prometheus-config"]["data"]["prometheus.yml"])
    compose_config = yaml.safe_load((COMPOSE_DIR / "monitoring" / "prometheus.yml").read_text())
    assert scrape_targets(inline) == scrape_targets(compose_config)
    for target in scrape_targets(inline):
        host, _, port = target.partition(":")
        if host != "localhost":
            assert int(port) in service_ports()[host], f"no Service for {target}"


def test_grafana_datasource_is_composes() -> None:
    inline = yaml.safe_load(k8s_kind("ConfigMap")["grafana-datasources"]["data"]["prometheus.yml"])
    provisioning = COMPOSE_DIR / "monitoring" / "grafana" / "provisioning" / "datasources"
    files = sorted(provisioning.glob("*.y*ml"))
    compose_sources = [source for path in files for source in yaml.safe_load(path.read_text())["datasources"]]
    assert inline["datasources"] == compose_sources
