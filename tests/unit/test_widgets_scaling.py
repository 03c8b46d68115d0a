"""The pure parts of notebook 09's measurements: the mailbox bound, medians, the benchmark report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labcore.widgets.feed import STAGES
from labcore.widgets.scaling import (
    BENCHMARK_REPORTS,
    benchmark_frame,
    find_benchmark_report,
    load_benchmark_report,
    mailbox_bound,
    missed_explained,
    summarize_feeds,
)


@pytest.mark.parametrize(
    ("users", "entries", "mib"), [(1, 800, 0.09), (10_000, 8_000_000, 919.42)]
)  # fmt: skip
def test_mailbox_bound_is_cap_times_users(users: int, entries: int, mib: float) -> None:
    row = mailbox_bound([users], 800, 96_408).iloc[0]
    assert row["max_entries"] == entries and row["max_bytes"] == users * 96_408 and row["max_MiB"] == mib


def feed(latency: float, social: int = 10, discovery: int = 5) -> dict:
    return {
        "candidates_social": social, "candidates_discovery": discovery, "items": [{}] * 3,
        "latency_ms": latency, "stage_latency_ms": {stage: latency / len(STAGES) for stage in STAGES},
    }  # fmt: skip


def test_summarize_feeds_takes_the_median_so_one_slow_request_does_not_count() -> None:
    summary = summarize_feeds([feed(10.0), feed(500.0), feed(12.0)])
    assert summary["latency_ms"] == 12.0 and summary["candidates"] == 15 and summary["items"] == 3
    assert set(STAGES) <= set(summary)


def test_no_report_means_none_never_made_up_numbers(tmp_path: Path) -> None:
    assert find_benchmark_report(tmp_path) is None


def test_the_first_listed_report_wins_and_markdown_is_shown_as_written(tmp_path: Path) -> None:
    for relative in BENCHMARK_REPORTS:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "docs/benchmarks.md").write_text("# Feed latency\n")
    assert find_benchmark_report(tmp_path) == tmp_path / "docs/benchmarks.md"
    assert load_benchmark_report(tmp_path / "docs/benchmarks.md") == "# Feed latency\n"
    (tmp_path / BENCHMARK_REPORTS[0]).write_text(json.dumps([{"name": "feed p99", "ms": 80.0}]))
    assert find_benchmark_report(tmp_path) == tmp_path / BENCHMARK_REPORTS[0]


def test_a_feed_latency_json_report_shows_its_summary_not_its_samples(tmp_path: Path) -> None:
    report = {
        "world": {"size": "medium"},
        "summary": {"requests": 500, "server_ms": {"p50": 41.0, "p99": 120.5}, "model_versions": ["formula-v1"]},
        "samples": [{"latency_ms": 40.0}] * 500,
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    frame = load_benchmark_report(path)
    assert dict(zip(frame["figure"], frame["value"])) == {
        "requests": "500", "server_ms.p50": "41.0", "server_ms.p99": "120.5"
    }  # fmt: skip


def test_a_list_of_results_is_one_row_each() -> None:
    frame = benchmark_frame([{"name": "a", "ms": 1.0}, {"name": "b", "ms": 2.0}])
    assert list(frame["name"]) == ["a", "b"] and list(frame["ms"]) == [1.0, 2.0]


def test_a_missed_target_is_shown_with_the_report_s_account_of_it() -> None:
    def case(title: str, met: bool | None, notes: list[str]) -> dict:
        return {"title": title, "headline": f"{title} headline", "met": met, "notes": notes}

    report = {"cases": [
        case("2 · Catch-up", False, ["How it was run.", "Missed, measured: 89 vs 155 posts/s.", "The model in the runtime: busy 94%."]),
        case("1 · Fan-out", True, ["Missed nothing here."]),
        case("8 · Memory", None, []),
        case("4 · Feed, 8 clients", False, ["How it was run."]),
    ]}  # fmt: skip
    text = missed_explained(report)
    assert "**2 · Catch-up** — 2 · Catch-up headline" in text
    assert "- Missed, measured: 89 vs 155 posts/s.\n- The model in the runtime: busy 94%." in text
    assert "How it was run." not in text and "Fan-out" not in text and "Memory" not in text
    assert "**4 · Feed, 8 clients**" in text and "(the report gives no explanation)" in text
    assert missed_explained({"cases": [case("1 · Fan-out", True, [])]}) == "Every target in this report was met."
