"""A batch survives SIGKILL of `serve` mid-way: started again, it completes with every line
answered exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai

from tests.reliability.support import FAST_TTL, succeeded_once
from worker.api.info import read_api_info
from worker.api.token import TokenFile
from worker.queue import keys
from worker.queue.client import JobClient
from worker.queue.replies import as_text
from worker.settings import Settings
from worker.testing.harness import ServeProcess, free_port, wait_pid_gone, wait_until

LINES = 20
MAX_TOKENS = 48


def _serve(home: Path, env: dict[str, str]) -> tuple[ServeProcess, openai.OpenAI]:
    serve = ServeProcess.start(home, env)
    serve.wait_line("HTTP API at")
    token = TokenFile(Settings(home=home).paths.config).read()
    url = f"http://127.0.0.1:{env['PROMPTSPOOL_HTTP_PORT']}/v1"
    return serve, openai.OpenAI(base_url=url, api_key=token, max_retries=0)


def _batch_lines() -> bytes:
    lines = []
    for n in range(LINES):
        prompt = [{"role": "user", "content": f"Story {n}: once upon a time"}]
        body = {"model": "stories260K", "max_tokens": MAX_TOKENS, "seed": n, "messages": prompt}
        lines.append({"custom_id": f"line-{n}", "method": "POST",
                      "url": "/v1/chat/completions", "body": body})  # fmt: skip
    return "\n".join(json.dumps(line) for line in lines).encode()


def _succeeded(client: JobClient, job_ids: list[str]) -> int:
    with client.redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "state")
        states = pipe.execute()
    return sum(1 for state in states if as_text(state) == "succeeded")


def test_batch_completes_after_serve_is_killed_mid_way(
    isolated_home: Path, stories_model: Path
) -> None:
    env = {**FAST_TTL, "PROMPTSPOOL_HTTP_PORT": str(free_port()),
           "PROMPTSPOOL_MODEL": str(stories_model)}  # fmt: skip
    first, api = _serve(isolated_home, env)
    try:
        upload = api.files.create(file=("stories.jsonl", _batch_lines()), purpose="batch")
        batch = api.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")  # fmt: skip
        assert batch.status == "in_progress"
        queue = first.client()
        job_ids = [as_text(i) for i in queue.redis.lrange(keys.batch_jobs(batch.id), 0, -1)]
        assert len(job_ids) == LINES
        info = read_api_info(Settings(home=isolated_home))
        assert info is not None
        children = [first.server_pid, int(str(info["pid"])),
                    *(int(w["pid"]) for w in queue.workers())]  # fmt: skip
        wait_until(lambda: _succeeded(queue, job_ids) >= 3, 60, "three lines answered")
        answered_before_kill = _succeeded(queue, job_ids)
        first.kill()
        queue.close()
    finally:
        first.kill()
    for pid in children:
        wait_pid_gone(pid)  # the server, the worker and the API went with it
    assert answered_before_kill < LINES, "the batch ended before serve was killed"

    second, api = _serve(isolated_home, env)
    try:
        done: list[openai.types.Batch] = []

        def ended() -> bool:
            done[:] = [api.batches.retrieve(batch.id)]
            return done[0].status in ("completed", "failed", "cancelled", "expired")

        wait_until(ended, 120, "the batch ended")
        result = done[0]
        assert result.status == "completed", result
        assert result.request_counts is not None
        assert (result.request_counts.completed, result.request_counts.failed) == (LINES, 0)
        assert result.output_file_id is not None and result.error_file_id is None
        output = api.files.content(result.output_file_id).text
        answers = [json.loads(text) for text in output.splitlines()]
        assert [a["custom_id"] for a in answers] == [f"line-{n}" for n in range(LINES)]
        with second.client() as queue:
            jobs = {job.id: job for job in queue.get_many(job_ids, with_output=True)}
            assert len(jobs) == LINES
            assert all(succeeded_once(job) for job in jobs.values())
            for answer in answers:
                job = jobs[answer["response"]["request_id"]]
                assert answer["response"]["body"]["choices"][0]["message"]["content"] == job.output
                assert job.origin is not None and job.origin.custom_id == answer["custom_id"]
            entries: Any = queue.redis.xrange(keys.GLOBAL_EVENTS)
            announced = [json.loads(fields[b"d"]) for _, fields in entries]
            ends = [e for e in announced if e.get("type") == "batch" and e["batch"] == batch.id]
            assert [e["state"] for e in ends] == ["completed"]  # announced once
    finally:
        second.stop()
