"""Requests and answers in the OpenAI API's shape: a completion request as a job, a job as its
completion object (whole or in stream chunks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.jobs.job import Job, JobOrigin, JobState
from worker.jobs.spec import JobSpec, Message
from worker.jobs.validation import unknown_field_hint

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
Endpoint = Literal["/v1/chat/completions", "/v1/completions"]
ENDPOINTS: tuple[str, ...] = (CHAT, COMPLETIONS)
MAX_STOP = 16
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "dict", "list"})


class RequestRefused(ValueError):
    """A request PromptSpool cannot run as asked; names the parameter and says why."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class _Request(BaseModel):
    """What both endpoints share. Unknown parameters are refused, as OpenAI does; parameters
    that would change the result and are not supported are refused unless neutral."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=4096, description="A name from GET /v1/models.")
    max_tokens: int | None = Field(default=None, description="At most this many tokens.")
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = Field(default=None, description="Up to 16 stop strings.")
    seed: int | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    top_k: int | None = Field(default=None, description="llama.cpp's top-k (0: off).")
    min_p: float | None = Field(default=None, description="llama.cpp's min-p.")
    repeat_penalty: float | None = Field(default=None, description="llama.cpp's repeat penalty.")
    n: int | None = Field(default=None, description="Only 1 is supported.")
    logit_bias: dict[str, float] | None = Field(default=None, description="Not supported.")
    frequency_penalty: float | None = Field(default=None, description="Only 0 is supported.")
    presence_penalty: float | None = Field(default=None, description="Only 0 is supported.")
    user: str | None = Field(default=None, description="Accepted; not used.")
    metadata: dict[str, str] | None = Field(default=None, description="Accepted; not used.")
    store: bool | None = Field(default=None, description="Accepted; jobs are always kept.")
    service_tier: str | None = Field(default=None, description="Accepted; not used.")


class ContentPart(BaseModel):
    """A part of a message's content; only text parts are supported."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class ChatCompletionRequest(_Request):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    max_completion_tokens: int | None = None
    logprobs: bool | None = Field(default=None, description="Not supported.")
    top_logprobs: int | None = Field(default=None, description="Not supported.")
    tools: list[dict[str, Any]] | None = Field(default=None, description="Not supported.")
    tool_choice: str | dict[str, Any] | None = Field(default=None, description="Not supported.")
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = Field(default=None, description="Not supported.")
    function_call: str | dict[str, Any] | None = Field(default=None, description="Not supported.")
    response_format: dict[str, Any] | None = Field(default=None, description="Only text.")
    modalities: list[str] | None = Field(default=None, description="Only ['text'].")
    audio: dict[str, Any] | None = Field(default=None, description="Not supported.")
    prediction: dict[str, Any] | None = Field(default=None, description="Not supported.")
    reasoning_effort: str | None = Field(default=None, description="Not supported.")
    web_search_options: dict[str, Any] | None = Field(default=None, description="Not supported.")


class CompletionRequest(_Request):
    """POST /v1/completions."""

    prompt: str | list[str] = Field(description="One prompt (a list of one string is taken).")
    logprobs: int | None = Field(default=None, description="Not supported.")
    echo: bool | None = Field(default=None, description="Only false is supported.")
    suffix: str | None = Field(default=None, description="Not supported.")
    best_of: int | None = Field(default=None, description="Only 1 is supported.")


OpenAIRequest = ChatCompletionRequest | CompletionRequest
# Job fields the queue's defaults never give an OpenAI request: the model is the request's,
# and a request says everything about its prompt itself.
_NOT_DEFAULTED = frozenset({"model", "system", "prompt_format", "parent"})

# Parameters that change the result, with the values that change nothing (None always does).
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logit_bias": ({},),
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "logprobs": (False, 0),
    "top_logprobs": (0,),
    "tools": ([],),
    "tool_choice": ("none",),
    "functions": ([],),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "reasoning_effort": (),
    "web_search_options": (),
    "echo": (False,),
    "suffix": ("",),
    "best_of": (1,),
}


