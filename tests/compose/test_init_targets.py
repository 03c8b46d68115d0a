"""What the init jobs create is what labcore uses: topics, bucket, Pinot table, Feast services, SQL."""

from __future__ import annotations

import ast
import inspect
import json
import re
from dataclasses import fields

import httpx
import pytest

from labcore.adapters.impressions.pinot import PinotImpressions
from labcore.adapters.impressions.query import SEEN_SQL
from labcore.domain import (
    TOPIC_ENGAGEMENTS,
    TOPIC_IMPRESSIONS,
    TOPIC_NEW_POSTS,
    ImpressionLogged,
)
from labcore.features.base import AFFINITY_SERVICE, RANKING_SERVICE
from labcore.features.repo import DEFINITIONS_FILE, feast_dir
from labcore.lab.client import RuntimeInfo
from labcore.settings import Settings
from tests.compose.stack_files import (
    command,
    compose,
    environment,
    jobs,
    k8s_kind,
    services,
    settings_from_env,
    stack_init,
)

TOPICS = {TOPIC_NEW_POSTS, TOPIC_ENGAGEMENTS, TOPIC_IMPRESSIONS}
# Python annotation -> Pinot column type. seen_at is epoch seconds, truncated by Pinot to whole ones.
PINOT_TYPES = {"str": "STRING", "float": "LONG"}


def compose_settings() -> Settings:
    return settings_from_env({k: str(v) for k, v in compose()["x-feedlab-env"].items()})


def step_of(cmd: list[str]) -> list[str]:
    """The stack_init.py arguments inside a job's command (``sh -c "... stack_init.py X && ..."`` too)."""
    text = " ".join(cmd)
    match = re.search(r"compose/init/stack_init\.py ([^&]+)", text)
    assert match, f"no stack_init.py step in {cmd}"
    return match[1].split()


def pinot_schema() -> dict:
    return json.loads(stack_init().PINOT_SCHEMA.read_text())


def pinot_table() -> dict:
    return json.loads(stack_init().PINOT_TABLE.read_text())


def stream_config() -> dict:
    (stream,) = pinot_table()["ingestionConfig"]["streamIngestionConfig"]["streamConfigMaps"]
    return stream


# --- every job runs a step that exists ---------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in jobs() if n != "kafka-init"])
def test_compose_jobs_run_known_steps(name: str) -> None:
    stack_init().build_parser().parse_args(step_of(command(services()[name])))


@pytest.mark.parametrize("name", [n for n in k8s_kind("Job") if n != "kafka-init"])
def test_kubernetes_jobs_run_the_same_steps_as_compose(name: str) -> None:
    (container,) = k8s_kind("Job")[name]["spec"]["template"]["spec"]["containers"]
    k8s_step = step_of(container["command"])
    stack_init().build_parser().parse_args(k8s_step)
    assert k8s_step == step_of(command(services()[name]))


def test_kubernetes_has_a_job_for_every_compose_job() -> None:
    assert set(k8s_kind("Job")) == set(jobs())


# --- Kafka topics ------------------------------------------------------------------------------------------
def topic_script() -> list[tuple[str, str]]:
    """(where, script) of the kafka-init job in compose and in Kubernetes."""
    (k8s,) = k8s_kind("Job")["kafka-init"]["spec"]["template"]["spec"]["containers"]
    return [("compose", "\n".join(command(services()["kafka-init"]))), ("k8s", k8s["command"][-1])]


@pytest.mark.parametrize(("where", "script"), topic_script(), ids=["compose", "k8s"])
def test_topics_are_labcores_partitioned_as_labcore_hashes(where: str, script: str) -> None:
    (topics,) = re.findall(r"for topic in ([\w\- ]+); do", script)
    assert set(topics.split()) == TOPICS
    assert '--partitions "$FEEDLAB_EVENT_PARTITIONS"' in script
    assert f"--bootstrap-server {compose_settings().kafka_bootstrap} " in script


def test_topic_partitions_are_the_settings_partitions() -> None:
    partitions = environment(services()["kafka-init"])["FEEDLAB_EVENT_PARTITIONS"]
    assert partitions == str(compose_settings().event_partitions)
    assert environment(services()["kafka"])["KAFKA_NUM_PARTITIONS"] == partitions


# --- the bucket ------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("clean_env")
def test_bucket_is_labcores_default_bucket() -> None:
    assert step_of(command(services()["media-init"])) == ["bucket"]
    assert compose_settings().s3_bucket == Settings(_env_file=None).s3_bucket  # type: ignore[call-arg]


# --- Pinot -------------------------------------------------------------------------------------------------
def test_pinot_table_is_the_one_labcore_queries() -> None:
    queried = set(re.findall(r"FROM (\w+)", SEEN_SQL + inspect.getsource(PinotImpressions.health)))
    assert queried == {pinot_table()["tableName"]}
    assert pinot_table()["segmentsConfig"]["schemaName"] == pinot_schema()["schemaName"]


