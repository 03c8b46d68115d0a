from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEEDLAB_* from the machine running the tests: Settings must see only what a check gives."""
    for name in list(os.environ):
        if name.startswith("FEEDLAB_"):
            monkeypatch.delenv(name)
