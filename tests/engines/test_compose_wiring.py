"""The harness derives everything from the compose file, so a wiring mistake there fails it.

No engines needed: these build each process's command and environment without starting it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engines.compose_stack import COMPOSE_FILE, INIT_JOBS, OUR_SERVICES, ComposeStack, WiringError

ENGINES = {
    "tidb": {4000: 13306}, "redis": {6379: 16379}, "kafka": {9092: 19092}, "seaweedfs": {9000: 19000},
    "qdrant": {6333: 16333}, "pinot-controller": {9000: 19002}, "pinot-broker": {8099: 18099},
    "jaeger": {4318: 14318, 16686: 16686},
}  # fmt: skip


def stack(tmp_path: Path, text: str | None = None) -> ComposeStack:
    compose = COMPOSE_FILE
    if text is not None:
        compose = tmp_path / "compose" / "docker-compose.yml"
        compose.parent.mkdir()
        compose.write_text(text)
        (compose.parent / "Dockerfile").write_text((COMPOSE_FILE.parent / "Dockerfile").read_text())
    return ComposeStack(tmp_path / "run", ENGINES, "t1", compose_file=compose)


def test_the_compose_file_maps_onto_loopback_engines(tmp_path: Path) -> None:
    wired = stack(tmp_path)
    api = wired.process("api")
    assert api.argv == ["python", "-m", "services.api"]  # the Dockerfile target's CMD
    assert api.env["FEEDLAB_SQL_URL"] == "mysql+pymysql://root@127.0.0.1:13306/feed_t1"
    assert api.env["FEEDLAB_KAFKA_BOOTSTRAP"] == "127.0.0.1:19092"
    assert api.env["FEEDLAB_RANKING_URL"] == wired.url("ranking")
    assert api.env["FEEDLAB_S3_PUBLIC_ENDPOINT"] == "127.0.0.1:19000"  # localhost:9000 is MinIO's published port
    assert api.env["FEEDLAB_HOST"] == "127.0.0.1"
    assert api.env["FEEDLAB_DATA_DIR"].endswith("containers/api/data")
    feast_volume = Path(wired.process("embedding-worker").env["FEEDLAB_DATA_DIR"]) / "feast"
    assert feast_volume.resolve() == (tmp_path / "run" / "volumes" / "feast-data").resolve()
    topics = wired.process("kafka-init")
    assert "--bootstrap-server 127.0.0.1:19092" in topics.argv[-1]
    for name in INIT_JOBS + OUR_SERVICES:
        wired.process(name)


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("http://ranking:8001", "http://rankng:8001", "no service 'rankng'"),
        ("http://pinot-broker:8099", "http://pinot-broker:8098", "nothing of 'pinot-broker' listens on 8098"),
        ("FEEDLAB_METRICS_PORT: 9464\n    depends_on:\n      sql-init", "FEEDLAB_METRICS_PORT: 9465\n    depends_on:\n      sql-init",
         "probes port 9464"),
        ("target: api}", "target: apii}", "no target 'apii'"),
    ],
)  # fmt: skip
def test_a_wiring_mistake_fails(tmp_path: Path, old: str, new: str, complaint: str) -> None:
    text = COMPOSE_FILE.read_text()
    assert old in text
    wired = None
    with pytest.raises(WiringError, match=complaint):
        wired = stack(tmp_path, text.replace(old, new, 1))
        for name in INIT_JOBS + OUR_SERVICES:
            wired.process(name)
