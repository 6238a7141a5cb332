"""Judging workers lost from their heartbeat counters, in contact time: pauses fool nobody."""

from __future__ import annotations

from worker.queue.heartbeats import HeartbeatWatch


def rounds(
    watch: HeartbeatWatch, beats: list[dict[str, int | None]], every: float = 1.0
) -> list[set[str]]:
    return [watch.observe(counters, now=n * every) for n, counters in enumerate(beats)]


def test_a_worker_whose_counter_stands_still_for_the_ttl_is_lost() -> None:
    watch = HeartbeatWatch(ttl=3.0, max_gap=2.0)
    beats: list[dict[str, int | None]] = [{"a": 1, "b": 1}, {"a": 2, "b": 1}, {"a": 3, "b": 1}]
    beats += [{"a": 4, "b": 1}, {"a": 5, "b": 1}]
    assert rounds(watch, beats) == [set(), set(), set(), {"b"}, {"b"}]


def test_a_beat_starts_the_time_afresh() -> None:
    watch = HeartbeatWatch(ttl=3.0, max_gap=2.0)
    beats: list[dict[str, int | None]] = [{"a": 1}, {"a": 1}, {"a": 1}, {"a": 2}, {"a": 2}]
    assert rounds(watch, beats) == [set()] * 5


def test_a_late_round_judges_nobody_and_gives_everyone_a_fresh_ttl() -> None:
    """The watcher, the server or the machine stopped: no counter could move meanwhile."""
    watch = HeartbeatWatch(ttl=3.0, max_gap=2.0)
    assert watch.observe({"a": 1}, now=0.0) == set()
    assert watch.observe({"a": 1}, now=2.0) == set()  # 2 s of contact
    assert watch.observe({"a": 1}, now=40.0) == set()  # a 38 s stall: not held against "a"
    assert watch.observe({"a": 1}, now=42.0) == set()  # 2 s of contact since
    assert watch.observe({"a": 1}, now=43.0) == {"a"}  # 3 s: lost


def test_a_worker_that_never_beat_is_watched_from_when_it_is_first_seen() -> None:
    watch = HeartbeatWatch(ttl=2.0, max_gap=2.0)
    assert [watch.observe({"a": None}, now=t) for t in (0.0, 1.0, 2.0)] == [set(), set(), {"a"}]


def test_a_counter_that_disappears_does_not_count_as_a_beat() -> None:
    watch = HeartbeatWatch(ttl=2.0, max_gap=2.0)
    assert [watch.observe(c, now=t) for t, c in ((0.0, {"a": 5}), (1.0, {"a": None}))] == [
        set(),
        set(),
    ]
    assert watch.observe({"a": None}, now=2.0) == {"a"}


def test_workers_no_longer_asked_about_are_forgotten() -> None:
    watch = HeartbeatWatch(ttl=2.0, max_gap=2.0)
    watch.observe({"a": 1}, now=0.0)
    watch.observe({}, now=1.0)
    assert watch.observe({"a": 1}, now=2.0) == set()  # seen afresh
