"""PinotImpressions without a Pinot: the SQL it sends, how pinotdb binds it, how failures surface.

pinotdb runs for real; only its HTTP goes to an ``httpx.MockTransport`` that records each request
and answers like a broker. Also checks that the schema and table files under ``compose/pinot`` match
``ImpressionLogged``.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from labcore.adapters.impressions.pinot import PinotImpressions
from labcore.adapters.impressions.query import (
    SEEN_LIMIT,
    SEEN_SQL,
    seen_query,
    to_pyformat,
)
from labcore.domain import TOPIC_IMPRESSIONS, ImpressionLogged
from labcore.errors import BackendUnavailable

PINOT_DIR = Path(__file__).resolve().parents[2] / "compose" / "pinot"


def broker_answer(rows: list[list[Any]], **overrides: Any) -> dict[str, Any]:
    payload = {
        "resultTable": {
            "dataSchema": {"columnNames": ["post_id"], "columnDataTypes": ["STRING"]},
            "rows": rows,
        },
        "exceptions": [],
        "numServersQueried": 1,
        "numServersResponded": 1,
        "timeUsedMs": 3,
    }
    return payload | overrides


class Broker:
    """A mock broker: records every request body, answers with ``response``."""

    def __init__(self, response: httpx.Response | Exception | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.response = response or httpx.Response(200, json=broker_answer([]))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        self.requests.append(json.loads(request.content))
        if isinstance(self.response, Exception):
            raise self.response
        return self.response

    def store(self, url: str = "http://pinot-broker:8099", **kwargs: Any) -> PinotImpressions:
        session = httpx.Client(transport=httpx.MockTransport(self))
        return PinotImpressions(url, session=session, **kwargs)

    @property
    def sql(self) -> str:
        return self.requests[-1]["sql"]


# --- the SQL text and its binding ----------------------------------------------------------------


def test_seen_since_sends_the_shared_query_with_bound_values() -> None:
    broker = Broker(httpx.Response(200, json=broker_answer([["p1"], ["p3"]])))
    seen = broker.store().seen_since("bob", 1_700_000_000.9, ["p1", "p2", "p3", "p1"])
    assert seen == {"p1", "p3"}
    assert broker.urls == ["http://pinot-broker:8099/query/sql"]
    assert broker.sql == (
        "SELECT DISTINCT post_id FROM impressions WHERE user_id = 'bob' AND seen_at >= 1700000000"
        " AND post_id IN ('p1', 'p2', 'p3') LIMIT 3"
    )
    assert broker.requests[-1]["queryOptions"] == "timeoutMs=1000"


def test_unrestricted_query_has_the_default_limit() -> None:
    broker = Broker()
    assert broker.store().seen_since("bob", 10) == set()
    assert broker.sql == f"{SEEN_SQL.replace('?', '{}')} LIMIT {SEEN_LIMIT}".format("'bob'", 10)


@pytest.mark.parametrize(
    ("user_id", "literal"),
    [
        ("x' OR '1'='1", "'x'' OR ''1''=''1'"),
        ("bob'; DROP TABLE impressions; --", "'bob''; DROP TABLE impressions; --'"),
        ("100%(p0)s", "'100%(p0)s'"),  # a placeholder look-alike inside a value stays a value
        ("ünï ✓", "'ünï ✓'"),
    ],
)
def test_hostile_values_become_single_string_literals(user_id: str, literal: str) -> None:
    broker = Broker()
    broker.store().seen_since(user_id, 10, ["p' OR 1=1 --"])
    assert broker.sql == (
        f"SELECT DISTINCT post_id FROM impressions WHERE user_id = {literal} AND seen_at >= 10"
        " AND post_id IN ('p'' OR 1=1 --') LIMIT 1"
    )


def test_duckdb_and_pinot_run_the_same_text() -> None:
    duck_sql, params = seen_query("bob", 10.5, ["p1", "p2"])
    pinot_sql, named = to_pyformat(duck_sql, params)
    assert re.sub(r"%\(p\d+\)s", "?", pinot_sql) == duck_sql
    assert named == {"p0": "bob", "p1": 10, "p2": "p1", "p3": "p2", "p4": 2}
    assert duck_sql.startswith(SEEN_SQL)


def test_to_pyformat_checks_the_parameter_count() -> None:
    with pytest.raises(ValueError):
        to_pyformat("SELECT ? + ?", [1])


def test_seen_query_refuses_an_empty_restriction() -> None:
    with pytest.raises(ValueError):
        seen_query("bob", 0, [])


def test_star_is_never_sent() -> None:
    # pinotdb leaves "*" unquoted; it is no id in this lab, so it is answered without a query.
    broker = Broker()
    store = broker.store()
    assert store.seen_since("*", 0) == set()
    assert store.seen_since("bob", 0, ["*"]) == set()
    assert broker.requests == []
    store.seen_since("bob", 0, ["*", "p1"])
    assert broker.sql.endswith("AND post_id IN ('p1') LIMIT 1")


def test_empty_restriction_asks_nothing() -> None:
    broker = Broker()
    assert broker.store().seen_since("bob", 0, []) == set()
    assert broker.requests == []


def test_timeout_reaches_the_broker_and_the_client() -> None:
    broker = Broker()
    store = broker.store(timeout_seconds=0.25)
    store.seen_since("bob", 0)
    assert broker.requests[-1]["queryOptions"] == "timeoutMs=250"
    real = PinotImpressions("http://pinot-broker:8099", timeout_seconds=0.25)
    assert real._conn.cursor().session.timeout.read == 0.25  # pinotdb's own httpx client
    real.close()


def test_https_and_default_port_come_from_the_url() -> None:
    broker = Broker()
    broker.store("https://pinot.example").seen_since("bob", 0)
    assert broker.urls == ["https://pinot.example/query/sql"]  # 443, which httpx leaves implicit
    with pytest.raises(ValueError):
        PinotImpressions("pinot-broker:8099")


# --- failures are the lab's, not pinotdb's or httpx's ----------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(500, text="<html>broker exploded</html>"),
        httpx.Response(400, json=broker_answer([], exceptions=[{"errorCode": 190, "message": "no table"}])),
        httpx.Response(200, json=broker_answer([], exceptions=[{"errorCode": 250, "message": "timeout"}])),
        httpx.Response(200, json=broker_answer([], numServersResponded=0)),  # a server did not answer
    ],
    ids=["refused", "timeout", "html-500", "no-table", "query-exception", "partial"],
)
def test_failures_are_backend_unavailable(response: Any) -> None:
    store = Broker(response).store()
    with pytest.raises(BackendUnavailable) as caught:
        store.seen_since("bob", 0, ["p1"])
    assert caught.value.component == "olap"
    with pytest.raises(BackendUnavailable):
        store.health()


def test_health_queries_the_table() -> None:
    broker = Broker(httpx.Response(200, json=broker_answer([[0]])))
    broker.store().health()
    assert broker.sql == "SELECT COUNT(*) FROM impressions"


# --- compose/pinot matches the event ---------------------------------------------------------------


def test_schema_fields_are_exactly_the_events_fields() -> None:
    schema = json.loads((PINOT_DIR / "impressions_schema.json").read_text())
    specs = [
        spec
        for kind in ("dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs")
        for spec in schema.get(kind, [])
    ]
    assert sorted(spec["name"] for spec in specs) == sorted(f.name for f in fields(ImpressionLogged))
    assert schema["schemaName"] == "impressions"
    (time_spec,) = schema["dateTimeFieldSpecs"]
    # Whole epoch seconds: what the floored bound in labcore.adapters.impressions.query assumes.
    assert time_spec["name"] == "seen_at"
    assert (time_spec["dataType"], time_spec["format"]) == ("LONG", "1:SECONDS:EPOCH")


def test_table_consumes_the_impressions_topic_into_the_schema() -> None:
    table = json.loads((PINOT_DIR / "impressions_realtime_table.json").read_text())
    assert table["tableName"] == "impressions" and table["tableType"] == "REALTIME"
    assert table["segmentsConfig"]["schemaName"] == "impressions"
    assert table["segmentsConfig"]["timeColumnName"] == "seen_at"
    (stream,) = table["ingestionConfig"]["streamIngestionConfig"]["streamConfigMaps"]
    assert stream["stream.kafka.topic.name"] == TOPIC_IMPRESSIONS
    assert stream["stream.kafka.broker.list"] == "kafka:9092"
    assert stream["stream.kafka.decoder.class.name"].endswith("JSONMessageDecoder")
    # Retention must cover the filter's window (24 h by default).
    assert table["segmentsConfig"]["retentionTimeUnit"] == "DAYS"
    assert int(table["segmentsConfig"]["retentionTimeValue"]) >= 2
