"""Which errors mean the queue is out for a while (the command line says so in one line)."""

from __future__ import annotations

import redis
from kombu.exceptions import OperationalError

from worker.queue.connection import is_queue_outage


def test_a_broken_connection_is_an_outage_whichever_library_raised_it() -> None:
    assert is_queue_outage(redis.ConnectionError("Connection closed by server."))
    assert is_queue_outage(OperationalError("Error 111 connecting: Connection refused."))
    assert is_queue_outage(redis.ResponseError("MISCONF Errors writing to the AOF file"))


def test_a_refusal_or_a_local_fault_is_not() -> None:
    assert not is_queue_outage(redis.AuthenticationError("invalid password"))
    assert not is_queue_outage(redis.ResponseError("ERR unknown command"))
    assert not is_queue_outage(BrokenPipeError())
    assert not is_queue_outage(ValueError("bad value"))
