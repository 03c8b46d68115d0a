"""The fan-out worker as its own process (compose; also how the no-loss test crashes it).

    python -m services.fanout_worker

Consumes ``new-posts`` in group ``fanout`` as ``fanout-$FEEDLAB_WORKER_ID`` and writes mailboxes.
Keep the worker id stable across restarts: a restarted consumer replays its own unacked events.
"""

from __future__ import annotations

from labcore.bootstrap import build_workers
from labcore.workers.loop import run_until_signalled
from services.worker_process import start_worker_process


def main() -> None:
    stack = start_worker_process("fanout-worker", "fanout")
    (loop,) = build_workers(stack, ("fanout-worker",)).values()
    try:
        run_until_signalled(loop)
    finally:
        stack.close()


if __name__ == "__main__":
    main()
