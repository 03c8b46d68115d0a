"""compose/Dockerfile: one shared base stage (slim pinned Python, CPU torch first, locked versions, the
model from its wheel with the hub offline, a non-root user) and one target per service."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from tests.compose.stack_files import COMPOSE_DIR, REPO, services

DOCKERFILE = COMPOSE_DIR / "Dockerfile"
SERVICE_PACKAGES = sorted(main.parent.name for main in (REPO / "services").glob("*/__main__.py"))


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages by name, each with the instructions after its FROM."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            image, _, name = args.partition(" AS ")
            current = found.setdefault(name.strip(), [("FROM", image.strip())])
        else:
            current.append((keyword, args))
    return found


STAGES = stages()


def test_every_service_is_a_target_that_compose_builds() -> None:
    """One Dockerfile, one target per service package with a ``__main__``: compose builds each."""
    assert set(SERVICE_PACKAGES) == {"api", "ranking", "fanout_worker", "embedding_worker", "feature_store"}
    assert set(STAGES) == {"base", *SERVICE_PACKAGES}
    built = {}
    for svc in services().values():
        if "build" in svc:
            assert (COMPOSE_DIR / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
            built[svc["build"]["target"]] = svc["image"]
    assert set(built) == set(SERVICE_PACKAGES)


@pytest.mark.parametrize("name", SERVICE_PACKAGES)
def test_every_target_builds_on_the_shared_base_and_adds_only_its_command(name: str) -> None:
    """The heavy layers (torch, dependencies, model) live in ``base`` and are built once for all."""
    steps = STAGES[name]
    assert steps[0] == ("FROM", "base")
    assert {keyword for keyword, _ in steps[1:]} <= {"EXPOSE", "CMD"}


def test_the_base_is_a_slim_offline_non_root_image() -> None:
    steps = STAGES["base"]
    base = steps[0][1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base

    runs = [args for keyword, args in steps if keyword == "RUN"]
    torch = next(i for i, run in enumerate(runs) if re.search(r"pip install .*torch==", run))
    project = next(i for i, run in enumerate(runs) if "-c constraints.txt" in run)
    assert torch < project, "CPU torch must be installed before the project"
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch]
    assert re.search(r"torch==(\S+)", runs[torch])[1] == pinned_torch()

    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "TRANSFORMERS_OFFLINE=1" in env
    assert any("Embedder().load()" in run for run in runs[project:]), "the model must load at build time"

    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    last_user = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in steps[last_user:]), "nothing may run as root after USER"


@pytest.mark.parametrize("name", SERVICE_PACKAGES)
def test_each_target_starts_its_own_service(name: str) -> None:
    (cmd,) = [args for keyword, args in STAGES[name] if keyword == "CMD"]
    assert json.loads(cmd) == ["python", "-m", f"services.{name}"]


def test_dockerfile_copies_what_exists_and_is_not_ignored() -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]  # fmt: skip
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _target = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is in .dockerignore"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".feedlab", ".env", "**/.env"} <= ignored


def test_every_pip_install_takes_wheels_only() -> None:
    """The slim base has no C compiler (nor make): a dependency without a wheel for the build's
    architecture (an arm64 laptop builds arm64) must fail the build at once, not try to compile."""
    installs = [args for keyword, args in STAGES["base"] if keyword == "RUN" and "pip install" in args]
    assert installs
    for run in installs:
        for command in re.findall(r"pip install[^&;]*", run):
            assert "--only-binary=:all:" in command, command


def named_volume_mounts_of_our_images() -> set[str]:
    """Container paths where compose mounts a named volume into one of our images."""
    paths = set()
    for svc in services().values():
        if svc["image"].startswith("feedlab/"):
            for volume in svc.get("volumes", []):
                source, target = volume.split(":")[:2]
                if not source.startswith((".", "/")):
                    paths.add(target)
    return paths


def test_volume_folders_exist_in_the_image_owned_by_the_service_user() -> None:
    """Docker copies the image folder's ownership into a fresh named volume: a folder the image lacks
    becomes a root-owned volume the non-root services cannot write (the model registry, /data/models)."""
    steps = STAGES["base"]
    last_user = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    user = steps[last_user][1]
    before = " ".join(args for keyword, args in steps[:last_user] if keyword == "RUN")
    made = {path for group in re.findall(r"mkdir -p ((?:/\S+\s*)+)", before) for path in group.split()}
    owned = re.findall(rf"chown -R {re.escape(user)}(?::\S+)? (/\S+)", before)
    assert "/data/models" in named_volume_mounts_of_our_images()
    for path in named_volume_mounts_of_our_images():
        assert path in made, f"{path} is not created in the image before USER"
        assert any(path == root or path.startswith(root.rstrip("/") + "/") for root in owned), f"{path} not chowned"


def test_exercises_ship_in_the_image_and_import_from_any_process() -> None:
    """FEEDLAB_RERANKER=exercises.07_diversity.starter:rerank must import in compose as embedded."""
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]  # fmt: skip
    assert not any(fnmatch.fnmatch("exercises", pattern) for pattern in ignored)
    steps = STAGES["base"]
    copies = [args.split() for keyword, args in steps if keyword == "COPY"]
    (workdir,) = [args for keyword, args in steps if keyword == "WORKDIR"]
    assert ["exercises", "./exercises"] in copies
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    # on the path of every process: the services, `python compose/init/...`, `feedlab`, JupyterLab
    assert re.search(rf"\bPYTHONPATH={re.escape(workdir)}\b", env)
    assert (REPO / "exercises" / "07_diversity" / "starter.py").is_file()


def pinned_torch() -> str:
    (line,) = [line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch==")]
    return line.removeprefix("torch==")
