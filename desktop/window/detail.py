"""The selected job: its output streaming live, its prompt and parameters, its attempts, actions."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor, QGuiApplication, QPalette, QResizeEvent
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
from desktop.jobs.row import cancel_text
from desktop.window.outputview import OutputView
from worker.jobs.job import Attempt, Job, JobState
from worker.queue.events import Event

WELCOME_TEXT = (
    "PromptSpool runs your prompts on a language model right on this computer, one job "
    "after another, and keeps every result.<br><br>"
    "Models come as <b>GGUF</b> files: a single file holding the model's weights, "
    "usually quantized (Q4_K_M, Q8_0…) so it fits in memory. Use one this computer already "
    "has (below), download one from Hugging Face in File ▸ Models…, or open a file."
)
ERROR_TINT = "#dc2626"
NEUTRAL_TINT = "#8b8f98"  # a cancel is no error
WAITING_STYLE = "QLabel { color: #b45309; }"  # a remote job waiting for its next try
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
        tokens = formatting.plural(attempt.completion_tokens, "token")
        parts.append(tokens if attempt.state.finished else f"{tokens} so far")
    if attempt.started_at and attempt.finished_at:
        parts.append(formatting.duration(attempt.finished_at - attempt.started_at))
    return " · ".join(parts)


class DetailPane(QWidget):
    """Shows one job; the controller feeds it the job and its stream's events."""

    cancel_clicked = Signal()
    retry_clicked = Signal()
    follow_up_clicked = Signal()
    parent_clicked = Signal(str)  # the id of the job a follow-up continues
    export_clicked = Signal(str)  # "md" | "json"
    open_model_clicked = Signal()
    raw_toggled = Signal(bool)  # the output shown as raw text (True) or Markdown

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self._attempt = 0
        self._texts: dict[int, str] = {}
        self._borrowed: int | None = None  # the earlier attempt whose output is shown
        self._position: int | None = None  # in the queue, as the table shows it
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

        self.waiting = QLabel()
        self.waiting.setWordWrap(True)
        self.waiting.setStyleSheet(WAITING_STYLE)
        self.waiting.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.waiting.hide()

        self.error = Banner()
        self.error.hide()

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_output_tab(), "Output")
        self.raw_button = QToolButton()
        self.raw_button.setText("Raw text")
        self.raw_button.setCheckable(True)
        self.raw_button.setAutoRaise(True)
        self.raw_button.setToolTip("Show the output as the model wrote it, not as Markdown")
        self.raw_button.toggled.connect(self._on_raw)
        self.tabs.setCornerWidget(self.raw_button, Qt.Corner.TopRightCorner)
        self.tabs.addTab(self._build_prompt_tab(), "Prompt && parameters")
        self.tabs.addTab(self._build_attempts_tab(), "Attempts")

        layout = QVBoxLayout(page)
        layout.setContentsMargins(10, 8, 10, 6)
        layout.setSpacing(6)
        layout.addLayout(heading)
        layout.addWidget(self.meta)
        layout.addWidget(self.parent_link)
        layout.addLayout(progress_row)
        layout.addWidget(self.waiting)
        layout.addWidget(self.error)
        layout.addWidget(self.tabs, 1)
        return page

    def _build_actions(self) -> QVBoxLayout:
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
        self.follow_up_button = _tool_button(
            "send", "Follow up", "Continue this conversation with a new message"
        )
        self.follow_up_button.clicked.connect(self.follow_up_clicked)
        self.parent_link = QLabel()  # a follow-up's way back to the job it continues
        self.parent_link.setTextFormat(Qt.TextFormat.RichText)
        self.parent_link.linkActivated.connect(self.parent_clicked)
        self.parent_link.hide()
        self.parent_title: Callable[[str], str | None] = lambda _job_id: None

        title_row = QHBoxLayout()
        title_row.setSpacing(2)
        title_row.addWidget(self.state_label)
        title_row.addSpacing(6)
        title_row.addWidget(self.title, 1)
        # The buttons get a row of their own: beside the title they lost their labels (and
        # the title its room) in a pane a third of a 1024-pixel window wide.
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        for button in (self.copy_button, self.export_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addWidget(self.retry_button)
        buttons.addWidget(self.follow_up_button)
        buttons.addStretch(1)
        heading = QVBoxLayout()
        heading.setSpacing(2)
        heading.addLayout(title_row)
        heading.addLayout(buttons)
        return heading

    def _build_output_tab(self) -> QWidget:
        tab = QWidget()
        self.output = OutputView(placeholder="No output yet.")
        self.output_note = QLabel()  # whose output is shown, when not the current attempt's
        self.output_note.setWordWrap(True)
        self.output_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.output_note.hide()
        column = QVBoxLayout(tab)
        column.setContentsMargins(0, 4, 0, 0)
        column.setSpacing(4)
        column.addWidget(self.output_note)
        column.addWidget(self.output, 1)
        return tab

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
        self._fit_buttons(event.size().width())

    def _action_buttons(self) -> list[QToolButton]:
        return [
            self.copy_button,
            self.export_button,
            self.cancel_button,
            self.retry_button,
            self.follow_up_button,
        ]

    def _fit_buttons(self, width: int) -> None:
        """Labelled buttons while their row has room for the labels; icons only below."""
        buttons = [b for b in self._action_buttons() if not b.isHidden()]
        labelled = 0
        for button in buttons:
            style = button.toolButtonStyle()
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            labelled += button.sizeHint().width() + 2
            button.setToolButtonStyle(style)
        style = (
            Qt.ToolButtonStyle.ToolButtonIconOnly
            if width - 20 < labelled
            else Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        )
        for button in buttons:
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
        self._position = job.queue_position
        self._show_output(job)
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
            if self._borrowed is None:
                self._texts[self._attempt] = self.output.text()
            self._attempt = job.attempt
            self._show_output(job)
        if job.state.finished:  # the stream ended: its last paragraph is rendered too
            self.output.finish()
            self.attempt_output.finish()
        self.job = job
        self._render(job)

    def set_queue_position(self, position: int | None) -> None:
        """The job's place in the queue as the table has it (1 runs next; None: not queued).

        Called whenever the table's rows change, its once-a-second tick included: a job
        waiting for its next try counts down here with the table."""
        if position != self._position:
            self._position = position
            if self.job is not None:
                self._render_meta(self.job)
        if self.job is not None and self.job.retry_at is not None:
            self._render_waiting(self.job)

    def set_raw(self, raw: bool) -> None:
        """Show output as raw text (True) or as Markdown."""
        self.raw_button.setChecked(raw)
        self.output.set_raw(raw)
        self.attempt_output.set_raw(raw)

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
        if not chunks:
            return
        text = "".join(chunks)
        if self._borrowed is not None:  # the current attempt writes: its own text from now
            self._borrowed = None
            self.output_note.hide()
            self.output.set_text("")
        self.output.append_text(text)
        if self._shown_attempt_is_live():
            self.attempt_output.append_text(text)

    def output_text(self) -> str:
        """The current attempt's text so far ('' while an earlier attempt's is shown)."""
        return "" if self._borrowed is not None else self.output.text()

    def copy_output(self) -> None:
        """Copy the output shown (an earlier attempt's, while the current has none)."""
        clipboard = QGuiApplication.clipboard()
        if clipboard is not None:
            clipboard.setText(self.output.text())

    # --- internals --------------------------------------------------------------------

    def _show_output(self, job: Job) -> None:
        """The current attempt's text; while it has none, the last earlier attempt's, noted."""
        text = self._texts.get(job.attempt, "")
        self._borrowed = None
        if not text and not job.state.finished:
            for attempt in reversed(job.attempts):
                earlier = attempt.output or self._texts.get(attempt.number, "")
                if attempt.number < job.attempt and earlier:
                    self._borrowed, text = attempt.number, earlier
                    break
        self.output.set_text(text)
        if self._borrowed is not None:
            self.output_note.setText(
                f"The output of attempt {self._borrowed}, shown until attempt {job.attempt} writes."
            )
        self.output_note.setVisible(self._borrowed is not None)

    def _shown_attempt_is_live(self) -> bool:
        """Whether the Attempts tab shows the current attempt, still running."""
        row = self.attempts.currentRow()
        if self.job is None or not 0 <= row < len(self.job.attempts):
            return False
        attempt = self.job.attempts[row]
        return attempt.number == self._attempt and not attempt.state.finished

    def _on_raw(self, raw: bool) -> None:
        if raw != self.output.raw:
            self.set_raw(raw)
            self.raw_toggled.emit(raw)

    def _render_meta(self, job: Job) -> None:
        state = "stopping" if job.cancel_requested and job.state.active else job.state.value
        meta = [state, f"attempt {job.attempt}", Path(job.model).name]
        if self._position and job.state is JobState.queued:
            meta.append(f"#{self._position} in queue")
        if job.worker:
            meta.append(job.worker)
        self.meta.set_full_text(" · ".join(meta))

    def _render(self, job: Job) -> None:
        self.state_label.setPixmap(state_icon(job.state).pixmap(22, 22))
        self.state_label.setToolTip(job.state.value)
        self.title.set_full_text(job.title)
        self._render_meta(job)
        self.cancel_button.setEnabled(not job.state.finished and not job.cancel_requested)
        self.retry_button.setEnabled(job.state.finished)
        self.follow_up_button.setEnabled(job.state is JobState.succeeded)
        self._render_parent(job)
        if job.state is JobState.cancelled:  # the user's own doing: no error, said plainly
            self.error.tint = QColor(NEUTRAL_TINT)
            self.error.setText(cancel_text(job.error, job.completion_tokens))
        else:
            self.error.tint = QColor(ERROR_TINT)
            self.error.setText(job.error or "")
        self.error.setVisible(bool(job.error) and job.state is not JobState.queued)
        self.error.update()
        self._render_waiting(job)
        if job.state.finished or job.state is JobState.queued:
            self._set_progress(
                job.completion_tokens, max(job.spec.max_tokens, 1), job.tokens_per_second, None
            )
            if job.state is JobState.succeeded:
                self.progress.setValue(self.progress.maximum())
        self._render_attempts(job)

    def _render_waiting(self, job: Job) -> None:
        """'rate limited (429): …, next try in 12 s (try 3 of 8)' while a remote job waits."""
        note = job.waiting_note()
        self.waiting.setText(f"Waiting: {note}" if note else "")
        self.waiting.setVisible(bool(note))

    def _render_parent(self, job: Job) -> None:
        parent = job.spec.parent
        if parent:
            title = self.parent_title(parent)
            text = f"“{html.escape(title)}”" if title else f"job {parent} (no longer listed)"
            self.parent_link.setText(f'Follows up on <a href="{parent}">{text}</a>')
        self.parent_link.setVisible(bool(parent))

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
        live = attempt.number == self._attempt and not attempt.state.finished
        if live:
            text = "" if self._borrowed is not None else self.output.text()
        self.attempt_output.setPlaceholderText(
            "No output yet." if live else "This attempt wrote no output."
        )
        self.attempt_output.set_text(text or self._texts.get(attempt.number, ""))
        if attempt.state is JobState.cancelled:
            note = cancel_text(attempt.error, attempt.completion_tokens)
        else:
            note = f"Error: {attempt.error}" if attempt.error else ""
        self.attempt_error.setText(note)
        self.attempt_error.setVisible(bool(note))

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
