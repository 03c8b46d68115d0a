"""``feedlab check``: run the whole course, in order, against a freshly started stack.

Each notebook opens with a ``parameters`` cell (papermill injects a tiny world for CI) and ends with
checks that assert what it taught, so a notebook that runs is a notebook that still teaches. The
executed copies land in ``build/notebooks/`` for reading; the first failure names the notebook and
the cell, with the error, and stops the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labcore.settings import OS_PICKED_PORTS

CI_PARAMETERS = {"WORLD": "tiny", "SEED": 42}
# A cell that runs longer has hung (nbclient can miss the reply of a cell that captures widget
# output, jupyter/nbclient#312): fail it by name instead of blocking CI.
CELL_TIMEOUT_SECONDS = 300


@dataclass
class NotebookFailed(Exception):
    notebook: str
    cell: int | None
    error: str

    def __str__(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "before any cell ran"
        return f"{self.notebook}, {where}: {self.error}"


def course(notebooks_dir: Path) -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))


def run_notebook(path: Path, out_dir: Path, parameters: dict[str, Any]) -> Path:
    """Execute one notebook with papermill; raises ``NotebookFailed`` naming the failing cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    try:
        pm.execute_notebook(
            str(path), str(output), parameters=parameters, cwd=str(path.parent),
            kernel_name="python3", language="python", progress_bar=False,
            execution_timeout=CELL_TIMEOUT_SECONDS,
        )  # fmt: skip
    except PapermillExecutionError as exc:
        # papermill counts the cells of the executed copy, where it injected one after `parameters`
        raise NotebookFailed(path.name, exc.exec_count, f"{exc.ename}: {exc.evalue}") from exc
    except Exception as exc:  # noqa: BLE001 - a notebook that cannot even start is a failure too
        raise NotebookFailed(path.name, None, f"{type(exc).__name__}: {exc}") from exc
    return output


@contextmanager
def fresh_stack() -> Iterator[dict[str, str]]:
    """A new embedded stack on free ports in a temp folder; yields the environment that reaches it."""
    with tempfile.TemporaryDirectory(prefix="feedlab-check-") as data_dir:
        env = os.environ | {"FEEDLAB_DATA_DIR": data_dir} | OS_PICKED_PORTS
        env.pop("FEEDLAB_REDIS_URL", None)
        up = subprocess.run([sys.executable, "-m", "labcore.lab.cli", "up"], env=env, capture_output=True, text=True)
        if up.returncode != 0:
            log = Path(data_dir, "runtime.log")
            raise RuntimeError(f"the stack did not start:\n{up.stderr}\n{log.read_text() if log.exists() else ''}")
        try:
            yield env
        finally:
            subprocess.run([sys.executable, "-m", "labcore.lab.cli", "down"], env=env, capture_output=True)


def check(notebooks: Sequence[Path], out_dir: Path, parameters: dict[str, Any] | None = None) -> list[Path]:
    """Run ``notebooks`` in order against a fresh stack; returns the executed copies."""
    parameters = parameters or CI_PARAMETERS
    executed = []
    with fresh_stack() as env:
        saved = dict(os.environ)
        os.environ.update(env)  # the kernels inherit the stack's FEEDLAB_* settings
        try:
            for notebook in notebooks:
                print(f"running {notebook.name} ...", flush=True)
                executed.append(run_notebook(notebook, out_dir, parameters))
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return executed
