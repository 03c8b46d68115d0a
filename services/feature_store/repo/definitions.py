"""The Feast repo of the Social Feed Lab: entities, sources, feature views and feature services.

Plain Feast definitions — ``feast apply`` would find them the usual way — but ``feature_store.yaml``
is not kept here: ``labcore.features.repo.render_feature_store_yaml`` writes it at run time into
``$FEEDLAB_DATA_DIR/feast/`` so the registry, the parquet files and the online store (SQLite or
Redis) follow the settings. That folder is also the *repo path* Feast resolves relative file paths
against, which is why the file sources below say ``data/…`` and never an absolute path. Inspect a
running lab with ``feast -c .feedlab/feast feature-views list`` (or ``feature-services describe …``).

Two ways in for every view:

* **batch** — a parquet snapshot of SQL (``data/<view>.parquet``, written by
  ``labcore.features.batch.materialize``) materialized into the online store;
* **push** — a ``PushSource`` per view, so a new post, a like or a follow reaches the online store
  within a second (``labcore.features.writer.FeatureWriter``) without waiting for the next batch.

``data/<view>.parquet`` is a parquet *dataset* (a folder): the batch snapshots and the pushed rows
are kept side by side with their timestamps (``labcore.features.history``), so
``get_historical_features`` can join training rows point-in-time.

Why two feature services, not one
---------------------------------
``user_author_affinity`` is keyed by ``(user_id, author_id)``. Walkthrough step 7 asks for
``ranking_features`` with only ``user_id`` and ``post_id``. Feast 0.67 does not reject a request
that lacks one of a view's join keys as long as *some* of them are present
(``feast.utils._get_unique_entities`` only raises when none are): it looks the view up with the
partial key ``(user_id)``, finds nothing and answers ``null`` / ``NOT_FOUND`` for every affinity
feature. Putting the affinity view into ``ranking_features`` would therefore make step 7 "work" while
silently returning no affinity at all — a lie the response does not announce.

So ``ranking_features`` is exactly what a ``(user_id, post_id)`` request can honestly answer —
``user_stats`` + ``post_stats`` — and ``affinity_features`` serves ``user_author_affinity``. The
app makes the second call with ``user_id`` and the ``author_id`` it already knows from the
candidate (or from ``post_stats.author_id``). Keying affinity by ``(user_id, post_id)`` instead
would copy one number into every post of the author and would have to be rewritten for all of them
on every like — wrong shape for the data.

Types: counters are ``Int64``; ``created_at`` is epoch seconds (``Float64``), so recency is computed
from the post's real creation time; ``embedding`` is the post's real 384-d vector as
``Array(Float32)`` — the SQLite and Redis online stores and the feature server's JSON all carry
float lists natively, so no JSON-in-a-string detour is needed.
"""

from __future__ import annotations

from datetime import timedelta

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    ValueType,
)
from feast.types import Array, Bool, Float32, Float64, Int64, String

# The event timestamp of a batch row is the moment the SQL snapshot was taken; pushed rows carry the
# moment they were computed. The Redis online store keeps whichever is newer.
TIMESTAMP_FIELD = "event_timestamp"

# No TTL: a counter stays true until it is replaced, however old it is.
NO_TTL = timedelta(0)

EMBEDDING_DIM = 384

# --- entities --------------------------------------------------------------------------------------
user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="A reader")
post = Entity(name="post", join_keys=["post_id"], value_type=ValueType.STRING, description="A post")
author = Entity(
    name="author",
    join_keys=["author_id"],
    value_type=ValueType.STRING,
    description="A user in the role of the one who wrote a post (same ids as user)",
)

# --- sources: a parquet snapshot per view (batch) and a push source in front of it (fresh) --------
user_stats_source = FileSource(
    name="user_stats_source", path="data/user_stats.parquet", timestamp_field=TIMESTAMP_FIELD
)
post_stats_source = FileSource(
    name="post_stats_source", path="data/post_stats.parquet", timestamp_field=TIMESTAMP_FIELD
)
user_author_affinity_source = FileSource(
    name="user_author_affinity_source",
    path="data/user_author_affinity.parquet",
    timestamp_field=TIMESTAMP_FIELD,
)

user_stats_push = PushSource(name="user_stats_push", batch_source=user_stats_source)
post_stats_push = PushSource(name="post_stats_push", batch_source=post_stats_source)
user_author_affinity_push = PushSource(
    name="user_author_affinity_push", batch_source=user_author_affinity_source
)

# --- feature views ---------------------------------------------------------------------------------
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=NO_TTL,
    schema=[
        Field(name="follower_count", dtype=Int64),
        Field(name="following_count", dtype=Int64),
        Field(name="post_count", dtype=Int64),
        Field(name="avg_engagement_rate", dtype=Float64, description="likes received per post"),
    ],
    source=user_stats_push,
    online=True,
    description="Per-user counters from SQL.",
)

post_stats = FeatureView(
    name="post_stats",
    entities=[post],
    ttl=NO_TTL,
    schema=[
        Field(name="author_id", dtype=String),
        Field(name="like_count", dtype=Int64),
        Field(name="has_media", dtype=Bool),
        Field(name="author_follower_count", dtype=Int64),
        Field(name="created_at", dtype=Float64, description="epoch seconds"),
        Field(
            name="embedding",
            dtype=Array(Float32),
            description=f"the post's {EMBEDDING_DIM}-d text embedding (all-MiniLM-L6-v2)",
        ),
    ],
    source=post_stats_push,
    online=True,
    description="Per-post counters, creation time and the real embedding.",
)

user_author_affinity = FeatureView(
    name="user_author_affinity",
    entities=[user, author],
    ttl=NO_TTL,
    schema=[
        Field(name="affinity_score", dtype=Float64, description="in [0, 1]"),
        Field(name="interaction_count", dtype=Int64, description="likes by user on author's posts"),
    ],
    source=user_author_affinity_push,
    online=True,
    description="How much a reader engages with an author (likes, plus following as a weak signal).",
)

# --- feature services ------------------------------------------------------------------------------
ranking_features = FeatureService(
    name="ranking_features",
    features=[user_stats, post_stats],
    description="Everything a (user_id, post_id) request can answer: walkthrough step 7.",
)

affinity_features = FeatureService(
    name="affinity_features",
    features=[user_author_affinity],
    description="Reader-author affinity; request with user_id and author_id.",
)
