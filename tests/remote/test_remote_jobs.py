"""Jobs on a remote endpoint (another PromptSpool queue's API): text, stream, cancel, outage."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.remote.conftest import Remote
from worker.jobs.job import JobState
from worker.jobs.spec import JobSpec
from worker.testing.harness import Queue, wait_until

pytestmark = pytest.mark.slow


def remote_job(queue: Queue, model: str = "remote/stories260K", **fields: object) -> str:
    values: dict[str, object] = {"prompt": "Once upon a time", "model": model, "raw": True,
                                 "max_tokens": 48, "temperature": 0.0, **fields}  # fmt: skip
    return queue.client.submit([JobSpec.model_validate(values)])[0]


def test_a_remote_job_runs_there_and_streams_here(local: Queue, remote: Remote) -> None:
    job_id = remote_job(local)
    local.wait_state(job_id, "succeeded", timeout=90)
    job = local.client.get(job_id)
    assert job.state is JobState.succeeded, job.error
    assert local.streamed_text(job_id) == job.output
    [there] = remote.queue.client.list(with_output=True)  # exactly one request reached it
    assert there.state is JobState.succeeded
    assert job.output == there.output and job.output.strip()
    assert job.completion_tokens == there.completion_tokens
    assert job.prompt_tokens == there.prompt_tokens > 0
    assert job.spec.model == "remote/stories260K"
    assert job.worker is not None and job.worker != there.worker


def test_cancel_closes_the_stream_and_keeps_the_partial_output(
    local: Queue, remote: Remote
) -> None:
    job_id = remote_job(local, model="remote/slow", max_tokens=100_000, temperature=0.8)
    local.wait_tokens(job_id, timeout=90)
    local.client.cancel(job_id)
    local.wait_state(job_id, "cancelled", timeout=10)
    job = local.client.get(job_id)
    assert job.output, "the text streamed before the cancel is kept"
    # The remote's job ends too: its client went away, which cancels it there.
    wait_until(
        lambda: all(j.state.finished for j in remote.queue.client.list()),
        timeout=30, what="the remote's job to end",
    )  # fmt: skip
    [there] = remote.queue.client.list()
    assert there.state is JobState.cancelled


def test_a_job_waits_out_the_remote_being_down(local: Queue, remote: Remote) -> None:
    remote.stop_api()
    job_id = remote_job(local)
    deferred = local.wait_state(job_id, "queued", timeout=30)  # its first try failed
    waiting = local.client.get(job_id, with_output=False)
    if waiting.state is JobState.queued and waiting.attempt == 1:  # the submit's own event
        wait_until(lambda: local.client.get(job_id).attempt >= 2, timeout=30,
                   what="the first try to fail")  # fmt: skip
    failed = local.client.get(job_id).attempts[0]
    assert failed.state is JobState.failed
    assert failed.error is not None and "'remote'" in failed.error
    assert "cannot be reached" in failed.error
    assert deferred is not None
    remote.start_api()
    local.wait_state(job_id, "succeeded", timeout=120)
    job = local.client.get(job_id)
    assert job.output.strip()
    assert job.tries >= 1 and len(job.attempts) == job.tries + 1
    [there] = remote.queue.client.list()
    assert there.state is JobState.succeeded


def test_bad_endpoints_fail_with_the_endpoint_and_the_reason(
    local: Queue, remote: Remote, tmp_path: Path
) -> None:
    closed = remote.endpoint("gone", base_url="http://127.0.0.1:9/v1")
    wrong_key = remote.endpoint("locked", api_key="not-the-token")
    not_openai = remote.endpoint("web", base_url=remote.api.url + "/docs")
    local.configure(endpoints=[remote.endpoint(), closed, wrong_key, not_openai],
                    remote_max_tries=1)  # fmt: skip
    jobs = {
        "unreachable": remote_job(local, "gone/stories260K"),
        "key": remote_job(local, "locked/stories260K"),
        "model": remote_job(local, "remote/no-such-model"),
        "api": remote_job(local, "web/stories260K"),
    }
    for job_id in jobs.values():
        local.wait_state(job_id, "failed", timeout=60)
    errors = {what: local.client.get(job_id).error or "" for what, job_id in jobs.items()}
    assert "endpoint 'gone'" in errors["unreachable"]
    assert "cannot be reached" in errors["unreachable"]
    assert "endpoint 'locked'" in errors["key"] and "401" in errors["key"]
    assert "not-the-token" not in errors["key"]
    assert "endpoint 'remote'" in errors["model"] and "no-such-model" in errors["model"]
    assert "endpoint 'web'" in errors["api"] and "OpenAI-compatible" in errors["api"]
    assert remote.api.token not in "".join(errors.values())


def test_an_unknown_endpoint_is_refused_at_submit(local: Queue) -> None:
    with pytest.raises(ValueError, match="nor is 'elsewhere' a remote endpoint"):
        remote_job(local, "elsewhere/model")
