"""Fault injection against real processes: SIGKILL of workers, the server and `serve`.

Each test kills real processes (never a polite stop, unless that is the point) and then
checks the promise: a job, once acknowledged, is never lost and never silently half-done.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.support import FAST_TTL, spec, succeeded_once
from worker.hosting.children import worker_command
from worker.jobs.export import export_text
from worker.jobs.job import JobState
from worker.queue import keys
from worker.queue.client import JobClient
from worker.queue.events import Event
from worker.queue.replies import as_text
from worker.runtime.reaper import LOST_REASON
from worker.runtime.runner import OUTAGE_REASON, SHUTDOWN_REASON
from worker.testing.harness import (
    Queue,
    ServeProcess,
    last_event_id,
    wait_for_event,
    wait_pid_gone,
    wait_until,
)

# --- workers ---------------------------------------------------------------------------


def _wait_victim(
    q: Queue, after: str, finished: int, tokens: int, spare: set[str]
) -> tuple[str, int]:
    """After `finished` jobs succeed, the next job that streams `tokens` batches: (id, attempt).

    Jobs in `spare` (already killed once) are passed over, so no job reaches the poison cap.
    """
    seen = 0
    while True:
        event = wait_for_event(
            q.redis, lambda e: e.type == "state" and e.state is not None, after=after
        )
        after = event.id
        if event.state is JobState.succeeded:
            seen += 1
        if seen < finished or event.state is not JobState.running or event.job_id in spare:
            continue
        job_id, attempt, count = event.job_id, event.attempt, 0
        for job_event in q.client.events(job_id):
            if job_event.attempt != attempt:
                continue
            if job_event.type == "tokens":
                count += 1
                if count >= tokens:
                    return job_id, attempt
            if job_event.state is not None and job_event.state.finished:
                break  # it ended first: take the next running job


def test_worker_killed_five_times_every_job_succeeds_exactly_once(
    queue: Queue, slow_model: Path
) -> None:
    """50 jobs; the worker is SIGKILLed 5 times mid-generation at random moments."""
    q = queue
    rng = random.Random(20261125)
    sizes = [rng.randint(24, 64) for _ in range(50)]
    ids = q.client.submit([spec(slow_model, max_tokens=n, seed=i) for i, n in enumerate(sizes)])
    kills: list[tuple[str, int, float]] = []
    for _ in range(5):
        after = last_event_id(q.redis)
        worker = q.start_worker()
        spare = {job_id for job_id, _, _ in kills}
        job_id, attempt = _wait_victim(q, after, rng.randint(1, 4), rng.randint(1, 5), spare)
        worker.kill()
        kills.append((job_id, attempt, time.time()))
        q.workers.remove(worker)
    q.start_worker()
    jobs = {job_id: q.client.wait(job_id, timeout=120) for job_id in ids}

    assert all(succeeded_once(job) for job in jobs.values())
    assert [jobs[i].completion_tokens for i in ids] == sizes
    exported = [line for line in export_text(list(jobs.values()), "jsonl").splitlines() if line]
    assert len(exported) == len({line[:40] for line in exported}) == 50
    assert q.client.ledger.running_ids() == []
    for job_id, attempt, killed_at in kills:
        lost = jobs[job_id].attempts[attempt - 1]
        assert lost.state is JobState.failed and lost.error == LOST_REASON
        assert lost.output, "the lost attempt's partial output is kept"
        rerun = wait_for_event(q.redis, _loading(attempt + 1), stream=keys.events(job_id))
        assert rerun.data["t"] - killed_at < 30, "the lost job runs again within 30 s"


def _loading(attempt: int) -> Callable[[Event], bool]:
    return lambda event: event.state is JobState.loading and event.attempt == attempt


def test_job_recorded_without_its_message_still_runs(queue: Queue, tiny_model: Path) -> None:
    """A crash between the ledger write and the Celery message: the reaper's sweep sends it."""
    [job_id] = queue.client.ledger.create([spec(tiny_model, max_tokens=4)])
    queue.start_worker()
    assert queue.client.wait(job_id, timeout=60).state is JobState.succeeded


# --- the server -------------------------------------------------------------------------


