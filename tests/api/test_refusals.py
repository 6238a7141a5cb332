"""What the API refuses, and how: tokens, hosts, bodies, ids, models, CORS, binds; `serve`."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import LiveApi
from worker.api.info import read_api_info
from worker.api.token import TokenFile
from worker.settings import Settings
from worker.testing.harness import (
    ApiProcess,
    ServeProcess,
    free_port,
    wait_for_event,
    wait_pid_gone,
)

JOB = {"prompt": "Once upon a time", "max_tokens": 8}


def cli(live_api: LiveApi, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`promptspool ARGS` for the test queue's home, with extra PROMPTSPOOL_* settings."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**live_api.queue.env, **env}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


@pytest.fixture
def finished_task(live_api: LiveApi) -> str:
    with live_api.http() as http:
        task_id = str(http.post("/generate", json=JOB).json()["task_id"])
    live_api.queue.wait_state(task_id, "succeeded")
    return task_id


def test_no_token_and_a_wrong_token_are_refused_with_a_bearer_challenge(
    live_api: LiveApi,
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-token"},
                    {"Authorization": f"Basic {live_api.token}"}):  # fmt: skip
        for method, path in (("GET", "/tasks"), ("POST", "/generate")):
            refused = httpx.request(method, live_api.url + path, headers=headers, json=JOB)
            assert refused.status_code == 401, (headers, path)
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "promptspool token" in refused.json()["detail"]
    raw = httpx.get(live_api.url + "/tasks", headers={b"Authorization": b"Bearer \xe9\xff"})
    assert raw.status_code == 401


def test_a_rotated_token_takes_effect_without_restarting_the_api(live_api: LiveApi) -> None:
    old = live_api.token
    rotated = cli(live_api, "token", "--rotate")
    new = rotated.stdout.strip()  # the token alone on stdout
    live_api.api.token = new  # the module's other tests go on with the current token
    assert rotated.returncode == 0 and new != old
    assert f"the API at {live_api.url} takes the new token" in rotated.stderr
    refused = httpx.get(live_api.url + "/tasks", headers={"Authorization": f"Bearer {old}"})
    accepted = httpx.get(live_api.url + "/tasks", headers={"Authorization": f"Bearer {new}"})
    assert refused.status_code == 401 and accepted.status_code == 200
    assert live_api.api.process.poll() is None  # the same process, never restarted


def test_token_prints_the_token_file_which_only_its_owner_can_read(live_api: LiveApi) -> None:
    shown = cli(live_api, "token")
    path = TokenFile(live_api.queue.settings.paths.config).path
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == path.read_text(encoding="ascii").strip() == live_api.token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"answers at {live_api.url}" in shown.stderr  # where, for the person, not for $()


def test_a_foreign_host_header_is_refused(live_api: LiveApi) -> None:
    with live_api.http() as http:
        for host in ("evil.example", "evil.example:80", "127.0.0.1.nip.io"):
            refused = http.get("/tasks", headers={"Host": host})
            assert refused.status_code == 421, host
            assert host in refused.json()["detail"]
        assert http.get("/tasks", headers={"Host": "localhost"}).status_code == 200
    assert httpx.get(live_api.url + "/health", headers={"Host": "evil.example"}).status_code == 421


def test_malformed_json_and_unknown_fields_are_refused_by_name(live_api: LiveApi) -> None:
    with live_api.http() as http:
        broken = http.post("/generate", content=b'{"prompt": ',
                           headers={"Content-Type": "application/json"})  # fmt: skip
        unknown = http.post("/generate", json={**JOB, "temprature": 0.5})
        out_of_range = http.post("/generate", json={**JOB, "max_tokens": 0})
        empty = http.post("/generate", json={})
    assert broken.status_code == 422 and broken.json()["detail"][0]["type"] == "json_invalid"
    assert unknown.status_code == 422
    [error] = unknown.json()["detail"]
    assert error["field"] == "temprature" and error["type"] == "extra_forbidden"
    assert out_of_range.status_code == 422
    assert out_of_range.json()["detail"][0]["field"] == "max_tokens"
    assert empty.status_code == 422 and "prompt" in empty.json()["detail"]


def test_a_body_over_the_limit_is_refused_whether_or_not_it_says_its_length(
    live_api: LiveApi,
) -> None:
    small = ApiProcess.start(live_api.queue, PROMPTSPOOL_HTTP_MAX_UPLOAD_MB="0.01")
    big = b'{"prompt": "' + b"x" * 20_000 + b'"}'
    try:
        with httpx.Client(base_url=small.url, headers=small.headers, timeout=30) as http:
            sized = http.post("/generate", content=big,
                              headers={"Content-Type": "application/json"})  # fmt: skip
            chunked = http.post("/generate", content=iter([big[:5000], big[5000:]]),
                                headers={"Content-Type": "application/json"})  # fmt: skip
            fits = http.post("/generate", json={**JOB, "prompt": "Once upon a time. " * 300})
            openai = http.post("/v1/chat/completions", content=iter([big]),
                               headers={"Content-Type": "application/json"})  # fmt: skip
    finally:
        small.stop()
    for refused in (sized, chunked):
        assert refused.status_code == 413, refused.text
        assert "http_max_upload_mb" in refused.json()["detail"]
    assert openai.status_code == 413 and openai.json()["error"]["code"] == "request_too_large"
    assert fits.status_code == 202
    live_api.queue.wait_state(fits.json()["task_id"], "succeeded", "failed")


def test_unknown_ids_are_404_on_every_task_route(live_api: LiveApi, finished_task: str) -> None:
    schema = httpx.get(live_api.url + "/openapi.json").json()
    routes = [(method.upper(), path) for path, item in schema["paths"].items()
              if path.startswith("/tasks/{task_id}/") for method in item]  # fmt: skip
    assert len(routes) >= 5
    # Another key of a real job is no job either.
    ids = ["000000000000", "x" * 200, f"{finished_task}:attempts", f"{finished_task}:out:1"]
    with live_api.http() as http:
        for method, path in routes:
            for task_id in ids:
                refused = http.request(method, path.replace("{task_id}", task_id))
                assert refused.status_code == 404, (method, path, task_id, refused.text)
                assert "no job" in refused.json()["detail"]


def test_a_bad_last_event_id_is_refused(live_api: LiveApi, finished_task: str) -> None:
    with live_api.http() as http:
        for bad in ("abc", "1-2-3", "-1", "99999999999999999999-0", "1-99999999999999999999",
                    "\u00b2-0", "1" * 60 + "-0"):  # fmt: skip
            refused = http.get(f"/tasks/{finished_task}/stream",
                               headers={b"Last-Event-ID": bad.encode("latin-1")})  # fmt: skip
            assert refused.status_code == 400, (bad, refused.text)
            assert "Last-Event-ID" in refused.json()["detail"]


def test_an_unknown_or_broken_model_is_refused_naming_the_known_ones(
    live_api: LiveApi, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))
    with live_api.http() as http:
        unknown = http.post("/generate", json={**JOB, "model": "no-such-model"})
        damaged = http.post("/generate", json={**JOB, "model": str(broken)})
    assert unknown.status_code == 404
    message = unknown.json()["detail"]
    assert "no-such-model" in message
    assert all(name in message for name in ("stories260K", "tiny", "slow"))
    assert damaged.status_code == 422 and str(broken) in damaged.json()["detail"]


def test_no_cors_headers_unless_origins_are_configured(live_api: LiveApi) -> None:
    origin = {"Origin": "https://page.example"}
    with live_api.http() as http:
        simple = http.get("/tasks", headers=origin)
        preflight = http.options("/generate", headers={
            **origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization"})  # fmt: skip
    for response in (simple, preflight):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_api_refuses_plain_http_off_loopback_unless_told_to(live_api: LiveApi) -> None:
    port = str(free_port())
    refused = cli(live_api, "api", PROMPTSPOOL_HTTP_HOST="0.0.0.0", PROMPTSPOOL_HTTP_PORT=port)
    assert refused.returncode != 0
    assert "PROMPTSPOOL_HTTP_INSECURE=1" in refused.stderr
    assert "http_tls_cert" in refused.stderr
    insecure = ApiProcess.start(live_api.queue, PROMPTSPOOL_HTTP_HOST="0.0.0.0",
                                PROMPTSPOOL_HTTP_INSECURE="1", stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert insecure.process.stderr is not None
        warning = insecure.process.stderr.readline().decode()
        assert "plain HTTP on 0.0.0.0" in warning and "read the token" in warning
        assert insecure.url.startswith("http://0.0.0.0:")
        local = insecure.url.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(local + "/tasks", headers=insecure.headers).status_code == 200
    finally:
        insecure.stop()


@pytest.fixture
def serve(isolated_home: Path) -> Iterator[ServeProcess]:
    settings = {"PROMPTSPOOL_HTTP_PORT": str(free_port()), "PROMPTSPOOL_HEARTBEAT_TTL": "2"}
    process = ServeProcess.start(isolated_home, settings)
    yield process
    if process.process.poll() is None:
        process.stop()


def test_serve_prints_the_api_url_and_restarts_the_api_when_it_dies(
    serve: ServeProcess, isolated_home: Path
) -> None:
    line = serve.wait_line("HTTP API at")
    url = serve.lines[line].split("HTTP API at ")[1].split()[0]
    settings = Settings(home=isolated_home)
    info = read_api_info(settings)
    assert info is not None and info["url"] == url
    assert httpx.get(url + "/health").json()["status"] == "ok"
    with serve.client() as client:
        after = client.last_event_id()
        os.kill(int(str(info["pid"])), signal.SIGKILL)
        wait_pid_gone(int(str(info["pid"])))
        wait_for_event(
            client.redis,
            lambda e: e.type == "api" and e.data.get("state") == "ready",
            after=after,
        )
    serve.wait_line("HTTP API crashed (signal 9)")
    serve.wait_line("HTTP API at", start=line + 1)
    token = TokenFile(settings.paths.config).read()
    answer = httpx.get(url + "/tasks", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    restarted = read_api_info(settings)
    assert restarted is not None and restarted["pid"] != info["pid"]
