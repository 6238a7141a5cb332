"""`python -m scripts.render_icons`: the app icon as PNGs in the sizes Linux desktops use."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parents[1]
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ROOT / "resources" / "promptspool.svg"))
    if not renderer.isValid():
        print("render_icons: resources/promptspool.svg is not a valid SVG", file=sys.stderr)
        return 1
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        out = ROOT / "resources" / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        out /= "promptspool.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(out))
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
