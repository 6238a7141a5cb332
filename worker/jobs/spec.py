"""A job's validated request: prompt or chat messages, model, sampling, limits and priority."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from worker.jobs.promptformat import check_prompt_format

MAX_PROMPT_CHARS = 4_000_000

# The sampling fields: their bounds (here) and defaults (below) are the one definition that
# job specs, the settings' defaults for new jobs and the window's spin boxes all use.
MaxTokens = Annotated[int, Field(ge=1, le=1_000_000)]
Temperature = Annotated[float, Field(ge=0.0, le=5.0, allow_inf_nan=False)]
TopP = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
TopK = Annotated[int, Field(ge=0, le=100_000)]
MinP = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
RepeatPenalty = Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Timeout = Annotated[float, Field(gt=0, le=7 * 86_400, allow_inf_nan=False)]

DEFAULT_MAX_TOKENS = 512
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
DEFAULT_TOP_K = 40
DEFAULT_MIN_P = 0.05
DEFAULT_REPEAT_PENALTY = 1.1
# The fields a person sets for new jobs in the settings (the rest are per job).
SAMPLING_FIELDS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty")


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
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS
    temperature: Temperature = DEFAULT_TEMPERATURE
    top_p: TopP = DEFAULT_TOP_P
    top_k: TopK = DEFAULT_TOP_K
    min_p: MinP = DEFAULT_MIN_P
    repeat_penalty: RepeatPenalty = DEFAULT_REPEAT_PENALTY
    stop: list[str] = Field(default_factory=list, max_length=16)
    seed: Seed | None = None
    priority: Priority = Priority.normal
    timeout: Timeout | None = None
    raw: bool = Field(
        default=False, description="Plain completion even if the model has a chat template."
    )
    system: str | None = Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description="System prompt: the instructions the model reads before the prompt "
        "(a system message in `messages` takes its place).",
    )
    prompt_format: str | None = Field(
        default=None,
        description="How the prompt is formatted: 'auto' (the model's chat template when "
        "it has one, else raw text), 'raw', or a llama.cpp built-in template such as "
        "'chatml', 'llama3' or 'gemma'.",
    )
    parent: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="The job this one follows up: its conversation continues here.",
    )

    @field_validator(*SAMPLING_FIELDS, "seed", "timeout", mode="before")
    @classmethod
    def _numbers_not_booleans(cls, value: object) -> object:
        """JSON's true and false are not numbers here (Python would take them as 1 and 0)."""
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        return value

    @field_validator("prompt_format")
    @classmethod
    def _known_prompt_format(cls, value: str | None) -> str | None:
        return None if value is None else check_prompt_format(value)

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
