"""The Redis key names of the ledger and event streams, in one place."""

from __future__ import annotations

PREFIX = "ps:"
JOBS = PREFIX + "jobs"  # zset: job id -> submission sequence
QUEUE = PREFIX + "queue"  # zset: queued job id -> priority rank * 1e12 + queue sequence
SCHEDULED = PREFIX + "scheduled"  # zset: queued job id waiting for its next try -> due (s)
RUNNING = PREFIX + "running"  # set: ids of jobs in loading/running
SEQ = PREFIX + "seq"  # counter
GLOBAL_EVENTS = PREFIX + "ev"  # stream: state and progress of every job
CANCEL_CHANNEL = PREFIX + "cancel"  # pub/sub: ids of running jobs to stop
WORKERS = PREFIX + "workers"  # set of worker ids ever seen (pruned when their heartbeat is gone)
PAUSED = PREFIX + "paused"  # flag: workers take no new jobs while set
REAPER_LOCK = PREFIX + "reaper-lock"
BEATS = PREFIX + "beats"  # hash: worker id -> heartbeat counter (judging workers lost)
FILES = PREFIX + "files"  # zset: file id -> upload sequence (files of the OpenAI API)
BATCHES = PREFIX + "batches"  # zset: batch id -> creation sequence


def endpoint_slots(name: str) -> str:
    """Zset: holders of the endpoint's request slots -> when their lease ends (ms)."""
    return f"{PREFIX}endpoint:{name}:slots"


def endpoint_pace(name: str) -> str:
    """When the endpoint's next request may start (ms), under its requests_per_minute."""
    return f"{PREFIX}endpoint:{name}:pace"


def endpoint_learned_pace(name: str) -> str:
    """The interval between requests the endpoint's last 429s asked for (ms)."""
    return f"{PREFIX}endpoint:{name}:learned-pace"


def job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def attempts(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:attempts"


def output(job_id: str, attempt: int) -> str:
    return f"{PREFIX}job:{job_id}:out:{attempt}"


def events(job_id: str) -> str:
    return f"{PREFIX}ev:{job_id}"


def worker(worker_id: str) -> str:
    return f"{PREFIX}worker:{worker_id}"


def file(file_id: str) -> str:
    """Hash: a stored file's metadata."""
    return f"{PREFIX}file:{file_id}"


def file_content(file_id: str) -> str:
    return f"{PREFIX}file:{file_id}:content"


def batch(batch_id: str) -> str:
    """Hash: a batch's status, timestamps, counts and where its files are."""
    return f"{PREFIX}batch:{batch_id}"


def batch_jobs(batch_id: str) -> str:
    """List: the batch's job ids in the order of its file's lines."""
    return f"{PREFIX}batch:{batch_id}:jobs"


def batch_claim(batch_id: str) -> str:
    """Set while a process validates and queues the batch (others leave it alone)."""
    return f"{PREFIX}batch:{batch_id}:claim"


def rate_limit(token_hash: str) -> str:
    """String: the theoretical arrival time of a token's next request (GCRA), named by a
    digest of the token; it expires once that time has passed."""
    return f"{PREFIX}ratelimit:{token_hash}"
