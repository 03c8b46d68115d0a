"""Training rows from the logs: impressions → labels → features as they were at the impression.

1. **Labels.** An impression ``(user, post, ts)`` is *engaged* when the user liked the post within
   ``window`` after ``ts``. A like long after says little about this impression. A like *before*
   it (on an earlier visit) is not engagement with it either — and since a post is liked once, that
   impression had no outcome to observe: ``training_rows`` leaves it out rather than call it a
   0. Kept as 0, a post the reader loves enough to have liked already would teach the model that
   such posts go unliked.
2. **Features, point in time.** Feast's ``get_historical_features`` joins each impression with the
   newest feature row computed *at or before* ``ts`` — from the same feature services the online
   path reads (``ranking_features`` for (user, post), ``affinity_features`` for (user, author)).
   Feast can answer this because the offline sources keep every value with its time
   (``labcore.features.history``). A like made *after* the impression — including the very like
   that makes the label 1 — is therefore invisible in the row: no label leakage.
3. **Request-time features.** ``topic_similarity`` is computed by the feed from the user's interest
   vector at request time and has no history in the feature store; it is taken from what was
   logged with the impression (the simulator logs what the feed served), else left missing.

Missing values stay missing (``NaN``), as on the online path where no row means no evidence.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from labcore.adapters.sql.store import SqlStore
from labcore.features.base import AFFINITY_SERVICE, RANKING_SERVICE
from labcore.features.history import FeatureHistory
from labcore.features.writer import VIEWS

if TYPE_CHECKING:
    import feast

LABEL_WINDOW = timedelta(hours=1)
# post_stats' author_id is a key here (from SQL); the embedding serves topic_similarity, logged instead.
_NOT_MODEL_FEATURES = {"author_id", "embedding"}
# The online feature names the model reads (labcore.features.FeatureRow.as_features), in Feast's names.
FEATURE_COLUMNS = [
    "follower_count", "following_count", "post_count", "avg_engagement_rate",
    "like_count", "has_media", "author_follower_count", "created_at",
    "affinity_score", "interaction_count",
]  # fmt: skip


def likes_frame(sql: SqlStore, user_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Every like from SQL (or ``user_ids``' likes): ``user_id, post_id, liked_at`` (UTC)."""
    frame = pd.DataFrame(sql.likes_of(user_ids), columns=["user_id", "post_id", "liked_at"])
    frame["liked_at"] = pd.to_datetime(frame["liked_at"], utc=True)
    return frame


def label_impressions(
    impressions: pd.DataFrame, liked: pd.DataFrame, window: timedelta = LABEL_WINDOW
) -> pd.DataFrame:
    """``impressions`` (``user_id, post_id, ts`` + any logged columns) with ``label`` 1/0 and
    ``event_timestamp`` (= ``ts``, UTC): 1 when the user liked the post in ``(ts, ts + window]``;
    ``liked_before`` marks impressions of a post the user had liked at or before ``ts``."""
    frame = impressions.reset_index(drop=True)
    frame["event_timestamp"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[ns, UTC]")
    # likes are unique per (user, post), so the merge keeps one row per impression, in order
    pairs = frame[["user_id", "post_id"]].merge(liked, on=["user_id", "post_id"], how="left")
    delay = pairs["liked_at"].astype("datetime64[ns, UTC]") - frame["event_timestamp"]
    frame["label"] = ((delay > pd.Timedelta(0)) & (delay <= pd.Timedelta(window))).astype(int)
    frame["liked_before"] = (delay <= pd.Timedelta(0)).to_numpy()
    return frame


def point_in_time_features(store: feast.FeatureStore, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (``user_id, post_id, author_id, event_timestamp``, ...) with the feature values as
    they were at each row's ``event_timestamp``, from ``ranking_features`` and ``affinity_features``.

    Each feature view of the two services is joined with an entity frame of *its own* join keys.
    Asking for a whole service at once with ``(user_id, post_id)`` rows goes wrong in Feast's file
    offline store (0.67): it de-duplicates after each view on the join keys of the views joined *so
    far*, so after ``user_stats`` all impressions of one session (same user, same time, different
    posts) collapse into one row; and a row with no feature value yet in one view vanishes from the
    answer for every view. Per view, neither can happen, and the features asked for are still
    exactly the services' (their view projections).
    """
    joined = rows.copy()
    for service in (RANKING_SERVICE, AFFINITY_SERVICE):
        for projection in store.get_feature_service(service).feature_view_projections:
            view = store.get_feature_view(projection.name)
            keys = [column.name for column in view.entity_columns]
            wanted = [f.name for f in projection.features if f.name not in _NOT_MODEL_FEATURES]
            entity = joined[[*keys, "event_timestamp"]].drop_duplicates()
            with warnings.catch_warnings():  # Dask's own pandas deprecation notices, not ours to fix
                warnings.simplefilter("ignore", FutureWarning)
                answer = store.get_historical_features(
                    entity_df=entity, features=[f"{projection.name}:{name}" for name in wanted]
                ).to_df()
            answer["event_timestamp"] = pd.to_datetime(answer["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
            joined = joined.merge(answer[[*keys, "event_timestamp", *wanted]], on=[*keys, "event_timestamp"], how="left")
    # As online: the store answered, so "no affinity row" means "no evidence" (0), not unknown.
    joined["affinity_score"] = joined["affinity_score"].astype(float).fillna(0.0)
    joined["interaction_count"] = joined["interaction_count"].astype(float).fillna(0.0)
    for column in FEATURE_COLUMNS:
        joined[column] = joined[column].astype(float)
    return joined


def compact_history(feast_dir: Path) -> None:
    """Fold each view's history parts (a simulation leaves one per pushed write), so Feast's Dask
    join reads a few files instead of hundreds. Safe while the stack writes (see feature_history)."""
    history = FeatureHistory(Path(feast_dir) / "data")
    for view, (_, schema) in VIEWS.items():
        history.fold(view, schema)


def training_rows(
    store: feast.FeatureStore,
    sql: SqlStore,
    impressions: pd.DataFrame,
    *,
    window: timedelta = LABEL_WINDOW,
) -> pd.DataFrame:
    """Labelled impressions with point-in-time features: one row per impression that could still
    be engaged with (impressions of a post liked before them are left out, see the module doc).

    ``impressions`` needs ``user_id, post_id, ts``; ``author_id`` and ``topic_similarity`` are used
    when logged (the author is otherwise read from SQL).
    """
    frame = label_impressions(impressions, likes_frame(sql, impressions["user_id"].unique()), window)
    frame = frame[~frame["liked_before"]].drop(columns="liked_before")
    if "author_id" not in frame.columns or frame["author_id"].isna().any():
        authors = sql.authors_of(frame["post_id"].tolist())
        frame["author_id"] = frame["post_id"].map(authors)
    if "topic_similarity" not in frame.columns:
        frame["topic_similarity"] = float("nan")
    frame["topic_similarity"] = pd.to_numeric(frame["topic_similarity"], errors="coerce")
    frame = frame.dropna(subset=["author_id"])  # a post deleted since: nothing to join
    return point_in_time_features(store, frame).sort_values("event_timestamp", kind="stable").reset_index(drop=True)