def _refuse_unsupported(request: BaseModel) -> None:
    given = request.model_fields_set
    for name, neutral in _NEUTRAL.items():
        if name not in given:
            continue  # unset: neutral
        value = getattr(request, name)
        if value is not None and value not in neutral:
            allowed = " or ".join(repr(v) for v in neutral) or "nothing"
            raise RequestRefused(
                f"{name}={value!r} is not supported by this server (only {allowed})",
                param=name,
                code="unsupported_parameter",
            )


def _messages(request: ChatCompletionRequest) -> list[Message]:
    messages = []
    for index, message in enumerate(request.messages):
        where = f"messages[{index}]"
        if message.role in ("tool", "function") or message.tool_calls:
            raise RequestRefused(f"{where}: tool messages are not supported by this server",
                                 param=f"{where}.role", code="unsupported_parameter")  # fmt: skip
        content = message.content
        if isinstance(content, list):
            texts = []
            for part_index, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise RequestRefused(
                        f"{where}.content[{part_index}]: {part.type!r} parts are not supported "
                        "(only text)", param=f"{where}.content[{part_index}].type",
                        code="unsupported_parameter",
                    )  # fmt: skip
                texts.append(part.text)
            content = "".join(texts)
        role = "system" if message.role == "developer" else message.role
        messages.append(Message(role=role, content=content or ""))
    return messages


def _stop(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else list(value)
    if len(stops) > MAX_STOP:
        raise RequestRefused(f"stop: at most {MAX_STOP} strings", param="stop")
    return stops


def _prompt(request: CompletionRequest) -> str:
    if isinstance(request.prompt, str):
        return request.prompt
    if len(request.prompt) != 1:
        raise RequestRefused(
            f"prompt: one prompt per request (got {len(request.prompt)}); send one request "
            "each, or a batch", param="prompt", code="unsupported_parameter",
        )  # fmt: skip
    return request.prompt[0]


def parse_request(
    endpoint: str, body: Mapping[str, Any]
) -> ChatCompletionRequest | CompletionRequest:
    """The body as the endpoint's request model; RequestRefused naming the first bad field."""
    model: type[ChatCompletionRequest] | type[CompletionRequest]
    if endpoint == CHAT:
        model = ChatCompletionRequest
    elif endpoint == COMPLETIONS:
        model = CompletionRequest
    else:
        raise RequestRefused(f"url: {endpoint!r} is not one of {', '.join(ENDPOINTS)}",
                             param="url")  # fmt: skip
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _refused(exc, model) from exc


def _refused(exc: ValidationError, model: type[BaseModel]) -> RequestRefused:
    first = exc.errors(include_url=False)[0]
    param = ""
    loc: list[str | int] = []
    for part in first["loc"]:
        if isinstance(part, str) and (part in _UNION_TAGS or "[" in part):
            continue  # which member of a union pydantic tried: not a field
        loc.append(part)
        param += f"[{part}]" if isinstance(part, int) else f".{part}" if param else str(part)
    message = str(first["msg"]).removeprefix("Value error, ")
    code = {"missing": "missing_required_parameter", "extra_forbidden": "unknown_parameter"}.get(
        first["type"], "invalid_value"
    )
    if code == "unknown_parameter":
        message = "unknown parameter" + unknown_field_hint(model, loc)
    return RequestRefused(f"{param}: {message}" if param else message, param or None, code)


def to_job(
    request: OpenAIRequest,
    *,
    defaults: Mapping[str, Any],
    resolve_model: Callable[[str], str | Path],
    via: str = "openai",
) -> tuple[JobSpec, JobOrigin]:
    """The job a parsed request asks for, and its origin (the answer's shape, the model name).
    Unset sampling fields take `defaults` (the queue's); the settings' system prompt and
    prompt format do not apply (a chat request brings its own messages and gets the model's
    template; a completion is raw text). `resolve_model` finds the model file (raising
    LookupError for an unknown name)."""
    _refuse_unsupported(request)
    chat = isinstance(request, ChatCompletionRequest)
    fields: dict[str, Any] = {k: v for k, v in defaults.items() if k not in _NOT_DEFAULTED}
    longest = request.max_completion_tokens if isinstance(request, ChatCompletionRequest) else None
    chosen = {
        "max_tokens": longest or request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "min_p": request.min_p,
        "repeat_penalty": request.repeat_penalty,
        "seed": request.seed,
        "stop": _stop(request.stop),
    }
    fields.update({k: v for k, v in chosen.items() if v is not None})
    try:
        fields["model"] = str(resolve_model(request.model))
    except LookupError as exc:
        raise RequestRefused(str(exc.args[0]) if exc.args else str(exc), "model",
                             "model_not_found") from exc  # fmt: skip
    if isinstance(request, ChatCompletionRequest):
        fields["messages"] = _messages(request)
    else:
        fields["prompt"], fields["raw"] = _prompt(request), True
    try:
        spec = JobSpec.model_validate(fields)
    except ValidationError as exc:
        raise _refused(exc, JobSpec) from exc
    shape: Literal["chat.completion", "text_completion"] = (
        "chat.completion" if chat else "text_completion"
    )
    return spec, JobOrigin(via=via, shape=shape, model_name=request.model)


def spec_from_request(
    endpoint: str,
    body: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any],
    resolve_model: Callable[[str], str | Path],
    via: str = "openai",
) -> tuple[JobSpec, JobOrigin]:
    """An OpenAI request body (a batch line's) as a job; RequestRefused naming the field."""
    if not isinstance(body, Mapping):
        raise RequestRefused("body: expected a JSON object", param="body")
    request = parse_request(endpoint, body)
    return to_job(request, defaults=defaults, resolve_model=resolve_model, via=via)


