"""The main window's actions, and its menus and toolbar built from them."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMenuBar, QToolBar, QWidget

from desktop.common.icons import set_icon

MENUS: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    ("&File", ("new", "add_files", "open_model", "models", None, "export", None, "settings", None,
               "quit")),
    ("&Jobs", ("cancel", "retry", "follow_up", "copy", "forget", None, "retry_failed",
               "cancel_queued", "clear_finished", None, "search")),
    ("&Queue", ("pause", "restart_worker")),
    ("&Help", ("about",)),
)  # fmt: skip
TOOLBAR = ("new", "add_files", None, "cancel", "retry", None, "retry_failed", "cancel_queued",
           "clear_finished", None, "pause", "settings")  # fmt: skip
SHORT_TEXTS = {"add_files": "Add files", "retry_failed": "Retry failed",
               "cancel_queued": "Cancel queued", "clear_finished": "Clear finished",
               "pause": "Pause", "settings": "Settings", "new": "New"}  # fmt: skip


def _action(
    parent: QWidget, text: str, icon: str | None = None, shortcut: str | None = None, tip: str = ""
) -> QAction:
    action = QAction(text, parent)
    if icon:
        set_icon(action, icon)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    keys = f" ({shortcut})" if shortcut else ""
    action.setToolTip(tip or text.replace("&", "").rstrip("…") + keys)
    action.setStatusTip(tip or text.replace("&", ""))
    return action


def make_actions(parent: QWidget) -> dict[str, QAction]:
    """Every action of the window by name; the window connects them to its intents."""
    return {
        "new": _action(parent, "&New job", "add", "Ctrl+N", "Write a new prompt"),
        "add_files": _action(parent, "&Add prompt files…", "drop", "Ctrl+O"),
        "open_model": _action(parent, "Open &model…", "model", "Ctrl+M"),
        "models": _action(
            parent, "Mo&dels…", "folder", "Ctrl+Shift+M", "Models on this machine; download more"
        ),
        "export": _action(parent, "&Export selected…", "export", "Ctrl+E"),
        "settings": _action(parent, "&Settings…", "settings", "Ctrl+,"),
        "quit": _action(parent, "&Quit", None, "Ctrl+Q", "Stop the queue and quit"),
        "cancel": _action(parent, "&Cancel", "cancel", "Delete", "Cancel the selected jobs"),
        "retry": _action(parent, "&Retry", "retry", "Ctrl+R", "Run the selected jobs again"),
        "follow_up": _action(
            parent, "&Follow up…", "send", "Ctrl+Shift+F", "Continue the job's conversation"
        ),
        "copy": _action(parent, "&Copy output", "copy", "Ctrl+Shift+C"),
        "forget": _action(parent, "&Remove from the list", "clear", None),
        "retry_failed": _action(parent, "Retry all &failed", "retry-all"),
        "cancel_queued": _action(parent, "Cancel all &queued", "cancel-all"),
        "clear_finished": _action(parent, "Clear &finished…", "clear"),
        "pause": _action(parent, "&Pause the queue", "pause", "Ctrl+P"),
        "restart_worker": _action(parent, "Restart the &worker", "restart"),
        "search": _action(parent, "&Search", None, "Ctrl+F"),
        "about": _action(parent, "&About PromptSpool", tip="Versions, and where the files are"),
    }


def build_menus(bar: QMenuBar, actions: dict[str, QAction]) -> None:
    for title, names in MENUS:
        menu = QMenu(title, bar)
        for name in names:
            if name is None:
                menu.addSeparator()
            else:
                menu.addAction(actions[name])
        bar.addMenu(menu)


def build_toolbar(actions: dict[str, QAction]) -> QToolBar:
    bar = QToolBar("Main")
    bar.setObjectName("main-toolbar")
    bar.setMovable(False)
    bar.setIconSize(QSize(18, 18))
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for name in TOOLBAR:
        if name is None:
            bar.addSeparator()
        else:
            bar.addAction(actions[name])
    for name, text in SHORT_TEXTS.items():
        actions[name].setIconText(text)
    return bar
