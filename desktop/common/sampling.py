"""A job's sampling fields as spin boxes bounded by the job spec, for the editor and settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QSpinBox,
    QWidget,
)

from worker.jobs.spec import SAMPLING_FIELDS, JobSpec
from worker.jobs.validation import field_bounds


@dataclass(frozen=True)
class FieldLook:
    """How one field is shown: its short and long labels, tip, step and decimals (0: int)."""

    short: str
    label: str
    tip: str
    step: float
    decimals: int = 0
    off_text: str = ""  # shown at the lowest value when that value turns the field off


TOP_P_TIP = "Nucleus sampling: keep the likeliest tokens that make up this share (1: off)"
MIN_P_TIP = "Drop tokens less likely than this share of the likeliest one (0: off)"
LOOKS: dict[str, FieldLook] = {
    "temperature": FieldLook(
        "Temp", "Temperature:", "Temperature: higher is more varied, 0 is greedy", 0.05, 2
    ),
    "top_p": FieldLook("Top-p", "Top-p:", TOP_P_TIP, 0.01, 2),
    "top_k": FieldLook(
        "Top-k", "Top-k:", "Sample among the k likeliest tokens (0: off)", 1, off_text="off"
    ),
    "min_p": FieldLook("Min-p", "Min-p:", MIN_P_TIP, 0.01, 2),
    "repeat_penalty": FieldLook(
        "Repeat", "Repeat penalty:", "Penalty for repeating recent tokens (1: off)", 0.05, 2
    ),
    "max_tokens": FieldLook(
        "Max tokens", "Max tokens:", "Stop after this many generated tokens", 64
    ),
}


SpinBox = QSpinBox | QDoubleSpinBox


def spin_box(name: str) -> SpinBox:
    """A spin box for the JobSpec field `name`, with the spec's bounds."""
    look = LOOKS[name]
    low, high = field_bounds(JobSpec, name)
    box: SpinBox
    if look.decimals:
        box = QDoubleSpinBox()
        box.setDecimals(look.decimals)
        box.setRange(low, high)
        box.setSingleStep(look.step)
    else:
        box = QSpinBox()
        box.setRange(int(low), int(high))
        box.setSingleStep(int(look.step))
        box.setGroupSeparatorShown(True)
    box.setAccelerated(True)
    box.setToolTip(look.tip)
    if look.off_text:
        box.setSpecialValueText(look.off_text)
    return box


class SamplingFields(QWidget):
    """Temperature, top-p, top-k, min-p, repeat penalty and max tokens for new jobs.

    `compact`: one row with the short labels above the boxes (the editor); otherwise a form
    with the long labels beside them (the settings dialog).
    """

    def __init__(self, compact: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.boxes: dict[str, SpinBox] = {}
        grid = QGridLayout()
        form = QFormLayout()
        for column, name in enumerate(SAMPLING_FIELDS):
            self.boxes[name] = box = spin_box(name)
            look = LOOKS[name]
            label = QLabel(look.short if compact else look.label)
            label.setToolTip(look.tip)
            label.setBuddy(box)
            if compact:
                grid.addWidget(label, 0, column)
                grid.addWidget(box, 1, column)
            else:
                form.addRow(label, box)
        layout = grid if compact else form
        layout.setContentsMargins(0, 0, 0, 0)
        if compact:
            grid.setHorizontalSpacing(6)
            grid.setVerticalSpacing(4)
        self.setLayout(layout)

    def box(self, name: str) -> SpinBox:
        return self.boxes[name]

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Show these values (e.g. `Settings.job_defaults()`); names it lacks keep theirs."""
        for name, box in self.boxes.items():
            if name in values:
                box.setValue(values[name])

    def values(self) -> dict[str, Any]:
        """The fields as JobSpec takes them (floats rounded to what the boxes show)."""
        result: dict[str, Any] = {}
        for name, box in self.boxes.items():
            value = box.value()
            result[name] = round(value, 4) if isinstance(box, QDoubleSpinBox) else int(value)
        return result
