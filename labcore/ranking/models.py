"""Which model scores a request: the built-in formula or a learned version from the registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from labcore.ranking.formula import Candidate, formula_v1

Model = Callable[[str, Sequence[Candidate], float, int], list[float]]
MODELS: dict[str, Model] = {"formula-v1": formula_v1}


def get_model(version: str, models_dir: Path | None = None) -> Model:
    """A built-in model (``formula-v1``) or, with ``models_dir``, a learned one registered there
    (``labcore.ranking.learned.registry``). An unknown version is a ``ValueError`` naming the known ones."""
    if version in MODELS:
        return MODELS[version]
    known = list(MODELS)
    if models_dir is not None:
        from labcore.ranking.learned.registry import (
            ModelRegistry,  # scikit-learn only for learned models
        )

        registry = ModelRegistry(models_dir)
        if version in registry:
            return registry.load(version)
        known += registry.versions()
    raise ValueError(f"unknown ranking model {version!r}; known: {', '.join(known)}")