class Submitter(threading.Thread):
    """Submits jobs one at a time; keeps the ids the queue acknowledged, counts refusals."""

    def __init__(self, serve: ServeProcess, model: Path, count: int) -> None:
        super().__init__(daemon=True)
        self.serve = serve
        self.model = model
        self.count = count
        self.acknowledged: list[str] = []
        self.refused: list[str] = []
        self.server_back = threading.Event()
        self.progress = threading.Condition()

    def run(self) -> None:
        with self.serve.client() as client:
            while len(self.acknowledged) < self.count:
                try:
                    [job_id] = client.submit([spec(self.model, max_tokens=24)])
                except Exception as exc:  # not acknowledged: the user was shown an error
                    self.refused.append(f"{type(exc).__name__}: {exc}")
                    self.server_back.wait(30)
                    continue
                with self.progress:
                    self.acknowledged.append(job_id)
                    self.progress.notify_all()

    def wait_for(self, n: int, timeout: float = 60) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: len(self.acknowledged) >= n, timeout)


def _kill_server(serve: ServeProcess) -> int:
    pid = serve.server_pid
    start = len(serve.lines)
    os.kill(pid, signal.SIGKILL)
    wait_pid_gone(pid)
    return start


def _wait_tokens(client: JobClient, job_id: str, attempt: int = 1) -> None:
    for event in client.events(job_id):
        if event.type == "tokens" and event.attempt == attempt:
            return


def test_server_killed_mid_queue_loses_no_acknowledged_job(
    serve: ServeProcess, tiny_model: Path, slow_model: Path
) -> None:
    """SIGKILL the bundled server 3 times while jobs are being submitted and run."""
    client = serve.client()
    [long_id] = client.submit([spec(slow_model, max_tokens=400, seed=1)])
    submitter = Submitter(serve, tiny_model, count=60)
    submitter.start()
    for round_ in range(3):
        submitter.wait_for(10 * (round_ + 1))
        if round_ == 0:  # the first kill lands while the long job streams tokens
            _wait_tokens(client, long_id)
        submitter.server_back.clear()
        start = _kill_server(serve)
        serve.wait_line("queue server exited (killed by SIGKILL); restarting it", start=start)
        serve.wait_line("queue server restarted", start=start)
        submitter.server_back.set()
    submitter.join(120)
    assert not submitter.is_alive()
    ids = [long_id, *submitter.acknowledged]
    jobs = {job_id: client.wait(job_id, timeout=120) for job_id in ids}
    assert all(succeeded_once(job) for job in jobs.values()), {
        job_id: (job.state, job.error) for job_id, job in jobs.items() if not succeeded_once(job)
    }
    assert len(client.list()) == len(jobs) == 61, "every acknowledged submission is kept"
    assert jobs[long_id].completion_tokens == 400
    assert client.ledger.running_ids() == []
    # The cancel listener subscribed again to the restarted server.
    wait_until(
        lambda: client.redis.pubsub_numsub(keys.CANCEL_CHANNEL)[0][1] >= 1,
        what="the worker's cancel subscription",
    )
    client.close()


def test_server_outage_mid_job_hands_the_job_back(serve: ServeProcess, slow_model: Path) -> None:
    """The server stays down long enough for the running job's writes to fail."""
    client = serve.client()
    [job_id] = client.submit([spec(slow_model, max_tokens=600, seed=2)])
    _wait_tokens(client, job_id)
    os.kill(serve.process.pid, signal.SIGSTOP)  # its supervisor cannot restart it yet
    try:
        start = _kill_server(serve)
        serve.wait_line("the queue server stopped answering", start=start)
    finally:
        os.kill(serve.process.pid, signal.SIGCONT)
    serve.wait_line("queue server restarted", start=start)
    job = client.wait(job_id, timeout=120)
    assert succeeded_once(job) and job.completion_tokens == 600
    lost = job.attempts[0]
    assert lost.state is JobState.failed and lost.error == OUTAGE_REASON
    assert lost.output, "the partial output written before the outage is kept"
    assert client.ledger.running_ids() == []
    client.close()


