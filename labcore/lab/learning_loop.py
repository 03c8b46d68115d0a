"""The whole learning loop against a running stack — what ``feedlab train-ranker`` runs headless and
notebook 10 walks step by step:

1. serve ``formula-v1`` with an exploration share and let simulated readers use the feed;
2. label their impressions and join point-in-time features from Feast;
3. train logistic regression and gradient boosting, compare with ``formula-v1`` on later impressions;
4. register the best model as a new version in ``<data_dir>/models``;
5. optionally A/B it against ``formula-v1`` (a share of readers by user-id hash) and compare the like
   rate per impression of the two arms.

The stack's serving knobs are changed through the runtime's admin API (``lab.configure_serving``)
and put back as they were at the end, whatever happens in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from labcore.errors import LabError
from labcore.lab.simulator import UserSimulator
from labcore.lab.world import generate_world
from labcore.ranking.learned.dataset import LABEL_WINDOW, compact_history, training_rows
from labcore.ranking.learned.evaluation import engagement_by_arm
from labcore.ranking.learned.registry import ModelRegistry
from labcore.ranking.learned.training import TEST_SHARE, TrainingResult, train

if TYPE_CHECKING:
    from labcore.lab.client import LabClient


# Simulated sessions to learn from, per world: on tiny (30 readers, CI) twelve visits per reader give
# ~900 held-out impressions, enough for the AUC margin's 95 % interval to clear zero every run (ten
# fresh-stack runs of notebook 10: see its closing note); small (300 readers) gets four visits each.
SESSIONS = {"tiny": 360, "small": 1200}


def sessions_for(world: str) -> int:
    """The default number of sessions to simulate on ``world`` (larger worlds: as small)."""
    return SESSIONS.get(world, SESSIONS["small"])


@dataclass(frozen=True)
class LoopConfig:
    world: str | None = None  # None: the world the stack holds (tiny if it holds none)
    seed: int = 42
    sessions: int | None = None  # simulated sessions to learn from; None: sessions_for(world)
    exploration_share: float = 0.15
    ab_sessions: int = 0  # 0: no A/B run
    treatment_share: float = 0.5
    label_window: timedelta = LABEL_WINDOW
    test_share: float = TEST_SHARE
    version: str | None = None  # default: the registry's next learned-vN


@dataclass
class LoopReport:
    simulation: pd.DataFrame
    rows: pd.DataFrame
    result: TrainingResult
    version: str
    model_dir: Path
    ab: pd.DataFrame | None = None
    ab_log: pd.DataFrame | None = field(default=None, repr=False)


def data_dir(lab: LabClient) -> Path:
    if not lab.info.data_dir:
        raise LabError("the running stack did not say where its data lives (runtime.json: data_dir)")
    return Path(lab.info.data_dir)


def registry(lab: LabClient) -> ModelRegistry:
    """The running stack's model registry, ``<data_dir>/models``."""
    return ModelRegistry(data_dir(lab) / "models")


@contextmanager
def serving(lab: LabClient, **knobs: Any) -> Iterator[dict[str, Any]]:
    """Serve with ``knobs`` inside the block; the previous values come back afterwards."""
    before = lab.serving()
    try:
        yield lab.configure_serving(**knobs)
    finally:
        lab.configure_serving(**{k: ("" if v is None and k == "ranking_treatment" else v) for k, v in before.items()})


def loaded_world(lab: LabClient, seed: int) -> str | None:
    """Which seeded world (of the sizes a laptop loads) the stack holds, if any."""
    for size in ("tiny", "small", "medium"):
        if lab.store.get_users([generate_world(size, seed).users[0].user_id]):
            return size
    return None


def simulator(lab: LabClient, world: str | None, seed: int) -> UserSimulator:
    """Simulated readers of the seeded ``world`` (loaded if it is not yet, and fully embedded);
    ``world=None`` takes the world the stack already holds."""
    from labcore.widgets.discovery import wait_until_embedded

    world = world or loaded_world(lab, seed) or "tiny"
    lab.seed(world, seed, progress=False)
    wait_until_embedded(lab)
    return UserSimulator(lab, generate_world(world, seed), seed=seed)


def build_dataset(lab: LabClient, impressions: pd.DataFrame, window: timedelta = LABEL_WINDOW) -> pd.DataFrame:
    """Labelled, point-in-time training rows for ``impressions`` from the stack's own Feast repo."""
    from labcore.features.repo import open_training_store

    feast_dir = data_dir(lab) / "feast"
    compact_history(feast_dir)
    return training_rows(open_training_store(feast_dir), lab.store, impressions, window=window)


def register(lab: LabClient, result: TrainingResult, version: str | None = None) -> tuple[str, Path]:
    models = registry(lab)
    version = version or models.next_version()
    return version, models.register(result.ranker(version), result.meta())


def ab_test(lab: LabClient, sim: UserSimulator, treatment: str, sessions: int, share: float = 0.5) -> pd.DataFrame:
    """``sessions`` simulated sessions with ``treatment`` served to ``share`` of the readers (by id
    hash) and ``formula-v1`` to the rest; returns the impression log, ``model_version`` = the arm."""
    with serving(lab, ranking_model="formula-v1", ranking_treatment=treatment, ranking_treatment_share=share):
        return sim.run(sessions)


def run_loop(lab: LabClient, config: LoopConfig, say: Callable[[str], None] = print) -> LoopReport:
    """Simulate → label → join → train → evaluate → register (→ A/B)."""
    sim = simulator(lab, config.world, config.seed)
    sessions = config.sessions or sessions_for(sim.world.size)
    say(f"simulating {sessions} sessions of {len(sim.tastes)} readers (exploration {config.exploration_share:.0%})")
    with serving(lab, ranking_model="formula-v1", ranking_treatment="", exploration_share=config.exploration_share):
        log = sim.run(sessions)
    say(f"  {len(log)} impressions, {int(log['liked'].sum())} likes, {int(log['explored'].sum())} explored")

    rows = build_dataset(lab, log, config.label_window)
    say(f"training rows: {len(rows)} (positive rate {rows['label'].mean():.1%}), point-in-time from Feast")
    result = train(rows, seed=config.seed, test_share=config.test_share)
    version, path = register(lab, result, config.version)
    margin = result.margins.loc[(result.best, "formula-v1")]
    say(
        f"AUC {result.best} − formula-v1 on the later half: {margin['auc_margin']:+.3f} "
        f"(95 % CI {margin['ci95_low']:+.3f} to {margin['ci95_high']:+.3f})"
    )
    say(f"registered {version} ({result.best}) in {path}")
    report = LoopReport(log, rows, result, version, path)
    if config.ab_sessions:
        report.ab_log = ab_test(lab, sim, version, config.ab_sessions, config.treatment_share)
        report.ab = engagement_by_arm(report.ab_log)
    return report
