"""`models`: the models jobs may name, local GGUF files and each remote endpoint's."""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from worker.cli.common import EXIT_FAILED, EXIT_OK, add_command
from worker.cli.terminal import one_line, say
from worker.settings import Settings


def register(sub: Any) -> None:
    p = add_command(
        sub, "models", cmd_models,
        "list the models jobs may name: GGUF files (default model, model folders) and each "
        "remote endpoint's models (NAME/MODEL)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.add_argument("--local", action="store_true", help="only the local GGUF files")


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from worker.modelfile.catalog import list_models

    local: list[dict[str, Any]] = [
        {"name": e.name, "where": "local", "path": str(e.path), "size": _size(e.path)}
        for e in list_models(settings.model, settings.model_dirs)
    ]
    remote, failures = ([], []) if args.local else _remote_models(settings)
    if args.json:
        print(json.dumps({"models": local + remote, "failures": failures}, indent=2))
    else:
        for row in local:
            print(f"{row['name']}\t{_megabytes(row['size'])}\t{row['path']}")
        for row in remote:
            print(f"{row['name']}\tremote\t{row['base_url']}")
        if not local and not remote and not failures:
            say("promptspool: no models: set model_dirs or a default model, or add endpoints")
    for failure in failures:
        say(f"promptspool: {one_line(failure['error'])}")
    return EXIT_FAILED if failures else EXIT_OK


def _remote_models(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every endpoint's models, asked all at once; and the endpoints that could not tell."""
    from worker.remote.answers import EndpointFailure
    from worker.remote.catalog import endpoint_models

    if not settings.endpoints:
        return [], []
    models: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=min(8, len(settings.endpoints))) as pool:
        asked = [(e, pool.submit(endpoint_models, settings, e)) for e in settings.endpoints]
        for endpoint, future in asked:
            try:
                found = future.result()
            except EndpointFailure as exc:
                failures.append({"endpoint": endpoint.name, "error": str(exc)})
                continue
            models += [{"name": m.name, "where": "remote", "endpoint": endpoint.name,
                        "base_url": endpoint.base_url} for m in found]  # fmt: skip
    return models, failures


def _size(path: Any) -> int | None:
    try:
        return int(path.stat().st_size)
    except OSError:
        return None


def _megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"