def test_serve_killed_then_started_again_keeps_every_job(
    isolated_home: Path, slow_model: Path
) -> None:
    """SIGKILL `serve` mid-job: its worker and server go with it; a new `serve` resumes."""
    first = ServeProcess.start(isolated_home, FAST_TTL)
    client = first.client()
    ids = client.submit([spec(slow_model, max_tokens=150, seed=n) for n in range(4)])
    _wait_tokens(client, ids[0])
    children = [first.server_pid, *(int(w["pid"]) for w in client.workers())]
    client.close()
    first.kill()
    for pid in children:
        wait_pid_gone(pid)  # nothing is left running without its supervisor
    second = ServeProcess.start(isolated_home, FAST_TTL)
    try:
        with second.client() as client:
            jobs = [client.wait(job_id, timeout=120) for job_id in ids]
            assert all(succeeded_once(job) for job in jobs)
            assert all(job.completion_tokens == 150 for job in jobs)
            interrupted = jobs[0].attempts[0]
            assert interrupted.error in (SHUTDOWN_REASON, LOST_REASON, OUTAGE_REASON)
            assert interrupted.output, "the output of the interrupted attempt is kept"
    finally:
        second.stop()


def test_worker_ends_when_its_supervisor_is_killed(queue: Queue, slow_model: Path) -> None:
    """An app killed with SIGKILL leaves no worker behind; the job it ran goes back."""
    after = last_event_id(queue.redis)
    supervisor = subprocess.Popen(  # stands in for the app: starts a worker as the app does
        [sys.executable, "-c", "import subprocess, sys; subprocess.Popen(sys.argv[1:]).wait()",
         *worker_command(), "--loglevel", "WARNING"],
        env=queue.env,
    )  # fmt: skip
    try:
        ready = wait_for_event(
            queue.redis, lambda e: e.type == "worker" and e.data.get("state") == "ready",
            after=after, timeout=60,
        )  # fmt: skip
        [job_id] = queue.client.submit([spec(slow_model, max_tokens=1500)])
        _wait_tokens(queue.client, job_id)
        [pid] = [int(w["pid"]) for w in queue.client.workers() if w["id"] == ready.data["worker"]]
    finally:
        supervisor.kill()
        supervisor.wait(10)
    wait_pid_gone(pid)
    job = queue.client.get(job_id)
    assert job.state is JobState.queued  # handed back at once, not left to the reaper
    assert job.attempts[0].error == SHUTDOWN_REASON and job.attempts[0].output
    queue.start_worker()
    assert succeeded_once(queue.client.wait(job_id, timeout=300))


# --- models -----------------------------------------------------------------------------


def _corrupt(path: Path, old: bytes, new: bytes) -> None:
    """Replace the first occurrence (general.architecture comes before the tokenizer's)."""
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


