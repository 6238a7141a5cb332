"""Ends a worker whose supervisor (the app, `serve`) died without stopping it, on any OS."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)


def exit_with_parent(every_s: float = 1.0) -> None:
    """Watch the parent process; once it is gone, stop this worker as SIGTERM does.

    A worker started by the app outlives an app killed with SIGKILL (or crashed): the
    child is re-parented and would go on holding the model and its GPU memory beside the
    worker of the next app. Linux's parent-death signal is bound to the thread that
    started the child, and exists on Linux only; a changed parent pid means the same
    everywhere. The stop is a warm shutdown: running jobs go back to the queue.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent:
                log.warning(
                    "the process that started this worker (pid %d) is gone; shutting down "
                    "(running jobs go back to the queue)", parent,
                )  # fmt: skip
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="promptspool-parent-watch", daemon=True).start()
