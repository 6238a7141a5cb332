"""The settings dialog's values checked as they are typed: errors and warnings by field."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker.jobs.validation import error_message
from worker.modelfile.check import check_model_file
from worker.modelfile.info import ModelInfo, read_model_info
from worker.settings import Settings

LABELS = {
    "model": "Default model",
    "n_gpu_layers": "GPU layers",
    "n_ctx": "Context size",
    "system_prompt": "System prompt",
    "prompt_format": "Prompt format",
    "http_port": "HTTP API port",
    "http_rate_limit_rpm": "HTTP API rate limit",
    "endpoints": "Endpoints",
    "remote_max_tries": "Tries of a remote job",
}


@dataclass
class Findings:
    """Why values cannot be used (`errors`) and what may not work well (`warnings`), by field."""

    errors: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


class SettingsChecks:
    """Checks values against the settings model, the model file and its trained context.

    A model named `NAME/MODEL` of one of the endpoints (as the values have them) is remote:
    it has no file to check.

    A model file is read once per version of it (path, size, modification time).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[tuple[str, int, int], ModelInfo | str] = {}

    def check(self, values: dict[str, Any]) -> Findings:
        found = Findings()
        trial = self.settings.model_copy(deep=True)
        for name, value in values.items():
            try:
                setattr(trial, name, value)  # validate_assignment checks each value
            except ValidationError as exc:
                reason = error_message(exc.errors(include_url=False)[0], Settings)
                found.errors[name] = f"{_label(name)}: {reason}"
        model = values.get("model")
        if model is not None and trial.remote_target(str(model)) is not None:
            return found  # NAME/MODEL of an endpoint: no local file to check
        if model is not None and "model" not in found.errors:
            info = self.model_info(Path(model))
            if isinstance(info, str):
                found.errors["model"] = info
            else:
                self._check_context(info, values.get("n_ctx"), found)
        return found

    def model_info(self, path: Path) -> ModelInfo | str:
        """The model's metadata, or why it cannot be used (naming the file and the reason)."""
        try:
            stat = os.stat(path)
        except OSError:
            stat = None
        key = (str(path), stat.st_size, stat.st_mtime_ns) if stat is not None else None
        if key is not None and key in self._models:
            return self._models[key]
        result: ModelInfo | str
        try:
            check_model_file(path, deep=True)
            result = read_model_info(path)
        except ValueError as exc:
            result = str(exc)
        if key is not None:
            self._models[key] = result
        return result

    @staticmethod
    def _check_context(info: ModelInfo, n_ctx: object, found: Findings) -> None:
        trained = info.context_length
        if not isinstance(n_ctx, int) or not trained or n_ctx <= trained:
            return
        found.warnings["n_ctx"] = (
            f"Context size: {n_ctx:,} tokens is more than the {trained:,} this model was "
            "trained on; its output degrades past that, and the memory the context needs "
            "may not fit"
        )
