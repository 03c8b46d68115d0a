"""Schemathesis over the API's own OpenAPI document: every operation, a fixed seed and budget.

Checks: no 5xx (``not_a_server_error``) and every response matches the schema the API publishes for
its status (``response_schema_conformance``). Cases come from the request schemas — valid ones
(positive) and ones that break them (negative) — so every declared field is fuzzed; a few real users
and posts exist so some ids hit.

Schemathesis' pytest integration (``@schema.parametrize`` with ``from_fixture``) does not run under
pytest 9 (it reads ``node._nodeid``), so each operation's strategy runs under Hypothesis' ``@given``
directly — the integration's documented alternative.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.security.conftest import Api

# Per operation and mode: bounded (the whole API takes well under a minute on 2 cores).
MAX_EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 15}


@pytest.fixture(scope="module")
def api_schema(api: Api) -> schemathesis.BaseSchema:
    author = api.writes.create_user("fuzz_author", "Fuzz Author")
    reader = api.writes.create_user("fuzz_reader", "Fuzz Reader")
    api.writes.follow(reader.id, author.id)
    for i in range(3):
        api.writes.create_post(author.id, f"fuzz seed post {i}")
    return schemathesis.openapi.from_asgi("/openapi.json", api.app)


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MAX_EXAMPLES), ids=lambda m: m.value)
def test_every_operation_answers_without_5xx_and_within_its_schema(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14, [op.label for op in operations]
    failures: dict[str, str] = {}
    fuzzed: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES[mode],
            derandomize=True,  # a fixed seed: the same cases every run
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        try:
            check()
            fuzzed.append(operation.label)
        except Unsatisfiable:
            # negative mode only: every value of an unconstrained string path parameter (or no
            # parameter at all, GET /health) is valid, so there is no invalid request to make
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every operation's failure
            failures[operation.label] = str(exc)[:2000]
    assert failures == {}, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert len(fuzzed) >= (len(operations) if mode is GenerationMode.POSITIVE else 8), fuzzed
