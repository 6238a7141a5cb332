"""The prompt format choice (the model's template, raw text, a built-in one) and its wording."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QWidget

from worker.jobs.promptformat import (
    AUTO,
    BUILTIN_TEMPLATES,
    RAW,
    check_prompt_format,
    describe_prompt_format,
)

FORMAT_TIP = (
    "How the prompt is given to the model: its own chat template (Auto), the text as written "
    "(Raw), or one of llama.cpp's built-in chat templates"
)


def format_label(fmt: str) -> str:
    """The name a person picks from: 'Auto (model's template)', 'Raw text', 'chatml (built-in)'."""
    if fmt == AUTO:
        return "Auto (model's template)"
    if fmt == RAW:
        return "Raw text"
    return f"{fmt} (built-in)"


def format_line(fmt: str | None, chat_template: bool | None) -> str:
    """The model line's wording: 'Prompt format: the model's chat template' and so on;
    `chat_template`: whether the model has one (None: not known yet)."""
    return f"Prompt format: {describe_prompt_format(chat_template, fmt)}"


class PromptFormatBox(QComboBox):
    """Auto, Raw text, then llama.cpp's built-in templates by name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        for fmt in (AUTO, RAW, *BUILTIN_TEMPLATES):
            self.addItem(format_label(fmt), fmt)
        self.insertSeparator(2)
        self.setToolTip(FORMAT_TIP)
        self.setMaxVisibleItems(16)

    def prompt_format(self) -> str:
        return str(self.currentData() or AUTO)

    def set_prompt_format(self, fmt: str | None) -> None:
        """Choose `fmt` (None: auto); ValueError naming it when it is no known format."""
        index = self.findData(check_prompt_format(fmt or AUTO))
        self.setCurrentIndex(index)
