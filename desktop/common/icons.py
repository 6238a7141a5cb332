"""Icons from resources/: the app icon, job state icons and action icons tinted to the palette."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QRectF, QSize, Qt
from PySide6.QtGui import QAction, QColor, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QAbstractButton, QApplication

from worker.jobs.job import JobState

_SIZES = (16, 20, 24, 32, 48, 64)


def resources_dir() -> Path:
    """resources/ next to the packages, or inside a frozen app's bundle."""
    meipass = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and meipass:
        return Path(meipass) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource(*parts: str) -> Path:
    path = resources_dir().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"resource {path} is missing")
    return path


@functools.cache
def app_icon() -> QIcon:
    return QIcon(str(resource("promptspool.svg")))


@functools.cache
def state_icon(state: JobState) -> QIcon:
    return QIcon(str(resource("states", f"{state.value}.svg")))


def render_svg(path: Path, size: int, color: QColor | None = None, ratio: float = 1.0) -> QPixmap:
    """The SVG as a pixmap of `size` logical pixels; monochrome drawings are filled with color."""
    pixmap = QPixmap(QSize(round(size * ratio), round(size * ratio)))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(path)).render(painter, QRectF(0, 0, pixmap.width(), pixmap.height()))
    if color is not None:
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
        painter.fillRect(pixmap.rect(), color)
    painter.end()
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def _text_color() -> QColor:
    app = QApplication.instance()
    palette = app.palette() if isinstance(app, QApplication) else QPalette()
    return palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.WindowText)


@functools.cache
def _action_icon(name: str, rgba: int) -> QIcon:
    path = resource("actions", f"{name}.svg")
    color = QColor.fromRgba(rgba)
    disabled = QColor(color)
    disabled.setAlphaF(0.35)
    icon = QIcon()
    for size in _SIZES:
        for ratio in (1.0, 2.0):
            icon.addPixmap(render_svg(path, size, color, ratio), QIcon.Mode.Normal)
            icon.addPixmap(render_svg(path, size, disabled, ratio), QIcon.Mode.Disabled)
    return icon


def action_icon(name: str, color: QColor | None = None) -> QIcon:
    """A monochrome action icon drawn in the palette's text colour (light and dark themes)."""
    return _action_icon(name, (color or _text_color()).rgba())


_ICON_PROPERTY = "promptspool-icon"


def set_icon(target: QAction | QAbstractButton, name: str) -> None:
    """Give an action or button a themed icon that `retint` can redraw later."""
    target.setProperty(_ICON_PROPERTY, name)
    target.setIcon(action_icon(name))


def retint(root: QObject) -> None:
    """Redraw the themed icons under `root` in the current text colour (after a theme change)."""
    targets: list[QAction | QAbstractButton] = [*root.findChildren(QAction)]
    targets += root.findChildren(QAbstractButton)
    for target in targets:
        name = target.property(_ICON_PROPERTY)
        if isinstance(name, str) and name:
            target.setIcon(action_icon(name))
