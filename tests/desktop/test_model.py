"""The jobs table model and its filter: Qt's model checks, incremental updates, 10,000 rows."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

from desktop.jobs.filtering import JobsFilter
from desktop.jobs.model import Column, JobsModel, Role
from desktop.jobs.row import JobRow
from worker.jobs.job import Job, JobState
from worker.jobs.spec import JobSpec
from worker.queue.events import Event


def make_job(n: int, state: JobState = JobState.queued, **fields: object) -> Job:
    spec = JobSpec(model="/models/tiny.gguf", prompt=f"Prompt number {n}\nsecond line")
    started = 1000.0 + n if state is not JobState.queued else None
    values: dict[str, object] = {
        "id": f"job{n:06d}",
        "spec": spec,
        "state": state,
        "seq": n,
        "created_at": 1000.0 + n,
        "started_at": started,
        "queue_position": n if state is JobState.queued else None,
    }
    values.update(fields)
    return Job.model_validate(values)


def rows(jobs: Iterator[Job] | list[Job]) -> list[JobRow]:
    return [JobRow.from_job(job) for job in jobs]


def progress(job_id: str, attempt: int = 1, **data: object) -> Event:
    payload = {"type": "progress", "id": job_id, "attempt": attempt, **data}
    return Event("ps:ev", "1-0", payload)


@pytest.fixture
def model() -> JobsModel:
    model = JobsModel()
    model.sync(rows([make_job(1, JobState.succeeded, completion_tokens=20),
                     make_job(2, JobState.running), make_job(3), make_job(4)]))  # fmt: skip
    return model


@pytest.mark.parametrize("force_py", [False, True], ids=["qt-tester", "python-tester"])
def test_model_passes_the_model_tester_through_updates(
    qtmodeltester: ModelTester, force_py: bool
) -> None:
    model = JobsModel()
    qtmodeltester.check(model, force_py=force_py)  # type: ignore[no-untyped-call]
    model.sync(rows([make_job(n) for n in range(1, 6)]))
    model.upsert(rows([make_job(2, JobState.loading), make_job(6), make_job(7)]))
    model.apply_progress([progress("job000002", phase="prompt", done=5, total=10)])
    model.apply_positions({"job000003": 1, "job000004": 2})
    model.remove(["job000001", "job000005", "job000006"])
    model.sync(rows([make_job(3, JobState.cancelled), make_job(8)]))
    model.tick()
    proxy = JobsFilter(model)
    qtmodeltester.check(proxy, force_py=force_py)  # type: ignore[no-untyped-call]
    assert model.ids() == ["job000003", "job000008"]


def test_rows_show_state_progress_and_position(model: JobsModel) -> None:
    def cell(row: int, column: Column, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        return model.data(model.index(row, column), role)

    assert cell(0, Column.STATE) == "succeeded"
    assert cell(0, Column.PROGRESS) == "20 tokens"
    assert cell(0, Column.TITLE) == "Prompt number 1"
    assert cell(1, Column.PROGRESS) == "0 / 512"
    assert cell(2, Column.POSITION) == "3"
    assert cell(2, Column.PROGRESS) == ""
    assert cell(0, Column.STATE, Qt.ItemDataRole.DecorationRole) is not None
    assert cell(3, Column.TITLE, Role.JOB_ID) == "job000004"
    assert model.headerData(Column.TPS, Qt.Orientation.Horizontal) == "Tok/s"


def test_progress_events_patch_one_row_and_ignore_stale_ones(
    qtbot: QtBot, model: JobsModel
) -> None:
    changed: list[tuple[int, int, int]] = []
    model.dataChanged.connect(
        lambda top, bottom, _roles=(): changed.append((top.row(), top.column(), bottom.column()))
    )
    model.apply_progress(
        [
            progress("job000002", phase="generating", done=100, total=512, tps=42.5, eta=9.7),
            progress("job000002", attempt=0, phase="generating", done=1, total=512),  # stale
            progress("job000001", phase="generating", done=1, total=512),  # finished job
            progress("job000003", phase="loading", done=0, total=1),  # still queued
            progress("unknown", phase="generating", done=1, total=2),
        ]
    )
    assert changed == [(1, Column.PROGRESS, Column.TPS)]
    row = model.job("job000002")
    assert row is not None and (row.done, row.total, row.tps) == (100, 512, 42.5)
    assert model.data(model.index(1, Column.TPS)) == "42.5"


def test_ledger_refresh_keeps_live_progress(model: JobsModel) -> None:
    model.apply_progress([progress("job000002", phase="generating", done=80, total=512, eta=3)])
    model.upsert(rows([make_job(2, JobState.running, completion_tokens=64)]))
    row = model.job("job000002")
    assert row is not None and row.done == 80 and row.eta == 3
    model.upsert(rows([make_job(2, JobState.succeeded, completion_tokens=90)]))
    row = model.job("job000002")
    assert row is not None and row.state is JobState.succeeded and row.fraction == 1.0


def test_filter_by_state_and_search(model: JobsModel) -> None:
    proxy = JobsFilter(model)
    assert proxy.rowCount() == 4
    proxy.set_states({JobState.queued})
    assert [proxy.job_id(proxy.index(r, 0)) for r in range(proxy.rowCount())] == [
        "job000003",
        "job000004",
    ]
    proxy.set_search("NUMBER 4")
    assert proxy.rowCount() == 1
    proxy.set_states(None)
    proxy.set_search("job000001")
    assert proxy.rowCount() == 1
    proxy.set_search("")
    proxy.sort(Column.STATE, Qt.SortOrder.DescendingOrder)
    assert proxy.job_id(proxy.index(0, 0)) == "job000001"  # succeeded sorts after queued
    model.upsert(rows([make_job(4, JobState.failed, error="model exploded")]))
    proxy.set_search("exploded")
    assert proxy.rowCount() == 1


def test_ten_thousand_jobs_load_and_update_in_place() -> None:
    model = JobsModel()
    proxy = JobsFilter(model)
    proxy.sort(Column.POSITION, Qt.SortOrder.AscendingOrder)
    resets: list[int] = []
    inserted: list[tuple[int, int]] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.rowsInserted.connect(lambda _p, first, last: inserted.append((first, last)))
    model.sync(rows([make_job(n) for n in range(1, 10_001)]))
    assert model.rowCount() == proxy.rowCount() == 10_000
    model.upsert(rows([make_job(10_001)]))
    assert inserted == [(10_000, 10_000)] and len(resets) == 1
    started = time.perf_counter()
    for step in range(50):  # four jobs streaming: progress patches touch single rows
        model.apply_progress(
            [progress(f"job{n:06d}", phase="prompt", done=step, total=50) for n in (1, 2, 3, 4)]
        )
    model.apply_positions({f"job{n:06d}": n - 1 for n in range(2, 10_002)})
    assert proxy.job_id(proxy.index(0, 0)) == "job000002"
    # Not a benchmark (bench/loop_stall.py is); a guard against quadratic updates.
    assert time.perf_counter() - started < 30
    assert model.rowCount(QModelIndex()) == 10_001
