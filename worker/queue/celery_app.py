"""The Celery app: JSON only, late acks, one job at a time, priorities on the Redis transport."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from worker.jobs.spec import JobSpec, Priority
from worker.jobs.target import remote_target

if TYPE_CHECKING:  # imported where an app is made: reading the queue needs no Celery
    from celery import Celery

TASK_NAME = "promptspool.run_job"
QUEUE_NAME = "promptspool"
# Jobs on remote endpoints: consumed by remote workers (an I/O pool), never by a GPU worker.
REMOTE_QUEUE = "promptspool.remote"
QUEUES = (QUEUE_NAME, REMOTE_QUEUE)
# Kombu's Redis transport polls lower numbers first: 0 is the highest priority.
PRIORITY_VALUES = {Priority.high: 1, Priority.normal: 4, Priority.low: 7}
# A lost or handed-back attempt goes one step ahead of its priority: it runs before jobs of
# the same priority that have not started yet, so a killed worker's job resumes promptly.
RESUME_STEP = 1
PRIORITY_STEPS = sorted({v - d for v in PRIORITY_VALUES.values() for d in (0, RESUME_STEP)})


def create_app(broker_url: str, *, longest_job_s: float = 7 * 86_400) -> Celery:
    """A Celery app for the queue at `broker_url` (results live in the ledger, not Celery)."""
    from celery import Celery

    app = Celery("promptspool", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_concurrency=1,
        worker_pool="threads",
        worker_send_task_events=True,
        # No "task-sent" event per message: it doubled the cost of queueing a job, and
        # monitors (Flower) still see each task from when a worker receives it.
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # A server that refuses writes for a while (MISCONF: its disk is full; LOADING) gives
        # redis ResponseErrors, which kombu counts as channel errors: without this the worker
        # would exit ("Unrecoverable error") instead of waiting for the server to recover.
        broker_channel_error_retry=True,
        task_default_queue=QUEUE_NAME,
        task_default_priority=PRIORITY_VALUES[Priority.normal],
        broker_transport_options={
            # Our own heartbeat requeues a lost job within seconds; this only guards
            # against a message being restored while its job is still legitimately running.
            "visibility_timeout": int(longest_job_s + 3600),
            "priority_steps": PRIORITY_STEPS,
            "queue_order_strategy": "priority",
        },
    )
    return app


def queue_for(spec: JobSpec) -> str:
    """The Celery queue a job's messages go to: remote endpoints have their own."""
    return REMOTE_QUEUE if remote_target(spec.model) is not None else QUEUE_NAME


def broker_queue_keys(queue: str = QUEUE_NAME) -> list[str]:
    """The Redis lists that hold the queue's waiting messages, one per priority step.

    Kombu's Redis transport names them `queue` for step 0 and `queue + SEP + step` for the
    others (kombu.transport.redis.Channel._q_for_pri).
    """
    sep = "\x06\x16"
    return [queue if step == 0 else f"{queue}{sep}{step}" for step in PRIORITY_STEPS]


def send_job(
    app: Celery,
    job_id: str,
    attempt: int,
    spec: JobSpec,
    *,
    resumed: bool = False,
    **options: Any,
) -> Any:
    """Send the message for one attempt: it carries the id and attempt number only, to the
    queue of the job's model (local or remote) at its priority.

    `resumed`: an attempt that replaces one lost with its worker (or handed back, or waited
    out a rate limit); it goes ahead of the waiting jobs of its priority, as the ledger's
    queue order has it.
    """
    return app.send_task(
        TASK_NAME,
        args=[job_id, attempt],
        priority=PRIORITY_VALUES[spec.priority] - (RESUME_STEP if resumed else 0),
        queue=queue_for(spec),
        # Given, so that Celery need not build them with its safe repr: a tenth of a send.
        argsrepr=f"[{job_id!r}, {attempt}]",
        kwargsrepr="{}",
        **options,
    )


def send_jobs(app: Celery, attempts: Iterable[tuple[str, int, JobSpec, bool]]) -> int:
    """Send the messages of many attempts, `(job id, attempt, spec, resumed)` each, in
    pipelined batches; how many were sent.

    One message at a time costs a round trip and a fresh redis-py client inside kombu each
    (about 0.34 ms here); 100,000 jobs would wait half a minute for their messages alone.
    Here kombu builds each message as usual, but its Redis channel hands it to one pipeline
    (sent every BATCH messages) instead of a client of its own, and the queue is declared
    once for all of them: about 0.09 ms a message.
    """
    sent = 0
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        # The queues (and their bindings) are declared once here, not again for every message.
        for name in QUEUES:
            producer.maybe_declare(app.amqp.queues[name])
        for chunk in _chunks(attempts, SEND_BATCH):
            with channel.client.pipeline(transaction=False) as pipe, _through(channel, pipe):
                for job_id, attempt, spec, resumed in chunk:
                    send_job(app, job_id, attempt, spec, resumed=resumed,
                             producer=producer, retry=False, declare=[])  # fmt: skip
                pipe.execute()
            sent += len(chunk)
    return sent


SEND_BATCH = 1000


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def _through(channel: Any, pipe: Any) -> Iterator[None]:
    """Make kombu's Redis channel write through `pipe` (its `_put` only LPUSHes with it)."""

    @contextmanager
    def pipelined(client: Any = None) -> Iterator[Any]:
        yield pipe

    channel.conn_or_acquire = pipelined
    try:
        yield
    finally:
        del channel.conn_or_acquire
