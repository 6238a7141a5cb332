"""llama.cpp's own llama-bench and llama-batched-bench, when their binaries are at hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import llama_cpp

from worker.engine.api import LoadOptions
from worker.engine.context import flash_attn_type


def flash_setting(options: LoadOptions) -> str:
    """The engine's flash attention choice for these options, as the tools' -fa value."""
    return {
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO: "auto",
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED: "on",
    }.get(flash_attn_type(options), "off")


def _binary(name: str) -> Path | None:
    """PROMPTSPOOL_LLAMA_BIN_DIR/name, else `name` on PATH."""
    folder = os.environ.get("PROMPTSPOOL_LLAMA_BIN_DIR")
    if folder and (Path(folder) / name).is_file():
        return Path(folder) / name
    found = shutil.which(name)
    return Path(found) if found else None


def tg128(model: Path, threads: int, flash: str) -> float | None:
    """llama-bench's tg128 tokens/s, every layer on the GPU if there is one, `threads` CPU
    threads, flash attention `flash` (on, off, auto); None without the binary."""
    binary = _binary("llama-bench")
    if binary is None:
        return None
    command = [str(binary), "-m", str(model), "-ngl", "99", "-p", "0", "-n", "128", "-r", "3",
               "-t", str(threads), "-fa", flash]  # fmt: skip
    out = subprocess.run([*command, "-o", "json"], capture_output=True, text=True, check=True)
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    return float(next(r["avg_ts"] for r in rows if r.get("n_gen") == 128))


def batched_tg(
    model: Path,
    parallel: list[int],
    threads: tuple[int, int],
    flash: str,
    pp: int = 128,
    tg: int = 128,
) -> dict[int, float]:
    """llama-batched-bench's generation tokens/s per number of parallel sequences ({} without it).

    The same command as the native figures in ../shared/gpu/README.md, with `threads` (for
    generating, for prompts) CPU threads and flash attention `flash`.
    """
    binary = _binary("llama-batched-bench")
    if binary is None:
        return {}
    command = [
        str(binary), "-m", str(model), "-ngl", "99", "-c", str(max(parallel) * (pp + tg) * 2),
        "-b", "2048", "-ub", "512", "-npp", str(pp), "-ntg", str(tg),
        "-npl", ",".join(map(str, parallel)), "--output-format", "jsonl",
        "-t", str(threads[0]), "-tb", str(threads[1]), "-fa", flash,
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[int, float] = {}
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("{") and '"speed_tg"' in line:
            row = json.loads(line)
            figures[int(row["pl"])] = float(row["speed_tg"])
    return figures
