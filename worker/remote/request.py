"""A job as an OpenAI request: chat messages or a plain completion, with the sampling
fields every OpenAI-compatible API knows."""

from __future__ import annotations

from typing import Any

from worker.jobs.spec import JobSpec


def request_of(spec: JobSpec, model: str) -> tuple[str, dict[str, Any]]:
    """The path (`/chat/completions` or `/completions`) and body for the job, streamed.

    A chat (messages, or a prompt without `raw`) goes to the chat endpoint, which applies
    the model's own template there; a raw prompt is a plain completion. Only the sampling
    fields of the OpenAI API are sent (temperature, top_p, max_tokens, stop, seed): top_k,
    min_p and repeat_penalty are llama.cpp's, and a provider may refuse unknown fields.
    """
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": spec.max_tokens,
        "temperature": spec.temperature,
        "top_p": spec.top_p,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if spec.stop:
        body["stop"] = list(spec.stop)
    if spec.seed is not None:
        body["seed"] = spec.seed
    if spec.raw and spec.prompt is not None:
        body["prompt"] = spec.prompt
        return "/completions", body
    messages: list[dict[str, str]] = []
    if spec.messages is not None:
        messages = [{"role": m.role, "content": m.content} for m in spec.messages]
    else:
        messages = [{"role": "user", "content": spec.prompt or ""}]
    if spec.system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": spec.system})
    body["messages"] = messages
    return "/chat/completions", body


def piece_of(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """A streamed chunk's text and finish reason (chat `delta.content` or completion `text`)."""
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return "", None
    choice = choices[0]
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    if text is None and isinstance(choice.get("message"), dict):  # a whole answer
        text = choice["message"].get("content")
    return (text if isinstance(text, str) else ""), choice.get("finish_reason")
