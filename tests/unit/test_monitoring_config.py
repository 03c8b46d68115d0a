"""Prometheus and Grafana provisioning in compose/monitoring: valid, and only about metrics we export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from labcore.observability import metrics

MONITORING = Path(__file__).resolve().parents[2] / "compose" / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
# A metric selector in PromQL: a name, optional {labels}, then a range [5m] (every panel uses rate()).
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*\[")


def panel_queries(dashboard: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_there_is_a_dashboard_with_the_panels_operators_need() -> None:
    assert DASHBOARDS, "no dashboard JSON in compose/monitoring/grafana/dashboards"
    titles = {panel["title"] for d in DASHBOARDS for panel in json.loads(d.read_text())["panels"]}
    for needed in ("Feed latency", "Stage latency", "Fallbacks", "Fan-out lag", "Ingestion rate"):
        assert any(t.startswith(needed) for t in titles), f"no panel for {needed}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_a_metric_the_code_exports(path: Path) -> None:
    exported = metrics.metric_names()
    dashboard = json.loads(path.read_text())
    queries = panel_queries(dashboard)
    assert queries
    for title, expr in queries:
        names = SELECTOR.findall(expr)
        assert names, f"panel {title!r}: no metric in {expr!r}"
        unknown = [n for n in names if n not in exported]
        assert not unknown, f"panel {title!r} queries {unknown}, which labcore does not export"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_use_the_provisioned_datasource_and_do_not_overlap(path: Path) -> None:
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashboard = json.loads(path.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        pos = panel["gridPos"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & area, f"panel {panel['title']!r} overlaps another"
        assert pos["x"] + pos["w"] <= 24
        cells |= area


def test_prometheus_config_is_valid_and_scrapes_every_labcore_process() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (apt-get install prometheus)")
    config = MONITORING / "prometheus.yml"
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert jobs["api"] == ["api:8000"] and jobs["ranking"] == ["ranking:8001"]
    assert {"fanout-worker", "embedding-worker"} <= set(jobs)


def test_the_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/feedlab.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
