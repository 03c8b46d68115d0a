"""Every notebook runs top to bottom under papermill against a running stack, on a tiny world.

The notebooks end with checks that assert what they teach, so "it ran" means "it taught". Outputs
are never committed: a test fails on any notebook in git with outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill as pm
import pytest

from tests.conftest import RunningStack

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_is_a_course() -> None:
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_outputs_are_stripped(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{notebook.name}: cells {dirty} have outputs; strip them before committing"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_its_checks_pass(
    notebook: Path, running_stack: RunningStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in running_stack.env.items():
        if key.startswith("FEEDLAB_"):
            monkeypatch.setenv(key, value)  # the kernel inherits these and connects to this stack
    pm.execute_notebook(
        str(notebook),
        str(tmp_path / notebook.name),
        parameters={"WORLD": "tiny", "SEED": 42},
        cwd=str(ROOT / "notebooks"),
        kernel_name="python3",
        progress_bar=False,
    )
