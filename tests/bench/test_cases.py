"""Each in-process case in its ``quick`` mode: structure and sanity of what it returns, never timings.

The runtime cases (feed latency, features, freshness) need a whole ``feedlab up`` runtime with a
seeded world, far more than a few seconds: ``feedlab bench --quick`` is their smoke run. The memory
case reads /proc and runs here against this process.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from bench.cases import embedding, fanout, memory, recall
from bench.cases.freshness import _pcts
from labcore.lab import cli


def quiet(_message: str) -> None:
    pass


def finite_positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def test_fanout_quick_delivers_to_every_follower_and_reports_a_ratio() -> None:
    result = fanout.run(quick=True, say=quiet)
    f = result.figures
    assert result.name == "fanout" and result.error is None and f["followers"] == 2000
    assert finite_positive(result.ratio) and result.met in (True, False)
    assert finite_positive(f["labcore_inserts_per_s"]) and finite_positive(f["bare_zadd_inserts_per_s"])
    assert f["sampled_mailboxes_holding_posts"] == 100  # 1 in 20 followers checked: all hold the posts


def test_recall_quick_is_a_fraction() -> None:
    result = recall.run(quick=True, say=quiet)
    assert result.figures["k"] == 10 and result.figures["vectors"] == 150  # the tiny world's posts
    assert 0.0 <= result.figures["recall_mean"] <= 1.0 and result.ratio == result.figures["recall_mean"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_embedding_quick_sweeps_batch_sizes_and_upserts_every_post() -> None:
    result = embedding.run(quick=True, say=quiet)
    f = result.figures
    assert f["texts"] == 64 and f["vectors_stored"] == 64
    assert set(f["bare_posts_per_s_by_batch_sweep"]) == {"1", "32", "64", "128", "256"}
    assert finite_positive(result.ratio) and finite_positive(f["worker_posts_per_s"])
    assert f["worker_encode_seconds"] > 0 and f["worker_upsert_seconds"] > 0


def test_memory_reads_peak_rss_from_proc() -> None:
    result = memory.run(os.getpid(), say=quiet)
    assert result.error is None and result.figures["runtime_peak_rss_mib"] >= result.figures["runtime_rss_now_mib"] > 0


def test_percentiles_of_nothing_are_none() -> None:
    assert _pcts([]) == {"p50": None, "p99": None, "max": None}
    assert _pcts([1.0, 2.0, 3.0])["p50"] == 2.0


def test_feedlab_bench_runs_a_case_and_writes_both_reports(tmp_path: Path) -> None:
    md, js = tmp_path / "b.md", tmp_path / "b.json"
    code = cli.main(["bench", "--case", "recall", "--quick", "--md", str(md), "--json", str(js)])
    assert code == 0
    report = json.loads(js.read_text())
    assert [c["name"] for c in report["cases"]] == ["recall"] and report["quick"] is True
    assert "6 · Discovery quality" in md.read_text()
