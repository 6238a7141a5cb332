"""How long `promptspool list`, `submit` and `show` take as whole processes, vs `python -c pass`.

Each command runs against a real temporary queue (no worker: the jobs stay queued), timed
from its start to its exit, start-up and imports included, as a person at a shell waits for
it: through the warm command server (the default, once the first command has started it)
and alone in its process (`PROMPTSPOOL_CLI_SERVER=0`). The commands and the bare
interpreter run in turn, so that a machine that slows down meanwhile slows all alike.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import emit, stories_model
from worker.cli.commandclient import answers, socket_path
from worker.jobs.spec import JobSpec
from worker.paths import AppPaths
from worker.testing.harness import temp_queue, wait_until

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
    """`runs` timed runs of each command (after one untimed round that fills the caches),
    through the warm command server (the default) and alone in their process."""
    model = model or stories_model()
    cli = promptspool()
    with temp_queue(workers=0, prefix="psk-") as q:
        [job_id] = q.client.submit([JobSpec(prompt="Once upon a time", model=str(model))])
        base = {**q.env, "PROMPTSPOOL_MODEL": str(model)}
        envs = {
            "served": {**base, "PROMPTSPOOL_CLI_SERVER": "1"},
            "alone": {**base, "PROMPTSPOOL_CLI_SERVER": "0"},
        }
        commands = {
            "list": [*cli, "list"],
            "submit": [*cli, "submit", "--prompt", "Once upon a time", "--max-tokens", "4"],
            "show": [*cli, "show", job_id],
        }
        samples: dict[str, list[float]] = {
            f"{name}_{mode}": [] for mode in envs for name in commands
        }
        samples["python_pass"] = []
        server_socket = socket_path(AppPaths.resolve(q.home))
        for round_ in range(runs + 1):
            for mode, env in envs.items():
                for name, command in commands.items():
                    elapsed = _time_ms(command, env)
                    if round_:
                        samples[f"{name}_{mode}"].append(elapsed)
            elapsed = _time_ms([sys.executable, "-c", "pass"], base)
            if round_:
                samples["python_pass"].append(elapsed)
            else:  # the first short command started the server: time it once it is up
                wait_until(lambda: answers(server_socket), timeout=60, what="the command server")
        stop_command_server(q.home)
    return emit("cli_start_ms", {
        **{name: _spread(values) for name, values in samples.items()},
        "runs": runs,
        "target_ms": TARGET_MS,
        # Without cached bytecode every module is compiled again at each start.
        "bytecode_cached": not sys.dont_write_bytecode and "PYTHONDONTWRITEBYTECODE" not in base,
    })  # fmt: skip


def stop_command_server(home: Path) -> None:
    """The server leaves once its socket is gone (its home is removed next anyway)."""
    socket_path(AppPaths.resolve(home)).unlink(missing_ok=True)


if __name__ == "__main__":
    run()
