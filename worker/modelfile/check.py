"""A model path checked before a job is queued or loaded: it exists and is a sound GGUF file."""

from __future__ import annotations

import stat
from pathlib import Path

from worker.files import NotRegularFile, kind_of, open_regular
from worker.modelfile.layout import GgufError, scan_gguf

GGUF_MAGIC = b"GGUF"


def check_model_file(path: str | Path, *, deep: bool = False) -> Path:
    """The model path, resolved; ValueError naming the path and the reason if it is no GGUF file.

    `deep` also reads the GGUF header and tensor table (see worker.modelfile.layout), which
    finds a truncated or corrupt file: a few milliseconds, done once per model per submit or
    load. Only a regular file is opened, and without blocking: a FIFO or a device named as
    the model is refused at once instead of hanging the command or the worker.
    """
    model = Path(path).expanduser()
    try:
        mode = model.stat().st_mode
    except FileNotFoundError:
        raise ValueError(f"model {str(model)!r}: no such file") from None
    except OSError as exc:
        raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(mode):
        raise ValueError(f"model {str(model)!r}: is {kind_of(mode)}, not a GGUF file")
    try:
        with open_regular(model) as handle:
            magic = handle.read(4)
    except NotRegularFile as exc:
        raise ValueError(f"model {str(model)!r}: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc
    if magic != GGUF_MAGIC:
        raise ValueError(f"model {str(model)!r}: not a GGUF file (bad magic bytes)")
    if deep:
        try:
            scan_gguf(model)
        except GgufError as exc:
            raise ValueError(f"model {str(model)!r}: {exc}") from exc
        except OSError as exc:
            raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc
    return model.resolve()
