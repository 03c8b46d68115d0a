"""The FEEDLAB_* variables of compose, .env.example and Kubernetes are labcore's settings, valid, and
point every service at the others under the names compose and Kubernetes give them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from labcore.settings import Settings
from tests.compose.stack_files import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    FEEDLAB_NAME,
    LISTENS,
    REPO,
    compose,
    env_example,
    feedlab_env,
    interpolate,
    interpolated_names,
    k8s_files,
    k8s_kind,
    pod_containers,
    services,
    setting_names,
    settings_from_env,
    workloads,
)

FILES_WITH_SETTINGS = [COMPOSE_FILE, ENV_EXAMPLE, *k8s_files()]


def ours() -> dict[str, dict]:
    """The services running our images (labcore inside), as opposed to the engines'."""
    return {name: svc for name, svc in services().items() if svc["image"].startswith("feedlab/")}


def anchor_env() -> dict[str, str]:
    """x-feedlab-env with its defaults filled in: what every container of ours starts with."""
    return {key: str(value) for key, value in compose()["x-feedlab-env"].items()}


@pytest.mark.parametrize("path", FILES_WITH_SETTINGS, ids=[str(p.relative_to(REPO)) for p in FILES_WITH_SETTINGS])
def test_every_feedlab_variable_is_a_labcore_setting(path: Path) -> None:
    unknown = set(FEEDLAB_NAME.findall(path.read_text())) - setting_names()
    assert not unknown, f"{path.name} names FEEDLAB_* variables labcore has no setting for: {sorted(unknown)}"


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("name", [n for n, s in services().items() if feedlab_env(s)])
def test_each_services_environment_is_valid_settings(name: str) -> None:
    settings_from_env(feedlab_env(services()[name]))  # raises ValidationError on a bad value


def test_every_service_of_ours_gets_the_whole_feedlab_environment() -> None:
    """No service is missing an address: each carries all of x-feedlab-env (and may add to it)."""
    anchor = anchor_env()
    assert anchor["FEEDLAB_PROFILE"] == "compose"
    for name, svc in ours().items():
        assert anchor.items() <= feedlab_env(svc).items(), f"{name} differs from x-feedlab-env"


# --- the addresses ----------------------------------------------------------------------------------
ADDRESSES = {
    "sql": lambda s: urlsplit(s.resolved_sql_url()),
    "redis": lambda s: urlsplit(s.redis_url),
    "kafka": lambda s: urlsplit(f"kafka://{s.kafka_bootstrap}"),
    "s3": lambda s: urlsplit(f"http://{s.s3_endpoint}"),
    "vectors": lambda s: urlsplit(s.resolved_vector_url()),
    "pinot": lambda s: urlsplit(s.pinot_broker_url),
    "features": lambda s: urlsplit(s.resolved_feature_server_url()),
    "ranking": lambda s: urlsplit(s.resolved_ranking_url()),
    "traces": lambda s: urlsplit(s.otlp_endpoint),
}


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("what", ADDRESSES)
def test_each_address_names_a_service_listening_there(what: str) -> None:
    address = ADDRESSES[what](settings_from_env(anchor_env()))
    assert address.hostname in services(), f"{what}: {address.hostname} is no compose service"
    assert address.port in LISTENS[address.hostname], f"{what}: {address.hostname} does not listen on {address.port}"


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    "what",
    [
        "sql",
        "kafka",
        "s3",
        "vectors",
        "pinot",
        "features",
        "ranking",
    ],
)
def test_addresses_are_what_the_compose_profile_resolves_to_anyway(what: str) -> None:
    """compose spells the addresses out; they must not drift from labcore's compose defaults."""
    explicit = ADDRESSES[what](settings_from_env(anchor_env()))
    default = ADDRESSES[what](Settings(_env_file=None, profile="compose"))  # type: ignore[call-arg]
    assert explicit == default


# --- .env.example -------------------------------------------------------------------------------------
def test_env_example_documents_every_variable_compose_fills_in() -> None:
    undocumented = interpolated_names(COMPOSE_FILE.read_text()) - set(env_example())
    assert not undocumented, f"add to compose/.env.example: {sorted(undocumented)}"


def test_env_example_documents_every_fixed_setting() -> None:
    fixed = {name for svc in services().values() for name in feedlab_env(svc)}
    assert fixed <= set(env_example())


def test_copying_env_example_changes_nothing() -> None:
    """Its active values are compose's defaults: `cp .env.example .env` is a no-op to start from."""
    documented = {name: value for name, (value, active) in env_example().items() if active}
    raw = COMPOSE_FILE.read_text()
    assert interpolate(raw, documented) == interpolate(raw)


@pytest.mark.usefixtures("clean_env")
def test_env_example_values_are_valid_settings() -> None:
    values = {name: value for name, (value, _) in env_example().items() if name.startswith("FEEDLAB_")}
    assert settings_from_env(values).s3_bucket == values["FEEDLAB_S3_BUCKET"]


# --- Kubernetes ----------------------------------------------------------------------------------------
def k8s_env() -> dict[str, str]:
    """What the ConfigMap and the Secret give every pod of ours."""
    config = k8s_kind("ConfigMap")["feedlab-config"]["data"]
    secret = k8s_kind("Secret")["lab-credentials"]["stringData"]
    return {k: str(v) for k, v in (config | secret).items() if k.startswith("FEEDLAB_")}


def test_kubernetes_settings_equal_composes() -> None:
    assert k8s_env() == anchor_env()


@pytest.mark.usefixtures("clean_env")
def test_kubernetes_settings_are_valid() -> None:
    assert settings_from_env(k8s_env()).profile == "compose"


def test_kubernetes_env_references_resolve() -> None:
    """Every envFrom / configMapKeyRef / secretKeyRef names an object and key that exist."""
    config_maps, secrets = k8s_kind("ConfigMap"), k8s_kind("Secret")
    for name, obj in (workloads() | k8s_kind("Job")).items():
        for container in pod_containers(obj):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, name
            for var in container.get("env", []):
                assert not var["name"].startswith("FEEDLAB_") or var["name"] in setting_names(), name
                ref = var.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in config_maps[ref["configMapKeyRef"]["name"]]["data"], name
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]]["stringData"], name
