"""The one worker-child lifecycle: its restart backoff, outcomes, command and environment."""

from __future__ import annotations

import sys

import pytest

from worker.hosting.children import ChildOutcome, RestartBackoff, worker_command, worker_env


def test_a_child_that_keeps_dying_waits_twice_as_long_each_time_up_to_the_cap() -> None:
    backoff = RestartBackoff(first_s=0.5, max_s=4.0, stable_after_s=30.0)
    assert [backoff.delay(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_child_that_lived_long_restarts_at_once_and_the_delays_start_over() -> None:
    backoff = RestartBackoff(first_s=0.5, stable_after_s=30.0)
    assert [backoff.delay(1.0) for _ in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.delay(30.0) == 0.0
    assert backoff.delay(1.0) == 0.5


def test_a_child_that_did_not_start_counts_as_a_short_life() -> None:
    backoff = RestartBackoff(first_s=0.2)
    assert [backoff.delay(None) for _ in range(3)] == pytest.approx([0.2, 0.4, 0.8])


def test_reset_sets_the_next_delay() -> None:
    backoff = RestartBackoff()
    backoff.delay(1.0)
    backoff.delay(1.0)
    backoff.reset(0.0)  # a restart the user asked for: at once, then the usual delays
    assert [backoff.delay(1.0), backoff.delay(1.0)] == [0.0, 0.5]


def test_outcomes_say_how_the_child_ended() -> None:
    killed = ChildOutcome.from_returncode(-9, 3.2)
    assert killed.crashed and killed.exit_code == 9
    assert str(killed) == "worker crashed (signal 9) after 3 s"
    assert str(ChildOutcome.from_returncode(1, 40.0)) == "worker exited with code 1 after 40 s"


def test_the_queue_url_goes_in_the_environment_never_on_the_command_line() -> None:
    url = "redis+socket://:secret@/run/server.sock"
    command = worker_command("--loglevel", "ERROR")
    assert command[:4] == [sys.executable, "-m", "worker", "worker"]
    assert "--exit-with-parent" in command and not any("secret" in part for part in command)
    env = worker_env(url, {"PATH": "/bin"}, PROMPTSPOOL_HOME="/h")
    assert env == {"PATH": "/bin", "PROMPTSPOOL_HOME": "/h", "PROMPTSPOOL_REDIS_URL": url}
    assert "--exit-with-parent" not in worker_command(exit_with_parent=False)
