"""The benchmark report: one ``CaseResult`` per hot path, written as Markdown and JSON.

Every figure in ``docs/benchmarks.md`` / ``docs/benchmarks.json`` comes from ``write_report`` at the
end of a ``feedlab bench`` run; nothing in those files is typed by hand. A case measures the lab's
path and a baseline (or a limit) *in the same run* and reports the ratio, because on a shared
machine absolute times move from run to run while a ratio taken minutes apart mostly does not.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = "feedlab-bench/1"
PACKAGES = (
    "torch", "sentence-transformers", "transformers", "qdrant-client", "feast", "fastapi", "uvicorn",
    "httpx", "redis", "hiredis", "duckdb", "SQLAlchemy", "numpy", "pydantic",
)  # fmt: skip


@dataclass
class CaseResult:
    """What one case measured.

    ``ratio`` is the lab's figure over its baseline (or the limit over the figure), oriented so that
    higher is better and ``target`` is a minimum; ``met`` is None when the case has no target.
    ``figures`` holds every number the case printed; ``notes`` say what was measured and, for a
    miss, the measured reason.
    """

    name: str
    title: str
    headline: str
    ratio: float | None = None
    ratio_label: str = ""
    target: float | None = None
    target_label: str = ""
    met: bool | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def judge(self) -> CaseResult:
        """Set ``met`` from ``ratio`` and ``target`` (None when either is missing)."""
        if self.target is not None and self.ratio is not None and math.isfinite(self.ratio):
            self.met = self.ratio >= self.target
        return self


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_facts() -> dict[str, Any]:
    """Cores, CPU model, memory, Python and the versions of the packages the hot paths run on."""
    facts: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": platform.processor() or None,
        "memory_gb": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {},
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    for name in PACKAGES:
        try:
            facts["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            facts["packages"][name] = None
    return facts


def new_report(*, size: str, quick: bool, command: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "size": size,
        "quick": quick,
        "machine": machine_facts() | {"loadavg_start": loadavg()},
        "world": {},
        "cases": [],
        "started": time.time(),
    }


def finish_report(report: dict[str, Any], cases: list[CaseResult]) -> dict[str, Any]:
    report["cases"] = [asdict(case) for case in cases]
    report["machine"]["loadavg_end"] = loadavg()
    report["wall_seconds"] = round(time.time() - report.pop("started", time.time()), 1)
    return report


# --- Markdown ---------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    return str(value)


def _verdict(case: dict[str, Any]) -> str:
    if case.get("error"):
        return "**error**"
    if case.get("met") is None:
        return "no target"
    return "met" if case["met"] else "**missed**"


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, (list, tuple)) and (len(value) > 12 or any(isinstance(v, (list, dict)) for v in value)):
        out.append((prefix, f"{len(value)} rows (in the JSON report)"))
    else:
        out.append((prefix, value))


def markdown(report: dict[str, Any]) -> str:
    """The whole report as Markdown: summary table, machine facts, then one section per case."""
    m = report["machine"]
    size = report["size"] + (" (quick)" if report.get("quick") else "")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{report['command']}` on {report['generated_at']} — world size **{size}**."
        " Every figure below comes from that run; do not edit by hand, re-run the command.",
        "",
        "| case | headline | ratio | target | verdict |",
        "|---|---|---:|---:|---|",
    ]
    for case in report["cases"]:
        ratio = f"{fmt(case['ratio'], 3)} ({case['ratio_label']})" if case.get("ratio") is not None else "—"
        target = case.get("target_label") or "—"
        lines.append(f"| {case['title']} | {case['headline']} | {ratio} | {target} | {_verdict(case)} |")
    pk = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v)
    lines += [
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m.get('cpu_count')} cores ({m.get('cpus_usable')} usable), {m.get('cpu_model')} |",
        f"| memory | {m.get('memory_gb')} GB |",
        f"| platform | {m.get('platform')} |",
        f"| Python | {m.get('python')} |",
        f"| packages | {pk} |",
        f"| load average (1/5/15 min) at start / end | {fmt(m.get('loadavg_start'))} / {fmt(m.get('loadavg_end'))} |",
        f"| wall time of the run | {fmt(report.get('wall_seconds'), 1)} s |",
    ]
    if m.get("shared_note"):
        lines.append(f"| note | {m['shared_note']} |")
    world = report.get("world") or {}
    if world:
        lines += ["", "## World", "", "| | |", "|---|---|"]
        for key, value in world.items():
            lines.append(f"| {key} | {fmt(value)} |")
    for case in report["cases"]:
        lines += ["", f"## {case['title']}", "", f"**{case['headline']}** — verdict: {_verdict(case)}", ""]
        context = case.get("context") or {}
        if context.get("generated_at") and context["generated_at"] != report["generated_at"]:
            other_cpu = context.get("cpu_model") not in (None, m.get("cpu_model"))
            lines += [
                f"_Measured in a separate run: `{context.get('command')}` on {context['generated_at']}"
                + (f" on another machine ({context['cpu_model']})" if other_cpu else "")
                + f", load average {fmt(context.get('loadavg_start'))} at start / {fmt(context.get('loadavg_end'))}"
                " at end._",
                "",
            ]
        if case.get("error"):
            lines += [f"The case failed: `{case['error']}`", ""]
        for note in case.get("notes", []):
            lines.append(f"- {note}")
        flat: list[tuple[str, Any]] = []
        _flatten("", case.get("figures", {}), flat)
        if flat:
            lines += ["", "| figure | value |", "|---|---:|"]
            lines += [f"| {name} | {fmt(value)} |" for name, value in flat]
        lines.append(f"\n_case took {fmt(case.get('seconds'), 1)} s_")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], md_path: Path, json_path: Path) -> None:
    """Write both files (parents created); JSON is the source the notebook plots."""
    for path in (md_path, json_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    md_path.write_text(markdown(report))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)
