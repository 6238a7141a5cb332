"""The selected job: its output streaming live, its prompt and parameters, its attempts, actions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.common import formatting
from desktop.common.icons import app_icon, set_icon, state_icon
from desktop.common.theme import heading_font
from desktop.common.widgets import Banner, ElidedLabel, EmptyState
from desktop.window.outputview import OutputView
from worker.jobs.job import Attempt, Job, JobState
from worker.queue.events import Event

WELCOME_TEXT = (
    "PromptSpool runs your prompts on a language model right on this computer, one job "
    "after another, and keeps every result.<br><br>"
    "Models come as <b>GGUF</b> files: a single file holding the model's weights, "
    "usually quantized (Q4_K_M, Q8_0…) so it fits in memory. Download one, for example "
    "from Hugging Face (search for a model name with “GGUF”), then open it here."
)
COMPACT_WIDTH = 480  # narrower: the action buttons show icons only, the title keeps room
HINT_TEXT = (
    "Select a job to see its output stream in.<br><br>"
    "Write a prompt in the editor and press <b>Ctrl+Enter</b>, or drop prompt files "
    "(.txt, .md, .prompt, .json, .jsonl) or whole folders anywhere on this window."
)


def _tool_button(icon: str, text: str, tip: str) -> QToolButton:
    button = QToolButton()
    set_icon(button, icon)
    button.setText(text)
    button.setToolTip(tip)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    button.setAutoRaise(True)
    return button


def prompt_text(job: Job) -> str:
    if job.spec.prompt is not None:
        return job.spec.prompt
    return "\n\n".join(f"[{m.role}]\n{m.content}" for m in job.spec.messages or [])


def parameters(job: Job) -> list[tuple[str, str]]:
    spec = job.spec
    return [
        ("Model", spec.model),
        ("Priority", spec.priority.value),
        ("Max tokens", f"{spec.max_tokens:,}"),
        ("Temperature", f"{spec.temperature:g}"),
        ("Top-p", f"{spec.top_p:g}"),
        ("Top-k", str(spec.top_k)),
        ("Min-p", f"{spec.min_p:g}"),
        ("Repeat penalty", f"{spec.repeat_penalty:g}"),
        ("Seed", "random" if spec.seed is None else str(spec.seed)),
        ("Stop strings", ", ".join(repr(s) for s in spec.stop) or "none"),
        ("Time limit", formatting.duration(spec.timeout) if spec.timeout else "default"),
        ("Created", formatting.timestamp(job.created_at)),
        ("Job id", job.id),
    ]


def attempt_label(attempt: Attempt) -> str:
    parts = [f"Attempt {attempt.number}", attempt.state.value]
    if attempt.completion_tokens:
        parts.append(formatting.plural(attempt.completion_tokens, "token"))
    if attempt.started_at and attempt.finished_at:
        parts.append(formatting.duration(attempt.finished_at - attempt.started_at))
    return " · ".join(parts)


class DetailPane(QWidget):
    """Shows one job; the controller feeds it the job and its stream's events."""

    cancel_clicked = Signal()
    retry_clicked = Signal()
    export_clicked = Signal(str)  # "md" | "json"
    open_model_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self._attempt = 0
        self._texts: dict[int, str] = {}
        self.pages = QStackedWidget()
        self.empty = EmptyState()
        self.empty.action_clicked.connect(self.open_model_clicked)
        self.pages.addWidget(self.empty)
        self.pages.addWidget(self._build_job_page())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)
        self.show_empty(has_model=True)

    # --- building ---------------------------------------------------------------------

    def _build_job_page(self) -> QWidget:
        page = QWidget()
        self.state_label = QLabel()
        self.title = ElidedLabel()
        self.title.setFont(heading_font(self.title.font(), 1.2))
        self.meta = ElidedLabel()
        self.meta.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        heading = self._build_actions()

        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.stats = QLabel()
        self.stats.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.stats)

        self.error = Banner()
        self.error.hide()

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.output = OutputView(placeholder="No output yet.")
        self.tabs.addTab(self.output, "Output")
        self.tabs.addTab(self._build_prompt_tab(), "Prompt && parameters")
        self.tabs.addTab(self._build_attempts_tab(), "Attempts")

        layout = QVBoxLayout(page)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.setSpacing(6)
        layout.addLayout(heading)
        layout.addWidget(self.meta)
        layout.addLayout(progress_row)
        layout.addWidget(self.error)
        layout.addWidget(self.tabs, 1)
        return page

    def _build_actions(self) -> QHBoxLayout:
        self.copy_button = _tool_button("copy", "Copy", "Copy the output (Ctrl+Shift+C)")
        self.copy_button.clicked.connect(self.copy_output)
        self.export_button = _tool_button("export", "Export", "Export this job")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_button)
        for fmt, text in (("md", "As Markdown…"), ("json", "As JSON…")):
            action = QAction(text, menu)
            action.triggered.connect(lambda _=False, f=fmt: self.export_clicked.emit(f))
            menu.addAction(action)
        self.export_button.setMenu(menu)
        self.cancel_button = _tool_button("cancel", "Cancel", "Cancel this job (Delete)")
        self.cancel_button.clicked.connect(self.cancel_clicked)
        self.retry_button = _tool_button("retry", "Retry", "Run this job again (Ctrl+R)")
        self.retry_button.clicked.connect(self.retry_clicked)

        heading = QHBoxLayout()
        heading.setSpacing(2)
        heading.addWidget(self.state_label)
        heading.addSpacing(6)
        heading.addWidget(self.title, 1)
        for button in (self.copy_button, self.export_button, self.cancel_button):
            heading.addWidget(button)
        heading.addWidget(self.retry_button)
        return heading

    def _build_prompt_tab(self) -> QWidget:
        tab = QWidget()
        self.prompt = QPlainTextEdit()
        self.prompt.setReadOnly(True)
        self.params = QFormLayout()
        self.params.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.params.setHorizontalSpacing(12)
        self.params.setVerticalSpacing(3)
        params = QWidget()
        params.setLayout(self.params)
        return _split_tab(tab, Qt.Orientation.Vertical, (self.prompt, 3), (params, 2))

    def _build_attempts_tab(self) -> QWidget:
        tab = QWidget()
        self.attempts = QListWidget()
        self.attempts.currentRowChanged.connect(self._show_attempt)
        self.attempt_error = QLabel()
        self.attempt_error.setWordWrap(True)
        self.attempt_error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.attempt_output = OutputView(placeholder="This attempt wrote no output.")
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.attempt_error)
        column.addWidget(self.attempt_output, 1)
        return _split_tab(tab, Qt.Orientation.Horizontal, (self.attempts, 1), (right, 3))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        style = (
            Qt.ToolButtonStyle.ToolButtonIconOnly
            if event.size().width() < COMPACT_WIDTH
            else Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        )
        for button in (self.copy_button, self.export_button, self.cancel_button, self.retry_button):
            button.setToolButtonStyle(style)

    # --- showing ----------------------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        return self.job.id if self.job is not None else None

    def show_empty(self, has_model: bool) -> None:
        self.job = None
        if has_model:
            self.empty.set_content(app_icon(), "Nothing selected", HINT_TEXT)
        else:
            self.empty.set_content(
                app_icon(), "Welcome to PromptSpool", WELCOME_TEXT, "Open a GGUF model…", 96
            )
        self.pages.setCurrentIndex(0)

    def load(self, job: Job, texts: dict[int, str]) -> None:
        """Show a job, with the text its stream carried so far for each attempt."""
        self.job = job
        self._texts = dict(texts)
        self._attempt = job.attempt
        self.output.set_text(texts.get(job.attempt, ""))
        self.prompt.setPlainText(prompt_text(job))
        while self.params.rowCount():
            self.params.removeRow(0)
        for name, value in parameters(job):
            label = QLabel(value)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            self.params.addRow(f"{name}:", label)
        self._render(job)
        self.pages.setCurrentIndex(1)

    def update_job(self, job: Job) -> None:
        """The job changed state (or attempt): refresh all but the streamed text."""
        if self.job is None or job.id != self.job.id:
            return
        if job.attempt != self._attempt:
            self._texts[self._attempt] = self.output.text()
            self._attempt = job.attempt
            self.output.set_text(self._texts.get(job.attempt, ""))
        self.job = job
        self._render(job)

    def apply_events(self, events: list[Event]) -> None:
        """Append streamed text of the shown attempt; follow its progress."""
        chunks: list[str] = []
        for event in events:
            if event.attempt != self._attempt:
                continue
            if event.type == "tokens":
                chunks.append(str(event.data.get("text", "")))
                self._progress(event.data)
            elif event.type == "progress":
                self._progress(event.data)
        if chunks:
            self.output.append_text("".join(chunks))

    def output_text(self) -> str:
        return self.output.text()

    def copy_output(self) -> None:
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(self.output_text())

    # --- internals --------------------------------------------------------------------

    def _render(self, job: Job) -> None:
        self.state_label.setPixmap(state_icon(job.state).pixmap(22, 22))
        self.state_label.setToolTip(job.state.value)
        self.title.set_full_text(job.title)
        state = "stopping" if job.cancel_requested and job.state.active else job.state.value
        meta = [state, f"attempt {job.attempt}", Path(job.model).name]
        if job.queue_position:
            meta.append(f"#{job.queue_position} in queue")
        if job.worker:
            meta.append(job.worker)
        self.meta.set_full_text(" · ".join(meta))
        self.cancel_button.setEnabled(not job.state.finished and not job.cancel_requested)
        self.retry_button.setEnabled(job.state.finished)
        self.error.setText(job.error or "")
        self.error.setVisible(bool(job.error) and job.state is not JobState.queued)
        if job.state.finished or job.state is JobState.queued:
            self._set_progress(
                job.completion_tokens, max(job.spec.max_tokens, 1), job.tokens_per_second, None
            )
            if job.state is JobState.succeeded:
                self.progress.setValue(self.progress.maximum())
        self._render_attempts(job)

    def _render_attempts(self, job: Job) -> None:
        current = self.attempts.currentRow()
        self.attempts.clear()
        for attempt in job.attempts:
            item = QListWidgetItem(state_icon(attempt.state), attempt_label(attempt))
            item.setToolTip(attempt.error or attempt.worker or "")
            self.attempts.addItem(item)
        self.tabs.setTabText(2, f"Attempts ({len(job.attempts)})")
        count = self.attempts.count()
        if count:
            self.attempts.setCurrentRow(current if 0 <= current < count else count - 1)

    def _show_attempt(self, row: int) -> None:
        if self.job is None or not 0 <= row < len(self.job.attempts):
            self.attempt_output.set_text("")
            self.attempt_error.setText("")
            return
        attempt = self.job.attempts[row]
        text = attempt.output
        if attempt.number == self._attempt and not attempt.state.finished:
            text = self.output.text()
        self.attempt_output.set_text(text or self._texts.get(attempt.number, ""))
        self.attempt_error.setText(f"Error: {attempt.error}" if attempt.error else "")
        self.attempt_error.setVisible(bool(attempt.error))

    def _progress(self, data: dict[str, object]) -> None:
        phase = data.get("phase")
        done, total = _int(data.get("done")), _int(data.get("total"))
        tps = data.get("tps")
        eta = data.get("eta")
        if phase in ("loading", "prompt"):
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            self.stats.setText("loading model…" if phase == "loading" else f"prompt {done}/{total}")
            return
        self._set_progress(
            done,
            max(total, 1),
            float(tps) if isinstance(tps, int | float) else None,
            float(eta) if isinstance(eta, int | float) else None,
        )

    def _set_progress(self, done: int, total: int, tps: float | None, eta: float | None) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(min(done, total))
        parts = [f"{done:,} / {total:,} tokens"]
        if tps:
            parts.append(f"{tps:,.1f} tok/s")
        if eta:
            parts.append(f"{formatting.duration(eta)} left")
        self.stats.setText(" · ".join(parts))


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _split_tab(tab: QWidget, orientation: Qt.Orientation, *parts: tuple[QWidget, int]) -> QWidget:
    """Fill `tab` with a splitter holding `parts` (widget, stretch factor)."""
    splitter = QSplitter(orientation)
    for index, (widget, stretch) in enumerate(parts):
        splitter.addWidget(widget)
        splitter.setStretchFactor(index, stretch)
    layout = QVBoxLayout(tab)
    layout.setContentsMargins(0, 6, 0, 0)
    layout.addWidget(splitter)
    return tab
