"""Quitting with jobs in the queue: ask first, wait for the queue to empty, show the stop."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QAbstractButton,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QWidget,
)

from desktop.common.formatting import plural
from worker.jobs.job import JobState


class QuitChoice(enum.Enum):
    BACKGROUND = "background"  # close the window, keep the queue working
    FINISH = "finish"  # quit once the queue has nothing left to run
    NOW = "now"  # quit at once: running jobs go back to the queue
    CANCEL = "cancel"


@dataclass(frozen=True)
class Work:
    """What quitting now would interrupt or leave waiting."""

    running: int
    queued: int
    paused: bool

    @classmethod
    def of(cls, counts: Counter[JobState], paused: bool) -> Work:
        running = counts[JobState.running] + counts[JobState.loading]
        return cls(running, counts[JobState.queued], paused)

    @property
    def any(self) -> bool:
        return bool(self.running or self.queued)

    @property
    def can_finish(self) -> bool:
        """Something would still end if we waited (queued jobs wait forever while paused)."""
        return bool(self.running or (self.queued and not self.paused))

    def describe(self) -> str:
        """'2 jobs running, 11 queued'."""
        parts = []
        if self.running:
            parts.append(f"{plural(self.running, 'job')} running")
        if self.queued:
            queued = f"{self.queued:,} queued" if parts else f"{plural(self.queued, 'job')} queued"
            parts.append(queued + (" (the queue is paused)" if self.paused else ""))
        return ", ".join(parts) if parts else "nothing running"


def question(work: Work, background: bool) -> tuple[str, str]:
    """The dialog's question and its explanation."""
    text = f"{work.describe()[:1].upper()}{work.describe()[1:]}."
    lines = []
    if background:
        lines.append(
            "Keep running: the window is minimized and the queue keeps working; "
            "start PromptSpool again (or use its taskbar entry) to bring it back."
        )
    if work.can_finish:
        lines.append("Quit when done: PromptSpool quits once no job is left to run.")
    lines.append(
        "Quit now: running jobs stop and go back to the queue; every unfinished job "
        "resumes when PromptSpool starts again."
    )
    return text, "\n\n".join(lines)


class QuitBanner(QWidget):
    """In the status bar: 'quitting when the queue is empty' (with a way out), or 'stopping'."""

    quit_now = Signal()
    cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quit-banner")
        self.label = QLabel()
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate
        self.busy.setMaximumWidth(120)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.now_button = QPushButton("Quit now")
        self.now_button.clicked.connect(self.quit_now)
        self.cancel_button = QPushButton("Don't quit")
        self.cancel_button.clicked.connect(self.cancelled)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        for widget in (self.busy, self.label, self.now_button, self.cancel_button):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.hide()

    def waiting(self, work: Work) -> None:
        self.label.setText(f"Quitting when the queue is empty: {work.describe()}")
        self.now_button.show()
        self.cancel_button.show()
        self.show()

    def stopping(self) -> None:
        self.label.setText("Quitting: stopping the worker and the queue server…")
        self.now_button.hide()
        self.cancel_button.hide()
        self.show()


class QuitFlow(QObject):
    """Asks before quitting or closing while jobs run or wait, and carries out the answer;
    the controller does the quitting (`quit_now`) and feeds in the job counts."""

    quit_now = Signal()
    waiting_changed = Signal(bool)  # True: quitting once the queue is empty
    asked = Signal(object)  # the QMessageBox just opened (tests answer it)

    def __init__(self, window: QMainWindow, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.work = Work(0, 0, False)
        self.waiting = False
        self.box: QMessageBox | None = None
        self.banner = QuitBanner()
        self.banner.quit_now.connect(self._quit)
        self.banner.cancelled.connect(self.cancel_waiting)
        window.statusBar().insertPermanentWidget(0, self.banner, 1)

    def update(self, counts: Counter[JobState], paused: bool) -> None:
        """The queue's latest counts; quits when waiting and nothing is left to run."""
        self.work = Work.of(counts, paused)
        self._check()

    def _check(self) -> None:
        if not self.waiting:
            return
        if self.work.can_finish:
            self.banner.waiting(self.work)
        else:
            self._quit()

    def ask(self, background: bool = False) -> None:
        """Quit (or, `background`, close the window) — asking first if jobs would be affected."""
        if not self.work.any:
            self._quit()
            return
        if self.box is not None:
            self.box.close()
        if self.window.isHidden() or self.window.isMinimized():
            self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()
        text, details = question(self.work, background)
        box = QMessageBox(QMessageBox.Icon.Question, "Quit PromptSpool?", text,
                          QMessageBox.StandardButton.NoButton, self.window)  # fmt: skip
        box.setObjectName("quit-question")
        box.setInformativeText(details)
        choices: dict[QAbstractButton, QuitChoice] = {}
        if background:
            keep = box.addButton("Keep running", QMessageBox.ButtonRole.AcceptRole)
            choices[keep] = QuitChoice.BACKGROUND
        if self.work.can_finish:
            finish = box.addButton("Quit when done", QMessageBox.ButtonRole.AcceptRole)
            choices[finish] = QuitChoice.FINISH
        now = box.addButton("Quit now", QMessageBox.ButtonRole.DestructiveRole)
        choices[now] = QuitChoice.NOW
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        choices[cancel] = QuitChoice.CANCEL
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)

        def answered() -> None:
            self.box = None
            self.choose(choices.get(box.clickedButton(), QuitChoice.CANCEL))

        box.finished.connect(answered)
        box.finished.connect(box.deleteLater)
        self.box = box
        box.open()  # not exec(): a nested loop inside a running task breaks qasync
        self.asked.emit(box)

    def choose(self, choice: QuitChoice) -> None:
        if choice is QuitChoice.NOW:
            self._quit()
        elif choice is QuitChoice.FINISH:
            self._set_waiting(True)
            self._check()
        elif choice is QuitChoice.BACKGROUND:
            self.window.showMinimized()
            self.window.statusBar().showMessage(
                "PromptSpool keeps working in the background; start it again to bring it back",
                15_000,
            )

    def cancel_waiting(self) -> None:
        if self.waiting:
            self._set_waiting(False)
            self.banner.hide()
            self.window.statusBar().showMessage("Not quitting: the queue goes on", 8000)

    def show_stopping(self) -> None:
        """The quit has begun: say so while the worker and the server stop."""
        self._set_waiting(False)
        if self.box is not None:
            self.box.close()
        self.banner.stopping()
        self.window.setWindowTitle("PromptSpool — quitting…")
        central = self.window.centralWidget()
        if central is not None:
            central.setEnabled(False)

    def _set_waiting(self, waiting: bool) -> None:
        if waiting != self.waiting:
            self.waiting = waiting
            self.waiting_changed.emit(waiting)

    def _quit(self) -> None:
        self.quit_now.emit()
