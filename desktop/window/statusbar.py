"""The status bar: queue reachable, HTTP API, workers alive, model loaded, GPU or CPU, VRAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QStatusBar, QWidget

from desktop.services.httpapi import ApiState, ApiStatus
from worker.engine.hardware import GpuMemory
from worker.queue.celery_app import REMOTE_QUEUE

GOOD = QColor("#16a34a")
WARN = QColor("#d97706")
BAD = QColor("#dc2626")
IDLE = QColor("#8b8f98")


class Dot(QWidget):
    """A small coloured status light."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.color = IDLE
        self.setFixedSize(10, 10)

    def set_color(self, color: QColor) -> None:
        self.color = color
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self.color)
        painter.drawEllipse(self.rect().adjusted(1, 1, -1, -1))
        painter.end()


class Indicator(QWidget):
    """A dot and a label, with a tooltip for the details."""

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dot = Dot()
        self.label = QLabel(text)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.setSpacing(5)
        layout.addWidget(self.dot)
        layout.addWidget(self.label)

    def set(self, color: QColor, text: str, tip: str = "") -> None:
        self.dot.set_color(color)
        self.label.setText(text)
        self.setToolTip(tip or text)

    def text(self) -> str:
        return self.label.text()


def api_text(status: ApiStatus) -> tuple[QColor, str, str]:
    """The HTTP API in a few words, with its URL and what to do in the tooltip."""
    where = status.url.split("://", 1)[-1]
    token = "\nThe token: Settings ▸ HTTP API ▸ Copy token, or `promptspool token`."
    if status.state is ApiState.ready:
        return GOOD, f"API {where}", status.summary() + token
    if status.state is ApiState.refused:
        return BAD, "API not started", status.summary()
    if status.state is ApiState.down:
        return WARN, "API restarting", status.summary()
    if status.state is ApiState.starting:
        return IDLE, "API starting…", status.summary()
    return IDLE, "API off", status.summary()


def gpu_text(workers: list[dict[str, Any]]) -> tuple[QColor, str, str]:
    """GPU offload in words, from the workers' heartbeats."""
    gpus = [w.get("gpu") or {} for w in workers if w.get("model")]
    if not workers:
        return IDLE, "GPU: unknown", "No worker is running."
    if not gpus:
        return IDLE, "GPU: no model loaded", "The worker loads the model with the first job."
    gpu = gpus[0]
    if gpu.get("active"):
        layers = f"{gpu.get('layers_offloaded', '?')}/{gpu.get('layers_total', '?')} layers"
        return GOOD, f"GPU offload: {layers}", "Model layers run on the GPU."
    reason = str(gpu.get("reason") or "no layers offloaded").removeprefix("CPU only: ")
    tip = f"CPU only: {reason}"
    if "GPU is present" in reason:
        return BAD, "CPU only: llama.cpp is a CPU build", tip
    if "no GPU was found" in reason:
        return WARN, "CPU only: no GPU found", tip
    if "n_gpu_layers is 0" in reason:
        return WARN, "CPU only: GPU layers set to 0", tip
    short = reason if len(reason) <= 30 else reason[:29].rstrip() + "…"
    return WARN, f"CPU only: {short}", tip


class QueueStatusBar(QStatusBar):
    """Permanent indicators on the right; transient messages on the left."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = Indicator("Connecting…")
        self.api = Indicator("API off")
        self.workers = Indicator("Worker: checking…")
        self.model = Indicator("Model: none loaded")
        self._loaded: list[str] = []  # models the workers' heartbeats say are loaded
        self._loading: list[str] = []  # models jobs are loading now
        self.gpu = Indicator("GPU: unknown")
        self.vram = QLabel()
        self.vram.hide()
        self._api_frame = _separated(self.api)
        self._api_frame.hide()  # until the app supervises an API
        for widget in (self.queue, self.workers, self.model, self.gpu):
            self.addPermanentWidget(_separated(widget))
            if widget is self.queue:
                self.addPermanentWidget(self._api_frame)
        self.addPermanentWidget(self.vram)
        self.setSizeGripEnabled(True)

    def set_queue(self, reachable: bool, reason: str = "", paused: bool = False) -> None:
        if not reachable:
            self.queue.set(BAD, "Queue unreachable", reason or "The queue server does not answer.")
        elif paused:
            self.queue.set(WARN, "Queue paused", "Workers take no new jobs until you resume.")
        else:
            self.queue.set(GOOD, "Queue connected", "The queue server answers.")

    def set_api(self, status: ApiStatus) -> None:
        """The HTTP API's state; hidden while it is off."""
        color, text, tip = api_text(status)
        self.api.set(color, text, tip)
        self._api_frame.setVisible(status.state is not ApiState.off)

    def set_workers(self, workers: list[dict[str, Any]], note: str = "") -> None:
        count = len(workers)
        busy = sum(1 for w in workers if w.get("job"))
        if count:
            text = f"{count} worker{'s' if count != 1 else ''}" + (f", {busy} busy" if busy else "")
            tip = "\n".join(
                f"{w.get('id')} (pid {w.get('pid')})"
                + (": remote endpoints" if w.get("queue") == REMOTE_QUEUE else "")
                for w in workers
            )
            self.workers.set(GOOD, text, tip + (f"\n{note}" if note else ""))
        else:
            self.workers.set(BAD if not note else WARN, "No worker", note or "No worker is alive.")
        self._loaded = sorted({Path(str(w["model"])).name for w in workers if w.get("model")})
        self._show_model()
        color, text, tip = gpu_text(workers)
        self.gpu.set(color, text, tip)

    def set_loading(self, models: list[str]) -> None:
        """The models jobs are loading now (file names): said until they run."""
        if models != self._loading:
            self._loading = list(models)
            self._show_model()

    def _show_model(self) -> None:
        if self._loading:
            names = ", ".join(self._loading)
            tip = "A job is loading the model; it runs once the model is in memory."
            self.model.set(WARN, f"Model: loading {names}…", tip)
        elif self._loaded:
            self.model.set(GOOD, f"Model: {', '.join(self._loaded)}", "Loaded in the worker(s)")
        else:
            self.model.set(IDLE, "Model: none loaded", "The worker loads a model with its job.")

    def set_vram(self, gpus: list[GpuMemory] | None) -> None:
        if not gpus:
            self.vram.hide()
            return
        gib = 1024**3
        used = sum(g.used for g in gpus) / gib
        total = sum(g.total for g in gpus) / gib
        self.vram.setText(f"VRAM {used:.1f}/{total:.0f} GiB")
        self.vram.setToolTip("\n".join(str(g) for g in gpus))
        self.vram.show()


def _separated(widget: QWidget) -> QWidget:
    frame = QFrame()
    layout = QHBoxLayout(frame)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(0)
    line = QFrame()
    line.setFrameShape(QFrame.Shape.VLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    layout.addWidget(line)
    layout.addWidget(widget)
    return frame
