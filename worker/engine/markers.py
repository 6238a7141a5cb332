"""Which tokens are markers (control, image, tool and channel tags) rather than text."""

from __future__ import annotations

import re

import llama_cpp

# Tokens llama.cpp itself flags as not text: control tokens (<bos>, <|im_start|>, <|image>),
# the unknown token, and tokens the model was never trained on.
NOT_TEXT_ATTRS = (
    llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED
)
# Whole-token texts that are markers though a GGUF may type them as plain or user-defined
# tokens (its converter copies the Hugging Face tokenizer's "special: false"): Gemma's
# <start_of_image> and <unused12>, Gemma 4's <|tool_call> and <channel|>, DeepSeek's
# fullwidth-bar tags.
# HTML tags, <think> and whitespace runs are text: they match none of these.
_MARKER = re.compile(
    r"<\|[^\s<>]+>"  # <|tool_call>, <|"|>, <|im_start|>
    r"|<[^\s<>|]+\|>"  # <turn|>, <channel|>
    r"|<\uff5c[^<>]+\uff5c>"  # DeepSeek's, with fullwidth bars
    r"|<unused\d+>|<(?:start|end)_of_[a-z]+>|<[a-z_]*soft_token>"  # Gemma
    r"|<mask>|<pad>|<2mass>"
)


def is_marker(attr: int, piece: bytes) -> bool:
    """Whether a token (its llama_token_attr and its text as llama.cpp renders it) is a
    marker: never part of a job's text."""
    if attr & NOT_TEXT_ATTRS:
        return True
    if attr & llama_cpp.LLAMA_TOKEN_ATTR_BYTE or not piece.startswith(b"<"):
        return False
    return _MARKER.fullmatch(piece.decode("utf-8", errors="replace")) is not None
