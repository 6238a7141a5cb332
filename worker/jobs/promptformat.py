"""How a job's text becomes the model's prompt: the model's own chat template, raw text, or
one of llama.cpp's built-in chat templates by name."""

from __future__ import annotations

import difflib

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
    near = difflib.get_close_matches(value, PROMPT_FORMATS, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ValueError(
        f"unknown prompt format {value!r}: use 'auto' (the model's chat template), 'raw', "
        f"or one of llama.cpp's built-in templates such as 'chatml', 'llama3', 'gemma'{hint}"
    )
