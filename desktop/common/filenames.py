"""File names made from job titles: safe on every system, short, never empty."""

from __future__ import annotations

import re
import unicodedata

MAX_STEM = 80
# Characters Windows, macOS or Linux refuse (or treat specially) in a file name.
UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(10)}


def safe_stem(title: str, fallback: str) -> str:
    """`title` as a file name without suffix: unsafe characters become spaces, runs of space
    one, no leading or trailing dots and spaces, at most MAX_STEM characters; `fallback`
    when nothing is left or the name is reserved on Windows."""
    text = UNSAFE.sub(" ", unicodedata.normalize("NFC", title))
    text = " ".join(text.split())[:MAX_STEM].strip(" .")
    if not text or text.split(".")[0].upper() in RESERVED:
        return fallback
    return text


def export_file_name(title: str | None, count: int, fmt: str) -> str:
    """The name offered for an export: one job's title, else how many jobs it holds."""
    if count > 1:
        return f"promptspool-{count}-jobs.{fmt}"
    return f"{safe_stem(title or '', 'promptspool-job')}.{fmt}"
