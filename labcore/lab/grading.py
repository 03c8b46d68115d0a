"""``feedlab grade``: run the exercises' tests, add up their points, write the reports.

Each exercise is a folder ``exercises/NN_topic/`` with a starter the learner edits and visible tests;
hidden tests live apart in ``exercises/hidden/NN_topic/`` and run here only (instructors keep them,
and the reference solutions in ``exercises/solutions/``, out of a learner's copy if they wish).

One pytest run in a subprocess covers every selected exercise — a fresh interpreter, so the code
graded is the code on disk, and a learner's module that hangs or crashes cannot take the grader with
it. ``exercises/conftest.py`` puts each test's exercise and points (``@pytest.mark.points(n)``) into
the JUnit XML as properties, so the XML pytest writes anyway is the one source of the score:

* ``<out>/junit.xml``  — pytest's JUnit report, for CI test views;
* ``<out>/grades.json`` — per exercise: points earned and possible, each test's outcome and message;
* ``<out>/pytest.log``  — pytest's own output, tracebacks included, for when a message is not enough.

The table shows each exercise's first failure as one line — for an untouched starter that is the
starter's ``NotImplementedError`` message, which says what to implement — never a stack trace.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcore.errors import InvalidInput, LabError

DEFAULT_OUT = Path("build/grades")
EXERCISE_FOLDER = re.compile(r"^\d\d_\w+$")
MESSAGE_CHARS = 220  # one table line's worth of the first failure
TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class TestOutcome:
    exercise: str
    test: str  # e.g. "07_diversity/test_diversity.py::test_out_of_network_share"
    hidden: bool
    points: int
    passed: bool
    message: str | None = None  # why it failed (one line), None when it passed


@dataclass
class ExerciseGrade:
    exercise: str
    tests: list[TestOutcome] = field(default_factory=list)
    problem: str | None = None  # the tests could not run (collection error, none found)

    @property
    def earned(self) -> int:
        return sum(t.points for t in self.tests if t.passed)

    @property
    def possible(self) -> int:
        return sum(t.points for t in self.tests)

    @property
    def passed(self) -> bool:
        return self.problem is None and bool(self.tests) and all(t.passed for t in self.tests)

    @property
    def first_failure(self) -> str | None:
        if self.problem is not None:
            return self.problem
        return next((t.message for t in self.tests if not t.passed), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise,
            "earned": self.earned,
            "possible": self.possible,
            "passed": self.passed,
            "first_failure": self.first_failure,
            "tests": [
                {
                    "test": t.test,
                    "hidden": t.hidden,
                    "points": t.points,
                    "outcome": "passed" if t.passed else "failed",
                    "message": t.message,
                }
                for t in self.tests
            ],
        }


@dataclass
class Report:
    target: str  # "starters" | "solutions"
    exercises: list[ExerciseGrade]
    pytest_exit_code: int
    out: Path

    @property
    def earned(self) -> int:
        return sum(e.earned for e in self.exercises)

    @property
    def possible(self) -> int:
        return sum(e.possible for e in self.exercises)

    @property
    def passed(self) -> bool:
        return self.pytest_exit_code == 0 and bool(self.exercises) and all(e.passed for e in self.exercises)

    @property
    def grades_file(self) -> Path:
        return self.out / "grades.json"

    @property
    def junit_file(self) -> Path:
        return self.out / "junit.xml"

    @property
    def log_file(self) -> Path:
        return self.out / "pytest.log"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "earned": self.earned,
            "possible": self.possible,
            "passed": self.passed,
            "junit": str(self.junit_file),
            "exercises": [e.to_dict() for e in self.exercises],
        }


# --- finding and selecting exercises ----------------------------------------------------------------


def find_root() -> Path:
    """The ``exercises/`` folder: under the current directory, else next to ``labcore``."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / "exercises"
        if (candidate / "conftest.py").is_file():
            return candidate
    raise LabError("no exercises/ folder here or next to labcore: run `feedlab grade` from the repository root")


