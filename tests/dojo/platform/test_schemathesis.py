"""Schemathesis over the platform's OpenAPI schema, with real credentials: no 5xx, and every
answer as the schema says (a documented status, its content type, a body of its schema).

Every API operation is fed generated requests (valid by the schema, then invalid) with a
live miner session, API key and worker session, so the fuzzing reaches past
authentication into the handlers. Bounded: a few examples per operation and mode.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.dojo.platform._support import create_tasks, subscribed_worker

EXAMPLES = {GenerationMode.POSITIVE: 4, GenerationMode.NEGATIVE: 2}
# What the server answers, checked on every response. (Not the checks that judge whether a
# request should have been accepted: a generated task id the schema allows is still absent.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _order(label: str) -> tuple[int, str]:
    # Operations that end sessions or disable keys run last, so the others stay authenticated.
    method = label.split(" ", 1)[0]
    return (1 if method == "DELETE" or label.endswith("/logout") else 0, label)


def test_no_server_errors_and_no_schema_violations_under_fuzzing(platform, client, miner):
    create_tasks(client, miner, tasks=2)
    worker = subscribed_worker(client, miner)
    schema = schemathesis.openapi.from_url(f"{platform.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith(("/api/", "/invite", "/health"))]
    assert len(operations) >= 20
    failures: list[str] = []

    for operation in sorted(operations, key=lambda op: _order(op.label)):
        if operation.path.startswith("/api/v1/worker"):
            headers = worker.auth
        elif operation.path.startswith("/api/v1/miner"):
            headers = miner.session
        else:
            headers = miner.key
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(platform.url, operation, mode, headers, failures)
    assert failures == [], "\n\n".join(failures)


def _fuzz(url, operation, mode, headers, failures: list[str]) -> None:
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        try:
            case.call_and_validate(base_url=url, headers=headers, timeout=30, checks=CHECKS)
        except FailureGroup as exc:  # every check that failed, with the curl command
            failures.append(f"{operation.label} ({mode.value}): {exc}")

    try:
        check()
    except Unsatisfiable:
        # Nothing in the operation can be made invalid (no parameters, no body): nothing to send.
        assert mode is GenerationMode.NEGATIVE, operation.label
