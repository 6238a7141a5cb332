"""A job's prompt as tokens: the model's chat template from its GGUF metadata, unless raw."""

from __future__ import annotations

from typing import Any, Protocol

from llama_cpp import llama_chat_format

from worker.jobs.spec import JobSpec


class Tokenizer(Protocol):
    """What formatting needs of a loaded model (llama_cpp's LlamaModel has it)."""

    def tokenize(self, text: bytes, add_bos: bool, special: bool) -> list[int]: ...

    def detokenize(self, tokens: list[int], special: bool = False) -> bytes: ...

    def token_bos(self) -> int: ...

    def token_eos(self) -> int: ...


class PromptFormatter:
    """Formats and tokenizes prompts for one loaded model (the template is compiled once)."""

    def __init__(self, model: Tokenizer, metadata: dict[str, str]) -> None:
        self._model = model
        self._formatter: llama_chat_format.Jinja2ChatFormatter | None = None
        template = metadata.get("tokenizer.chat_template")
        if template:

            def special(token: int) -> str:
                return model.detokenize([token], special=True).decode(errors="replace")

            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=special(model.token_eos()),
                bos_token=special(model.token_bos()),
            )

    def tokens(self, spec: JobSpec) -> list[int]:
        messages = [m.model_dump() for m in spec.messages] if spec.messages else None
        if self._formatter is not None and (messages or not spec.raw):
            chat: Any = messages or [{"role": "user", "content": spec.prompt}]
            formatted = self._formatter(messages=chat)
            add_bos = not formatted.added_special
            return list(self._model.tokenize(formatted.prompt.encode(), add_bos, True))
        if messages:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        else:
            text = spec.prompt or ""
        return list(self._model.tokenize(text.encode(), True, False))