def discover(root: Path) -> list[str]:
    """Every exercise folder (``NN_topic``), in course order."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and EXERCISE_FOLDER.match(p.name))


def select(available: Sequence[str], wanted: Iterable[str]) -> list[str]:
    """The exercises named by number (``07``) or folder (``07_diversity``); all when none are named."""
    wanted = list(wanted)
    if not wanted:
        return list(available)
    chosen: list[str] = []
    for name in wanted:
        prefix = name.strip().rstrip("/").split("/")[-1]
        if prefix.isdigit():
            prefix = f"{int(prefix):02d}_"
        matches = [a for a in available if a == prefix or a.startswith(prefix)]
        if not matches:
            raise InvalidInput(f"no exercise {name!r}; exercises: {', '.join(available)}")
        chosen += [m for m in matches if m not in chosen]
    return sorted(chosen)


# --- running ----------------------------------------------------------------------------------------


def grade(
    wanted: Iterable[str] = (),
    *,
    solutions: bool = False,
    root: Path | None = None,
    out: Path = DEFAULT_OUT,
    timeout: float = TIMEOUT_SECONDS,
) -> Report:
    """Run the selected exercises' visible and hidden tests against the starters (or the reference
    solutions) and return the report, also written to ``out``."""
    root = (root or find_root()).resolve()
    names = select(discover(root), wanted)
    if not names:
        raise LabError(f"no exercises (NN_topic folders) in {root}")
    if solutions and not (root / "solutions").is_dir():
        raise LabError(f"no reference solutions in {root / 'solutions'} (they ship with the instructors' copy)")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    report = Report("solutions" if solutions else "starters", [], 0, out)
    report.junit_file.unlink(missing_ok=True)

    paths = [root / name for name in names] + [
        root / "hidden" / name for name in names if (root / "hidden" / name).is_dir()
    ]
    command = [
        sys.executable, "-m", "pytest",
        "-c", str(root / "pytest.ini"), "--rootdir", str(root),
        "-q", "--no-header", "-p", "no:cacheprovider",
        "--continue-on-collection-errors",  # one broken test file must not cost the other exercises
        f"--junitxml={report.junit_file}", "-o", "junit_suite_name=feedlab-grade",
        *(["--solutions"] if solutions else []),
        *(str(path) for path in paths),
    ]  # fmt: skip
    try:
        run = subprocess.run(command, cwd=root.parent, capture_output=True, text=True, timeout=timeout)
        report.pytest_exit_code, output = run.returncode, run.stdout + run.stderr
    except subprocess.TimeoutExpired as exc:
        report.pytest_exit_code = -1
        output = _text(exc.stdout) + _text(exc.stderr) + f"\nfeedlab grade: pytest timed out after {timeout:.0f}s\n"
    report.log_file.write_text(output)

    outcomes = parse_junit(report.junit_file) if report.junit_file.exists() else []
    problems = _problems(outcomes)
    for name in names:
        mine = [o for o in outcomes if o.exercise == name and o.test not in problems]
        grade_ = ExerciseGrade(name, mine)
        collection = [problems[o.test] for o in outcomes if o.exercise == name and o.test in problems]
        if collection:
            grade_.problem = f"the tests could not be collected: {collection[0]}"
        elif not mine:
            grade_.problem = _no_tests_reason(report.pytest_exit_code, output)
        report.exercises.append(grade_)
    report.grades_file.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def parse_junit(path: Path) -> list[TestOutcome]:
    """Every test case of pytest's JUnit XML as an outcome; a test reported twice (a failed call
    and a failed teardown) is one outcome, failed."""
    found: dict[str, TestOutcome] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        classname, name = case.get("classname", ""), case.get("name", "")
        test = _test_id(classname, name)
        exercise = props.get("exercise") or _exercise_in(f"{classname}.{name}") or "?"
        failure = next((case.find(tag) for tag in ("failure", "error") if case.find(tag) is not None), None)
        skipped = case.find("skipped")
        message = None
        if failure is not None:
            message = _one_line(failure.get("message") or "", failure.text or "")
        elif skipped is not None:
            message = "skipped: " + _one_line(skipped.get("message") or "", "")
        outcome = TestOutcome(
            exercise=exercise,
            test=test,
            hidden=classname.startswith("hidden.") or name.startswith("hidden."),
            points=int(props.get("points") or 1),
            passed=failure is None and skipped is None,
            message=message,
        )
        previous = found.get(test)
        if previous is None or (previous.passed and not outcome.passed):
            found[test] = outcome
    return list(found.values())


def render(report: Report) -> str:
    """The score table, one line per exercise with its first failure."""
    what = "reference solutions (exercises/solutions/)" if report.target == "solutions" else "starters"
    width = max([len("exercise"), *(len(e.exercise) for e in report.exercises)])
    lines = [f"feedlab grade: {what}", "", f"  {'exercise':<{width}}  {'points':>9}  first failure"]
    for e in report.exercises:
        failure = _clip(e.first_failure) if e.first_failure else "—"
        lines.append(f"  {e.exercise:<{width}}  {f'{e.earned} / {e.possible}':>9}  {failure}")
    lines.append(f"  {'total':<{width}}  {f'{report.earned} / {report.possible}':>9}")
    lines.append("")
    lines.append(f"grades: {_shown(report.grades_file)}   JUnit: {_shown(report.junit_file)}")
    if not report.passed:
        lines.append(f"details and tracebacks: {_shown(report.log_file)}")
    return "\n".join(lines)


# --- helpers ----------------------------------------------------------------------------------------


def _test_id(classname: str, name: str) -> str:
    """``07_diversity/test_diversity.py::test_x`` from JUnit's ``07_diversity.test_diversity``."""
    if not classname:  # a collection error names the module in `name`
        return name.replace(".", "/") + ".py"
    return classname.replace(".", "/") + ".py::" + name


