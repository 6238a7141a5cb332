"""Every endpoint in the API's schema, fuzzed by schemathesis: no 5xx, answers as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import LiveApi, running_api
from worker.jobs.job import JobState
from worker.queue import keys
from worker.testing.harness import wait_until

EXAMPLES = 20  # per operation (and per task route on a real task): about 30 s on 2 cores
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live_api(stories_model: Path, models_dir: Path, tiny_model: Path) -> Iterator[LiveApi]:
    """As tests/api/conftest.py's, with a small context: a fuzzed job (max_tokens up to a
    million) ends within a fraction of a second, so the worker never falls far behind."""
    with running_api(stories_model, models_dir, PROMPTSPOOL_N_CTX="128") as api:
        yield api


def fuzz(
    operation: APIOperation[Any, Any, Any, Any], headers: dict[str, str], **fixed: Any
) -> None:
    """EXAMPLES requests to one operation, valid and invalid ones (with the `fixed` parts of
    as_strategy, such as path_parameters); each response checked."""
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, **fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, **fixed),
    )

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
    )  # fmt: skip
    @given(case=cases)
    def run(case: Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_endpoint_answers_as_documented_and_never_with_a_server_error(
    live_api: LiveApi,
) -> None:
    config = schemathesis.Config()  # explicit: no schemathesis.toml is looked for
    config.projects.default.update(request_timeout=30)
    schema = schemathesis.openapi.from_url(live_api.url + "/openapi.json", config=config)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()  # the schema describes it badly
        operations.append(result.ok())
    assert len(operations) >= 9
    with live_api.http() as http:
        task_id = http.post("/generate", json={"prompt": "Once", "max_tokens": 4}).json()["task_id"]
    live_api.queue.wait_state(task_id, "succeeded")
    runs: list[tuple[str, APIOperation[Any, Any, Any, Any], dict[str, Any]]] = []
    for operation in operations:
        runs.append((operation.label, operation, {}))
        if "{task_id}" in operation.path:  # and on a real task: status, stream, retry, ...
            real = {"path_parameters": {"task_id": task_id}}
            runs.append((f"{operation.label} of a task", operation, real))
    failures = []
    for label, operation, fixed in runs:  # every operation, whichever fails
        try:
            fuzz(operation, live_api.api.headers, **fixed)
        except Exception as exc:  # each failure is reported below
            failures.append(f"{label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_no_job_is_left_half_queued_by_the_fuzzing(live_api: LiveApi) -> None:
    """Every job the fuzzing queued is whole in the ledger: its record, its state, the queue
    and the running set agree. Read with the queue paused and nothing running (a still
    picture); the jobs still queued are cancelled before it resumes."""
    client, redis = live_api.queue.client, live_api.queue.redis
    client.pause()
    try:
        wait_until(lambda: not redis.scard(keys.RUNNING), timeout=60, what="no job running")
        ids = client.ledger.job_ids()
        jobs = client.get_many(ids)
        queued = set(client.queue_positions())
        running = set(client.ledger.running_ids())
        for job in jobs:
            if job.state is JobState.queued:
                client.cancel(job.id)
    finally:
        client.resume()
    assert ids, "the fuzzing queued no job at all"
    assert [job.id for job in jobs] == ids, "a job in the index has no record"
    assert queued <= set(ids) and not running
    for job in jobs:
        assert (job.id in queued) == (job.state is JobState.queued), job
        assert job.state not in (JobState.loading, JobState.running), job
        assert (job.finished_at is not None) == job.state.finished, job
        assert job.attempt >= 1 and job.created_at > 0 and job.origin is not None, job
