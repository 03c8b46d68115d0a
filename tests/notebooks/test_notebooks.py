"""The course runs: `feedlab check` executes every notebook, in order, against a fresh stack.

The notebooks end with checks that assert what they teach, so "it ran" means "it taught". Outputs
are never committed: a test fails on any notebook in git with outputs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labcore.lab.notebook_check import course

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = course(ROOT / "notebooks")


def test_there_is_a_course() -> None:
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped_and_parametrized(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{notebook.name}: cells {dirty} have outputs; strip them before committing"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), "needs a parameters cell"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_names_the_source_it_demonstrates(notebook: Path) -> None:
    """Under the title, one line links the modules the lesson is about; every link must resolve."""
    title = json.loads(notebook.read_text())["cells"][0]["source"]
    assert title[0].startswith("# ") and title[2].startswith("Source: "), f"{notebook.name}: no Source line"
    links = re.findall(r"\]\(([^)]+)\)", title[2])
    assert links and all(link.startswith("../") and (notebook.parent / link).resolve().is_file() for link in links), links


# A repository path a lesson's text names in backticks, e.g. `labcore/lab/simulator.py`.
REPO_PATH = re.compile(r"`((?:labcore|services|tools|bench|exercises|docs|notebooks|tests)/[\w./-]+)`")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_path_the_text_names_exists(notebook: Path) -> None:
    """A learner told "the ground truth is in `x.py`" opens x.py: every path a markdown cell names in
    backticks must exist (modules move; the Source line's links are checked above)."""
    cells = json.loads(notebook.read_text())["cells"]
    named = {m for c in cells if c["cell_type"] == "markdown" for m in REPO_PATH.findall("".join(c["source"]))}
    missing = sorted(path for path in named if not (ROOT / path.rstrip("/.")).exists())
    assert not missing, f"{notebook.name} names paths that do not exist: {missing}"


def test_feedlab_check_runs_the_whole_course(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labcore.lab.cli", "check", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [nb.name for nb in NOTEBOOKS]


def test_feedlab_check_names_the_notebook_and_cell_that_broke(tmp_path: Path) -> None:
    broken = tmp_path / "course"
    broken.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("WORLD = 'tiny'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import labcore\nlab = labcore.connect()"),
        nbformat.v4.new_code_cell("assert lab.health()['status'] == 'nope', 'the lesson failed'"),
    ]
    nbformat.write(nb, broken / "00_broken.ipynb")
    result = subprocess.run(
        [sys.executable, "-m", "labcore.lab.cli", "check", "--notebooks", str(broken), "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert "00_broken.ipynb" in result.stderr and "AssertionError: the lesson failed" in result.stderr
    assert "cell" in result.stderr
