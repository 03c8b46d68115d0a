"""The model registry: learned ranking models as immutable, named versions under ``<data_dir>/models``.

::

    <data_dir>/models/
      learned-v1/
        model.joblib     the fitted LearnedRanker (scikit-learn estimator + its input names)
        meta.json        version, estimator, inputs, feature services, training window, metrics, ...

A version is written once, into a hidden staging folder renamed into place, so the ranking service
never loads half a model and a version never changes under a running service (re-training makes a
new version). ``FEEDLAB_RANKING_MODEL=learned-v1`` makes the ranking service load one at start
(``labcore.ranking.get_model``); an unknown version stops it.

joblib files are pickles: loading one runs code. The registry only loads from the lab's own data
directory, which only this lab writes — never point it at a folder from elsewhere.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from labcore.ranking.learned.ranker import INPUTS, LearnedRanker

VERSION_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
RESERVED = {"formula-v1", "recency"}  # built in / the feed's fallback label
MODEL_FILE = "model.joblib"
META_FILE = "meta.json"


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self) -> list[str]:
        """Registered versions, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if not p.name.startswith(".") and (p / META_FILE).exists()]
        return [p.name for p in sorted(found, key=lambda p: (p / META_FILE).stat().st_mtime)]

    def __contains__(self, version: object) -> bool:
        return isinstance(version, str) and version in self.versions()

    def next_version(self, prefix: str = "learned") -> str:
        """``<prefix>-v<n>`` with n one past the highest registered."""
        numbers = [
            int(m.group(1)) for v in self.versions() if (m := re.fullmatch(rf"{re.escape(prefix)}-v(\d+)", v))
        ]
        return f"{prefix}-v{max(numbers, default=0) + 1}"

    def register(self, model: LearnedRanker, meta: dict[str, Any]) -> Path:
        """Write ``model`` as version ``model.version``; refuses a name taken or reserved."""
        import joblib

        version = model.version
        if not VERSION_PATTERN.match(version) or version in RESERVED:
            raise ValueError(f"not a usable model version: {version!r}")
        final = self.root / version
        if final.exists():
            raise ValueError(f"model version {version!r} exists; versions are immutable, pick a new one")
        staging = self.root / f".{version}.{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            joblib.dump(model, staging / MODEL_FILE)
            (staging / META_FILE).write_text(json.dumps({"version": version, **meta}, indent=2, default=str))
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final

    def meta(self, version: str) -> dict[str, Any]:
        return json.loads((self.root / version / META_FILE).read_text())

    def load(self, version: str) -> LearnedRanker:
        """The registered model; ``ValueError`` when it is missing or was trained on other inputs."""
        import joblib

        path = self.root / version / MODEL_FILE
        if not path.exists():
            raise ValueError(f"no model {version!r} in {self.root}")
        model = joblib.load(path)
        if not isinstance(model, LearnedRanker):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a LearnedRanker")
        if model.inputs != INPUTS:
            raise ValueError(
                f"model {version!r} was trained on inputs {model.inputs}; this code computes {INPUTS} — retrain it"
            )
        return model
