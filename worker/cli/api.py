"""`api` and `token`: the HTTP API's process, and the token its clients send."""

from __future__ import annotations

import argparse
from typing import Any

from worker.cli.common import EXIT_OK, CliError, add_command
from worker.cli.terminal import say
from worker.settings import Settings


def register(sub: Any) -> None:
    p = add_command(sub, "api", cmd_api, "run the HTTP API for an existing queue")
    p.add_argument("--redis-url", help="the queue's URL (default: the bundled server)")
    p.add_argument(
        "--exit-with-parent", action="store_true",
        help="shut down when the process that started it dies (for supervisors)",
    )  # fmt: skip
    p = add_command(
        sub, "token", cmd_token, "print the HTTP API's bearer token (where it answers: on stderr)"
    )
    p.add_argument("--rotate", action="store_true", help="make a new token; the old one stops")


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    from worker.api.guard import BindRefused
    from worker.api.process import ApiStartError, run_api
    from worker.runtime.parentwatch import exit_with_parent

    if settings.http_port == 0:
        raise CliError("the HTTP API is off (http_port is 0); set PROMPTSPOOL_HTTP_PORT")
    if args.exit_with_parent:
        exit_with_parent()
    try:
        return run_api(settings, args.redis_url)
    except (BindRefused, ApiStartError) as exc:
        raise CliError(str(exc)) from exc


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from worker.api.info import read_api_info
    from worker.api.token import TokenFile

    tokens = TokenFile(settings.paths.ensure().config)
    print(tokens.rotate() if args.rotate else tokens.read(), flush=True)
    # The token alone on stdout (TOKEN=$(promptspool token)); the rest is for the person.
    info = read_api_info(settings)
    if info is None:
        say("promptspool: no HTTP API is running for this queue right now")
    elif args.rotate:
        say(f"promptspool: the API at {info['url']} takes the new token from now on")
    else:
        say(f"promptspool: the API answers at {info['url']}")
    return EXIT_OK
