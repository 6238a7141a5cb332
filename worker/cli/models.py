"""`models`: the models jobs may name (on disk, wherever other tools keep them, and each
remote endpoint's), searching the Hugging Face Hub, and downloading from it."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from worker.cli.common import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, CliError, add_command
from worker.cli.terminal import one_line, say
from worker.settings import Settings


def register(sub: Any) -> None:
    p = add_command(
        sub, "models", cmd_models,
        "list the models jobs may name: GGUF files on disk (the settings' folders, Hugging "
        "Face's cache, LM Studio, GPT4All, Ollama, llama.cpp's cache) and each remote "
        "endpoint's (NAME/MODEL); `models search`, `models pull` use the Hugging Face Hub",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.add_argument("--local", action="store_true", help="only the files on this machine")
    p.add_argument("--all", action="store_true", help="also list what was skipped, and why")
    actions = p.add_subparsers(dest="models_action", metavar="{search,pull}")
    about = "GGUF model repositories on the Hugging Face Hub, most downloaded first"
    search = add_command(actions, "search", cmd_search, about)
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=20)
    search.add_argument("--json", action="store_true", help="print them as JSON")
    about = "download a GGUF model from the Hugging Face Hub (resumes; Ctrl-C stops)"
    pull = add_command(actions, "pull", cmd_pull, about)
    pull.add_argument("repo", help="the repository, e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    pull.add_argument("file", nargs="?",
                      help="its GGUF file (default: the only one, else its Q4_K_M); without it "
                      "and with several, the files are listed")  # fmt: skip
    pull.add_argument("--to", type=Path, help="into this folder (default: the Hugging Face "
                      "cache, which other tools share)")  # fmt: skip


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from worker.library.listing import ModelLibrary
    from worker.modelfile.info import human_bytes, human_count

    listing = ModelLibrary(settings).list()
    remote, failures = ([], []) if args.local else _remote_models(settings)
    if args.json:
        local = [model.as_dict() for model in listing.models]
        passed = [{"path": str(s.path), "source": s.source, "reason": s.reason}
                  for s in listing.skipped]  # fmt: skip
        print(json.dumps({"models": local, "remote": remote, "failures": failures,
                          "skipped": passed}, indent=2))  # fmt: skip
        _say_failures(failures)
        return EXIT_FAILED if failures else EXIT_OK
    row = "{:<40}  {:<12}  {:>8}  {:<8}  {:>6}  {:<15}  {}"
    print(row.format("NAME", "SOURCE", "SIZE", "QUANT", "PARAMS", "FIT", "PATH"))
    for model in listing.models:
        facts = model.facts
        params = human_count(facts.parameters) if facts.parameters else "?"
        size, quant = human_bytes(model.size), facts.quantization or "?"
        print(row.format(one_line(model.name), model.source, size, quant, params, model.fit,
                         one_line(model.path)))  # fmt: skip
    for item in remote:
        print(row.format(one_line(item["name"]), "remote", "", "", "", "", item["base_url"]))
    if args.all:
        for skipped in listing.skipped:
            say(f"skipped {one_line(skipped.path)} ({skipped.source}): {one_line(skipped.reason)}")
    elif listing.skipped:
        say(f"promptspool: {len(listing.skipped)} entries skipped (`models --all` says why)")
    if not listing.models and not remote and not failures:
        say("promptspool: no models found: `promptspool models search QUERY` finds some on the "
            "Hugging Face Hub, `promptspool models pull REPO` downloads one")  # fmt: skip
    _say_failures(failures)
    return EXIT_FAILED if failures else EXIT_OK


def _say_failures(failures: list[dict[str, str]]) -> None:
    """Each endpoint that could not list its models, on stderr (with --json too)."""
    for failure in failures:
        say(f"promptspool: {one_line(failure['error'])}")


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


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from worker.library.hub import HubError, search_gguf

    try:
        hits = search_gguf(args.query, limit=args.limit)
    except HubError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps([{"id": h.id, "downloads": h.downloads, "likes": h.likes,
                           "gated": h.gated} for h in hits], indent=2))  # fmt: skip
        return EXIT_OK
    for hit in hits:
        gated = "  (gated: needs HF_TOKEN)" if hit.gated else ""
        print(f"{hit.id}\t{hit.downloads:,} downloads{gated}")
    if not hits:
        say(f"promptspool: no GGUF repositories match {args.query!r}")
    return EXIT_OK


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    from worker.library.hub import DownloadCancelled, HubError, download, repo_gguf_files
    from worker.modelfile.info import human_bytes

    try:
        filename = args.file or _choose_file(args.repo, repo_gguf_files(args.repo))
        if filename is None:
            return EXIT_FAILED
        cancel = threading.Event()
        meter = _ProgressLine(filename)
        try:
            path = download(args.repo, filename, to=args.to, progress=meter, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise CliError("stopped; `promptspool models pull` again resumes it",
                           EXIT_CANCELLED) from None  # fmt: skip
        finally:
            meter.end()
    except DownloadCancelled as exc:
        raise CliError(str(exc), EXIT_CANCELLED) from exc
    except HubError as exc:
        raise CliError(str(exc)) from exc
    print(f"{path}\t{human_bytes(path.stat().st_size)}")
    return EXIT_OK


def _choose_file(repo: str, files: list[Any]) -> str | None:
    """The repository's only GGUF model, else its Q4_K_M; else list them (None)."""
    from worker.modelfile.info import human_bytes

    if len(files) == 1:
        return str(files[0].filename)
    medium = [f for f in files if (f.quantization or "").upper() == "Q4_K_M"]
    if len(medium) == 1:
        return str(medium[0].filename)
    if not files:
        raise CliError(f"{repo} has no GGUF files")
    say(f"promptspool: {repo} has {len(files)} GGUF models; name one:")
    for item in files:
        size = human_bytes(item.size) if item.size else "?"
        say(f"  {item.filename}\t{item.quantization or '?'}\t{size}")
    return None


class _ProgressLine:
    """The download's progress on one line of stderr (a terminal), or nothing (a pipe)."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.live = sys.stderr.isatty()
        self.shown = False

    def __call__(self, progress: Any) -> None:
        if not self.live:
            return
        from worker.modelfile.info import human_bytes

        total = progress.total
        share = f"{progress.done / total:6.1%} " if total else ""
        size = f"{human_bytes(progress.done)}" + (f" / {human_bytes(total)}" if total else "")
        eta = f" · {progress.eta:.0f} s left" if progress.eta is not None else ""
        line = f"{progress.filename}: {share}{size} · {human_bytes(progress.speed)}/s{eta}"
        sys.stderr.write("\r" + line[:120].ljust(120))
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