@pytest.mark.usefixtures("clean_env")
def test_pinot_consumes_labcores_impressions_topic() -> None:
    stream = stream_config()
    assert stream["stream.kafka.topic.name"] == TOPIC_IMPRESSIONS == ImpressionLogged.topic
    assert stream["stream.kafka.broker.list"] == compose_settings().kafka_bootstrap


def test_pinot_schema_has_the_impression_events_fields() -> None:
    schema = pinot_schema()
    columns = {
        spec["name"]: spec["dataType"]
        for group in ("dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs")
        for spec in schema.get(group, [])
    }
    event = {f.name: PINOT_TYPES[getattr(f.type, "__name__", f.type)] for f in fields(ImpressionLogged)}
    assert columns == event
    assert pinot_table()["segmentsConfig"]["timeColumnName"] == "seen_at"
    (time_spec,) = schema["dateTimeFieldSpecs"]
    assert time_spec["format"] == "1:SECONDS:EPOCH"  # labcore.adapters.impressions.query: seen_at is epoch seconds


@pytest.mark.usefixtures("clean_env")
def test_pinot_init_talks_to_the_controller_and_labcore_to_the_broker() -> None:
    step = stack_init().build_parser().parse_args(step_of(command(services()["pinot-init"])))
    assert step.controller == "http://pinot-controller:9000"
    assert compose_settings().pinot_broker_url == "http://pinot-broker:8099"


# --- Feast -------------------------------------------------------------------------------------------------
def feature_services_defined() -> set[str]:
    """FeatureService(name=...) in the repo's definitions, read without importing Feast."""
    tree = ast.parse(DEFINITIONS_FILE.read_text())
    return {
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "FeatureService"
        for keyword in node.keywords
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant)
    }


def test_feast_applies_the_services_labcore_requests() -> None:
    assert {RANKING_SERVICE, AFFINITY_SERVICE} <= feature_services_defined()
    assert step_of(command(services()["feast-init"])) == ["feast"]


@pytest.mark.usefixtures("clean_env")
def test_feast_init_and_the_feature_server_share_the_registry() -> None:
    registry = str(feast_dir(compose_settings()))
    for name in ("feast-init", "feast-feature-store"):
        assert f"feast-data:{registry}" in services()[name]["volumes"], name


# --- SQL ---------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("clean_env")
def test_sql_init_creates_the_database_labcore_connects_to() -> None:
    assert step_of(command(services()["sql-init"])) == ["sql"]
    assert compose_settings().resolved_sql_url().endswith("@tidb:4000/feed")


# --- stack_init.py itself, against a fake controller ----------------------------------------------------
class FakeController:
    """Pinot's controller REST API, as much of it as the pinot step uses."""

    def __init__(self, tables: list[str]) -> None:
        self.tables = tables
        self.requests: list[tuple[str, str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.requests.append((request.method, request.url.path, body))
        if request.method == "GET" and request.url.path == "/tables":
            return httpx.Response(200, json={"tables": self.tables})
        return httpx.Response(200, json={"status": "ok"})

    def client(self) -> httpx.Client:
        return httpx.Client(base_url="http://controller.test", transport=httpx.MockTransport(self))


def test_pinot_step_adds_schema_and_table_consuming_the_settings_broker() -> None:
    controller = FakeController(tables=[])
    assert stack_init().create_pinot_table("http://controller.test", "broker.test:9092", controller.client())
    (schema_post, _, table_post) = controller.requests
    assert schema_post[:2] == ("POST", "/schemas") and schema_post[2] == pinot_schema()
    assert table_post[:2] == ("POST", "/tables")
    (stream,) = table_post[2]["ingestionConfig"]["streamIngestionConfig"]["streamConfigMaps"]
    assert stream["stream.kafka.broker.list"] == "broker.test:9092"


def test_pinot_step_keeps_an_existing_table() -> None:
    controller = FakeController(tables=["impressions"])
    assert not stack_init().create_pinot_table("http://controller.test", "kafka:9092", controller.client())
    assert [(method, path) for method, path, _ in controller.requests] == [("POST", "/schemas"), ("GET", "/tables")]


def test_not_ready_errors_are_retried_and_real_failures_are_not() -> None:
    not_ready = stack_init().not_ready
    request = httpx.Request("POST", "http://controller.test/tables")
    assert not_ready(httpx.ConnectError("refused"))
    assert not_ready(httpx.HTTPStatusError("busy", request=request, response=httpx.Response(503)))
    assert not not_ready(httpx.HTTPStatusError("bad table", request=request, response=httpx.Response(400)))
    assert not not_ready(ValueError("a bug"))


@pytest.mark.usefixtures("clean_env")
def test_runtime_file_is_what_labcore_connect_reads(tmp_path) -> None:  # noqa: ANN001
    settings = compose_settings().model_copy(update={"data_dir": tmp_path})
    path = stack_init().write_runtime_file(settings, "http://api:8000")
    info = RuntimeInfo.read(path)
    assert (info.profile, info.api_url, info.pid) == ("compose", "http://api:8000", None)
    assert info.redis_url == "redis://redis:6379/0"
    assert info.feature_server_url == "http://feast-feature-store:6566"
