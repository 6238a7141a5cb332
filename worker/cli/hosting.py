"""`serve` and `worker`: the commands that run the queue's processes in the foreground."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from worker.cli.common import EXIT_OK, CliError, add_command
from worker.settings import Settings


def register(sub: Any) -> None:
    p = add_command(
        sub, "serve", cmd_serve, "bundled server + one worker + the HTTP API, in the foreground"
    )
    p.add_argument("--remote", metavar="HOST:PORT",
                   help="let workers on other machines join over TLS on this address")  # fmt: skip
    p.add_argument("--tls-cert", type=Path, help="certificate for --remote (default: self-signed)")
    p.add_argument("--tls-key", type=Path, help="its private key")
    p = add_command(sub, "worker", cmd_worker, "run a worker for an existing queue")
    p.add_argument("--redis-url", help="the queue's URL (default: the bundled server)")
    p.add_argument("--loglevel", default="INFO")
    p.add_argument(
        "--remote", action="store_true",
        help="run jobs on remote endpoints (models NAME/MODEL), many at once, instead of "
        "local models",
    )  # fmt: skip
    p.add_argument(
        "--exit-with-parent", action="store_true",
        help="shut down when the process that started the worker dies (for supervisors)",
    )  # fmt: skip


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from worker.api.guard import BindRefused
    from worker.hosting.serve import Serve, ServeRunning, parse_host_port
    from worker.hosting.tlsdoor import TlsError

    logging.getLogger().setLevel(logging.INFO)

    def ready(worker_id: str) -> None:
        print(f"promptspool: queue ready; worker {worker_id} is waiting for jobs", flush=True)

    if not args.remote:
        try:
            return Serve(settings).run(ready)
        except (ServeRunning, BindRefused) as exc:
            raise CliError(str(exc)) from exc
    try:
        parse_host_port(args.remote)
    except ValueError as exc:
        raise CliError(f"--remote {exc}") from exc
    if settings.redis_url:
        raise CliError("--remote serves the bundled server; an external one has its own TLS")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("give both --tls-cert and --tls-key, or neither (self-signed)")
    serve = Serve(settings, remote=args.remote, tls_cert=args.tls_cert, tls_key=args.tls_key)
    try:
        return serve.run(ready)
    except (TlsError, ServeRunning, BindRefused) as exc:
        raise CliError(str(exc)) from exc


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runtime.parentwatch import exit_with_parent
    from worker.runtime.process import run_worker

    if args.exit_with_parent:
        exit_with_parent()
    run_worker(settings, args.redis_url, args.loglevel, remote=args.remote)
    return EXIT_OK
