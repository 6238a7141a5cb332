"""Window state between runs (geometry, splitters, recent models, folders) in the config dir."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

MAX_RECENT = 10
EXPORT_DIR = "export_dir"


def default_export_dir() -> Path:
    """Where exports go before the first one: the documents folder, else the home folder."""
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(docs) if docs and Path(docs).is_dir() else Path.home()


class UiState:
    """A small INI file next to the core's settings.json; not settings the user edits."""

    def __init__(self, config_dir: Path) -> None:
        config_dir.mkdir(parents=True, exist_ok=True)
        self.path = config_dir / "desktop.ini"
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    def _bytes(self, key: str) -> QByteArray | None:
        value = self._qs.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def geometry(self, key: str) -> QByteArray | None:
        return self._bytes(f"window/{key}")

    def set_geometry(self, key: str, value: QByteArray) -> None:
        self._qs.setValue(f"window/{key}", value)

    def recent_models(self) -> list[str]:
        value = self._qs.value("models/recent", [])
        if isinstance(value, str):
            return [value] if value else []
        return [str(v) for v in value if v] if isinstance(value, list | tuple) else []

    def add_recent_model(self, path: str) -> list[str]:
        models = [path, *(m for m in self.recent_models() if m != path)][:MAX_RECENT]
        self._qs.setValue("models/recent", models)
        return models

    def flag(self, key: str) -> bool:
        return str(self._qs.value(f"flags/{key}", "false")).lower() == "true"

    def set_flag(self, key: str, value: bool = True) -> None:
        self._qs.setValue(f"flags/{key}", "true" if value else "false")

    def text(self, key: str) -> str:
        return str(self._qs.value(f"state/{key}", "") or "")

    def set_text(self, key: str, value: str) -> None:
        self._qs.setValue(f"state/{key}", value)

    def export_dir(self) -> Path | None:
        """The folder of the last export, while it exists."""
        value = self.text(EXPORT_DIR)
        return Path(value) if value and Path(value).is_dir() else None

    def set_export_dir(self, folder: Path) -> None:
        self.set_text(EXPORT_DIR, str(folder))

    def sync(self) -> None:
        self._qs.sync()
