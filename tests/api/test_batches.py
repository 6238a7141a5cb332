"""The OpenAI files and batches endpoints with the official `openai` client, and batch files
given to `promptspool submit`: real queue, worker, llama.cpp and HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import openai
import pytest
from openai.types import Batch

from tests.api.conftest import LiveApi
from worker.jobs.job import Job, JobState
from worker.queue import keys
from worker.testing.harness import wait_for_event, wait_until

CHAT: Final = "/v1/chat/completions"
COMPLETIONS: Final = "/v1/completions"
ENDED = ("completed", "failed", "cancelled", "expired")


@pytest.fixture
def client(live_api: LiveApi) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_api.url + "/v1", api_key=live_api.token, max_retries=0)


def line(custom_id: str, *, url: str = CHAT, model: str = "stories260K", **body: Any) -> str:
    if url == CHAT:
        request: dict[str, Any] = {"messages": [{"role": "user", "content": "Once upon a time"}]}
    else:
        request = {"prompt": "Once upon a time"}
    request |= {"model": model, "max_tokens": 8, **body}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": request})


def upload(client: openai.OpenAI, lines: list[str], name: str = "requests.jsonl") -> str:
    return client.files.create(file=(name, "\n".join(lines).encode()), purpose="batch").id


def wait_ended(client: openai.OpenAI, batch_id: str, timeout: float = 90) -> Batch:
    found: list[Batch] = []

    def ended() -> bool:
        found[:] = [client.batches.retrieve(batch_id)]
        return found[0].status in ENDED

    wait_until(ended, timeout, f"batch {batch_id} ended")
    return found[0]


def jobs_of(live_api: LiveApi, batch_id: str) -> list[Job]:
    jobs = live_api.queue.client.list(with_output=True)
    return [j for j in jobs if j.origin and j.origin.batch == batch_id]


def read_lines(client: openai.OpenAI, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(text) for text in client.files.content(file_id).text.splitlines()]


def test_batch_round_trip_answers_every_line_once_in_order(
    client: openai.OpenAI, live_api: LiveApi
) -> None:
    ids = [f"request-{n}" for n in range(6)]
    file_id = upload(client, [line(cid, seed=n) for n, cid in enumerate(ids)])
    assert client.files.retrieve(file_id).purpose == "batch"
    after = live_api.queue.client.last_event_id()
    batch = client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h",
                                  metadata={"project": "stories"})  # fmt: skip
    assert batch.status == "in_progress" and batch.request_counts is not None
    assert batch.request_counts.total == 6
    assert batch.metadata == {"project": "stories"} and batch.model == "stories260K"
    done = wait_ended(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (6, 0)
    assert done.created_at <= (done.in_progress_at or 0) <= (done.finalizing_at or 0)
    assert (done.finalizing_at or 0) <= (done.completed_at or 0)
    assert done.expires_at == done.created_at + 86_400
    assert done.error_file_id is None and done.output_file_id is not None
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"

    answers = read_lines(client, done.output_file_id)
    assert [a["custom_id"] for a in answers] == ids
    jobs = {job.id: job for job in jobs_of(live_api, batch.id)}
    assert len(jobs) == 6
    for answer in answers:
        assert answer["error"] is None
        response = answer["response"]
        job = jobs[response["request_id"]]
        assert response["status_code"] == 200
        assert response["body"]["object"] == "chat.completion"
        assert response["body"]["choices"][0]["message"]["content"] == job.output
        assert job.state is JobState.succeeded and job.spec.max_tokens == 8
        assert len(job.attempts) == 1
    assert done.usage is not None
    assert done.usage.output_tokens == sum(job.completion_tokens for job in jobs.values())

    event = wait_for_event(live_api.queue.redis,
                           lambda e: e.type == "batch" and e.data.get("batch") == batch.id,
                           after=after)  # fmt: skip
    assert event.data["state"] == "completed"
    assert event.data["counts"] == {"total": 6, "completed": 6, "failed": 0}


def test_text_completion_batch_answers_in_the_completions_shape(
    client: openai.OpenAI,
) -> None:
    file_id = upload(client, [line(f"c{n}", url=COMPLETIONS) for n in range(2)])
    batch = client.batches.create(input_file_id=file_id, endpoint=COMPLETIONS,
                                  completion_window="24h")  # fmt: skip
    done = wait_ended(client, batch.id)
    assert done.status == "completed" and done.output_file_id is not None
    answers = read_lines(client, done.output_file_id)
    assert [a["response"]["body"]["object"] for a in answers] == ["text_completion"] * 2
    assert all(a["response"]["body"]["choices"][0]["text"] for a in answers)


def test_bad_lines_fail_the_batch_naming_each_and_queue_nothing(
    client: openai.OpenAI, live_api: LiveApi
) -> None:
    lines = [
        line("ok-1"),
        "{not json",
        json.dumps({"custom_id": "no-method", "url": CHAT, "body": {}}),
        line("ok-1"),
        line("wrong-url", url=COMPLETIONS),
        line("no-model", model="nothing-by-that-name"),
        line("bad-tokens", max_tokens=-5),
        json.dumps({"custom_id": "get", "method": "GET", "url": CHAT, "body": {}}),
        line("ok-2"),
    ]
    jobs_before = live_api.queue.redis.zcard(keys.JOBS)
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=CHAT,
                                  completion_window="24h")  # fmt: skip
    assert batch.status == "failed"
    assert batch.failed_at is not None and batch.in_progress_at is None
    assert batch.errors is not None and batch.errors.data is not None
    found = {(e.line, e.param, e.code) for e in batch.errors.data}
    assert found == {
        (2, None, "invalid_json"),
        (3, "method", "missing_required_parameter"),
        (4, "custom_id", "duplicate_custom_id"),
        (5, "url", "mismatched_endpoint"),
        (6, "body.model", "model_not_found"),
        (7, "body.max_tokens", "invalid_value"),
        (8, "method", "invalid_value"),
    }
    assert all(e.message for e in batch.errors.data)
    assert live_api.queue.redis.zcard(keys.JOBS) == jobs_before
    assert client.batches.retrieve(batch.id).status == "failed"
    assert jobs_of(live_api, batch.id) == []


def test_cancel_mid_batch_ends_cancelled_with_partial_counts_and_an_error_file(
    client: openai.OpenAI, live_api: LiveApi
) -> None:
    lines = [line("quick"), *(line(f"slow-{n}", model="slow", max_tokens=100_000)
                              for n in range(3))]  # fmt: skip
    batch = client.batches.create(input_file_id=upload(client, lines), endpoint=CHAT,
                                  completion_window="24h")  # fmt: skip
    quick, slow, *_ = (j.id for j in sorted(jobs_of(live_api, batch.id), key=lambda j: j.seq))
    live_api.queue.wait_state(quick, "succeeded")
    live_api.queue.wait_tokens(slow)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    assert cancelling.cancelling_at is not None
    done = wait_ended(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 3)
    assert done.output_file_id is not None and done.error_file_id is not None
    assert [a["custom_id"] for a in read_lines(client, done.output_file_id)] == ["quick"]
    errors = read_lines(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["slow-0", "slow-1", "slow-2"]
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    assert all(e["response"] is None for e in errors)
    states = {j.state for j in jobs_of(live_api, batch.id)}
    assert states == {JobState.succeeded, JobState.cancelled}
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_list_pages_newest_first_with_after_and_limit(client: openai.OpenAI) -> None:
    bad = upload(client, ["{not json"])  # a failed batch is a batch too, and queues nothing
    made = [client.batches.create(input_file_id=bad, endpoint=CHAT, completion_window="24h").id
            for _ in range(3)]  # fmt: skip
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == [made[2], made[1]]
    assert first.has_more
    second = client.batches.list(limit=2, after=made[1])
    assert second.data[0].id == made[0]
    everything = [b.id for b in client.batches.list(limit=100)]
    assert everything[:3] == made[::-1]
    with pytest.raises(openai.NotFoundError):
        client.batches.list(after="batch_unknown")


def test_files_list_delete_and_unknown_ids(client: openai.OpenAI) -> None:
    file_id = upload(client, [line("a")], name="mine.jsonl")
    stored = client.files.retrieve(file_id)
    assert (stored.filename, stored.status, stored.bytes) == ("mine.jsonl", "processed",
                                                            len(line("a")))  # fmt: skip
    assert client.files.content(file_id).text == line("a")
    assert file_id in [f.id for f in client.files.list(purpose="batch")]
    assert client.files.delete(file_id).deleted
    assert file_id not in [f.id for f in client.files.list()]
    for call in (client.files.retrieve, client.files.content, client.files.delete,
                 client.batches.retrieve, client.batches.cancel):  # fmt: skip
        with pytest.raises(openai.NotFoundError) as caught:
            call(file_id)
        assert caught.value.code == "not_found"
    with pytest.raises(openai.NotFoundError) as missing:
        client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    assert missing.value.param == "input_file_id"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"completion_window": "48h"}, "completion_window"),
        ({"endpoint": "/v1/embeddings"}, "endpoint"),
        ({"metadata": {f"k{n}": "v" for n in range(17)}}, "metadata"),
    ],
)
def test_batch_parameters_are_refused_by_name(
    client: openai.OpenAI, fields: dict[str, Any], param: str
) -> None:
    asked: dict[str, Any] = {"input_file_id": upload(client, [line("a")]), "endpoint": CHAT,
                             "completion_window": "24h", **fields}  # fmt: skip
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(**asked)
    assert caught.value.param == param


def test_upload_refuses_other_purposes_and_fields(live_api: LiveApi) -> None:
    with live_api.http() as http:
        other = http.post("/v1/files", files={"file": ("a.jsonl", b"{}")},
                          data={"purpose": "fine-tune"})  # fmt: skip
        extra = http.post("/v1/files", files={"file": ("a.jsonl", b"{}")},
                          data={"purpose": "batch", "expires_after[seconds]": "3600"})  # fmt: skip
        missing = http.post("/v1/files", data={"purpose": "batch"})
    assert other.status_code == 400 and other.json()["error"]["param"] == "purpose"
    assert extra.status_code == 400
    assert extra.json()["error"]["param"] == "expires_after[seconds]"
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"


def _cli(live_api: LiveApi, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env.update(live_api.queue.env)
    return subprocess.run([sys.executable, "-m", "worker", *args], check=False,
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_submit_of_a_batch_file_makes_a_batch(
    client: openai.OpenAI, live_api: LiveApi, tmp_path: Path
) -> None:
    good = tmp_path / "batch.jsonl"
    good.write_text("\n".join(line(f"cli-{n}") for n in range(3)) + "\n")
    done = _cli(live_api, "submit", str(good), "--wait")
    assert done.returncode == 0, done.stderr
    batch_id, count = done.stdout.split()[:2]
    assert batch_id.startswith("batch_") and count == "3"
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.output_file_id is not None
    assert [a["custom_id"] for a in read_lines(client, batch.output_file_id)] == [
        "cli-0", "cli-1", "cli-2"
    ]  # fmt: skip
    listed = _cli(live_api, "batches")
    assert listed.returncode == 0
    assert any(row.split()[:5] == [batch_id, "completed", "3", "0", "3"]
               for row in listed.stdout.splitlines())  # fmt: skip


def test_a_batch_file_inside_a_folder_becomes_a_batch_beside_its_prompt_files(
    client: openai.OpenAI, live_api: LiveApi, tmp_path: Path
) -> None:
    folder = tmp_path / "work"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "requests.jsonl").write_text(line("in-folder") + "\n")
    (folder / "story.txt").write_text("Once upon a time")
    (folder / "specs.jsonl").write_text(json.dumps({"prompt": "Tim saw", "max_tokens": 8}) + "\n")
    done = _cli(live_api, "submit", str(folder), "--max-tokens", "8")
    assert done.returncode == 0, done.stderr
    rows = done.stdout.split()
    batch_id = next(word for word in rows if word.startswith("batch_"))
    job_ids = [word for word in rows if len(word) == 12]
    assert len(job_ids) == 2  # the prompt file and the spec line, not the batch's line
    batch = wait_ended(client, batch_id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert batch.request_counts.total == 1
    for job_id in job_ids:
        live_api.queue.wait_state(job_id, "succeeded")
        assert live_api.queue.client.get(job_id).origin is None


def test_submit_of_a_bad_batch_file_names_each_line_and_queues_nothing(
    live_api: LiveApi, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([line("x"), line("x"), line("y", max_tokens=0)]) + "\n")
    jobs_before = live_api.queue.redis.zcard(keys.JOBS)
    batches_before = live_api.queue.redis.zcard(keys.BATCHES)
    done = _cli(live_api, "submit", str(bad))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "bad.jsonl" in done.stderr and "nothing queued" in done.stderr
    assert "line 2 field 'custom_id'" in done.stderr
    assert "line 3 field 'body.max_tokens'" in done.stderr
    assert live_api.queue.redis.zcard(keys.JOBS) == jobs_before
    assert live_api.queue.redis.zcard(keys.BATCHES) == batches_before


def test_a_batch_ends_and_is_announced_with_nobody_asking(
    client: openai.OpenAI, live_api: LiveApi
) -> None:
    """The API's keeper settles a batch as its jobs end: no read of it is needed."""
    after = live_api.queue.client.last_event_id()
    batch = client.batches.create(input_file_id=upload(client, [line("alone")]), endpoint=CHAT,
                                  completion_window="24h")  # fmt: skip
    event = wait_for_event(live_api.queue.redis,
                           lambda e: e.type == "batch" and e.data.get("batch") == batch.id,
                           after=after, timeout=90)  # fmt: skip
    assert event.data["state"] == "completed"
    assert event.data["counts"] == {"total": 1, "completed": 1, "failed": 0}
