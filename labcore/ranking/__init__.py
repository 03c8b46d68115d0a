"""Ranking: turn each candidate's features into a pClick score.

``formula``   ``formula-v1``, the hand-weighted model, and ``Candidate``
``models``    a model version by name: the formula or a learned one (``get_model``)
``ab_split``  which version scores a user's feed (control / treatment by user hash)
``scorer``    one request scored: the user's arm, its model, the span and the latency metric
``client``    the feed's HTTP client for the ranking service (``POST /rank``; compose)
``in_process`` the feed's ranker calling the scorer directly (embedded: ``settings.ranking_read``)
``learned/``  a learned ranker: dataset, training, evaluation, the registry

The ranking service itself is a deployable: ``services/ranking``.

Until issue #15 ``labcore.ranking`` was one module; its names are still importable from
here (``from labcore.ranking import formula_v1, get_model``). Both submodules need nothing beyond
the standard library, and ``models`` loads the learned registry only when asked for a learned version.
"""

from labcore.ranking.formula import (
    RECENCY_HALF_LIFE_HOURS,
    WEIGHTS,
    Candidate,
    formula_terms,
    formula_v1,
    jitter,
    recency,
)
from labcore.ranking.models import MODELS, Model, get_model

__all__ = [
    "MODELS",
    "RECENCY_HALF_LIFE_HOURS",
    "WEIGHTS",
    "Candidate",
    "Model",
    "formula_terms",
    "formula_v1",
    "get_model",
    "jitter",
    "recency",
]
