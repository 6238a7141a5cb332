"""The job endpoints over real HTTP: submit, status, progress, SSE with resume, cancel, retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from tests.api.conftest import LiveApi
from worker.queue import keys
from worker.testing.harness import wait_for_event

PROMPT = "Once upon a time"
LONG = {"model": "slow", "max_tokens": 100_000}  # runs until cancelled (or its context is full)


def submit(http: httpx.Client, **body: Any) -> str:
    accepted = http.post("/generate", json={"prompt": PROMPT, **body})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["task_id"])


@contextmanager
def sse(
    http: httpx.Client, task_id: str, last_event_id: str | None = None
) -> Iterator[Iterator[ServerSentEvent]]:
    """The task's SSE events as they come; the connection is dropped when the block ends."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with connect_sse(http, "GET", f"/tasks/{task_id}/stream", headers=headers) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        yield source.iter_sse()


def stream(
    http: httpx.Client, task_id: str, last_event_id: str | None = None
) -> list[ServerSentEvent]:
    """The task's SSE events until the server ends the stream."""
    with sse(http, task_id, last_event_id) as events:
        return list(events)


def text_of(events: list[ServerSentEvent]) -> str:
    """The text of the attempt whose end ended the stream: a job whose worker was judged lost
    (a loaded machine, a short heartbeat) starts over as a new attempt on the same stream."""
    payloads = [(e.event, json.loads(e.data)) for e in events]
    last = payloads[-1][1]["attempt"]
    return "".join(p["text"] for kind, p in payloads if kind == "token" and p["attempt"] == last)


def stream_id(event: ServerSentEvent) -> tuple[int, int]:
    ms, _, seq = event.id.partition("-")
    return int(ms), int(seq)


@contextmanager
def paused_queue(live_api: LiveApi) -> Iterator[None]:
    """Workers take no job inside the block; the queue is resumed whatever happens."""
    live_api.queue.client.pause()
    try:
        yield
    finally:
        live_api.queue.client.resume()


@contextmanager
def cancelled_after(http: httpx.Client, task_ids: list[str]) -> Iterator[None]:
    """Cancel the tasks (if not finished) when the block ends, however it ends."""
    try:
        yield
    finally:
        for task_id in task_ids:
            http.post(f"/tasks/{task_id}/cancel")  # 409 once finished: nothing to do


def test_generate_then_status_returns_the_text(live_api: LiveApi) -> None:
    with live_api.http() as http:
        accepted = http.post("/generate", json={"prompt": PROMPT, "max_tokens": 24})
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        task_id = body["task_id"]
        assert accepted.headers["location"] == body["status_url"]
        assert body["status_url"].endswith(f"/tasks/{task_id}/status")
        assert body["stream_url"].endswith(f"/tasks/{task_id}/stream")
        live_api.queue.wait_state(task_id, "succeeded")
        status = http.get(body["status_url"]).json()
        progress = http.get(f"/tasks/{task_id}/progress").json()
    job = live_api.queue.client.get(task_id)
    assert status["status"] == "SUCCESS" and status["state"] == "succeeded"
    assert status["result"] == job.output and status["result"].strip()
    assert status["error"] is None and status["attempt"] == 1
    assert status["queue_position"] is None and status["finished_at"] >= status["started_at"]
    assert progress["step"] == "finished" and progress["fraction"] == 1.0
    assert progress["tokens_generated"] == job.completion_tokens
    assert 0 < progress["prompt_tokens_read"] == progress["prompt_tokens_total"]
    assert progress["max_tokens"] == 24 and progress["eta_seconds"] is None


def test_progress_of_queued_tasks_gives_their_queue_position(live_api: LiveApi) -> None:
    with live_api.http() as http:
        with paused_queue(live_api):
            ids = [submit(http, max_tokens=8, seed=n) for n in range(3)]
            queued = [http.get(f"/tasks/{task_id}/progress").json() for task_id in ids]
            status = http.get(f"/tasks/{ids[1]}/status").json()
        for task_id in ids:
            live_api.queue.wait_state(task_id, "succeeded")
        after = [http.get(f"/tasks/{task_id}/progress").json() for task_id in ids]
    assert [p["queue_position"] for p in queued] == [1, 2, 3]
    for progress in queued:
        assert progress["status"] == "PENDING" and progress["step"] == "queued"
        assert progress["fraction"] == 0 and progress["tokens_generated"] == 0
        assert progress["max_tokens"] == 8 and progress["tokens_per_second"] is None
    assert status["status"] == "PENDING" and status["queue_position"] == 2
    assert status["result"] is None and status["started_at"] is None
    for progress in after:
        assert progress["status"] == "SUCCESS" and progress["step"] == "finished"
        assert progress["queue_position"] is None and progress["fraction"] == 1.0
        assert 0 < progress["tokens_generated"] <= 8


