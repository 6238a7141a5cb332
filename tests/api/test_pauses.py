"""The API process paused (SIGSTOP: a sleep, a debugger, a stalled disk) and continued: the
jobs go on without it, and when it comes back its streams and batches catch up, losing and
repeating nothing."""

from __future__ import annotations

import openai

from tests.api.conftest import LiveApi
from tests.api.test_batches import ENDED, line, read_lines, upload, wait_ended
from tests.api.test_tasks import sse, stream_id, submit, text_of
from worker.jobs.job import JobState
from worker.queue.batches.store import BatchStore
from worker.testing.harness import paused, wait_for_event, wait_until


def test_a_stream_catches_up_after_the_api_was_paused(live_api: LiveApi) -> None:
    with live_api.http() as http:
        task_id = submit(http, model="slow", max_tokens=60)
        with sse(http, task_id) as events:
            seen = []
            for event in events:
                seen.append(event)
                if event.event == "token":
                    break
            with paused(live_api.api.process.pid):  # the job runs on without the API
                live_api.queue.wait_state(task_id, "succeeded")
            seen += list(events)
    job = live_api.queue.client.get(task_id)
    assert seen[-1].event == "complete"
    assert text_of(seen) == job.output and job.output
    ids = [stream_id(event) for event in seen]
    assert ids == sorted(set(ids))  # each event once, in order


def test_a_batch_that_ends_while_the_api_is_paused_completes_once_it_is_back(
    live_api: LiveApi,
) -> None:
    client = openai.OpenAI(base_url=live_api.url + "/v1", api_key=live_api.token, max_retries=0)
    file_id = upload(client, [line(f"p{n}") for n in range(3)])
    after = live_api.queue.client.last_event_id()
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                  completion_window="24h")  # fmt: skip
    job_ids = BatchStore(live_api.queue.redis).job_ids(batch.id)
    with paused(live_api.api.process.pid):  # its keeper stops with it

        def all_ended() -> bool:
            jobs = live_api.queue.client.get_many(job_ids)
            return len(jobs) == 3 and all(job.state.finished for job in jobs)

        wait_until(all_ended, 90, "the batch's jobs to end")
        status = BatchStore(live_api.queue.redis).statuses([batch.id])[batch.id]
        assert status not in ENDED  # nobody settled it yet
    ended = wait_for_event(  # the keeper, back, settles it without being asked
        live_api.queue.redis,
        lambda e: e.type == "batch" and e.data.get("batch") == batch.id,
        after=after,
        timeout=60,
    )
    assert ended.data["state"] == "completed"
    done = wait_ended(client, batch.id)
    assert done.output_file_id is not None
    answers = read_lines(client, done.output_file_id)
    assert [a["custom_id"] for a in answers] == ["p0", "p1", "p2"]
    assert all(job.state is JobState.succeeded and job.attempt == 1
               for job in live_api.queue.client.get_many(job_ids))  # fmt: skip
