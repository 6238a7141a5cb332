"""Remote endpoints in the window: the settings form, their keys, the model picker, waiting jobs."""

from __future__ import annotations

import json
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox, QTableWidget
from pytestqt.qtbot import QtBot

from desktop.jobs.model import Column, JobsModel
from desktop.jobs.row import JobRow
from desktop.services.settingschecks import SettingsChecks
from desktop.window.detail import DetailPane
from desktop.window.editor import EditorPanel
from desktop.window.endpointform import EndpointForm
from desktop.window.modelpicker import ModelPicker
from desktop.window.settingsdialog import SettingsDialog
from worker.endpoints.config import Endpoint
from worker.endpoints.keystore import KEYS_FILE_NAME
from worker.jobs.job import Job, JobState
from worker.jobs.spec import JobSpec
from worker.settings import Settings, load_settings

WAIT_MS = 15_000
MODELS = {"object": "list", "data": [{"id": "m1", "object": "model"}]}


class _Models(BaseHTTPRequestHandler):
    """GET /v1/models answers one model; anything else 404."""

    seen_keys: list[str | None] = []

    def do_GET(self) -> None:
        type(self).seen_keys.append(self.headers.get("Authorization"))
        body = json.dumps(MODELS if self.path == "/v1/models" else {}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def models_url() -> Iterator[str]:
    """A real OpenAI-shaped /v1/models on 127.0.0.1 (port chosen by the system)."""
    _Models.seen_keys = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def closed_url() -> str:
    """An address where nothing listens (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys go to the 0600 file in the test home, whatever keyring this machine has."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


def open_form(qtbot: QtBot, dialog: SettingsDialog, row: int | None = None) -> EndpointForm:
    endpoints = dialog.endpoint_list
    qtbot.waitUntil(lambda: endpoints.facts is not None, timeout=WAIT_MS)
    if row is None:
        endpoints.add_button.click()
    else:
        endpoints.table.selectRow(row)
        endpoints.edit_button.click()
    form = endpoints.findChild(EndpointForm)
    assert form is not None and form.isVisible()
    return form


def cells(table: QTableWidget, row: int) -> list[str]:
    items = [table.item(row, column) for column in range(table.columnCount())]
    return [item.text() if item is not None else "" for item in items]


def ok(form: EndpointForm) -> None:
    form.buttons.button(QDialogButtonBox.StandardButton.Ok).click()


def test_the_form_names_a_bad_field_and_refuses_a_taken_name(
    qtbot: QtBot, isolated_home: Path
) -> None:
    settings = load_settings()
    settings.endpoints = [Endpoint(name="lab", base_url="http://lab:8080/v1")]
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    form = open_form(qtbot, dialog)
    form.name.setText("cloud")
    form.base_url.setText("ftp://example.com/v1")
    ok(form)
    note = form.notes["base_url"]
    assert form.isVisible() and not note.isHidden()
    assert note.text().startswith("Base URL:") and "http:// or https://" in note.text()
    form.base_url.setText("https://api.example.com/v1")
    form.name.setText("lab")
    ok(form)
    assert form.isVisible() and "already named 'lab'" in form.notes["name"].text()
    assert form.notes["base_url"].isHidden()
    form.name.setText("bad name")
    ok(form)
    assert form.notes["name"].text().startswith("Name: letters, digits")
    form.name.setText("cloud")
    ok(form)
    assert not form.isVisible()
    names = [e.name for e in dialog.endpoint_list.endpoints()]
    assert names == ["lab", "cloud"]


def test_a_key_goes_to_the_key_store_never_to_the_settings_file(
    qtbot: QtBot, isolated_home: Path, models_url: str
) -> None:
    secret = "sk-test-0123456789"
    dialog = SettingsDialog(load_settings())
    qtbot.addWidget(dialog)
    form = open_form(qtbot, dialog)
    assert form.key.echoMode() == form.key.EchoMode.Password
    keys_file = isolated_home / "config" / KEYS_FILE_NAME
    assert str(keys_file) in form.key.placeholderText()
    form.name.setText("lab")
    form.base_url.setText(models_url)
    form.key.setText(secret)
    form.max_concurrency.setValue(2)
    form.rpm.setValue(30)
    ok(form)
    table = dialog.endpoint_list.table
    assert cells(table, 0) == ["lab", models_url, "2", "30", "set"]
    dialog.remote_tries.setValue(5)
    dialog.api_rate.setValue(120)
    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS) as saved:
        dialog.save()

    text = (isolated_home / "config" / "settings.json").read_text()
    assert secret not in text
    stored = json.loads(text)
    assert stored["endpoints"] == [
        {"name": "lab", "base_url": models_url, "max_concurrency": 2, "requests_per_minute": 30}
    ]
    assert (stored["remote_max_tries"], stored["http_rate_limit_rpm"]) == (5, 120)
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert json.loads(keys_file.read_text()) == {"lab": secret}
    emitted = saved.args[0]
    assert isinstance(emitted, Settings) and emitted.endpoints[0].api_key is None
    reloaded = load_settings()
    assert reloaded.endpoint_key(reloaded.endpoints[0]) == secret


def test_a_kept_key_is_never_shown_follows_a_rename_and_goes_with_its_endpoint(
    qtbot: QtBot, isolated_home: Path, models_url: str
) -> None:
    secret = "sk-test-0123456789"
    settings = load_settings()
    settings.endpoints = [Endpoint(name="lab", base_url=models_url, api_key=secret)]
    settings.save()
    keys_file = isolated_home / "config" / KEYS_FILE_NAME
    reloaded = load_settings()
    assert secret not in (isolated_home / "config" / "settings.json").read_text()

    # Shown again: never the key; an empty field keeps it; the test sends it.
    again = SettingsDialog(reloaded)
    qtbot.addWidget(again)
    form = open_form(qtbot, again, 0)
    assert form.key.text() == "" and form.key.placeholderText().startswith("••• (kept in")
    assert cells(again.endpoint_list.table, 0)[4] == "set"
    form.test_button.click()
    qtbot.waitUntil(lambda: form.test_result.text() == "1 model: m1", timeout=WAIT_MS)
    assert _Models.seen_keys[-1] == f"Bearer {secret}"
    form.name.setText("lab2")  # renamed: the key follows it
    ok(form)
    with qtbot.waitSignal(again.saved, timeout=WAIT_MS):
        again.save()
    assert json.loads(keys_file.read_text()) == {"lab2": secret}

    # Removed: its key is deleted on save.
    last = SettingsDialog(load_settings())
    qtbot.addWidget(last)
    qtbot.waitUntil(lambda: last.endpoint_list.facts is not None, timeout=WAIT_MS)
    last.endpoint_list.table.selectRow(0)
    last.endpoint_list.remove_button.click()
    with qtbot.waitSignal(last.saved, timeout=WAIT_MS):
        last.save()
    assert json.loads(keys_file.read_text()) == {}
    assert load_settings().endpoints == []


def test_the_form_test_tells_why_an_endpoint_fails(
    qtbot: QtBot, isolated_home: Path, closed_url: str
) -> None:
    dialog = SettingsDialog(load_settings())
    qtbot.addWidget(dialog)
    form = open_form(qtbot, dialog)
    form.name.setText("down")
    form.base_url.setText(closed_url)
    form.test_button.click()
    qtbot.waitUntil(lambda: "cannot be reached" in form.test_result.text(), timeout=WAIT_MS)
    assert "'down'" in form.test_result.text() and form.test_button.isEnabled()


def test_a_remote_default_model_needs_no_local_file(isolated_home: Path) -> None:
    settings = load_settings()
    lab = Endpoint(name="lab", base_url="http://lab:8080/v1")
    checks = SettingsChecks(settings)
    assert "model" in checks.check({"model": Path("lab/m1")}).errors  # no such endpoint
    found = checks.check({"model": Path("lab/m1"), "endpoints": [lab]})
    assert not found.errors


def test_the_picker_lists_the_endpoints_models_and_why_one_fails(
    qtbot: QtBot, isolated_home: Path, models_url: str, closed_url: str, tiny_model: Path
) -> None:
    settings = load_settings()
    settings.endpoints = [
        Endpoint(name="lab", base_url=models_url),
        Endpoint(name="down", base_url=closed_url),
    ]
    picker = ModelPicker()
    qtbot.addWidget(picker)
    picker.set_models([str(tiny_model)])
    picker.set_settings(settings)
    picker.show()  # the lists are asked for now, off the GUI thread
    qtbot.waitUntil(
        lambda: (
            len(picker.remote_lists()) == 2 and not any(r.pending for r in picker.remote_lists())
        ),
        timeout=WAIT_MS,
    )
    assert picker.choices() == [str(tiny_model), "lab/m1"]
    assert picker.models() == [str(tiny_model)]
    combo = picker.combo
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert "lab/m1" in texts
    failure = next(i for i, text in enumerate(texts) if "'down'" in text)
    assert "cannot be reached" in texts[failure]
    assert not combo.model().flags(combo.model().index(failure, 0)) & Qt.ItemFlag.ItemIsEnabled

    with qtbot.waitSignal(picker.model_changed) as changed:
        combo.setCurrentIndex(combo.findData("lab/m1"))
    assert changed.args == ["lab/m1"] and picker.current_model() == "lab/m1"
    assert picker.info.text() == f"Runs m1 on the endpoint lab ({models_url})"
    assert picker.format_line.isHidden()
    picker.set_info("lab/m1", "lab/m1: no such file", ok=False)  # a local reading: ignored
    assert "no such file" not in picker.info.text()

    # A used remote model comes back as a recent one; the list is not asked for again.
    asked = len(_Models.seen_keys)
    picker.choose("lab/m1")
    assert picker.models()[0] == "lab/m1" and picker.choices().count("lab/m1") == 1
    picker.hide()
    picker.show()
    assert len(_Models.seen_keys) == asked


def test_a_queued_job_waiting_for_its_next_try_counts_down(qtbot: QtBot) -> None:
    spec = JobSpec(model="lab/m1", prompt="hello")
    job = Job.model_validate(
        {
            "id": "job000001",
            "spec": spec,
            "state": JobState.queued,
            "seq": 1,
            "created_at": 1000.0,
            "queue_position": 1,
            "retry_at": 1012.0,
            "tries": 2,
            "max_tries": 8,
            "retry_note": "rate limited (429): slow down",
        }
    )
    model = JobsModel()
    clock = [1000.0]
    model._clock = lambda: clock[0]
    model.sync([JobRow.from_job(job)])
    cell = model.index(0, Column.PROGRESS)
    assert cell.data() == job.waiting_note(at=1000.0, brief=True) == "next try in 12 s (3/8)"
    tip = cell.data(Qt.ItemDataRole.ToolTipRole)
    assert tip == "rate limited (429): slow down, next try in 12 s (try 3 of 8)"
    clock[0] = 1005.0
    with qtbot.waitSignal(model.dataChanged) as changed:
        model.tick()
    assert changed.args[0].column() == Column.PROGRESS
    assert "next try in 7 s" in cell.data()

    detail = DetailPane()
    qtbot.addWidget(detail)
    detail.load(job.model_copy(update={"retry_at": job.created_at + 1e9}), {})
    assert not detail.waiting.isHidden()
    assert detail.waiting.text().startswith("Waiting: rate limited (429): slow down, next try")
    detail.update_job(job.model_copy(update={"retry_at": None}))
    assert detail.waiting.isHidden()


def test_a_job_waiting_for_an_endpoints_slot_says_why(qtbot: QtBot) -> None:
    spec = JobSpec(model="lab/m1", prompt="hi")
    fields = {"id": "job000002", "spec": spec, "state": JobState.loading, "created_at": 1000.0}
    job = Job.model_validate(fields)
    model = JobsModel()
    model.sync([JobRow.from_job(job)])
    note = "waiting for endpoint 'lab': 4 of 4 requests busy"
    row = JobRow.from_job(job).with_progress({"attempt": 1, "phase": "waiting", "note": note})
    assert row is not None and row.phase == "loading" and row.note == note
    model.sync([row])
    assert model.index(0, Column.PROGRESS).data() == note, "no brief form sent: the note"
    assert row.merged(JobRow.from_job(job)).note == note, "kept while it still waits"
    running = row.with_progress({"attempt": 1, "phase": "prompt", "done": 0, "total": 1})
    assert running is not None and running.note is None


def test_the_editor_builds_a_job_for_a_remote_model(qtbot: QtBot, isolated_home: Path) -> None:
    settings = load_settings()
    settings.endpoints = [Endpoint(name="lab", base_url="http://127.0.0.1:9/v1")]
    editor = EditorPanel(settings)
    qtbot.addWidget(editor)
    editor.picker.select("lab/m1")  # e.g. a follow-up of a remote job, or a recent model
    editor.prompt.setPlainText("hello")
    with qtbot.waitSignal(editor.submit_requested) as submitted:
        editor.submit()
    assert submitted.args[0].model == "lab/m1" and editor.message.isHidden()
