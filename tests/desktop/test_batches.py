"""Batches in the window: the batch column, the batch filter and its counts, the end notice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.jobs.batches import BatchSummary, summarize
from desktop.jobs.filtering import JobsFilter
from desktop.jobs.model import Column, JobsModel
from desktop.jobs.row import JobRow
from desktop.window.dropsummary import headline
from desktop.window.notifier import Notifier, compose_batch
from tests.desktop.support import close_app, open_app
from tests.desktop.test_model import make_job
from worker.jobs.job import JobOrigin, JobState
from worker.jobs.spec import JobSpec
from worker.queue.batches.store import BatchStore
from worker.queue.events import announce
from worker.testing.harness import Queue

WAIT_MS = 90_000
ONE = "batch_0a1b2c3d4e5f60718293a4b5"
TWO = "batch_ffeeddccbbaa998877665544"


def cell(desk: Controller, job_id: str, column: Column, role: int = 0) -> object:
    row = desk.jobs.row_of(job_id)
    assert row is not None
    return desk.jobs.data(desk.jobs.index(row, column), role or Qt.ItemDataRole.DisplayRole)


def listed(desk: Controller) -> set[str]:
    proxy = desk.window.proxy
    return {str(proxy.job_id(proxy.index(n, 0))) for n in range(proxy.rowCount())}


def test_batch_jobs_are_listed_filtered_counted_and_told_once_when_the_batch_ends(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path
) -> None:
    client = queue.client
    spec = JobSpec(model=str(tiny_model), prompt="Tell me", max_tokens=4)
    first = client.submit(
        [spec] * 3, [JobOrigin(via="batch", batch=ONE, custom_id=f"r{n}") for n in range(3)]
    )
    [loose] = client.submit([spec.model_copy(update={"title": "loose job"})])
    [other] = client.submit([spec], [JobOrigin(via="batch", batch=TWO, custom_id="x")])
    table, bar = desk.window.table, desk.window.filter
    qtbot.waitUntil(lambda: bar.batch.count() == 3, timeout=WAIT_MS)

    # The column shows while jobs have a batch, with the line's custom_id in its tooltip.
    assert not table.isColumnHidden(Column.BATCH) and not bar.batch.isHidden()
    assert cell(desk, first[0], Column.BATCH) == "0a1b2c3d · r0"
    assert (
        cell(desk, first[2], Column.BATCH, Qt.ItemDataRole.ToolTipRole) == f"batch {ONE}\nline r2"
    )
    assert cell(desk, loose, Column.BATCH) == ""
    assert [bar.batch.itemText(n) for n in range(3)] == [
        "All batches",
        "Batch 0a1b2c3d · 0/3",
        "Batch ffeeddcc · 0/1",
    ]

    # Choosing a batch lists its jobs only, and the state buttons count them.
    assert bar.choose_batch(ONE)
    assert listed(desk) == set(first)
    assert bar.buttons["All"].text() == "All 3"
    assert "3 queued" in bar.batch.toolTip()
    notified: list[tuple[str, str, str]] = []
    desk.notifier.notified.connect(lambda *args: notified.append(args))
    queue.start_worker()
    qtbot.waitUntil(lambda: bar.batch.itemText(1) == "Batch 0a1b2c3d · 3/3", timeout=WAIT_MS)
    assert bar.buttons["Succeeded"].text() == "Succeeded 3"
    assert listed(desk) == set(first)

    # The loose job is told as it ends; the batch's jobs are told once, with their batch.
    qtbot.waitUntil(lambda: bool(notified), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bar.batch.itemText(2) == "Batch ffeeddcc · 1/1", timeout=WAIT_MS)
    desk.notifier.flush()
    assert notified == [("Job finished", "loose job", loose)]
    counts = {"total": 3, "completed": 2, "failed": 1}
    with qtbot.waitSignal(desk.notifier.batch_notified, timeout=WAIT_MS) as note:
        announce(queue.redis, {"type": "batch", "state": "completed", "batch": ONE,
                               "counts": counts})  # fmt: skip
    assert note.args == ["Batch completed", f"{ONE}: 2 of 3 requests succeeded, 1 failed", ONE]
    qtbot.waitUntil(lambda: "completed" in bar.batch.toolTip(), timeout=WAIT_MS)

    # Clicking the notice of another batch lists that batch's jobs.
    desk.tray.batch_requested.emit(TWO)
    assert bar.current_batch() == TWO and listed(desk) == {other}
    # Once its jobs are cleared, the filter goes back to every job.
    client.forget(other)
    qtbot.waitUntil(lambda: bar.current_batch() is None, timeout=WAIT_MS)
    assert listed(desk) == {*first, loose}
    assert bar.batch.count() == 2
    # Selecting a job outside the chosen batch shows every job again.
    assert bar.choose_batch(ONE) and listed(desk) == set(first)
    assert desk.window.select_job(loose)
    assert bar.current_batch() is None
    for job_id in first:
        client.forget(job_id)
    qtbot.waitUntil(lambda: table.isColumnHidden(Column.BATCH), timeout=WAIT_MS)
    assert bar.batch.isHidden()


def test_how_a_batch_ended_is_read_from_the_queue_when_the_app_starts(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, queue: Queue, tiny_model: Path
) -> None:
    """The batch ended while no app ran: its end event was never seen, its record says it."""
    spec = JobSpec(model=str(tiny_model), prompt="Tell me", max_tokens=4)
    queue.client.submit([spec], [JobOrigin(via="batch", batch=ONE, custom_id="r0")])
    BatchStore(queue.redis).record(ONE, {"status": "cancelled", "endpoint": "/v1/completions",
                                         "input_file_id": "file-x", "completion_window": "24h",
                                         "created_at": 1})  # fmt: skip
    desk = open_app(qtbot, qloop, queue)
    try:
        bar = desk.window.filter
        qtbot.waitUntil(lambda: "cancelled" in bar.batch.itemData(1, Qt.ItemDataRole.ToolTipRole)
                        if bar.batch.count() == 2 else False, timeout=WAIT_MS)  # fmt: skip
    finally:
        close_app(qtbot, desk)


def test_the_model_counts_batches_and_the_filter_picks_one(qtbot: QtBot) -> None:
    def row(n: int, state: JobState, batch: str | None = None) -> JobRow:
        origin = JobOrigin(via="batch", batch=batch, custom_id=f"line-{n}") if batch else None
        return JobRow.from_job(make_job(n, state, origin=origin))

    model = JobsModel()
    model.sync(
        [row(1, JobState.succeeded, ONE), row(2, JobState.queued),
         row(3, JobState.failed, TWO), row(4, JobState.queued, ONE)]
    )  # fmt: skip
    assert model.batch_counts() == {
        ONE: Counter({JobState.succeeded: 1, JobState.queued: 1}),
        TWO: Counter({JobState.failed: 1}),
    }
    proxy = JobsFilter(model)

    def ids() -> list[str | None]:
        return [proxy.job_id(proxy.index(n, 0)) for n in range(proxy.rowCount())]

    proxy.set_batch(ONE)
    assert ids() == ["job000001", "job000004"]
    proxy.set_states({JobState.queued})
    assert ids() == ["job000004"]
    proxy.set_states(None)
    proxy.set_batch(None)
    proxy.set_search("LINE-3")  # a line's custom_id, or its batch's id
    assert ids() == ["job000003"]
    proxy.set_search(TWO[:12])
    assert ids() == ["job000003"]


def test_batch_summaries_and_notices_read_well(qtbot: QtBot) -> None:
    counts = Counter({JobState.succeeded: 7, JobState.failed: 1, JobState.queued: 2})
    long_id = "batch_0123456789abcdef01234567"
    [summary] = summarize({long_id: counts}, {long_id: "cancelled"})
    assert summary == BatchSummary(long_id, counts, "cancelled")
    assert summary.label() == "Batch 01234567 · 8/10"
    assert summary.describe() == "10 jobs: 2 queued, 7 succeeded, 1 failed · cancelled"
    note = compose_batch(long_id, "expired", {"total": 4, "completed": 4, "failed": 0})
    assert (note.title, note.message) == ("Batch expired", f"{long_id}: 4 of 4 requests succeeded")
    assert compose_batch("b", "failed", {}).message == "b"  # a file refused as a whole
    notifier = Notifier()
    emitted: list[object] = []
    notifier.notified.connect(lambda *args: emitted.append(args))
    notifier.job_finished("j", "a line", JobState.succeeded, None, batch="b")
    notifier.flush()
    assert emitted == []
    notifier.enabled = False
    notifier.batch_notified.connect(lambda *args: emitted.append(args))
    notifier.batch_finished("b", "completed", {"total": 1, "completed": 1})
    assert emitted == []


def batch_line(n: int, **body: object) -> str:
    """One line of an OpenAI batch file: a chat completion for the model named "tiny"."""
    request = {"model": "tiny", "messages": [{"role": "user", "content": f"Say {n}"}],
               "max_tokens": 4, **body}  # fmt: skip
    line = {"custom_id": f"req-{n}", "method": "POST", "url": "/v1/chat/completions"}
    return json.dumps({**line, "body": request})


def test_a_dropped_batch_file_becomes_a_batch_and_one_with_bad_lines_is_refused(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    desk.commands.choose_model(str(tiny_model))  # the model "tiny" names, and "default"
    good = tmp_path / "requests.jsonl"
    good.write_text("\n".join(batch_line(n) for n in range(3)) + "\n", encoding="utf-8")
    bad = tmp_path / "bad-requests.jsonl"
    lines = [batch_line(1), batch_line(2).replace('"POST"', '"GET"'), "{not json",
             batch_line(4, max_tokens=0)]  # fmt: skip
    bad.write_text("\n".join(lines), encoding="utf-8")
    story = tmp_path / "story.txt"
    story.write_text("Once upon a time", encoding="utf-8")
    with qtbot.waitSignal(desk.commands.drop_finished, timeout=WAIT_MS) as dropped:
        desk.window.files_dropped.emit([good, bad, story])
    outcome = dropped.args[0]
    batch_id = outcome.batches[good]
    assert batch_id.startswith("batch_") and list(outcome.batches) == [good]
    assert [(path, len(ids)) for path, ids in outcome.queued] == [(story, 1), (good, 3)]
    assert [r.path for r in outcome.refused] == [bad]
    problems = outcome.bad_lines[bad]
    assert [p.split(":")[0] for p in problems] == [
        "line 2 field 'method'",
        "line 3",
        "line 4 field 'body.max_tokens'",
    ]
    assert headline(outcome) == "Queued 4 jobs from 2 files (1 batch); refused 1 file."
    summary = desk.window.drop_summary
    assert summary is not None
    assert summary.rows()[0] == (str(bad), "OpenAI batch file not queued: 3 problems")
    assert summary.problems(0) == problems
    assert (str(good), f"batch {batch_id}: queued 3 jobs") in summary.rows()
    assert len(queue.client.list()) == 4  # nothing of the refused file

    # Its jobs are listed under their batch; once they ran, the batch ends and says so.
    bar = desk.window.filter
    qtbot.waitUntil(lambda: bar.batch.count() == 2, timeout=WAIT_MS)
    rows = [desk.jobs.job(i) for i in outcome.queued[1][1]]
    assert [(r.batch, r.custom_id) for r in rows if r] == [(batch_id, f"req-{n}") for n in range(3)]
    with qtbot.waitSignal(desk.notifier.batch_notified, timeout=WAIT_MS) as note:
        queue.start_worker()
    assert note.args == ["Batch completed", f"{batch_id}: 3 of 3 requests succeeded", batch_id]
