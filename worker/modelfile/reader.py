"""Bounded little-endian reads of a GGUF header: values read or skipped, never past its end."""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass
from typing import BinaryIO

from worker.modelfile.stringskip import skip_each, skip_short

# Value types of GGUF metadata (gguf.GGUFValueType) and their struct formats; 8 = string, 9 = array.
_SCALAR_FORMATS = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d",
}  # fmt: skip
_SCALARS = {kind: struct.Struct("<" + fmt) for kind, fmt in _SCALAR_FORMATS.items()}
_SCALAR_SIZES = {kind: packer.size for kind, packer in _SCALARS.items()}
STRING, ARRAY = 8, 9
_U32, _U64 = _SCALARS[4], _SCALARS[10]
_SHORT_RUN = 64  # fewer strings than this are not worth numpy's setup
_BURST = 4096  # strings walked one by one after a vectorized run that stopped early
SHORT_ARRAY = 4096  # numeric arrays up to this length are read (per-layer values, not vocabularies)
LONG_STRING = 1 << 20  # strings longer than this are skipped, not read (no header needs one)

Scalar = bool | int | float


class GgufError(ValueError):
    """The file is not a usable GGUF model; the message says why (without the path)."""


@dataclass(frozen=True)
class GgufArray:
    """An array in the metadata: its item type and length; the items only of a short numeric one.

    A vocabulary's strings (`tokenizer.ggml.tokens`, `merges`) are skipped, never read: only
    their count is known.
    """

    item_type: int
    count: int
    items: tuple[Scalar, ...] | None = None


@dataclass(frozen=True)
class LongString:
    """A metadata string longer than LONG_STRING bytes: skipped, only its length is known."""

    length: int


MetaValue = Scalar | str | GgufArray | LongString


class HeaderReader:
    """Little-endian reads that refuse to run past the end of the file.

    The header is read into memory in 64 KiB steps as parsing needs it (not mapped: a file
    shrinking meanwhile must give an error, not a SIGBUS); skips past it just move on.
    """

    _STEP = 65536
    _STRINGS_STEP = 1 << 20

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle = handle
        self.size = size
        self.data = b""
        self.start = 0  # file offset of data[0]
        self.position = 0

    def _past_end(self) -> GgufError:
        return GgufError(
            f"truncated or corrupt: the header runs past the end of the file ({self.size:,} bytes)"
        )

    def _have(self, end: int, at_least: int = _STEP) -> int:
        """Make file bytes up to `end` available; the index of `position` in `data`."""
        if end > self.size:
            raise self._past_end()
        if self.position < self.start or end > self.start + len(self.data):
            self.start = self.position
            self.handle.seek(self.position)
            self.data = self.handle.read(max(end - self.position, at_least))
            if self.start + len(self.data) < end:
                raise GgufError("truncated: the file ended while reading its header")
        return self.position - self.start

    def read(self, n: int) -> bytes:
        at = self._have(self.position + n)
        self.position += n
        return bytes(self.data[at : at + n])

    def skip(self, n: int) -> None:
        if self.position + n > self.size:
            raise self._past_end()
        self.position += n

    def bound(self, count: int, least_bytes: int, what: str) -> None:
        if count * least_bytes > self.size - self.position:
            raise GgufError(
                f"truncated or corrupt: its header's {what} ({count:,}) does not fit in the "
                f"file ({self.size:,} bytes)"
            )

    def scalar(self, kind: int) -> Scalar:
        packer = _SCALARS[kind]
        at = self._have(self.position + packer.size)  # may replace self.data: call it first
        value: Scalar = packer.unpack_from(self.data, at)[0]
        self.position += packer.size
        return value

    def u32(self) -> int:
        at = self._have(self.position + 4)  # may replace self.data: call it first
        value: int = _U32.unpack_from(self.data, at)[0]
        self.position += 4
        return value

    def u64(self) -> int:
        at = self._have(self.position + 8)  # may replace self.data: call it first
        value: int = _U64.unpack_from(self.data, at)[0]
        self.position += 8
        return value

    def skip_strings(self, count: int) -> None:
        """Skip `count` strings (a vocabulary: 100k+ of them) without reading them.

        Each string's length must be read to find the next. Runs of short strings are
        skipped with numpy a MiB at a time, the rest one by one in a Python loop (see
        worker.modelfile.stringskip): 20 ms instead of 60 for a 262k-token vocabulary.
        Only where numpy is already loaded (the worker, the app): importing it takes longer
        than the loop does for any vocabulary (a command's `submit` would pay it).
        """
        burst = _BURST
        vectorize = "numpy" in sys.modules
        while count:
            step = count
            if vectorize and count > _SHORT_RUN:
                self._have(min(self.position + self._STRINGS_STEP, self.size), self._STRINGS_STEP)
                at, done = skip_short(self.data, self.position - self.start, count)
                self.position, count = self.start + at, count - done
                if not count:
                    break
                # one string past where the run stopped; after a poor run, a loop's worth
                step = 1 if done >= _SHORT_RUN else min(count, burst)
                burst = _BURST if done >= _SHORT_RUN else min(burst * 2, 1 << 20)
            self._have(self.position + 8, self._STRINGS_STEP)
            at, done = skip_each(self.data, self.position - self.start, step)
            self.position, count = self.start + at, count - done
            if self.position > self.size:
                raise self._past_end()

    def string(self) -> str:
        length = self.u64()
        self.bound(length, 1, "string length")
        return self.read(length).decode("utf-8", errors="replace")

    def value(self, kind: int) -> MetaValue:
        """The next metadata value: scalars and strings read, arrays counted (see GgufArray)."""
        if kind in _SCALARS:
            return self.scalar(kind)
        if kind == STRING:
            length = self.u64()
            self.bound(length, 1, "string length")
            if length > LONG_STRING:
                self.skip(length)
                return LongString(length)
            return self.read(length).decode("utf-8", errors="replace")
        if kind == ARRAY:
            item, count = self.u32(), self.u64()
            if item in _SCALARS and count <= SHORT_ARRAY:
                self.bound(count, _SCALAR_SIZES[item], "array length")
                at = self._have(self.position + count * _SCALAR_SIZES[item])
                items = tuple(struct.unpack_from(f"<{count}{_SCALAR_FORMATS[item]}", self.data, at))
                self.position += count * _SCALAR_SIZES[item]
                return GgufArray(item, count, items)
            self.skip_array(item, count)
            return GgufArray(item, count)
        raise GgufError(f"corrupt GGUF header: unknown metadata type {kind}")

    def skip_value(self, kind: int) -> None:
        if kind in _SCALAR_SIZES:
            self.skip(_SCALAR_SIZES[kind])
        elif kind == STRING:
            length = self.u64()
            self.bound(length, 1, "string length")
            self.skip(length)
        elif kind == ARRAY:
            item, count = self.u32(), self.u64()
            self.skip_array(item, count)
        else:
            raise GgufError(f"corrupt GGUF header: unknown metadata type {kind}")

    def skip_array(self, item: int, count: int) -> None:
        if item in _SCALAR_SIZES:
            self.bound(count, _SCALAR_SIZES[item], "array length")
            self.skip(count * _SCALAR_SIZES[item])
        elif item == STRING:
            self.bound(count, 8, "array length")
            self.skip_strings(count)
        elif item == ARRAY:
            self.bound(count, 12, "array length")
            for _ in range(count):
                self.skip_value(item)
        else:
            raise GgufError(f"corrupt GGUF header: unknown array item type {item}")
