"""How long `promptspool list`, `submit` and `show` take as whole processes, vs `python -c pass`.

Each command runs against a real temporary queue (no worker: the jobs stay queued), timed
from its start to its exit, start-up and imports included, as a person at a shell waits for
it. The commands and the bare interpreter run in turn (list, submit, show, pass, list, ...),
so that a machine that slows down meanwhile slows all four alike.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import emit, stories_model
from worker.jobs.spec import JobSpec
from worker.testing.harness import temp_queue

TARGET_MS = 150


def promptspool() -> list[str]:
    """The installed `promptspool` script beside this interpreter, else the same entry point."""
    script = Path(sys.executable).with_name("promptspool")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "desktop"]


def _time_ms(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, check=False, timeout=120)  # fmt: skip
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{command[1:]} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed


def _spread(samples: list[float]) -> dict[str, float]:
    return {
        "min": round(min(samples), 1),
        "median": round(statistics.median(samples), 1),
        "max": round(max(samples), 1),
    }


def run(model: Path | None = None, runs: int = 10) -> dict[str, Any]:
    """`runs` timed runs of each command (after one untimed round that fills the caches)."""
    model = model or stories_model()
    cli = promptspool()
    with temp_queue(workers=0, prefix="psk-") as q:
        [job_id] = q.client.submit([JobSpec(prompt="Once upon a time", model=str(model))])
        env = {**q.env, "PROMPTSPOOL_MODEL": str(model)}
        commands = {
            "list": [*cli, "list"],
            "submit": [*cli, "submit", "--prompt", "Once upon a time", "--max-tokens", "4"],
            "show": [*cli, "show", job_id],
            "python_pass": [sys.executable, "-c", "pass"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(runs + 1):
            for name, command in commands.items():
                elapsed = _time_ms(command, env)
                if round_:
                    samples[name].append(elapsed)
    return emit("cli_start_ms", {
        **{name: _spread(values) for name, values in samples.items()},
        "runs": runs,
        "target_ms": TARGET_MS,
        # Without cached bytecode every module is compiled again at each start.
        "bytecode_cached": not sys.dont_write_bytecode and "PYTHONDONTWRITEBYTECODE" not in env,
    })  # fmt: skip


if __name__ == "__main__":
    run()
