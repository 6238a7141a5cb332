"""How a job's text becomes the model's prompt: the model's own chat template, raw text, or
one of llama.cpp's built-in chat templates by name."""

from __future__ import annotations

from worker.jobs.validation import nearest

AUTO = "auto"  # the model's chat template when its GGUF has one, else raw text
RAW = "raw"  # the text as written, no chat formatting

# llama.cpp's built-in chat templates (llama_chat_builtin_templates); a test keeps this list
# equal to the linked llama.cpp's, so the window can offer them without loading llama.cpp.
BUILTIN_TEMPLATES = (
    "bailing", "bailing-think", "bailing2", "chatglm3", "chatglm4", "chatml", "command-r",
    "deepseek", "deepseek-ocr", "deepseek2", "deepseek3", "exaone-moe", "exaone3", "exaone4",
    "falcon3", "gemma", "gigachat", "glmedge", "gpt-oss", "granite", "granite-4.0",
    "granite-4.1", "grok-2", "hunyuan-dense", "hunyuan-moe", "hunyuan-vl", "kimi-k2", "llama2",
    "llama2-sys", "llama2-sys-bos", "llama2-sys-strip", "llama3", "llama4", "megrez", "minicpm",
    "mistral-v1", "mistral-v3", "mistral-v3-tekken", "mistral-v7", "mistral-v7-tekken",
    "monarch", "openchat", "orion", "pangu-embedded", "phi3", "phi4", "rwkv-world", "seed_oss",
    "smolvlm", "solar-open", "vicuna", "vicuna-orca", "yandex", "zephyr",
)  # fmt: skip
PROMPT_FORMATS = (AUTO, RAW, *BUILTIN_TEMPLATES)


def check_prompt_format(value: str) -> str:
    """The name if it is a known prompt format; ValueError naming the nearest one if not."""
    if value in PROMPT_FORMATS:
        return value
    near = nearest(value, PROMPT_FORMATS)
    hint = f"; did you mean {near!r}?" if near else ""
    raise ValueError(
        f"unknown prompt format {value!r}: use 'auto' (the model's chat template), 'raw', "
        f"or one of llama.cpp's built-in templates such as 'chatml', 'llama3', 'gemma'{hint}"
    )


def effective_format(prompt_format: str | None, raw: bool = False) -> str:
    """The format a job asks for: 'raw' when `raw` is set (it wins: a prompt file or an
    OpenAI completion asked for the text as written), else `prompt_format`, else 'auto'."""
    return RAW if raw else prompt_format or AUTO


def describe_prompt_format(has_chat_template: bool | None, prompt_format: str | None) -> str:
    """What the model will be given, in words, for a model with or without a chat template
    (None: not known yet) and a prompt format (None: 'auto')."""
    fmt = prompt_format or AUTO
    if fmt == RAW:
        return "raw text, as written"
    if fmt != AUTO:
        return f"llama.cpp's built-in {fmt!r} template"
    if has_chat_template is None:
        return "the model's chat template if it has one, else raw text"
    if has_chat_template:
        return "the model's chat template"
    return "raw text (the model has no chat template: pick a Format for chat-style prompts)"
