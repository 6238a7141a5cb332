"""Short human texts for durations, times, rates and progress, shared by the views."""

from __future__ import annotations

import time
from datetime import datetime


def duration(seconds: float | None) -> str:
    """'0.4s', '42s', '3m 05s', '2h 07m'; '' for None."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def timestamp(epoch: float | None, now: float | None = None) -> str:
    """Time of day for today, else the date and time."""
    if not epoch:
        return ""
    moment = datetime.fromtimestamp(epoch)
    today = datetime.fromtimestamp(now if now is not None else time.time()).date()
    if moment.date() == today:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def rate(tps: float | None) -> str:
    return "" if not tps else f"{tps:,.1f}"


def progress_text(phase: str | None, done: int, total: int, finished: bool) -> str:
    """What the progress bar says: 'loading model', 'prompt 12/40', '37 / 512'."""
    if phase == "loading":
        return "loading model"
    if phase == "prompt":
        return f"prompt {done:,}/{total:,}"
    if phase == "generating":
        if finished:
            return f"{done:,} tokens"
        return f"{done:,} / {total:,}"
    return ""


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else many or word + 's'}"
