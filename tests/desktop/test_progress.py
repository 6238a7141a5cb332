"""Progress as the window shows it: the time left of running jobs, a model loading.

Where it comes from is tested on the worker's side: the steady ETA in tests/queue/test_eta.py,
'loading' until the model works and the time limit over a load in tests/runtime/."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.jobs.model import Column, JobsModel
from desktop.jobs.row import JobRow
from desktop.window.statusbar import QueueStatusBar
from tests.desktop.test_model import make_job, progress
from worker.jobs.job import JobState

# --- the table: time left, positions ------------------------------------------------------


def test_time_left_column_shows_the_eta_of_running_jobs() -> None:
    model = JobsModel()
    model.sync([JobRow.from_job(make_job(1, JobState.running)), JobRow.from_job(make_job(2))])
    assert model.headerData(Column.LEFT, Qt.Orientation.Horizontal) == "Left"
    model.apply_progress([progress("job000001", phase="generating", done=40, total=512)])
    assert model.data(model.index(0, Column.LEFT)) == ""  # not steady yet: nothing
    model.apply_progress([progress("job000001", phase="generating", done=60, total=512, eta=75)])
    assert model.data(model.index(0, Column.LEFT)) == "1m 15s"
    tip = model.data(model.index(0, Column.PROGRESS), Qt.ItemDataRole.ToolTipRole)
    assert tip == "about 1m 15s left"
    assert model.data(model.index(1, Column.LEFT)) == ""  # queued
    model.apply_positions({"job000002": 1})
    assert model.data(model.index(1, Column.POSITION)) == "1"
    tip = model.data(model.index(1, Column.POSITION), Qt.ItemDataRole.ToolTipRole)
    assert tip == "#1 in the queue (1 runs next)"


def test_status_bar_says_a_model_is_loading(qtbot: QtBot) -> None:
    bar = QueueStatusBar()
    qtbot.addWidget(bar)
    bar.set_workers([{"id": "w", "pid": 1}])
    assert bar.model.text() == "Model: none loaded"
    bar.set_loading(["gemma-270m.gguf"])
    assert bar.model.text() == "Model: loading gemma-270m.gguf…"
    bar.set_workers([{"id": "w", "pid": 1}])  # a heartbeat from before the load
    assert bar.model.text() == "Model: loading gemma-270m.gguf…"
    bar.set_workers([{"id": "w", "pid": 1, "model": "/m/gemma-270m.gguf"}])
    bar.set_loading([])
    assert bar.model.text() == "Model: gemma-270m.gguf"


def test_loading_models_are_the_loading_jobs() -> None:
    model = JobsModel()
    model.sync([JobRow.from_job(make_job(1, JobState.loading)), JobRow.from_job(make_job(2))])
    assert model.loading_models() == ["tiny.gguf"]