def test_stream_runs_from_start_to_complete_with_the_stored_text(live_api: LiveApi) -> None:
    with live_api.http() as http:
        task_id = submit(http, max_tokens=32)
        events = stream(http, task_id)
    output = live_api.queue.client.get(task_id).output
    assert events[-1].event == "complete"
    assert json.loads(events[-1].data)["status"] == "SUCCESS"
    assert {e.event for e in events} == {"progress", "token", "complete"}
    assert text_of(events) == output and output.strip()
    ids = [stream_id(e) for e in events]
    assert ids == sorted(set(ids))  # every event has its own id, in stream order
    steps = [json.loads(e.data).get("step") for e in events if e.event == "progress"]
    assert steps[0] == "queued" and "generating" in steps


def test_stream_resumes_after_last_event_id_missing_and_repeating_nothing(
    live_api: LiveApi,
) -> None:
    with live_api.http() as http:
        task_id = submit(http, model="tiny", max_tokens=1500, seed=4)
        with cancelled_after(http, [task_id]):
            first: list[ServerSentEvent] = []
            with sse(http, task_id) as events:  # dropped after its second token event
                for event in events:
                    first.append(event)
                    if sum(e.event == "token" for e in first) == 2:
                        break
            rest = stream(http, task_id, last_event_id=first[-1].id)
            again = http.get(f"/tasks/{task_id}/stream", headers={"Last-Event-ID": rest[-1].id})
    output = live_api.queue.client.get(task_id).output
    assert rest[-1].event == "complete"
    assert text_of(first + rest) == output
    assert stream_id(rest[0]) > stream_id(first[-1])  # so no event comes twice
    assert again.status_code == 204  # nothing follows the end: an EventSource stops there


def test_stream_of_a_waiting_task_stays_open_until_it_ends(live_api: LiveApi) -> None:
    """A task with no news for long (queued behind others, here in a paused queue) keeps its
    stream: past the queue client's socket timeout (5 s) to the server's ping (15 s)."""
    with live_api.http() as http, paused_queue(live_api):
        task_id = submit(http, max_tokens=8)
        with http.stream("GET", f"/tasks/{task_id}/stream") as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("event:"))
            ping = next(line for line in lines if line.startswith(":"))
            http.post(f"/tasks/{task_id}/cancel")
            last = next(line for line in lines if line.startswith("event:"))
    assert (first, last) == ("event: progress", "event: error")
    assert "ping" in ping


def test_cancel_a_running_task_keeps_its_partial_output(live_api: LiveApi) -> None:
    with live_api.http() as http:
        task_id = submit(http, **LONG)
        with cancelled_after(http, [task_id]):
            events: list[ServerSentEvent] = []
            with sse(http, task_id) as source:
                for event in source:  # until its first tokens
                    events.append(event)
                    if event.event == "token":
                        break
                wait_for_event(
                    live_api.queue.redis,
                    lambda e: e.type == "tokens" and int(e.data.get("done", 0)) >= 16,
                    stream=keys.events(task_id),
                )
                running = http.get(f"/tasks/{task_id}/progress").json()
                cancel = http.post(f"/tasks/{task_id}/cancel")
                events += list(source)
            status = http.get(f"/tasks/{task_id}/status").json()
            again = http.post(f"/tasks/{task_id}/cancel")
    job = live_api.queue.client.get(task_id)
    assert running["status"] == "STARTED" and running["step"] == "generating"
    assert running["tokens_generated"] >= 16 and 0 < running["fraction"] < 1
    assert running["tokens_per_second"] > 0 and running["eta_seconds"] is not None
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["cancel"] == "requested"  # it stops within a token
    assert status["status"] == "REVOKED" and status["state"] == "cancelled"
    assert status["result"] is None and status["error"]
    assert job.output and 0 < job.completion_tokens < 100_000  # the partial output is kept
    assert status["output"] == job.output  # and shown with the status
    assert text_of(events) == job.output
    assert events[-1].event == "error"
    assert json.loads(events[-1].data)["status"] == "REVOKED"
    assert again.json()["status"] == "REVOKED"  # cancelling twice is harmless


