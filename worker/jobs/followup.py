"""A follow-up's conversation: the parent's turns and output, then a new user turn."""

from __future__ import annotations

from worker.jobs.job import Job, JobState
from worker.jobs.spec import Message


def can_follow_up(job: Job | None) -> bool:
    """Only a job that finished well has an answer to continue from."""
    return job is not None and job.state is JobState.succeeded


def system_of(job: Job) -> str:
    """The system prompt the job ran with: its system message, else its `system` field."""
    for message in job.spec.messages or []:
        if message.role == "system":
            return message.content
    return job.spec.system or ""


def conversation(parent: Job, prompt: str, system: str | None = None) -> list[Message]:
    """The messages of a job that follows up `parent` with `prompt`.

    `system`: the system prompt to keep (None: the parent's); empty drops it. The parent's
    own turns come next (its prompt as the user's, or its messages), then its output as the
    assistant's answer, then the new user turn.
    """
    system = system_of(parent) if system is None else system
    turns = [m for m in parent.spec.messages or [] if m.role != "system"]
    if parent.spec.prompt is not None:
        turns = [Message(role="user", content=parent.spec.prompt)]
    head = [Message(role="system", content=system)] if system.strip() else []
    return [
        *head,
        *turns,
        Message(role="assistant", content=parent.output),
        Message(role="user", content=prompt),
    ]
