"""compose/docker-compose.yml: valid Compose, pinned images, the component map's ports, files that
exist, and a start-up order `docker compose up --wait` can finish."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from graphlib import CycleError, TopologicalSorter
from typing import Any

import jsonschema
import pytest
import yaml

from tests.compose.stack_files import (
    COMPOSE_DIR,
    LISTENS,
    REPO,
    SCHEMA_FILE,
    command,
    compose,
    environment,
    jobs,
    k8s_objects,
    long_running,
    pod_containers,
    published_ports,
    services,
)
from tests.compose.upstream_images import UPSTREAM_IMAGES

# The original component map (shared/seed/ORIGINAL_README.md): host port -> container port. Every
# published port is listed here and nothing else is published. Two notes: Kafka's host clients use a
# listener of their own (container 9094, advertised as localhost:9092); Pinot's controller listens on
# 9000 like the S3 engine, so it is published on 9002. The S3 engine is SeaweedFS (MinIO in the
# original map, console on 9001; SeaweedFS's admin UI is switched off, so 9001 is not published).
COMPONENT_PORTS: dict[str, dict[int, int]] = {
    "api": {8000: 8000},
    "ranking": {8001: 8001},
    "tidb": {4000: 4000},
    "redis": {6379: 6379},
    "kafka": {9092: 9094},
    "qdrant": {6333: 6333},
    "seaweedfs": {9000: 9000},
    "pinot-broker": {8099: 8099},
    "pinot-controller": {9002: 9000},
    "feast-feature-store": {6566: 6566},
    "jaeger": {16686: 16686, 4317: 4317, 4318: 4318},
    "prometheus": {9090: 9090},
    "grafana": {3000: 3000},
    "jupyter": {8888: 8888},
}


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def split_image(image: str) -> tuple[str, str | None]:
    """``repository``, ``tag`` (None when the reference names no tag)."""
    name = image.split("@", 1)[0]
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:  # no colon, or the colon belonged to a registry's port
        return name, None
    return repository, tag


# --- the Compose Specification --------------------------------------------------------------------
@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_follows_the_compose_specification(validator: jsonschema.Draft7Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda doc: doc["services"]["api"].update(healthchek={"test": ["CMD", "true"]}),
        lambda doc: doc["services"]["api"]["depends_on"]["redis"].update(condition="service_ready"),
        lambda doc: doc.update(service={}),
    ],
    ids=["misspelt-key", "unknown-condition", "unknown-top-level-key"],
)
def test_the_schema_check_is_not_vacuous(validator: jsonschema.Draft7Validator, breakage: Any) -> None:
    broken = copy.deepcopy(compose())
    breakage(broken)
    assert list(validator.iter_errors(broken))


# --- images ---------------------------------------------------------------------------------------
def all_images() -> list[tuple[str, str]]:
    """(where, image) for every compose service and every Kubernetes container."""
    found = [(f"compose:{name}", svc["image"]) for name, svc in services().items() if "image" in svc]
    for path, doc in k8s_objects():
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            found += [(f"{path.name}:{c['name']}", c["image"]) for c in pod_containers(doc)]
    return found


def is_pinned(repository: str, tag: str | None) -> bool:
    """A full release: x.y.z (with any prefix or suffix: v8.5.1, 7.4.2-alpine) or a dated RELEASE,
    or a release tag in the form its upstream publishes (SeaweedFS: 4.48), per UPSTREAM_IMAGES."""
    if not tag:
        return False
    if re.search(r"\d+\.\d+\.\d+|RELEASE\.\d{4}-\d{2}-\d{2}", tag):
        return True
    upstream = UPSTREAM_IMAGES.get(repository)
    return bool(upstream and upstream.release_tag and re.fullmatch(upstream.release_tag, tag))


@pytest.mark.parametrize(("where", "image"), all_images(), ids=[w for w, _ in all_images()])
def test_every_image_has_a_pinned_tag(where: str, image: str) -> None:
    assert is_pinned(*split_image(image)), f"{where}: {image} has no tag, or one that moves (latest, 7-alpine)"


@pytest.mark.parametrize(
    "image",
    ["redis", "redis:latest", "redis:7-alpine", "python:3.11-slim", "localhost:5000/x", "chrislusf/seaweedfs:latest",
     "chrislusf/seaweedfs:4", "chrislusf/seaweedfs:dev", "chrislusf/seaweedfs:4.48_full"],
)  # fmt: skip
def test_floating_tags_are_refused(image: str) -> None:
    assert not is_pinned(*split_image(image))


def test_every_service_has_an_image_name() -> None:
    assert [name for name, svc in services().items() if "image" not in svc] == []


def test_our_images_are_tagged_with_the_project_version() -> None:
    ours = {svc["image"] for svc in services().values() if svc["image"].startswith("feedlab/")}
    assert ours and {split_image(image)[1] for image in ours} == {project_version()}


def test_our_images_are_built_never_pulled() -> None:
    """``pull_policy: build``: without it compose first asks Docker Hub for feedlab/*, which is noise
    at best, and a real image of that name there would silently win over our Dockerfile."""
    builders = {name: svc for name, svc in services().items() if "build" in svc}
    assert builders
    assert {name: svc.get("pull_policy") for name, svc in builders.items()} == dict.fromkeys(builders, "build")


def test_images_built_here_are_built_by_exactly_one_service() -> None:
    """The others reuse them by name; compose then builds once and never tries to pull them."""
    builders: dict[str, list[str]] = {}
    for name, svc in services().items():
        if "build" in svc:
            builders.setdefault(svc["image"], []).append(name)
    assert all(len(names) == 1 for names in builders.values()), builders
    for name, svc in services().items():
        if svc["image"].startswith("feedlab/"):
            assert svc["image"] in builders, f"{name} uses {svc['image']}, which no service builds"


# --- ports ----------------------------------------------------------------------------------------
def test_published_ports_are_the_component_maps() -> None:
    published = {
        name: {host: container for _, host, container in published_ports(svc)}
        for name, svc in services().items()
        if svc.get("ports")
    }
    assert published == COMPONENT_PORTS


def test_ports_are_published_on_loopback_only() -> None:
    ips = {ip for svc in services().values() for ip, _, _ in published_ports(svc)}
    assert ips <= {"127.0.0.1"}


def test_every_service_listens_where_the_others_look() -> None:
    assert set(LISTENS) == set(long_running())
    for name, ports in COMPONENT_PORTS.items():
        assert set(ports.values()) <= LISTENS[name] | ({9094} if name == "kafka" else set())


def test_prometheus_targets_are_services_of_the_stack() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "monitoring" / "prometheus.yml").read_text())
    targets = [
        target
        for job in config.get("scrape_configs", [])
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    ]
    assert targets, "prometheus.yml scrapes nothing"
    for target in targets:
        host, _, port = target.partition(":")
        host = "prometheus" if host in ("localhost", "127.0.0.1") else host  # it scrapes itself
        assert int(port) in LISTENS.get(host, set()), f"prometheus scrapes {target}, which nothing serves"
    # the workers serve /metrics where Prometheus looks (labcore.observability.metrics.serve_metrics)
    for worker in ("fanout-worker", "embedding-worker"):
        assert environment(services()[worker])["FEEDLAB_METRICS_PORT"] == "9464"


# --- files the stack needs ------------------------------------------------------------------------
def test_build_contexts_and_dockerfiles_exist() -> None:
    for name, svc in services().items():
        if "build" not in svc:
            continue
        context = (COMPOSE_DIR / svc["build"]["context"]).resolve()
        assert context == REPO, f"{name}: build context must be the repository root"
        assert (context / svc["build"]["dockerfile"]).is_file(), f"{name}: no {svc['build']['dockerfile']}"


def test_mounted_files_and_folders_exist() -> None:
    """Bind mounts (Prometheus' config, Grafana's provisioning, the notebooks) and named volumes."""
    declared = set(compose().get("volumes", {}))
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in declared, f"{name} mounts volume {source!r}, which is not declared"


def test_env_files_are_optional_or_present() -> None:
    for name, svc in services().items():
        for entry in svc.get("env_file", []):
            entry = {"path": entry} if isinstance(entry, str) else entry
            if entry.get("required", True):
                assert (COMPOSE_DIR / entry["path"]).is_file(), f"{name} requires {entry['path']}"


def test_python_commands_run_files_that_exist() -> None:
    for name, svc in services().items():
        for part in command(svc):
            for script in re.findall(r"compose/init/\S+\.py", part):
                assert (REPO / script).is_file(), f"{name} runs {script}, which does not exist"


# --- start-up order -------------------------------------------------------------------------------
def dependencies(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    return {dep: "service_started" for dep in deps} if isinstance(deps, list) else {
        dep: spec["condition"] for dep, spec in deps.items()
    }


def test_every_long_running_service_has_a_healthcheck() -> None:
    missing = [name for name, svc in long_running().items() if not svc.get("healthcheck", {}).get("test")]
    assert missing == []


def test_jobs_run_once_and_have_no_healthcheck() -> None:
    assert set(jobs()) == {"sql-init", "kafka-init", "media-init", "pinot-init", "feast-init", "seed"}
    assert all("healthcheck" not in svc for svc in jobs().values())


def test_dependencies_wait_on_something_that_can_happen() -> None:
    all_services = services()
    for name, svc in all_services.items():
        for dep, condition in dependencies(svc).items():
            assert dep in all_services, f"{name} depends on unknown {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in all_services[dep], f"{name} waits for {dep} to be healthy: no healthcheck"
            elif condition == "service_completed_successfully":
                assert dep in jobs(), f"{name} waits for {dep} to complete, but it runs forever"
            else:
                pytest.fail(f"{name} -> {dep}: use a healthcheck or completion condition, not {condition}")


def test_every_job_is_awaited_so_up_wait_accepts_its_exit() -> None:
    """`up --wait` treats a one-shot container's exit as success only when something awaits it."""
    awaited = {
        dep
        for svc in services().values()
        for dep, condition in dependencies(svc).items()
        if condition == "service_completed_successfully"
    }
    assert set(jobs()) <= awaited


def test_start_up_order_has_no_cycle() -> None:
    graph = {name: set(dependencies(svc)) for name, svc in services().items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"depends_on cycle: {exc.args[1]}")
    assert order.index("sql-init") < order.index("api") < order.index("jupyter")


def test_readme_states_the_compose_version_the_file_needs() -> None:
    """``env_file`` entries with ``required:`` need Compose 2.24; the README must say so."""
    needs_2_24 = any(
        isinstance(entry, dict) and "required" in entry
        for svc in services().values()
        for entry in svc.get("env_file", [])
    )
    readme = (REPO / "README.md").read_text()
    assert needs_2_24 and re.search(r"Compose 2\.24 or newer", readme)
    assert re.search(r"Memory: about \d+ GB for the full stack", readme)