# --- answers ------------------------------------------------------------------------------


def finish_reason(job: Job) -> str:
    """OpenAI's finish_reason: 'length' when the token limit (or the context) ended it."""
    return "length" if job.finish_reason in ("length", "context") else "stop"


def usage(job: Job) -> dict[str, int]:
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "total_tokens": job.prompt_tokens + job.completion_tokens,
    }


def completion_id(job_id: str, shape: str | None) -> str:
    return f"chatcmpl-{job_id}" if shape == "chat.completion" else f"cmpl-{job_id}"


def response_body(job: Job) -> dict[str, Any]:
    """The non-streamed answer to the request a succeeded job came from."""
    shape = job.origin.shape if job.origin else "chat.completion"
    model = (job.origin.model_name if job.origin else None) or job.model
    base = {"id": completion_id(job.id, shape), "created": int(job.created_at), "model": model,
            "system_fingerprint": None, "usage": usage(job)}  # fmt: skip
    if shape == "text_completion":
        choice: dict[str, Any] = {"index": 0, "text": job.output, "logprobs": None,
                                  "finish_reason": finish_reason(job)}  # fmt: skip
        return {**base, "object": "text_completion", "choices": [choice]}
    message = {"role": "assistant", "content": job.output, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": finish_reason(job)}  # fmt: skip
    return {**base, "object": "chat.completion", "choices": [choice]}


def error_of(job: Job) -> dict[str, Any]:
    """The error object for a job that did not succeed."""
    if job.state is JobState.cancelled:
        message = job.error or "the job was cancelled"
        return {"message": message, "type": "invalid_request_error", "param": None,
                "code": "cancelled"}  # fmt: skip
    return {"message": job.error or "the job failed", "type": "server_error", "param": None,
            "code": "job_failed"}  # fmt: skip


def chunk(
    job_id: str,
    shape: str | None,
    model: str,
    created: int,
    *,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
) -> dict[str, Any]:
    """One stream chunk: the role (first), some text, or the finish reason (last)."""
    if shape == "text_completion":
        choice: dict[str, Any] = {"index": 0, "text": text or "", "logprobs": None,
                                  "finish_reason": finish}  # fmt: skip
        obj = "text_completion"
    else:
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        obj = "chat.completion.chunk"
    return {"id": completion_id(job_id, shape), "object": obj, "created": created,
            "model": model, "system_fingerprint": None, "choices": [choice]}  # fmt: skip


def usage_chunk(job: Job, shape: str | None, model: str, created: int) -> dict[str, Any]:
    """The last chunk of a stream asked for with stream_options.include_usage."""
    obj = "text_completion" if shape == "text_completion" else "chat.completion.chunk"
    return {"id": completion_id(job.id, shape), "object": obj, "created": created,
            "model": model, "system_fingerprint": None, "choices": [],
            "usage": usage(job)}  # fmt: skip
