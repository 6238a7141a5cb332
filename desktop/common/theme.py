"""Light and dark: follow the system scheme, with a dark palette where the style has none."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication


def heading_font(base: QFont, scale: float) -> QFont:
    """`base` enlarged by `scale` and semi-bold: the app's headings."""
    font = QFont(base)
    font.setPointSizeF(base.pointSizeF() * scale)
    font.setWeight(QFont.Weight.DemiBold)
    return font


_DARK = {
    QPalette.ColorRole.Window: "#202124",
    QPalette.ColorRole.WindowText: "#e8eaed",
    QPalette.ColorRole.Base: "#17181a",
    QPalette.ColorRole.AlternateBase: "#232427",
    QPalette.ColorRole.ToolTipBase: "#2b2c2f",
    QPalette.ColorRole.ToolTipText: "#e8eaed",
    QPalette.ColorRole.PlaceholderText: "#9aa0a6",
    QPalette.ColorRole.Text: "#e8eaed",
    QPalette.ColorRole.Button: "#2b2c2f",
    QPalette.ColorRole.ButtonText: "#e8eaed",
    QPalette.ColorRole.BrightText: "#ffffff",
    QPalette.ColorRole.Highlight: "#3b82f6",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#8ab4f8",
    QPalette.ColorRole.Light: "#3c3d40",
    QPalette.ColorRole.Midlight: "#323336",
    QPalette.ColorRole.Mid: "#2a2b2e",
    QPalette.ColorRole.Dark: "#151618",
    QPalette.ColorRole.Shadow: "#000000",
}


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, color in _DARK.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):  # fmt: skip
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6e73"))
    return palette


def _is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def follow_system_theme(app: QApplication) -> None:
    """Use the system's light or dark scheme; fill in a dark palette if the style gives none."""
    hints = app.styleHints()
    light = QPalette(app.palette())

    def apply(scheme: Qt.ColorScheme) -> None:
        if scheme == Qt.ColorScheme.Dark and not _is_dark(app.palette()):
            app.setPalette(dark_palette())
        elif scheme == Qt.ColorScheme.Light and _is_dark(app.palette()) and not _is_dark(light):
            app.setPalette(light)

    hints.colorSchemeChanged.connect(apply)
    apply(hints.colorScheme())
