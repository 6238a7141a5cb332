"""Following up a finished job: the editor's follow-up mode, the thread, and a real run."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from desktop.controller import Controller
from desktop.window.editor import EditorPanel
from worker.jobs.followup import conversation
from worker.jobs.job import Job, JobState
from worker.jobs.spec import JobSpec, Message
from worker.testing.harness import Queue

WAIT_MS = 90_000


def state_of(desk: Controller, job_id: str) -> JobState | None:
    row = desk.jobs.job(job_id)
    return row.state if row is not None else None


def followed(editor: EditorPanel) -> str | None:
    """The id of the job the editor follows up (None: it writes new jobs)."""
    return editor.following.id if editor.following is not None else None


def test_a_finished_job_is_followed_up_and_the_thread_reads_in_order(
    qtbot: QtBot, desk: Controller, queue: Queue, stories_model: Path, tiny_model: Path
) -> None:
    queue.start_worker()
    parent_spec = JobSpec(
        model=str(stories_model),
        prompt="Once upon a time",
        system="Tell a short story.",
        title="the first story",
        max_tokens=12,
        temperature=0.3,
        seed=7,
    )
    [parent] = queue.client.submit([parent_spec])
    window, editor, detail = desk.window, desk.window.editor, desk.window.detail
    follow_action = window.actions_by_name["follow_up"]
    qtbot.waitUntil(lambda: desk.jobs.job(parent) is not None, timeout=WAIT_MS)
    window.select_job(parent)
    qtbot.waitUntil(lambda: state_of(desk, parent) is JobState.succeeded, timeout=WAIT_MS)
    qtbot.waitUntil(detail.follow_up_button.isEnabled, timeout=WAIT_MS)
    qtbot.waitUntil(follow_action.isEnabled, timeout=WAIT_MS)
    output = queue.client.get(parent).output
    assert output
    # Another model and system prompt in the editor: the follow-up takes the parent's.
    desk.commands.choose_model(str(tiny_model))
    editor.system.setPlainText("something else")
    with qtbot.waitSignal(editor.follow_up_changed, timeout=WAIT_MS):
        QTest.mouseClick(detail.follow_up_button, Qt.MouseButton.LeftButton)
    assert followed(editor) == parent
    assert not editor.follow_bar.isHidden()
    assert editor.follow_label.toolTip() == "Following up on “the first story”"
    assert editor.picker.current_model() == str(stories_model.resolve())  # the parent's model
    assert editor.system.toPlainText() == "Tell a short story."
    assert editor.sampling.values()["max_tokens"] == 12 and editor.seed.value() == 7
    editor.sampling.box("max_tokens").setValue(10)  # changed for this turn
    editor.prompt.setPlainText("And then?")
    with qtbot.waitSignal(desk.commands.submitted, timeout=WAIT_MS) as submitted:
        editor.submit()
    [child] = submitted.args[0]
    spec = queue.client.get(child, with_output=False).spec
    assert spec.parent == parent and spec.prompt is None and spec.system is None
    assert spec.messages == [
        Message(role="system", content="Tell a short story."),
        Message(role="user", content="Once upon a time"),
        Message(role="assistant", content=output),
        Message(role="user", content="And then?"),
    ]
    assert (spec.model, spec.max_tokens, spec.seed, spec.temperature) == (
        str(stories_model.resolve()),  # the queue keeps the model's resolved path
        10,
        7,
        0.3,
    )
    # The editor is back to new jobs, as it was.
    assert followed(editor) is None and editor.follow_bar.isHidden()
    assert editor.picker.current_model() == str(tiny_model)
    assert editor.system.toPlainText() == "something else"
    qtbot.waitUntil(lambda: state_of(desk, child) is JobState.succeeded, timeout=WAIT_MS)
    assert queue.client.get(child).output
    # The follow-up shows the conversation and leads back to the job it continues.
    qtbot.waitUntil(lambda: detail.job_id == child, timeout=WAIT_MS)
    assert not detail.parent_link.isHidden()
    assert "Follows up on" in detail.parent_link.text()
    assert "the first story" in detail.parent_link.text()
    shown = detail.prompt.toPlainText()
    assert shown.index("Once upon a time") < shown.index(output) < shown.index("And then?")
    detail.parent_link.linkActivated.emit(parent)  # what clicking the link does
    assert window.table.current_job() == parent
    qtbot.waitUntil(lambda: detail.job_id == parent, timeout=WAIT_MS)
    assert detail.parent_link.isHidden()


def test_leaving_follow_up_mode_restores_the_editor(
    qtbot: QtBot, desk: Controller, queue: Queue, tiny_model: Path, chat_model: Path
) -> None:
    queue.start_worker()
    spec = JobSpec(model=str(chat_model), prompt="Hi", max_tokens=4, prompt_format="chatml")
    [parent] = queue.client.submit([spec])
    qtbot.waitUntil(lambda: state_of(desk, parent) is JobState.succeeded, timeout=WAIT_MS)
    editor = desk.window.editor
    desk.commands.choose_model(str(tiny_model))
    before = editor.defaults()
    desk.window.select_job(parent)
    action = desk.window.actions_by_name["follow_up"]
    qtbot.waitUntil(action.isEnabled, timeout=WAIT_MS)
    with qtbot.waitSignal(editor.follow_up_changed, timeout=WAIT_MS):
        action.trigger()  # Jobs > Follow up…
    assert editor.prompt_format.prompt_format() == "chatml"
    assert editor.picker.current_model() == str(chat_model)
    with qtbot.waitSignal(editor.follow_up_changed, timeout=WAIT_MS) as left:
        editor.leave_button.click()
    assert left.args == [""] and followed(editor) is None
    assert editor.defaults() == before


def test_a_follow_up_of_a_conversation_continues_its_messages() -> None:
    """A follow-up of a follow-up: the whole thread, its system message once, in order."""
    turns = [
        Message(role="system", content="Be kind."),
        Message(role="user", content="one"),
        Message(role="assistant", content="two"),
        Message(role="user", content="three"),
    ]
    job = Job(
        id="abc",
        spec=JobSpec(model="/m.gguf", messages=turns, parent="xyz"),
        state=JobState.succeeded,
        created_at=0.0,
        output="four",
    )
    assert conversation(job, "five") == [
        *turns,
        Message(role="assistant", content="four"),
        Message(role="user", content="five"),
    ]
    assert conversation(job, "five", system="")[0] == Message(role="user", content="one")
    changed = conversation(job, "five", system="Be brief.")
    assert changed[0] == Message(role="system", content="Be brief.")
    assert [m.role for m in changed].count("system") == 1
