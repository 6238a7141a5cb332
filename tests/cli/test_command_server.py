"""The command server: short commands run warm, with the caller's arguments, environment,
folder, streams and exit status, exactly as they run without it; it answers only while it
is wanted and up to date, and a caller never runs a command twice.

Everything here is real: `promptspool` processes started as a user starts them, the server
they start, a real queue.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import worker.cli.terminal
from worker.cli import commandclient
from worker.cli.commandclient import answers, socket_path
from worker.jobs.spec import JobSpec
from worker.paths import AppPaths
from worker.testing.harness import Queue, wait_until

CLI = [sys.executable, "-m", "desktop"]


def run(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def server_process(paths: AppPaths) -> psutil.Process | None:
    """The command server of this home: the `cli-server` process working in its runtime dir."""
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = process.info["cmdline"] or []
        if "cli-server" in cmdline and process.info["cwd"] == str(paths.runtime):
            return process
    return None


def served_log(paths: AppPaths) -> str:
    log = paths.logs / "cli-server.log"
    return log.read_text(encoding="utf-8") if log.exists() else ""


class Served:
    """A queue's home with its command server up, and the environment that uses it."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.env = {**queue.env, "PROMPTSPOOL_CLI_SERVER": "1"}
        self.direct_env = {**queue.env, "PROMPTSPOOL_CLI_SERVER": "0"}
        self.paths = AppPaths.resolve(queue.home)
        self.socket = socket_path(self.paths)

    def start(self) -> psutil.Process:
        """As a user meets it: the first short command runs itself and starts the server."""
        first = run(self.env, "list")
        assert first.returncode == 0, first.stderr
        wait_until(lambda: answers(self.socket), timeout=60, what="the command server")
        process = server_process(self.paths)
        assert process is not None
        return process

    def runs(self) -> int:
        """How many commands the server's children ran so far."""
        return served_log(self.paths).count(" runs ")


@pytest.fixture
def served(queue: Queue) -> Iterator[Served]:
    made = Served(queue)
    yield made
    process = server_process(made.paths)
    if process is not None:
        process.terminate()
        process.wait(10)


