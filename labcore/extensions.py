"""Extension points: the pieces of labcore a learner can replace with their own code.

Each point is one function with a narrow signature. labcore's own implementation is the default, so
nothing changes while the setting is unset; a setting names a replacement by import path,
``package.module:function`` — the exercises (``exercises/NN_topic/starter.py``) are written for this::

    FEEDLAB_RERANKER=exercises.07_diversity.starter:rerank

A module path segment may start with a digit (``07_diversity``): ``importlib`` looks segments up as
folder and file names, even though an ``import`` statement could not spell them, so the exercise
folders keep their course numbering. When the top-level package is not importable (``exercises`` is
not installed), it is looked up in the current directory and then in the project folder that holds
``labcore`` (the editable install), and that folder is appended to ``sys.path`` — as uvicorn's
``--app-dir .`` does — so a runtime started from anywhere in the repository finds the exercises.

A path that does not resolve is an ``InvalidInput`` naming the setting, the path and what is wrong,
raised when the component that uses the point is built (the stack, the feed pipeline, a worker), so
a typo fails ``feedlab up`` at start-up instead of the first request.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from labcore.errors import InvalidInput
from labcore.settings import Settings


@dataclass(frozen=True)
class ExtensionPoint:
    """One replaceable function: its setting (``FEEDLAB_<NAME>``), labcore's own, the contract."""

    name: str  # the settings field
    default: str  # labcore's implementation, as an import path
    signature: str  # what a replacement takes and returns
    exercise: str  # the exercise that re-implements it

    @property
    def env(self) -> str:
        return f"FEEDLAB_{self.name.upper()}"


EXTENSION_POINTS: dict[str, ExtensionPoint] = {
    point.name: point
    for point in (
        ExtensionPoint(
            "fanout",
            "labcore.workers.fanout:deliver",
            "deliver(event: PostCreated, store, mailboxes) -> int  (mailboxes written)",
            "01_fanout",
        ),
        ExtensionPoint(
            "mailbox_reader",
            "labcore.feed:read_mailbox",
            "read_mailbox(user_id, store, mailboxes, *, limit, cap) -> [(post_id, score), ...] newest first",
            "02_mailbox_regeneration",
        ),
        ExtensionPoint(
            "interest_update",
            "labcore.interests:ema_step",
            "ema_step(current: ndarray | None, liked: ndarray, rate: float) -> unit ndarray",
            "03_interest_vectors",
        ),
        ExtensionPoint(
            "seen_query",
            "labcore.adapters.impressions.query:seen_query",
            "seen_query(user_id, since_epoch, post_ids=None) -> (sql with ? placeholders, params)",
            "04_impression_filter",
        ),
        ExtensionPoint(
            "affinity",
            "labcore.features.base:affinity_score",
            "affinity_score(likes_on_author: int, follows_author: bool) -> float in [0, 1)",
            "05_affinity",
        ),
        ExtensionPoint(
            "topic_similarity",
            "labcore.feed:cosine",
            "topic_similarity(interest: ndarray | None, embedding: ndarray | None) -> float | None",
            "06_topic_similarity",
        ),
        ExtensionPoint(
            "reranker",
            "labcore.feed:rerank",
            "rerank(journeys, limit, *, max_per_author, out_of_network_share) -> kept journeys, ranked",
            "07_diversity",
        ),
        ExtensionPoint(
            "feature_fallback",
            "labcore.feed:fetch_features",
            "fetch_features(user_id, keys, primary, cache) -> (source, rows)",
            "08_feature_fallback",
        ),
    )
}


def load(settings: Settings, name: str) -> Callable[..., Any]:
    """The function configured for extension point ``name``: the setting's, else labcore's own."""
    point = EXTENSION_POINTS[name]
    spec = getattr(settings, name)
    return resolve(spec, setting=point.env) if spec else resolve(point.default)


def check(settings: Settings) -> None:
    """Resolve every extension point the settings name: ``InvalidInput`` now rather than later."""
    for name in EXTENSION_POINTS:
        if getattr(settings, name):
            load(settings, name)


@lru_cache(maxsize=None)
def resolve(spec: str, *, setting: str | None = None) -> Callable[..., Any]:
    """Import ``package.module:function`` and return the function (cached per path).

    Raises ``InvalidInput`` saying what is wrong: the form, a missing module, an import that failed
    inside the module, a missing or non-callable attribute.
    """
    where = f"{setting}={spec!r}" if setting else repr(spec)
    module_name, sep, attr = spec.strip().partition(":")
    if not sep or not module_name or not attr or " " in spec.strip():
        raise InvalidInput(
            f"{where}: expected an import path 'package.module:function',"
            " e.g. 'exercises.07_diversity.starter:rerank'"
        )
    module = _import(module_name, where)
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InvalidInput(f"{where}: module {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise InvalidInput(f"{where}: {attr!r} in {module_name!r} is not a function")
    return target


def _import(module_name: str, where: str) -> Any:
    try:
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            top = module_name.split(".")[0]
            if exc.name != top or not _add_project_root(top):
                raise
            return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            hint = " (run from the repository root?)" if "." not in exc.name else ""
            raise InvalidInput(f"{where}: no module named {exc.name!r}{hint}") from exc
        raise InvalidInput(f"{where}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # a learner's file that does not import: say why, in one line
        raise InvalidInput(f"{where}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc


def _add_project_root(top: str) -> bool:
    """Append the first of (cwd, the folder holding ``labcore``) that contains ``top`` to sys.path."""
    roots = [Path.cwd(), Path(__file__).resolve().parents[1]]
    for root in roots:
        if (root / top).is_dir() or (root / f"{top}.py").is_file():
            if str(root) not in sys.path:
                sys.path.append(str(root))  # appended: never shadows an installed package
            importlib.invalidate_caches()
            return True
    return False
