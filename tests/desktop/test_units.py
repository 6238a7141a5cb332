"""Small desktop pieces: notifications summed up, texts, stop strings, icons, model metadata."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from desktop.common import formatting
from desktop.common.icons import action_icon, app_icon, resources_dir, state_icon
from desktop.services.actions import ActionResult
from desktop.window.editor import format_stop, parse_stop
from desktop.window.notifier import Finished, Notifier, compose
from desktop.window.statusbar import gpu_text
from desktop.window.tray import Tray, tray_summary
from worker.jobs.job import JobState
from worker.modelfile.info import read_model_info


def test_several_finished_jobs_make_one_notification() -> None:
    done = [Finished(f"j{n}", f"job {n}", JobState.succeeded) for n in range(11)]
    failed = Finished("bad", "broken job", JobState.failed, "model exploded")
    note = compose([*done[:5], failed, *done[5:]])
    assert note.message == "12 jobs finished, 1 failed"
    assert note.job_id == "bad"  # clicking opens the one that failed
    assert compose(done[:1]) == compose([done[0]])
    assert compose([failed]).title == "Job failed"
    assert compose([failed]).message == "broken job: model exploded"
    assert compose(done[:3]).message == "3 jobs finished"


def test_notifier_coalesces_and_can_be_turned_off(qtbot: QtBot) -> None:
    notifier = Notifier()
    with qtbot.waitSignal(notifier.notified, timeout=10_000) as note:
        notifier.job_finished("a", "first", JobState.succeeded, None)
        notifier.job_finished("a", "first", JobState.succeeded, None)  # the same job once
        notifier.job_finished("b", "second", JobState.failed, "oops")
        notifier.job_finished("c", "third", JobState.cancelled, None)  # not notified
    assert note.args == ["PromptSpool", "2 jobs finished, 1 failed", "b"]
    emitted: list[object] = []
    notifier.notified.connect(emitted.append)
    notifier.enabled = False
    notifier.job_finished("d", "fourth", JobState.succeeded, None)
    notifier.flush()
    assert emitted == []


def test_tray_tooltip_tells_the_queue_state(qtbot: QtBot) -> None:
    counts = Counter({JobState.running: 1, JobState.queued: 3, JobState.failed: 2})
    assert tray_summary(counts, paused=False, reachable=True) == "running 1 · queued 3 · failed 2"
    assert tray_summary(Counter(), paused=False, reachable=True) == "idle"
    assert tray_summary(Counter(), paused=True, reachable=True) == "paused · idle"
    assert tray_summary(counts, paused=False, reachable=False) == "queue not reachable"
    tray = Tray(Notifier())
    tray.update_state(counts, paused=True, reachable=True)
    assert tray.icon.toolTip() == "PromptSpool — paused · running 1 · queued 3 · failed 2"
    assert tray.pause_action.text() == "Resume the queue"
    tray.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("END", ["END"]),
        ("###, \\n\\n, a\\,b", ["###", "\n\n", "a,b"]),
        (" x ,, y", ["x", "y"]),
        ("back\\\\slash", ["back\\slash"]),
    ],
)
def test_stop_strings_round_trip(text: str, expected: list[str]) -> None:
    assert parse_stop(text) == expected
    assert parse_stop(format_stop(expected)) == expected


def test_human_texts() -> None:
    assert formatting.duration(None) == ""
    assert formatting.duration(0.42) == "0.4s"
    assert formatting.duration(42) == "42s"
    assert formatting.duration(185) == "3m 05s"
    assert formatting.duration(7620) == "2h 07m"
    assert formatting.progress_text("prompt", 12, 40, False) == "prompt 12/40"
    assert formatting.progress_text("generating", 37, 512, False) == "37 / 512"
    assert formatting.progress_text("generating", 1200, 1200, True) == "1,200 tokens"
    assert formatting.plural(1, "job") == "1 job" and formatting.plural(2, "job") == "2 jobs"
    result = ActionResult("Cancelled", ["a"], [("b", "job b has already succeeded")])
    assert result.summary() == "Cancelled 1 job; skipped 1 (job b has already succeeded)"


def test_icons_come_from_resources(qtbot: QtBot) -> None:
    assert (resources_dir() / "promptspool.desktop").is_file()
    for icon in [app_icon(), action_icon("retry"), *(state_icon(s) for s in JobState)]:
        assert not icon.isNull()
        assert not icon.pixmap(32, 32).isNull()


def test_model_metadata(chat_model: Path, tiny_model: Path, tmp_path: Path) -> None:
    info = read_model_info(chat_model)
    assert (info.architecture, info.context_length, info.chat_template) == ("llama", 4096, True)
    assert info.quantization == "F32" and info.parameters and info.parameters > 100_000
    assert "chat template" in info.summary() and "4,096 ctx" in info.summary()
    assert not read_model_info(tiny_model).chat_template
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\x00" * 8)
    with pytest.raises(ValueError, match="cannot read its GGUF metadata"):
        read_model_info(fake)
    with pytest.raises(ValueError, match="no such file"):
        read_model_info(tmp_path / "missing.gguf")


def test_status_bar_says_why_the_gpu_is_not_used() -> None:
    cpu_build = "a GPU is present but llama.cpp was built for the CPU only (rebuild it: ...)"
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([], "GPU: unknown"),
        ([{"model": None}], "GPU: no model loaded"),
        ([{"model": "m.gguf", "gpu": {"active": True, "layers_offloaded": 33,
                                       "layers_total": 33}}], "GPU offload: 33/33 layers"),
        ([{"model": "m.gguf", "gpu": {"active": False, "reason": cpu_build}}],
         "CPU only: llama.cpp is a CPU build"),
        ([{"model": "m.gguf", "gpu": {"active": False, "reason": "n_gpu_layers is 0"}}],
         "CPU only: GPU layers set to 0"),
    ]  # fmt: skip
    for workers, text in cases:
        _, shown, tip = gpu_text(workers)
        assert shown == text
        assert tip
    assert gpu_text(cases[3][0])[2] == f"CPU only: {cpu_build}"


def test_qt_calls_keep_none_alive(qtbot: QtBot) -> None:
    """PySide6 6.12.0 on Python 3.11 dropped one reference to None per Qt call returning
    nothing, and the app aborted with 'none_dealloc' after enough of them (pyproject
    excludes that version). 10,000 calls must leave None's count where it was."""
    import sys

    from PySide6.QtWidgets import QLabel

    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(10_000):
        label.setText("x")
    assert abs(sys.getrefcount(None) - before) < 100
