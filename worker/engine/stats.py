"""Where a batch engine's loop thread spends its time: decoding, or everything around it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class BatchStats:
    """Running totals since the engine started; read them twice and subtract for a window.

    `decode_s` is llama_decode until its results are ready (on a GPU, the kernels); `host_s`
    is the rest of a generation step: building the batch, sampling, streaming the text. The
    host time per step is what a batch loses to Python against llama.cpp's own batched
    decoding, whatever the device.
    """

    steps: int = 0  # generation steps: one decode of the next token of every generating job
    tokens: int = 0  # tokens generated in them
    decode_s: float = 0.0
    host_s: float = 0.0
    prompt_tokens: int = 0  # prompt tokens read, in chunks between the steps
    prompt_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def since(self, earlier: dict[str, Any]) -> dict[str, Any]:
        """The totals since an earlier `as_dict()`, with per-step means in milliseconds."""
        window = {name: value - earlier.get(name, 0) for name, value in asdict(self).items()}
        steps = window["steps"] or 1
        window["decode_ms_per_step"] = round(window["decode_s"] * 1000 / steps, 3)
        window["host_ms_per_step"] = round(window["host_s"] * 1000 / steps, 3)
        window["tokens_per_step"] = round(window["tokens"] / steps, 2)
        return window
