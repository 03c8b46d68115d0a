"""Every labcore module path or dotted name the course's prose mentions still exists.

The house move (issue #15) renamed most modules; notebooks, exercise READMEs, docs and docstrings name
them so a learner can open the source. A name that no longer resolves sends the learner nowhere — and
nothing else fails when it goes stale. (tests/notebooks/test_notebooks.py checks the other side: every
repository path a notebook's markdown names in backticks, labcore or not, exists.)
"""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROSE = ("README.md", "docs/*.md", "exercises/**/*.md", "notebooks/*.ipynb", "labcore/**/*.py", "services/**/*.py", "tools/*.py")
PATH = re.compile(r"labcore/[A-Za-z0-9_/]*[A-Za-z0-9_](?:\.py)?")
DOTTED = re.compile(r"(?<![\w/.])labcore(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def tracked(patterns: tuple[str, ...]) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / name for name in listed.stdout.split()]


def is_module(dotted: str) -> bool:
    path = ROOT / dotted.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def resolves(dotted: str) -> bool:
    """``labcore.a.b`` is a module, or a module's attribute (``labcore.feed.pipeline.FeedPipeline.run``)."""
    parts = dotted.split(".")
    cut = next((i for i in range(len(parts), 0, -1) if is_module(".".join(parts[:i]))), 0)
    if cut == 0:
        return False
    target: object = importlib.import_module(".".join(parts[:cut]))
    for attr in parts[cut:]:
        if not hasattr(target, attr):
            return False
        target = getattr(target, attr)
    return True


def references() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in tracked(PROSE):
        text = path.read_text(errors="replace")
        where = str(path.relative_to(ROOT))
        for name in PATH.findall(text) + DOTTED.findall(text):
            found.setdefault(name, set()).add(where)
    return found


def test_the_prose_names_labcore_at_all() -> None:
    assert len(references()) > 50


def test_every_labcore_path_or_name_mentioned_resolves() -> None:
    stale = {
        name: sorted(where)
        for name, where in sorted(references().items())
        if not ((ROOT / name).exists() if "/" in name else resolves(name))
    }
    assert stale == {}


@pytest.mark.parametrize(("name", "ok"), [("labcore.feed.Journey", True), ("labcore.lab.runtime", True), ("labcore.runtime", False), ("labcore.feed.Nope", False)])
def test_resolves(name: str, ok: bool) -> None:
    assert resolves(name) is ok
