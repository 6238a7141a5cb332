"""A job's validated request: prompt or chat messages, model, sampling, limits and priority."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GGUF_MAGIC = b"GGUF"
MAX_PROMPT_CHARS = 4_000_000


class Priority(StrEnum):
    high = "high"
    normal = "normal"
    low = "low"

    @property
    def rank(self) -> int:
        """0 runs first."""
        return {"high": 0, "normal": 1, "low": 2}[self.value]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_PROMPT_CHARS)


class JobSpec(BaseModel):
    """What a job asks for. Unknown fields are refused, every number is bounded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    messages: list[Message] | None = Field(default=None, max_length=10_000)
    model: str = Field(min_length=1, description="Path of a GGUF model file.")
    title: str | None = Field(default=None, max_length=200)
    max_tokens: int = Field(default=512, ge=1, le=1_000_000)
    temperature: float = Field(default=0.8, ge=0.0, le=5.0)
    top_p: float = Field(default=0.95, ge=0.0, le=1.0)
    top_k: int = Field(default=40, ge=0, le=100_000)
    min_p: float = Field(default=0.05, ge=0.0, le=1.0)
    repeat_penalty: float = Field(default=1.1, ge=0.0, le=10.0)
    stop: list[str] = Field(default_factory=list, max_length=16)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    priority: Priority = Priority.normal
    timeout: float | None = Field(default=None, gt=0, le=7 * 86_400)
    raw: bool = Field(
        default=False, description="Plain completion even if the model has a chat template."
    )

    @field_validator("stop")
    @classmethod
    def _stop_strings_not_empty(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item:
                raise ValueError("stop strings must not be empty")
            if len(item) > 200:
                raise ValueError("stop strings must be at most 200 characters")
        return value

    @model_validator(mode="after")
    def _one_prompt(self) -> JobSpec:
        has_prompt = self.prompt is not None and self.prompt.strip() != ""
        has_messages = bool(self.messages) and any(m.content.strip() for m in self.messages or [])
        if self.prompt is not None and self.messages is not None:
            raise ValueError("give either 'prompt' or 'messages', not both")
        if not has_prompt and not has_messages:
            raise ValueError("the prompt is empty")
        return self

    @property
    def display_title(self) -> str:
        """The title, else the first non-empty line of the prompt, shortened."""
        if self.title:
            return self.title
        text = (
            self.prompt
            if self.prompt is not None
            else self.messages[-1].content
            if self.messages
            else ""
        )
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        return line if len(line) <= 80 else line[:79] + "…"


def check_model_file(path: str | Path, *, deep: bool = False) -> Path:
    """The model path, resolved; ValueError naming the path and the reason if it is no GGUF file.

    `deep` also reads the GGUF header and tensor table (see worker.gguffile), which finds a
    truncated or corrupt file: a few milliseconds, done once per model per submit or load.
    """
    model = Path(path).expanduser()
    if not model.exists():
        raise ValueError(f"model {str(model)!r}: no such file")
    if model.is_dir():
        raise ValueError(f"model {str(model)!r}: is a directory, not a GGUF file")
    try:
        with model.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc
    if magic != GGUF_MAGIC:
        raise ValueError(f"model {str(model)!r}: not a GGUF file (bad magic bytes)")
    if deep:
        from worker.gguffile import GgufError, scan_gguf

        try:
            scan_gguf(model)
        except GgufError as exc:
            raise ValueError(f"model {str(model)!r}: {exc}") from exc
        except OSError as exc:
            raise ValueError(f"model {str(model)!r}: cannot be read ({exc.strerror})") from exc
    return model.resolve()