def _exercise_in(dotted: str) -> str | None:
    return next((part for part in dotted.split(".") if EXERCISE_FOLDER.match(part)), None)


def _problems(outcomes: Sequence[TestOutcome]) -> dict[str, str]:
    """Collection errors (a test file that does not import): test id → message."""
    return {o.test: o.message or "collection failure" for o in outcomes if "::" not in o.test}


# A line that states the failure: "NotImplementedError: ...", "assert 2 == 3", "Failed: ...".
FAILURE_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit)|Failed|assert)\b")


def _one_line(message: str, text: str) -> str:
    """One line that says why a test failed, from JUnit's ``message`` (and its text for errors).

    Normally the message's first line (an exception, an assertion). Setup errors arrive wrapped
    (``failed on setup with "..."``) and collection errors as a bare "collection failure", with a
    traceback behind: then the line that names the exception, e.g. ``SyntaxError: invalid syntax``.
    """
    message = message.strip()
    wrapped = re.fullmatch(r'failed on \w+ with "(.*)"', message, re.S)
    if wrapped:
        message = wrapped.group(1)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines or lines == ["collection failure"]:
        lines = [line[1:].strip() for line in text.splitlines() if line.startswith("E ") and line[1:].strip()]
    if not lines:
        return "failed"
    if FAILURE_LINE.match(lines[0]):
        chosen = lines[0]
    else:
        chosen = next((line for line in reversed(lines) if FAILURE_LINE.match(line)), lines[0])
    return chosen.removeprefix("Failed: ")


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _no_tests_reason(exit_code: int, output: str) -> str:
    if exit_code in (0, 1, 5):
        return "no tests found"
    tail = [line for line in output.strip().splitlines() if line.strip()][-1:] or ["no output"]
    return f"pytest could not run (exit {exit_code}): {tail[0].strip()}"


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
