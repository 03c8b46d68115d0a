"""The benchmark report writer: valid Markdown and JSON from a small fake result set, read back by 09."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bench.report import CaseResult, finish_report, markdown, new_report, write_report
from bench.run import carry_over, combine_with_previous, merge_into_previous
from labcore.widgets.scaling import (
    bench_catchup_figure,
    bench_ratio_figure,
    bench_stage_figure,
    benchmark_frame,
    find_benchmark_report,
    read_bench_report,
)


def fake_cases() -> list[CaseResult]:
    return [
        CaseResult("fanout", "1 · Fan-out", "100 vs 200 inserts/s", ratio=0.5, ratio_label="labcore / bare",
                   target=0.7, target_label="≥ 0.7", figures={"followers": 2000, "rates": {"labcore": 100.0}},
                   notes=["Missed, measured: three commands per follower."]).judge(),
        CaseResult("feed", "3 · Feed latency", "p99 40 ms", ratio=1.25, ratio_label="50 ms / p99", target=1.0,
                   target_label="p99 ≤ 50 ms", figures={"stage_p50_ms": {"stage1_retrieval": 3.0},
                                                        "stage_p99_ms": {"stage1_retrieval": 9.0}}).judge(),
        CaseResult("recall", "6 · Discovery quality", "recall@10 = 1.0", ratio=1.0, ratio_label="recall@10"),
        CaseResult("memory", "7 · Memory", "failed", error="OSError: no /proc"),
    ]  # fmt: skip


def fake_report() -> dict:
    report = new_report(size="tiny", quick=True, command="feedlab bench --quick")
    return finish_report(report, fake_cases())


def test_judge_compares_the_ratio_with_the_target() -> None:
    fanout, feed, recall, _ = fake_cases()
    assert fanout.met is False and feed.met is True and recall.met is None


def test_the_report_carries_machine_facts_and_load() -> None:
    report = fake_report()
    machine = report["machine"]
    assert machine["cpu_count"] and machine["python"] and "numpy" in machine["packages"]
    assert "loadavg_start" in machine and "loadavg_end" in machine
    assert report["size"] == "tiny" and report["quick"] is True and len(report["cases"]) == 4


def test_markdown_has_a_summary_row_per_case_and_says_what_was_missed() -> None:
    text = markdown(fake_report())
    assert text.startswith("# Benchmarks\n")
    table = [line for line in text.splitlines() if line.startswith("| ") and "·" in line]
    assert len(table) == 4
    assert "**missed**" in table[0] and "| met |" in table[1] and "no target" in table[2] and "**error**" in table[3]
    assert "Missed, measured: three commands per follower." in text
    assert "| rates.labcore | 100.00 |" in text  # nested figures are flattened
    for line in text.splitlines():  # every table row has matching pipes
        if line.startswith("|"):
            assert line.endswith("|"), line


def test_write_report_writes_json_the_notebook_reads(tmp_path: Path) -> None:
    md, js = tmp_path / "docs/benchmarks.md", tmp_path / "docs/benchmarks.json"
    write_report(fake_report(), md, js)
    report = json.loads(js.read_text())
    assert [c["name"] for c in report["cases"]] == ["fanout", "feed", "recall", "memory"]
    assert md.read_text().startswith("# Benchmarks")
    assert find_benchmark_report(tmp_path) == js
    assert read_bench_report(tmp_path) == report
    frame = benchmark_frame(report)
    assert list(frame["verdict"]) == ["missed", "met", "no target", "error"]
    assert len(bench_ratio_figure(report).data[0].x) == 2  # the cases with a ratio and a target
    assert bench_stage_figure(report) is not None
    assert bench_catchup_figure(report) is None  # no catch-up case in this report
    catchup = {"posts": 100, "seed_seconds": 2.0, "encoded_when_seed_returned": 40, "catchup_seconds_after_seed": 3.0,
               "bare_posts_per_s": 25.0, "progress_s_embedded_indexed": [[2.0, 40, 0], [4.0, 90, 0], [5.0, 100, 100]]}
    report["cases"].append(asdict(CaseResult("catchup", "2 · Catch-up", "100 posts", ratio=0.9, figures=catchup)))
    figure = bench_catchup_figure(report)
    assert figure is not None and list(figure.data[0].y) == [40, 90, 100] and list(figure.data[2].x) == [2.0, 4.4]


def test_no_report_reads_as_none(tmp_path: Path) -> None:
    assert read_bench_report(tmp_path) is None


def test_large_is_kept_across_runs_and_its_own_run_changes_only_its_section(tmp_path: Path) -> None:
    js = tmp_path / "benchmarks.json"
    previous = fake_report() | {"generated_at": "yesterday", "command": "feedlab bench"}
    large = CaseResult("large", "9 · Large world", "100,000 posts ready", figures={"catchup": {"posts": 100000}})
    previous["cases"].append(asdict(large) | {"context": {"generated_at": "last week", "command": "feedlab bench --case large"}})
    js.write_text(json.dumps(previous))

    default_run = finish_report(new_report(size="tiny", quick=True, command="feedlab bench"), fake_cases()[:2])
    assert carry_over(default_run, js, ("large",)) == ["large"]
    assert [c["name"] for c in default_run["cases"]] == ["fanout", "feed", "large"]
    text = markdown(default_run)
    assert "_Measured in a separate run: `feedlab bench --case large` on last week" in text

    large_run = finish_report(new_report(size="tiny", quick=True, command="feedlab bench --case large"), [large])
    merged = merge_into_previous(large_run, js)
    assert merged is not None and merged["generated_at"] == "yesterday"  # the rest of the report is untouched
    assert [c["name"] for c in merged["cases"]] == ["fanout", "feed", "recall", "memory", "large"]
    assert merge_into_previous(large_run, tmp_path / "none.json") is None


def test_a_merged_run_that_measured_the_world_heads_the_report_and_old_cases_name_their_machine(tmp_path: Path) -> None:
    # feedlab bench --merge on a new machine: the header (date, machine, world) must be this run's,
    # not the previous report's; the cases it did not re-measure stay, saying when and where they ran.
    js = tmp_path / "benchmarks.json"
    previous = fake_report() | {"generated_at": "yesterday", "command": "feedlab bench"}
    previous["machine"] = previous["machine"] | {"cpu_model": "Old CPU"}
    js.write_text(json.dumps(previous))

    run = finish_report(new_report(size="tiny", quick=True, command="feedlab bench --case feed --merge"),
                        [fake_cases()[1]])  # fmt: skip
    run["world"] = {"size": "tiny"}
    run["machine"]["cpu_model"] = "New CPU"
    combined, carried = combine_with_previous(run, js, merge=True)
    assert combined is run and carried == ["fanout", "recall", "memory"]
    assert combined["machine"]["cpu_model"] == "New CPU" and combined["world"] == {"size": "tiny"}
    assert [c["name"] for c in combined["cases"]] == ["fanout", "feed", "recall", "memory"]
    text = markdown(combined)
    assert "_Measured in a separate run: `feedlab bench` on yesterday on another machine (Old CPU)" in text

    _, carried = combine_with_previous(finish_report(new_report(size="tiny", quick=True, command="feedlab bench"),
                                                     [fake_cases()[1]]), js, merge=False)  # fmt: skip
    assert carried == []  # without --merge only `large` would be kept, and there is none


def test_freshness_runs_alone_before_the_world_s_runtime_starts(tmp_path: Path, monkeypatch) -> None:
    import bench.run as bench_run

    calls: list[str] = []

    def freshness_apart(args, quick) -> CaseResult:
        calls.append("freshness")
        return CaseResult("freshness", "6 · Freshness", "p99 40 ms")

    def runtime_cases(args, size, quick, names, results, report) -> None:
        calls.append(f"world runtime for {names}")
        results.update({n: CaseResult(n, bench_run.TITLES[n], "measured") for n in names})

    monkeypatch.setattr(bench_run, "_freshness_apart", freshness_apart)
    monkeypatch.setattr(bench_run, "_runtime_cases", runtime_cases)
    out = ["--md", str(tmp_path / "b.md"), "--json", str(tmp_path / "b.json")]
    assert bench_run.main(["--case", "feed", "--case", "freshness", "--case", "memory", *out]) == 0
    assert calls == ["freshness", "world runtime for ['feed', 'memory']"]
    calls.clear()
    assert bench_run.main(["--case", "freshness", *out]) == 0
    assert calls == ["freshness"]  # no world to start for it
