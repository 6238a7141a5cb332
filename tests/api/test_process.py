"""The API process's own set-up: room for many open streams."""

from __future__ import annotations

import resource

from worker.api.process import OPEN_FILES_WANTED, raise_open_file_limit


def test_the_open_file_limit_is_raised_for_many_streams() -> None:
    """Two descriptors a stream: at the usual soft limit of 1024, 500 streams would be all."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
    try:
        raised = raise_open_file_limit()
        now = resource.getrlimit(resource.RLIMIT_NOFILE)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    expected = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(OPEN_FILES_WANTED, hard)
    assert raised == now[0] == expected and now[1] == hard