def test_commands_run_warm_exactly_as_they_run_alone(
    served: Served, tiny_model: Path, tmp_path: Path
) -> None:
    served.start()
    (tmp_path / "story.txt").write_text("A prompt read from the caller's folder\n")
    other_model = tmp_path / "other.gguf"
    other_model.write_bytes(tiny_model.read_bytes())

    # The caller's folder (a relative path) and environment (the default model), per call.
    first = run({**served.env, "PROMPTSPOOL_MODEL": str(tiny_model)}, "submit", "story.txt",
                "--json", cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = run({**served.env, "PROMPTSPOOL_MODEL": str(other_model)}, "submit", "--prompt",
                 "two", "--json")  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert served.runs() == 2
    [one] = json.loads(first.stdout)
    [two] = json.loads(second.stdout)
    jobs = {job.id: job for job in served.queue.client.list()}
    assert str(jobs[one["id"]].spec.prompt).startswith("A prompt read from the caller's folder")
    assert jobs[one["id"]].spec.model == str(tiny_model)
    assert jobs[two["id"]].spec.model == str(other_model)

    # Output, errors and exit codes are those of the command run alone.
    for args in (["list"], ["show", one["id"]], ["show", "no-such-job"], ["list", "--bogus"],
                 ["cancel", two["id"]], ["show", two["id"], "--json"]):  # fmt: skip
        warm = run(served.env, *args)
        alone = run(served.direct_env, *args)
        assert (warm.returncode, warm.stdout, warm.stderr) == (
            alone.returncode, alone.stdout, alone.stderr
        ), args  # fmt: skip
    assert served.runs() == 2 + 6


def test_the_served_caller_imports_only_the_standard_library_and_its_paths(
    served: Served,
) -> None:
    served.start()
    done = subprocess.run([*CLI[:1], "-X", "importtime", *CLI[1:], "list"], env=served.env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    heavy = {"pydantic", "pydantic_settings", "redis", "celery", "asyncio", "worker.settings"}
    assert imported & heavy == set()
    assert "worker.cli.commandclient" in imported


def test_ctrl_c_on_the_caller_stops_the_command_in_the_server(
    served: Served, tiny_model: Path
) -> None:
    server = served.start()
    [job_id] = served.queue.client.submit([JobSpec(prompt="no worker", model=str(tiny_model))])
    watcher = subprocess.Popen([*CLI, "watch", job_id], env=served.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_until(lambda: len(server.children()) == 1, what="the child running `watch`")
    [child] = server.children()
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130, err
    child.wait(30)  # the command stopped there too, not left running for no one
    assert server.is_running()


def test_a_command_server_that_dies_mid_command_is_reported_never_run_twice(
    served: Served, tiny_model: Path
) -> None:
    server = served.start()
    [job_id] = served.queue.client.submit([JobSpec(prompt="no worker", model=str(tiny_model))])
    watcher = subprocess.Popen([*CLI, "watch", job_id], env=served.env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    wait_until(lambda: len(server.children()) == 1, what="the child running `watch`")
    server.children()[0].kill()
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 1
    assert "the command server stopped before the command ended" in err
    assert served.runs() == 1  # and the caller did not run it itself


def test_a_killed_server_leaves_a_dead_socket_that_the_next_one_replaces(served: Served) -> None:
    server = served.start()
    server.kill()
    server.wait(30)
    assert served.socket.exists() and not answers(served.socket)
    listed = run(served.env, "list")  # runs alone, and starts a new server
    assert listed.returncode == 0, listed.stderr
    wait_until(lambda: answers(served.socket), timeout=60, what="the new command server")
    assert run(served.env, "list").returncode == 0
    assert served.runs() == 1


def test_a_stopped_server_is_passed_by_at_once(served: Served, tiny_model: Path) -> None:
    """A server stopped with SIGSTOP (a debugger, a frozen group): the command runs in the
    caller, once, and the server runs nothing of it when it is continued."""
    server = served.start()
    server.suspend()
    try:
        submitted = run(served.env, "submit", "--prompt", "once", "--model", str(tiny_model))
    finally:
        server.resume()
    assert submitted.returncode == 0, submitted.stderr
    assert run(served.env, "list").returncode == 0  # served again once continued
    assert served.runs() == 1
    assert [job.spec.prompt for job in served.queue.client.list()] == ["once"]


def test_a_server_that_stops_before_accepting_never_runs_the_request_late(
    served: Served, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request was sent, then the server stopped before its child accepted it: the
    caller gives up after ACCEPT_TIMEOUT_S (and runs the command itself); once continued,
    the server's child finds no go and runs nothing."""
    server = served.start()
    for name, value in served.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(commandclient, "_peer_stopped", lambda _client: False)
    monkeypatch.setattr(commandclient, "ACCEPT_TIMEOUT_S", 0.5)
    argv = ["submit", "--prompt", "late", "--model", str(tiny_model)]
    server.suspend()
    try:
        assert commandclient.run_through_server(argv) is None  # not served: run it here
    finally:
        server.resume()
    wait_until(lambda: "the caller left before ['submit'] began" in served_log(served.paths),
               what="the continued server's child giving up")  # fmt: skip
    assert served.runs() == 0
    assert served.queue.client.list() == []


SITE_PACKAGES = next(Path(p) for p in sys.path if Path(p).name == "site-packages")


@pytest.mark.parametrize(
    "changed", [Path(worker.cli.terminal.__file__), SITE_PACKAGES], ids=["ours", "a dependency"]
)
def test_changed_code_sends_the_caller_back_to_run_it_itself(served: Served, changed: Path) -> None:
    """After an upgrade (or an edit) the warm server would run old code: it declines the
    command, which runs in the caller, and leaves; that run starts a fresh server."""
    server = served.start()
    before = changed.stat()
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        listed = run(served.env, "list")
    finally:
        os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert listed.returncode == 0, listed.stderr
    server.wait(30)
    assert "the installed code changed" in served_log(served.paths)
    assert served.runs() == 0
    wait_until(lambda: server_process(served.paths) is not None, timeout=60,
               what="a fresh command server")  # fmt: skip


def test_it_answers_its_user_alone_and_leaves_when_no_longer_wanted(served: Served) -> None:
    server = served.start()
    mode = served.socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(served.paths.runtime.stat().st_mode) == 0o700
    served.socket.unlink()  # its home is going away (a test's, a user's clean-up)
    server.wait(30)

    idle = subprocess.Popen([*CLI, "cli-server", "--idle", "1"], env=served.env,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    wait_until(lambda: answers(served.socket), timeout=60, what="the second server")
    assert idle.wait(30) == 0  # a second without commands, then it leaves by itself
    assert not served.socket.exists()


def test_the_setting_off_means_no_server(served: Served) -> None:
    settings_file = served.paths.config / "settings.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps({"cli_server": False}))
    env = {k: v for k, v in served.env.items() if k != "PROMPTSPOOL_CLI_SERVER"}
    assert run(env, "list").returncode == 0
    assert run(env, "list").returncode == 0
    assert server_process(served.paths) is None
    assert not served.socket.exists()
