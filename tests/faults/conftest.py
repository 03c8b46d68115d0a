"""One private stack for the fault suite (a low celebrity threshold so both delivery paths run)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RunningStack
from tests.faults.stack import feedlab_up, stack_env

# Authors with more than 40 followers are pulled at read time; mailboxes are not trimmed during the
# burst, so "in every eligible mailbox exactly once" is an exact count.
FAULT_ENV = {"FEEDLAB_CELEBRITY_THRESHOLD": "40", "FEEDLAB_MAILBOX_CAP": "10000"}


@pytest.fixture(scope="package")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("faults")
    stack = feedlab_up(data_dir, stack_env(data_dir, **FAULT_ENV))
    yield stack
    down = stack.feedlab("down")
    assert down.returncode == 0, down.stderr
