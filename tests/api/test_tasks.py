"""The job endpoints over real HTTP: submit, status, progress, SSE with resume, cancel, retry."""

from __future__ import annotations

from tests.api.conftest import LiveApi


def test_generate_then_status_returns_the_text(live_api: LiveApi) -> None:
    with live_api.http() as http:
        accepted = http.post("/generate", json={"prompt": "Once upon a time", "max_tokens": 24})
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["task_id"]
        live_api.queue.wait_state(task_id, "succeeded")
        status = http.get(f"/tasks/{task_id}/status").json()
    assert status["status"] == "SUCCESS"
    assert status["result"] == live_api.queue.client.get(task_id).output
    assert status["result"].strip()
