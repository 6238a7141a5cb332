"""A job's prompt as tokens: the model's chat template, a llama.cpp built-in one, or raw text."""

from __future__ import annotations

import ctypes
from typing import Any, Protocol

import llama_cpp
from llama_cpp import llama_chat_format

from worker.jobs.promptformat import AUTO, RAW, effective_format
from worker.jobs.spec import JobSpec

Chat = list[dict[str, str]]


class Tokenizer(Protocol):
    """What formatting needs of a loaded model (llama_cpp's LlamaModel has it)."""

    def tokenize(self, text: bytes, add_bos: bool, special: bool) -> list[int]: ...

    def detokenize(self, tokens: list[int], special: bool = False) -> bytes: ...

    def token_bos(self) -> int: ...

    def token_eos(self) -> int: ...


def chat_of(spec: JobSpec) -> Chat:
    """The job as chat messages: its system prompt first (unless `messages` has a system
    message of its own, which wins), then its messages or its prompt as the user's."""
    if spec.messages:
        chat = [{"role": m.role, "content": m.content} for m in spec.messages]
    else:
        chat = [{"role": "user", "content": spec.prompt or ""}]
    if spec.system and not any(m["role"] == "system" for m in chat):
        chat.insert(0, {"role": "system", "content": spec.system})
    return chat


def raw_text(spec: JobSpec) -> str:
    """The job as plain text: the system prompt, a blank line and the prompt; messages as a
    'role: content' transcript ending in 'assistant:'."""
    if spec.messages:
        chat = chat_of(spec)
        return "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant:"
    prompt = spec.prompt or ""
    return f"{spec.system}\n\n{prompt}" if spec.system else prompt


def fold_system(chat: Chat) -> Chat:
    """The chat with its leading system message atop the first user message instead, for
    templates that have no system role."""
    if len(chat) < 2 or chat[0]["role"] != "system":
        return chat
    system, first, *rest = chat
    return [{"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"},
            *rest]  # fmt: skip


def builtin_template_text(name: str, chat: Chat) -> str:
    """`chat` through llama.cpp's built-in template `name` (llama_chat_apply_template), with
    the assistant's turn opened; ValueError when llama.cpp does not know the name. A
    template that drops system messages (yandex) gets the system prompt atop the first
    user message."""
    text = _apply_builtin(name, chat)
    if chat[0]["role"] == "system" and chat[0]["content"] not in text:
        text = _apply_builtin(name, fold_system(chat))
    return text


def _apply_builtin(name: str, chat: Chat) -> str:
    encoded = [(m["role"].encode(), m["content"].encode()) for m in chat]
    messages = (llama_cpp.llama_chat_message * len(chat))()
    for i, (role, content) in enumerate(encoded):
        messages[i].role, messages[i].content = role, content
    size = 2 * sum(len(r) + len(c) for r, c in encoded) + 256
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_chat_apply_template(name.encode(), messages, len(chat), True, buf, size)
        if n < 0:
            raise ValueError(f"prompt_format {name!r}: llama.cpp has no such built-in template")
        if n <= size:
            return buf.raw[:n].decode(errors="replace")
        size = n  # the text needs more room: ask again with it
    raise ValueError(f"prompt_format {name!r}: llama.cpp did not fit the prompt")


class PromptFormatter:
    """Formats and tokenizes prompts for one loaded model (its template is compiled once)."""

    def __init__(self, model: Tokenizer, metadata: dict[str, str]) -> None:
        self._model = model
        self._formatter: llama_chat_format.Jinja2ChatFormatter | None = None
        self._bos_text = self._special(model.token_bos())
        template = metadata.get("tokenizer.chat_template")
        if template:
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=self._special(model.token_eos()),
                bos_token=self._bos_text,
            )

    @property
    def has_chat_template(self) -> bool:
        return self._formatter is not None

    def _special(self, token: int) -> str:
        """A special token's text ("" when the model has none: token -1)."""
        if token < 0:
            return ""
        return self._model.detokenize([token], special=True).decode(errors="replace")

    def text(self, spec: JobSpec) -> tuple[str, bool]:
        """The prompt as the model reads it, and whether it is chat-formatted (its special
        tokens such as <|im_start|> are then parsed as tokens, not text)."""
        fmt = effective_format(spec.prompt_format, spec.raw)
        if fmt == AUTO and self._formatter is not None:
            return self._template_text(chat_of(spec)), True
        if fmt in (AUTO, RAW):
            return raw_text(spec), False
        return builtin_template_text(fmt, chat_of(spec)), True

    def tokens(self, spec: JobSpec) -> list[int]:
        """The prompt's tokens as llama.cpp's server makes them: the model's BOS when it
        wants one, and special tokens parsed in chat-formatted text only."""
        text, chat = self.text(spec)
        # A template that writes the BOS token itself gets none added (no doubled BOS).
        add_bos = not (chat and self._bos_text and text.startswith(self._bos_text))
        return list(self._model.tokenize(text.encode(), add_bos, chat))

    def _template_text(self, chat: Chat) -> str:
        """The model's template applied; a template that refuses system messages (Gemma's
        raises "System role not supported") gets the system prompt atop the first user
        message instead."""
        assert self._formatter is not None
        messages: Any = chat
        try:
            return self._formatter(messages=messages).prompt
        except Exception:
            folded: Any = fold_system(chat)
            if folded is chat:
                raise
        return self._formatter(messages=folded).prompt
