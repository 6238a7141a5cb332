"""OpenAI batch files given to `submit` (each becomes a batch), and `batches`: their list."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from worker.cli.common import EXIT_FAILED, EXIT_OK, add_command, open_client
from worker.cli.terminal import one_line, say
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.jobs.batchfile import BatchFile
    from worker.queue.batches.book import BatchBook
    from worker.queue.batches.record import Batch

SETTLE_EVERY_S = 0.5  # while jobs end, `--wait` settles the batch at most this often


def register(sub: Any) -> None:
    p = add_command(sub, "batches", cmd_batches, "list batches: id, status, request counts")
    p.add_argument("--json", action="store_true")


def cli_defaults(settings: Settings, model: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """The settings' job defaults under every request, with the command line's on top
    (`--model`: the model a line's "default" names)."""
    defaults = settings.job_defaults()
    if model:
        defaults["model"] = model
    defaults.update({k: v for k, v in given.items() if v is not None})
    return defaults


def submit_batch_files(
    files: list[BatchFile], defaults: dict[str, Any], settings: Settings, args: argparse.Namespace
) -> int:
    """Each file becomes a batch (all its requests queued in one step), or is refused with
    each bad line, field and reason (nothing of it queued). Prints each batch's id and
    job count; `--wait` waits until each batch ended; `--json` prints the batches."""
    from worker.queue.batches.book import BatchBook, check_batch_file, queue_batch_file

    code = EXIT_OK
    limit = int(settings.http_max_upload_mb * 1_000_000)
    good: list[tuple[BatchFile, str]] = []
    for item in files:  # checked before the queue is asked anything
        name = one_line(item.path)
        if len(item.data) > limit:
            say(f"promptspool: refused {name}: {len(item.data)} bytes, more than "
                f"{limit} (setting http_max_upload_mb); nothing queued")  # fmt: skip
            code = EXIT_FAILED
            continue
        plan = check_batch_file(item.data, None, defaults, settings)
        if plan.ok:
            good.append((item, plan.requests[0].url))
        else:
            _refuse(name, [str(error) for error in plan.errors])
            code = EXIT_FAILED
    if not good:
        return code
    with open_client(settings) as client:
        book = BatchBook(client)
        created: list[Batch] = []
        for item, _ in good:
            queued = queue_batch_file(book, item, defaults, limit)
            if queued.batch is None:  # a model file that cannot be used, found at queueing
                _refuse(one_line(item.path), queued.problems)
                code = EXIT_FAILED
                continue
            if not args.json:
                print(f"{queued.batch.id}  {len(queued.job_ids)} jobs", flush=True)
            created.append(queued.batch)
        if args.wait:
            created = [wait_for_batch(book, batch.id) for batch in created]
            for batch in created:
                counts = batch.request_counts
                if batch.status != "completed" or counts.failed:
                    say(f"promptspool: batch {batch.id} {batch.status}: {counts.completed} "
                        f"answered, {counts.failed} failed of {counts.total}")  # fmt: skip
                    code = EXIT_FAILED
        if args.json:
            print(json.dumps([batch.model_dump(mode="json") for batch in created], indent=2))
    return code


def _refuse(name: str, reasons: list[str]) -> None:
    say(f"promptspool: refused {name}: {len(reasons)} bad line(s); nothing queued")
    for reason in reasons:
        say(f"  {one_line(reason)}")


def wait_for_batch(book: BatchBook, batch_id: str) -> Batch:
    """Settle the batch as its jobs end (woken by the global stream) until it has ended."""
    client = book.client
    after = client.last_event_id()
    batch = book.settle(batch_id)
    settled = time.monotonic()
    while not batch.ended:
        events = client.read_global_events(after, block_ms=1000)
        if events:
            after = events[-1].id
        if time.monotonic() - settled >= SETTLE_EVERY_S or not events:
            batch = book.settle(batch_id)
            settled = time.monotonic()
    return batch


def cmd_batches(args: argparse.Namespace, settings: Settings) -> int:
    from worker.queue.batches.book import BatchBook

    with open_client(settings) as client:
        book = BatchBook(client)
        batches, _ = book.page(limit=len(book.store.ids()) or 1)
    if args.json:
        print(json.dumps([batch.model_dump(mode="json") for batch in batches], indent=2))
        return EXIT_OK
    row = "{:<30}  {:<11}  {:>9}  {:>6}  {:>6}  {}"
    print(row.format("ID", "STATUS", "COMPLETED", "FAILED", "TOTAL", "ENDPOINT"))
    for batch in batches:
        counts = batch.request_counts
        print(row.format(batch.id, batch.status, counts.completed, counts.failed, counts.total,
                         batch.endpoint))  # fmt: skip
    return EXIT_OK
