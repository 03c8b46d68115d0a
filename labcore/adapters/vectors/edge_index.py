"""An HNSW index build of a Qdrant Edge shard, in a child process.

``EdgeShard.optimize()`` holds the GIL for its whole run, so in the runtime's process it would stall
every other thread (the feed's requests) for seconds. ``IndexBuild`` runs it in a child Python process
instead, on a *copy* of the shard's folder that ``QdrantEdgeVectors`` took in a consistent state; the
store swaps the built copy in afterwards. The child is ``python -m labcore.adapters.vectors.edge_index
FOLDER PARENT_PID``: it loads the copy (its persisted config included), optimizes, flushes, closes, and
prints ``{"changed": bool}``. It dies with its parent: on Linux the kernel sends it SIGKILL when the
thread that started it exits (``PR_SET_PDEATHSIG``; ``optimize`` waits for the child, so that thread
outlives it). Elsewhere an orphaned build ends by itself when its (bounded) optimize does.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from labcore.errors import BackendUnavailable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_NICENESS = 10  # a build is background work: the runtime's own threads get the CPU first


# The child runs in the folder that holds the labcore this process imported: ``-m`` puts it first on
# the child's path, so parent and child run the same code whatever the parent's working directory.
_ROOT = Path(__file__).resolve().parents[3]  # labcore/adapters/vectors/edge_index.py


def _command(folder: Path) -> list[str]:
    return [sys.executable, "-m", __name__, str(folder.resolve()), str(os.getpid())]


class IndexBuild:
    """The child building the index of the shard copy in ``folder``; started at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._process = subprocess.Popen(
            _command(folder),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=_ROOT,
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait(self) -> bool:
        """Wait for the child (the GIL is free meanwhile): True if it changed the index.

        A child that failed or was killed raises ``BackendUnavailable``; its folder is then garbage.
        """
        out, err = self._process.communicate()
        code = self._process.returncode
        if code != 0:
            tail = err.strip().splitlines()[-1:] if err else []
            raise BackendUnavailable(
                "vectors",
                f"Qdrant Edge index build of {self.folder} failed (exit {code}): {' '.join(tail) or 'no output'}",
            )
        return bool(json.loads(out.strip().splitlines()[-1])["changed"])

    def kill(self) -> None:
        """Stop the child now (``wait`` then raises); a no-op once it ended."""
        if self._process.poll() is None:
            self._process.kill()


def _die_with(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux); exit if it already did."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        raise SystemExit(f"parent {parent_pid} is gone")


def main(argv: list[str]) -> int:
    """The child's side: index the shard copy in ``argv[0]`` for the parent ``argv[1]``."""
    import qdrant_edge as edge  # here, not at the top: the parent only needs IndexBuild

    folder, parent_pid = argv
    _die_with(int(parent_pid))
    os.nice(_NICENESS)
    shard = edge.EdgeShard.load(folder)  # the copy's persisted config: the live shard's
    changed = shard.optimize()
    shard.flush()
    shard.close()
    print(json.dumps({"changed": changed}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
