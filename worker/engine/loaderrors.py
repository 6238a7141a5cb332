"""Why a model did not load, in words: llama.cpp itself only says 'Failed to ...'."""

from __future__ import annotations

from pathlib import Path

from worker.engine.api import EngineError, LoadOptions
from worker.engine.hardware import memory_room
from worker.modelfile.layout import GgufError, GgufLayout, scan_gguf


def scan_model(path: Path) -> GgufLayout:
    """The file's GGUF layout; EngineError naming the file if it is truncated or corrupt."""
    try:
        return scan_gguf(path)
    except GgufError as exc:
        raise EngineError(f"model {str(path)!r} failed to load: {exc}") from exc
    except OSError as exc:
        raise EngineError(f"model {str(path)!r} cannot be read ({exc.strerror})") from exc


def load_error_message(path: Path, layout: GgufLayout, options: LoadOptions, exc: Exception) -> str:
    """Why llama.cpp refused the model, in words (it only says 'Failed to ...')."""
    text = str(exc)
    if "llama_context" in text:
        return (
            f"model {str(path)!r} loaded, but its context of {options.n_ctx} tokens could not be "
            "created: not enough memory? Lower PROMPTSPOOL_N_CTX or PROMPTSPOOL_N_GPU_LAYERS "
            f"({text})"
        )
    room = memory_room()
    if room is not None and room < layout.file_size:
        return (
            f"model {str(path)!r} failed to load: not enough memory (its weights are "
            f"{layout.file_size / 2**20:,.0f} MiB; about {room / 2**20:,.0f} MiB is free) ({text})"
        )
    arch = layout.architecture or "none recorded"
    return (
        f"model {str(path)!r} failed to load: llama.cpp refused it ({text}). Its architecture "
        f"is {arch!r}: this llama.cpp build may not support it, or the file is corrupt, or "
        "there is not enough memory for its weights"
    )
