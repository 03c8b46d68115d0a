"""Each in-process case in its ``quick`` mode: structure and sanity of what it returns, never timings.

The runtime cases (catch-up, feed latency, 8 clients, features, freshness, large) need a whole
``feedlab up`` runtime with a seeded world, far more than a few seconds: ``feedlab bench --quick``
is their smoke run; here only their pure parts are checked. The memory case reads /proc and runs
here against this process.
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

from bench.cases import catchup, concurrency, fanout, feed, memory, recall
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


def test_catchup_counts_each_encode_once_whichever_worker_made_it() -> None:
    workers = {"embedding-worker": {"posts": 100, "reused": 7}, "interest-worker": {"embedded": 7}}
    assert catchup.encodes(workers) == 100  # 93 by the embedding worker + 7 a like overtook
    assert catchup.encodes({"embedding-worker": {"posts": 100, "reused": 0}, "interest-worker": {"embedded": 7}}) == 107
    assert catchup.encodes({}) == 0


def test_catchup_takes_the_ratio_apart_from_the_embedder_s_counters() -> None:
    before = {"calls": 2, "texts": 2, "model_seconds": 0.5}
    after = {"calls": 42, "texts": 3002, "model_seconds": 24.5}
    model = catchup.model_window(before, after, 30.0)
    assert (model["calls"], model["texts"], model["model_seconds"]) == (40, 3000, 24.0)
    assert model["busy_fraction"] == 0.8 and model["texts_per_model_second"] == 125.0
    assert model["mean_call_texts"] == 75.0
    model["bare_posts_per_s_in_worker_calls"] = 150.0
    note = catchup.model_note(model, bare_rate=160.0, forward=32)
    # busy 80 % × 125/160 while running = 0.62; call sizes 150/160; the CPU share beside the rest 125/150
    assert "busy 80% of the window" in note and "= 0.78 of bare" in note and "= 0.62." in note
    assert "= 0.94 of bare in one call" in note and "The rest, 0.83," in note
    idle = catchup.model_window({}, {}, 30.0)
    assert idle["calls"] == 0 and idle["texts_per_model_second"] is None and idle["mean_call_texts"] is None


def test_feed_latency_says_what_its_p50_limit_would_take() -> None:
    stages = {"stage1_retrieval": 5.0, "stage3_feature_fetch": 18.8, "stage3_ranking": 0.9, "stage2_filter": 4.1}
    note = feed.budget_note(stages, cpu_ms_per_request=36.0)
    assert "cut 3.0x" in note and "Without stage3_feature_fetch" in note and "add up to 10.0 ms of the 12 ms" in note
    assert "CPU" not in feed.budget_note(stages, cpu_ms_per_request=None)


def test_concurrency_explains_its_miss_by_little_s_law_and_the_cpu_a_request_costs() -> None:
    figures = {
        "clients": 8, "requests_per_second": 20.0, "client_ms_mean": 390.0,
        "runtime_cpu_ms_per_request": 50.0, "runtime_cores_busy": 1.2,
    }  # fmt: skip
    note = concurrency.queue_note(figures, cores=2)
    # 8 in flight / 20 per s = 400 ms each; under 100 ms needs 8 / 0.1 s = 80 per s = 4x; 2 cores / 50 ms = 40 per s
    assert "spend 400 ms each" in note and "measured mean 390 ms" in note
    assert "at least 80 requests/s, 4.0x this throughput" in note
    assert "at most 40 requests/s" in note and "used 1.20" in note
    assert "CPU" not in concurrency.queue_note({**figures, "runtime_cpu_ms_per_request": None}, cores=2)


def test_catchup_is_indexed_when_every_post_has_a_point_and_the_unindexed_tail_is_under_the_policy() -> None:
    assert catchup.index_done({"points": 20000, "indexed": 17000, "optimize_after": 5000}, 20000)
    assert not catchup.index_done({"points": 20000, "indexed": 15000, "optimize_after": 5000}, 20000)
    assert not catchup.index_done({"points": 19999, "indexed": 19999, "optimize_after": 5000}, 20000)
    assert catchup.index_done({"points": 150}, 150)  # a store without an in-process index: the count


def test_catchup_samples_spread_over_the_world_and_halves_do_not_overlap() -> None:
    texts = [f"t{i}" for i in range(1000)]
    a, b = catchup.spread_sample(texts, 100, 0), catchup.spread_sample(texts, 100, 2)
    assert len(a) == len(b) == 100 and not set(a) & set(b)
    assert a[0] == "t0" and a[-1] == "t990"  # from the whole range, not its head
    assert catchup._thin(list(range(1000)), 80)[-1] == 999 and len(catchup._thin(list(range(1000)), 80)) == 80


def test_memory_reads_peak_rss_from_proc() -> None:
    result = memory.run(os.getpid(), say=quiet)
    assert result.error is None and result.figures["runtime_peak_rss_mib"] >= result.figures["runtime_rss_now_mib"] > 0


def test_percentiles_of_nothing_are_none() -> None:
    assert _pcts([]) == {"p50": None, "p99": None, "max": None}
    assert _pcts([1.0, 2.0, 3.0])["p50"] == 2.0


def test_feedlab_bench_runs_a_case_and_writes_both_reports(tmp_path: Path) -> None:
    md, js = tmp_path / "b.md", tmp_path / "b.json"
    sigterm_before = signal.getsignal(signal.SIGTERM)
    code = cli.main(["bench", "--case", "recall", "--quick", "--md", str(md), "--json", str(js)])
    assert code == 0
    # It ran in this process: SIGTERM is left as it found it (an ignored one is inherited by every child
    # started later, and the engine tests' stops then waited out their whole SIGTERM grace).
    assert signal.getsignal(signal.SIGTERM) is sigterm_before
    report = json.loads(js.read_text())
    assert [c["name"] for c in report["cases"]] == ["recall"] and report["quick"] is True
    assert "7 · Discovery quality" in md.read_text()


def test_outbox_relay_script_drains_every_event_both_ways_and_prints_a_ratio() -> None:
    import re
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bench.outbox_relay", "--events", "600", "--batch-size", "100"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("600 events in") == 2, done.stdout  # it asserts every event reached a stream
    ratio = re.search(r"ratio \(pipelined / one by one\): ([0-9.]+)", done.stdout)
    assert ratio and float(ratio.group(1)) > 0, done.stdout
