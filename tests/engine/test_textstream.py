"""TextAssembler: multi-byte characters across tokens, stop strings across tokens."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.engine.textstream import TextAssembler


def _run(pieces: list[bytes], stop: list[str] | None = None) -> tuple[str, list[str]]:
    assembler = TextAssembler(stop or [])
    chunks = [assembler.feed(p) for p in pieces]
    chunks.append(assembler.finish())
    return "".join(chunks), chunks


def test_multibyte_character_split_across_tokens_appears_whole() -> None:
    data = "héllo 🌍".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]
    text, chunks = _run(pieces)
    assert text == "héllo 🌍"
    assert all("\ufffd" not in chunk for chunk in chunks)


def test_stop_string_split_across_tokens_is_not_shown() -> None:
    text, chunks = _run([b"Once upon", b" a time\n", b"\nTHE", b" END", b" more"], ["\n\nTHE END"])
    assert text == "Once upon a time"
    assert "THE" not in "".join(chunks)


def test_text_that_only_looks_like_a_stop_prefix_is_released() -> None:
    text, _ = _run([b"ab", b"c", b"abd"], ["abx"])
    assert text == "abcabd"


def test_nothing_after_stop() -> None:
    assembler = TextAssembler(["."])
    assert assembler.feed(b"Hi. there") == "Hi"
    assert assembler.stopped
    assert assembler.feed(b"more") == ""
    assert assembler.finish() == ""


@given(st.text(max_size=200), st.lists(st.integers(1, 7), min_size=1, max_size=50))
def test_any_split_of_utf8_round_trips(text: str, sizes: list[int]) -> None:
    data = text.encode()
    pieces, start, index = [], 0, 0
    while start < len(data):
        size = sizes[index % len(sizes)]
        pieces.append(data[start : start + size])
        start += size
        index += 1
    assert _run(pieces)[0] == text


@given(st.text(alphabet="ab.", max_size=60), st.sampled_from(["a.", "..", "ba.b"]))
def test_output_is_text_before_first_stop(text: str, stop: str) -> None:
    pieces = [ch.encode() for ch in text]
    expected = text.split(stop, maxsplit=1)[0] if stop in text else text
    assert _run(pieces, [stop])[0] == expected
