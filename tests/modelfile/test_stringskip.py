"""Skipping a vocabulary's strings: the vectorized run lands where the one-by-one walk does."""

from __future__ import annotations

import io
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.modelfile.reader import GgufError, HeaderReader
from worker.modelfile.stringskip import skip_each, skip_short

# Mostly short text, as in a vocabulary; also empty strings, long ones and runs of NULs,
# which the vectorized run must stop at without skipping wrongly.
TEXTS = st.one_of(
    st.text(min_size=1, max_size=12).map(str.encode),
    st.binary(max_size=300),
    st.sampled_from([b"", b"\x00" * 8, b"a" + b"\x00" * 7, b"x" * 256, b"\x00" * 20 + b"y"]),
)


def packed(strings: list[bytes]) -> bytes:
    return b"".join(struct.pack("<Q", len(s)) + s for s in strings)


def walk(blob: bytes, count: int) -> int:
    at = 0
    for _ in range(count):
        at += 8 + struct.unpack_from("<Q", blob, at)[0]
    return at


@settings(max_examples=400, deadline=None)
@given(strings=st.lists(TEXTS, max_size=400), tail=st.binary(max_size=64), data=st.data())
def test_a_vectorized_run_stops_where_the_walk_agrees(
    strings: list[bytes], tail: bytes, data: st.DataObject
) -> None:
    blob = packed(strings) + tail
    count = data.draw(st.integers(0, len(strings)), label="count")
    at, done = skip_short(blob, 0, count)
    assert done <= count and at == walk(blob, done)
    if all(0 < len(s) < 256 and b"\x00" * 7 not in s for s in strings[: count + 1]):
        assert done == count or count == len(strings)  # nothing stops a run of short text
    at, done = skip_each(blob, 0, count)
    assert (at, done) == (walk(blob, count), count)


@settings(max_examples=200, deadline=None)
@given(strings=st.lists(TEXTS, min_size=1, max_size=3000), cut=st.integers(0, 100))
def test_the_header_reader_skips_exactly_the_strings_or_says_it_is_cut(
    strings: list[bytes], cut: int
) -> None:
    """Through the reader's MiB-at-a-time loading (made smaller here), and with the file
    ending early: the position after the last string, or a refusal naming the truncation."""
    blob = b"x" * 3 + packed(strings) + b"end"
    whole = len(blob)
    if cut:
        blob = blob[: max(3, whole - 3 - cut)]
    reader = HeaderReader(io.BytesIO(blob), len(blob))
    reader._STRINGS_STEP = 4096  # several windows even for a small list
    reader.skip(3)
    try:
        reader.skip_strings(len(strings))
    except GgufError as exc:
        assert cut and "truncated" in str(exc)
        return
    assert reader.position == 3 + walk(packed(strings), len(strings))
    assert not cut or reader.position <= len(blob)


def test_a_vocabulary_of_long_tokens_still_walks_them_all() -> None:
    """Every string too long for the vectorized run: the loop takes over, in growing bursts."""
    strings = [b"t" * (256 + n % 7) for n in range(20_000)]
    blob = packed(strings) + b"rest"
    reader = HeaderReader(io.BytesIO(blob), len(blob))
    reader.skip_strings(len(strings))
    assert reader.read(4) == b"rest"
