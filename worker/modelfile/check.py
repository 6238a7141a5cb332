"""A model path checked before a job is queued or loaded: it exists and is a sound GGUF file."""

from __future__ import annotations

from pathlib import Path

GGUF_MAGIC = b"GGUF"


def check_model_file(path: str | Path, *, deep: bool = False) -> Path:
    """The model path, resolved; ValueError naming the path and the reason if it is no GGUF file.

    `deep` also reads the GGUF header and tensor table (see worker.modelfile.layout), which finds a
    truncated or corrupt file: a few milliseconds, done once per model per submit or load.
    """
    model = Path(path).expanduser()
    if not model.exists():
        raise ValueError(f"model {str(model)!r}: no such file")
    if model.is_dir():
        raise ValueError(f"model {str(model)!r}: is a directory, not a GGUF file")
    try:
        with model.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc
    if magic != GGUF_MAGIC:
        raise ValueError(f"model {str(model)!r}: not a GGUF file (bad magic bytes)")
    if deep:
        from worker.modelfile.layout import GgufError, scan_gguf

        try:
            scan_gguf(model)
        except GgufError as exc:
            raise ValueError(f"model {str(model)!r}: {exc}") from exc
        except OSError as exc:
            raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc
    return model.resolve()
