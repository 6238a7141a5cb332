"""Skipping a run of GGUF strings (a vocabulary) in memory: vectorized when they are short."""

from __future__ import annotations

import struct

_LENGTH = struct.Struct("<Q")


def skip_each(data: bytes, at: int, count: int) -> tuple[int, int]:
    """Walk up to `count` strings from `data[at]`, one length at a time (about 80 ns each).

    Returns (offset after the last string walked, strings walked): fewer than `count` where
    a length does not lie (whole) inside `data`. The offset may lie past the end of `data`
    (and of the file: the caller checks).
    """
    unpack = _LENGTH.unpack_from
    done = 0
    try:
        for done in range(count):  # noqa: B007 (`done` is used after the loop)
            at += 8 + unpack(data, at)[0]
        done = count
    except (struct.error, OverflowError):
        pass  # the length at `at` is not (all) in `data`
    return at, done


def skip_short(data: bytes, at: int, count: int) -> tuple[int, int]:
    """Skip up to `count` strings from `data[at]` with numpy, as long as each is 1-255 bytes.

    Every string of 1-255 bytes starts with a length whose first byte is non-zero and whose
    other seven are zero; text has no run of seven NULs, so those places are found at once
    for the whole buffer. Each found place must be where the one before it ends, starting
    from `at`: the run stops at the first that is not (a longer or empty string, or NULs in
    a string), so what it skips is exactly what the one-at-a-time walk would (about 10x
    faster). Returns (offset of the first string not skipped, strings skipped); it may
    skip none.
    """
    import numpy as np

    window = np.frombuffer(data, dtype=np.uint8)[at:]
    if count <= 0 or len(window) < 9:
        return at, 0
    zero = window == 0
    starts = ~zero[:-7]  # a non-zero first byte, then seven zero bytes
    for k in range(1, 8):
        starts &= zero[k : len(zero) - 7 + k]
    places = np.flatnonzero(starts)
    if not len(places) or places[0] != 0:
        return at, 0
    ends = places + 8 + window[places].astype(np.int64)
    broken = np.flatnonzero(ends[:-1] != places[1:])
    linked = int(broken[0]) if len(broken) else len(places) - 1  # places[:linked + 1] chain
    skipped = min(linked, count)
    return at + int(places[skipped]), skipped