@pytest.mark.parametrize("fault", ["deleted", "fifo", "truncated", "corrupt", "architecture"])
def test_model_that_fails_to_load_fails_the_job_not_the_worker(
    queue: Queue, tmp_path: Path, tiny_model: Path, fault: str
) -> None:
    """The file goes bad between submit (which checks it) and the worker loading it."""
    model = tmp_path / "model.gguf"
    shutil.copy(tiny_model, model)
    [bad] = queue.client.submit([spec(model, max_tokens=4)])
    if fault == "deleted":
        model.unlink()
    elif fault == "fifo":  # opening it would wait for a writer forever
        model.unlink()
        os.mkfifo(model)
    elif fault == "truncated":
        os.truncate(model, model.stat().st_size // 2)
    elif fault == "corrupt":  # a tensor that llama.cpp needs is missing
        _corrupt(model, b"token_embd.weight", b"token_embX.weight")
    else:
        _corrupt(
            model,
            b"\x05\x00\x00\x00\x00\x00\x00\x00llama",
            b"\x05\x00\x00\x00\x00\x00\x00\x00llamb",
        )
    worker = queue.start_worker()
    queue.wait_state(bad, "failed")
    error = queue.client.get(bad).error or ""
    expected = {
        "deleted": "no such file",
        "fifo": "is a FIFO, not a GGUF file",
        "truncated": "truncated",
        "corrupt": "llama.cpp refused it",
        "architecture": "architecture is 'llamb'",
    }[fault]
    assert str(model) in error and expected in error, error
    [good] = queue.client.submit([spec(tiny_model, max_tokens=4)])
    queue.wait_state(good, "succeeded")
    assert worker.process.poll() is None


def _vm_size(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prlimit is Linux only")
def test_model_without_enough_memory_fails_the_job_not_the_worker(
    queue: Queue, slow_model: Path, tiny_model: Path
) -> None:
    """The worker may allocate only 40 MiB more: the 85 MB model cannot load, a tiny one can."""
    worker = queue.start_worker()
    [warm] = queue.client.submit([spec(tiny_model, max_tokens=4)])  # threads exist already
    queue.wait_state(warm, "succeeded")
    pid = worker.process.pid
    resource.prlimit(pid, resource.RLIMIT_AS, (_vm_size(pid) + 40 * 2**20, resource.RLIM_INFINITY))
    [big] = queue.client.submit([spec(slow_model, max_tokens=4)])
    queue.wait_state(big, "failed")
    error = queue.client.get(big).error or ""
    assert str(slow_model) in error and "not enough memory" in error, error
    [small] = queue.client.submit([spec(tiny_model, max_tokens=4, seed=1)])
    queue.wait_state(small, "succeeded")
    assert worker.process.poll() is None


def test_poison_job_is_capped_at_3_attempts_and_the_queue_moves_on(
    serve: ServeProcess, slow_model: Path, tiny_model: Path
) -> None:
    """A job that kills its worker every time; `serve` restarts the worker after each death."""
    client = serve.client()
    [poison] = client.submit([spec(slow_model, max_tokens=5000, title="poison")])
    good = client.submit([spec(tiny_model, max_tokens=8, seed=n) for n in range(5)])
    for attempt in (1, 2, 3):
        _wait_tokens(client, poison, attempt)
        owner = as_text(client.redis.hget(keys.job(poison), "worker"))
        [pid] = [int(w["pid"]) for w in client.workers() if w["id"] == owner]
        os.kill(pid, signal.SIGKILL)  # the job "kills its worker"
        wait_pid_gone(pid)
    job = client.wait(poison, timeout=120)
    assert job.state is JobState.failed
    assert "3 attempts lost; giving up" in (job.error or "")
    assert len(job.attempts) == 3 and all(a.output for a in job.attempts)
    assert all(succeeded_once(client.wait(job_id, timeout=120)) for job_id in good)
    [after] = client.submit([spec(tiny_model, max_tokens=4)])
    assert client.wait(after, timeout=120).state is JobState.succeeded
    assert sum("worker crashed (signal 9)" in line for line in serve.lines) == 3
    client.close()


def test_a_second_serve_on_the_same_home_says_so_and_exits(serve: ServeProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env["PROMPTSPOOL_HOME"] = str(serve.home)
    second = subprocess.run(
        [sys.executable, "-m", "worker", "serve"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second.returncode == 1
    assert f"`promptspool serve` (pid {serve.process.pid}) already runs the queue of" in (
        second.stderr
    )
    with serve.client() as client:  # the first one is untouched
        assert len(client.workers()) == 1


def test_serve_attached_to_an_apps_server_runs_it_when_the_app_stops_it(
    queue: Queue, tiny_model: Path
) -> None:
    """The app started the server and `serve` attached to it; the app quits (stopping its
    server): `serve` starts the server again and its worker goes on with the queue."""
    serve = ServeProcess.start(queue.home, FAST_TTL)
    try:
        start = len(serve.lines)
        queue.server.stop()  # what the app's Quit does to the server it started
        serve.wait_line("this serve runs it now", start=start)
        with serve.client() as client:
            [job_id] = client.submit([spec(tiny_model, max_tokens=4)])
            assert client.wait(job_id, timeout=60).state is JobState.succeeded
    finally:
        serve.stop()


# --- the disk ---------------------------------------------------------------------------


@pytest.fixture
def tmpfs_home() -> Iterator[Path]:
    """A home whose data dir is a 2 MB tmpfs (needs root: mount), removed afterwards."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    home = Path(tempfile.mkdtemp(prefix="ps-", dir="/tmp"))
    data = home / "data"
    data.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(data)],
        check=False,
        capture_output=True,
    )
    if mounted.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)
        shutil.rmtree(home, ignore_errors=True)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTSPOOL_")}
    env["PROMPTSPOOL_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_disk_full_is_a_clear_error_and_leaves_no_corrupt_state(
    tmpfs_home: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.testing.harness import start_queue

    monkeypatch.setenv("PROMPTSPOOL_HOME", str(tmpfs_home))
    q = start_queue(tmpfs_home, **FAST_TTL)
    try:
        q.start_worker()
        before = q.client.submit([spec(tiny_model, max_tokens=4, seed=n) for n in range(3)])
        assert all(q.client.wait(job_id, 60).state is JobState.succeeded for job_id in before)
        filler = tmpfs_home / "data" / "filler"
        with filler.open("wb") as handle, pytest.raises(OSError):
            while True:  # until ENOSPC
                handle.write(b"\0" * 65536)
                handle.flush()
        # The worker's heartbeat is the next write: the server fails to append it.
        wait_until(
            lambda: q.redis.info("persistence")["aof_last_write_status"] == "err",
            what="the server noticing the full disk",
        )
        refused = _cli(tmpfs_home, "submit", "--model", str(tiny_model), "--prompt", "x")
        assert refused.returncode == 1
        assert "cannot save to disk" in refused.stderr
        assert str(tmpfs_home / "data") in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert len(q.client.list()) == 3, "nothing half-queued"

        filler.unlink()
        wait_until(
            lambda: q.redis.info("persistence")["aof_last_write_status"] == "ok",
            what="the server writing again",
        )
        done = _cli(tmpfs_home, "submit", "--model", str(tiny_model), "--prompt", "x", "--wait")
        assert done.returncode == 0, done.stderr
        # Kill the server and load its append-only file again: nothing torn, nothing lost.
        process = q.server.process
        assert process is not None
        process.kill()
        process.wait()
        q.server.start()
        assert len(q.client.list()) == 4
        assert all(job.state is JobState.succeeded for job in q.client.list())
        log = (tmpfs_home / "logs" / "server.log").read_text()
        assert "Bad file format" not in log and "short read" not in log.lower()
    finally:
        q.close()


# --- endurance ---------------------------------------------------------------------------


def test_retention_forgets_finished_jobs_and_every_key(queue: Queue, tiny_model: Path) -> None:
    """With a retention period, the reaper forgets finished jobs: the key count comes back."""
    queue.start_worker(PROMPTSPOOL_RETENTION_DAYS="0.00001")  # 0.86 s
    after = last_event_id(queue.redis)
    ids = set(queue.client.submit([spec(tiny_model, max_tokens=4, seed=n) for n in range(30)]))
    succeeded: set[str] = set()
    forgotten: set[str] = set()

    def tally(event: Event) -> bool:  # the global stream keeps both events of every job
        if event.state is JobState.succeeded:
            succeeded.add(event.job_id)
        if event.type == "forgotten":
            forgotten.add(event.job_id)
        return succeeded == ids == forgotten

    wait_for_event(queue.redis, tally, after=after)
    # Left: the worker's heartbeat and membership, the reaper lock, the sequence counter,
    # the global event stream and kombu's bindings; no key of any job.
    assert queue.client.list() == []
    leftover = sorted(
        as_text(k) for k in queue.redis.keys("ps:job:*") + queue.redis.keys("ps:ev:*")
    )
    assert leftover == []
    fixed = {"ps:seq", "ps:ev", "ps:workers", "ps:reaper-lock", "ps:beats", "unacked",
             "unacked_index", "unacked_mutex"}  # fmt: skip
    names = {as_text(k) for k in queue.redis.keys("*")}
    per_worker = {n for n in names if n.startswith(("ps:worker:", "_kombu.binding"))}
    assert names - per_worker <= fixed, names


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("RUN_ENDURANCE"), reason="set RUN_ENDURANCE=1 (~1 min)")
def test_endurance_2000_jobs() -> None:
    """`python -m bench endurance` as a test: every job succeeds, memory and keys stay flat."""
    from bench.reliability import endurance

    figures = endurance(jobs=2000)
    assert figures["succeeded"] == 2000
    assert figures["worker_rss_growth_pct"] < 10
    assert figures["server_keys_per_finished_job"] == 4.0
