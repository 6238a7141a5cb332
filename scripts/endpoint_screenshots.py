"""Screenshots of the remote endpoints in the window (offscreen; no queue, a local fake API).

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m scripts.endpoint_screenshots [--out DIR]

Writes endpoints-settings.png (the settings dialog's Remote endpoints), endpoint-form.png
(editing one, its Test answered) model-picker-remote.png (the editor's model list open,
with an endpoint's models and another's failure) and remote-jobs.png (the jobs table with
remote jobs waiting out a 429, waiting for a slot, streaming, failed).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"  # keys in the home

from PySide6.QtCore import QPoint
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from desktop.app import make_application
from desktop.jobs.filtering import JobsFilter
from desktop.jobs.model import JobsModel
from desktop.jobs.row import JobRow
from desktop.jobs.table import JobsTable
from desktop.window.editor import EditorPanel
from desktop.window.endpointform import EndpointForm
from desktop.window.settingsdialog import SettingsDialog
from scripts.shotkit import save, wait_until
from worker.endpoints.config import Endpoint
from worker.jobs.job import Job, JobState
from worker.jobs.spec import JobSpec
from worker.settings import load_settings

MODELS = ["llama-3.1-8b-instruct", "qwen2.5-7b-instruct", "mistral-nemo-12b"]


class _Models(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = [{"id": name, "object": "model"} for name in MODELS]
        body = json.dumps({"object": "list", "data": data}).encode()
        found = self.path == "/v1/models"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if found else b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def with_popup(widget: QWidget, popup: QWidget) -> QPixmap:
    """`widget` with an open combo list (a window of its own) painted where it shows."""
    base = widget.grab()
    shown = popup.grab()
    at = widget.mapFromGlobal(popup.mapToGlobal(QPoint(0, 0)))
    width = max(base.width(), at.x() + shown.width())
    height = max(base.height(), at.y() + shown.height())
    canvas = QPixmap(width, height)
    canvas.fill(widget.palette().window().color())
    painter = QPainter(canvas)
    painter.drawPixmap(0, 0, base)
    painter.drawPixmap(at, shown)
    painter.end()
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.endpoint_screenshots")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="ps-e-"))
    os.environ["PROMPTSPOOL_HOME"] = str(home)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    app = make_application()
    try:
        scenes(app, out, home, f"http://127.0.0.1:{server.server_address[1]}/v1")
    finally:
        server.shutdown()


def scenes(app: QApplication, out: Path, home: Path, lab_url: str) -> None:
    settings = load_settings()
    settings.endpoints = [
        Endpoint(name="lab", base_url=lab_url, max_concurrency=2),
        Endpoint(
            name="openai",
            base_url="https://api.openai.com/v1",
            api_key_env="OPENAI_API_KEY",
            requests_per_minute=60,
        ),
        Endpoint(name="gpu-box", base_url="http://127.0.0.1:9/v1", max_concurrency=8),
    ]
    settings.save()
    settings.keys.set("lab", "sk-lab-not-a-real-key")

    dialog = SettingsDialog(settings)
    dialog.resize(680, 760)
    dialog.show()
    endpoints = dialog.endpoint_list
    wait_until(lambda: endpoints.facts is not None)
    endpoints.table.selectRow(0)
    group = endpoints.parentWidget()
    assert group is not None
    dialog.groups.verticalScrollBar().setValue(group.y() - 8)
    save(dialog, out / "endpoints-settings.png")

    endpoints.edit_button.click()
    form = endpoints.findChild(EndpointForm)
    assert form is not None
    form.test_button.click()
    wait_until(form.test_button.isEnabled)
    save(form, out / "endpoint-form.png")
    form.reject()
    dialog.reject()

    editor = EditorPanel(settings)
    editor.picker.set_models([str(home / "models" / "llama-3.2-3b-instruct-q4_k_m.gguf")])
    editor.prompt.setPlainText("Summarize the attached meeting notes in five bullet points.")
    editor.resize(720, 460)
    editor.show()
    wait_until(lambda: not any(r.pending for r in editor.picker.remote_lists()))
    combo = editor.picker.combo
    combo.showPopup()  # opens over the combo at the chosen (local) model
    QTest.qWait(300)
    combo.view().setCurrentIndex(combo.model().index(combo.findData("lab/qwen2.5-7b-instruct"), 0))
    QTest.qWait(100)
    popup = combo.view().window()
    with_popup(editor, popup).save(str(out / "model-picker-remote.png"))
    print(f"wrote {out / 'model-picker-remote.png'}")
    combo.hidePopup()
    editor.close()
    jobs_scene(out)


def jobs_scene(out: Path) -> None:
    """The jobs table with remote jobs: one waiting out a 429, one waiting for a slot, one
    streaming, one failed on a refused key (real JobRows from real Job records)."""
    now = time.time()

    def job(n: int, title: str, state: JobState, **fields: object) -> Job:
        spec = JobSpec(model="lab/qwen2.5-7b-instruct", prompt=title, title=title)
        values: dict[str, object] = {"id": f"{n:012x}", "spec": spec, "state": state,
                                     "seq": n, "created_at": now - 60 + n, **fields}  # fmt: skip
        return Job.model_validate(values)

    jobs = [
        job(1, "summary-01.md", JobState.succeeded, started_at=now - 50, finished_at=now - 41,
            completion_tokens=212, tokens_per_second=38.5),
        job(2, "summary-02.md", JobState.running, started_at=now - 9, completion_tokens=143,
            tokens_per_second=41.2),
        job(3, "summary-03.md", JobState.loading, started_at=now - 2),
        job(4, "summary-04.md", JobState.queued, attempt=3, retry_at=now + 12, tries=2,
            max_tries=8, retry_note="rate limited (429)"),
        job(5, "summary-05.md", JobState.queued, queue_position=1),
        job(6, "summary-06.md", JobState.failed, started_at=now - 30, finished_at=now - 29,
            error="endpoint 'lab' (http://gpu-box:8080/v1): the key was refused (401): "
            "wrong bearer token"),
    ]  # fmt: skip
    model = JobsModel()
    rows = [JobRow.from_job(j) for j in jobs]
    waiting = rows[2].with_progress(
        {
            "attempt": 1,
            "phase": "waiting",
            "brief": "lab: 2/2 busy",
            "note": "waiting for endpoint 'lab': 2 of 2 requests busy",
        }
    )
    streaming = rows[1].with_progress(
        {"attempt": 1, "phase": "generating", "done": 143, "total": 512, "tps": 41.2, "eta": 9}
    )
    assert waiting is not None and streaming is not None
    rows[1], rows[2] = streaming, waiting
    model.sync(rows)
    table = JobsTable(model, JobsFilter(model))
    table.resize(1180, 260)
    table.show()
    QTest.qWait(200)
    save(table, out / "remote-jobs.png")
    table.close()


if __name__ == "__main__":
    main()