def test_cancel_a_queued_task_revokes_it_before_it_runs(live_api: LiveApi) -> None:
    with live_api.http() as http:
        with paused_queue(live_api):
            task_id = submit(http, max_tokens=8)
            cancel = http.post(f"/tasks/{task_id}/cancel")
        events = stream(http, task_id)
        status = http.get(f"/tasks/{task_id}/status").json()
    assert cancel.json() == {"task_id": task_id, "cancel": "cancelled", "status": "REVOKED"}
    assert status["status"] == "REVOKED" and status["started_at"] is None
    assert [e.event for e in events] == ["progress", "error"]
    assert live_api.queue.client.get(task_id).completion_tokens == 0


def test_retry_a_finished_task_runs_attempt_two(live_api: LiveApi) -> None:
    with live_api.http() as http:
        task_id = submit(http, max_tokens=16)
        live_api.queue.wait_state(task_id, "succeeded")
        finished = http.post(f"/tasks/{task_id}/cancel")
        retry = http.post(f"/tasks/{task_id}/retry")
        wait_for_event(
            live_api.queue.redis,
            lambda e: e.attempt == 2 and e.state is not None and e.state.finished,
            stream=keys.events(task_id),
        )
        status = http.get(f"/tasks/{task_id}/status").json()
        events = stream(http, task_id)
        with paused_queue(live_api):
            queued = submit(http, max_tokens=8)
            refused = http.post(f"/tasks/{queued}/retry")
            http.post(f"/tasks/{queued}/cancel")
    assert finished.status_code == 409 and "nothing to cancel" in finished.json()["detail"]
    assert retry.status_code == 202, retry.text
    assert retry.json()["attempt"] == 2 and retry.json()["status_url"].endswith("/status")
    assert status["attempt"] == 2 and status["status"] == "SUCCESS"
    assert status["result"] == live_api.queue.client.get(task_id).output
    assert {json.loads(e.data)["attempt"] for e in events} == {2}  # not attempt 1's again
    assert text_of(events) == status["result"]
    assert refused.status_code == 409 and "finished" in refused.json()["detail"]


def test_list_pages_through_tasks_in_order_and_filters_by_state(live_api: LiveApi) -> None:
    with live_api.http() as http, paused_queue(live_api):
        ids = [submit(http, max_tokens=8, title=f"page {n}") for n in range(5)]
        queued = http.get("/tasks", params={"state": "queued", "limit": 3}).json()
        rest = http.get("/tasks", params={"state": "queued", "offset": 3}).json()
        http.post(f"/tasks/{ids[0]}/cancel")
        both = http.get("/tasks", params=[("state", "queued"), ("state", "cancelled")])
        total = http.get("/tasks", params={"limit": 1}).json()["total"]
        pages = [http.get("/tasks", params={"offset": o, "limit": 2}).json()
                 for o in range(0, total, 2)]  # fmt: skip
        for task_id in ids[1:]:
            http.post(f"/tasks/{task_id}/cancel")
    assert queued["total"] == 5 and queued["limit"] == 3
    assert [t["task_id"] for t in queued["tasks"] + rest["tasks"]] == ids
    assert [t["queue_position"] for t in queued["tasks"]] == [1, 2, 3]
    assert rest["offset"] == 3 and len(rest["tasks"]) == 2
    cancelled_or_queued = [t for t in both.json()["tasks"] if t["task_id"] in ids]
    assert [t["status"] for t in cancelled_or_queued] == ["REVOKED"] + ["PENDING"] * 4
    listed = [t["task_id"] for page in pages for t in page["tasks"]]
    assert listed == live_api.queue.client.ledger.job_ids()  # submission order, each once
    assert all(len(page["tasks"]) <= 2 for page in pages) and listed[-5:] == ids
    assert all(t["output"] is None and t["result"] is None for p in pages for t in p["tasks"])


def test_health_answers_without_a_token(live_api: LiveApi) -> None:
    health = httpx.get(live_api.url + "/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "queue": True, "workers": 1}
