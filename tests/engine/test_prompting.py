"""System prompts and prompt formats: the model's template, llama.cpp's built-in ones, raw."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import jinja2
import llama_cpp
import pytest

from worker.engine.api import LoadOptions
from worker.engine.context import BatchContext
from worker.engine.prompting import builtin_template_text
from worker.jobs.promptformat import BUILTIN_TEMPLATES, describe_prompt_format
from worker.jobs.spec import JobSpec, Message
from worker.testing.tinymodel import CHATML_TEMPLATE, write_tiny_llama

OPTIONS = LoadOptions(n_ctx=256, n_batch=64)
CHATML = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
    "<|im_start|>assistant\n"
)
# Gemma 2's way: no system role at all.
NO_SYSTEM_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<start_of_turn>{{ message['role'] }}\n{{ message['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BatchContext]]:
    """Loaded tiny models: with a ChatML template, with none, with one that refuses system."""
    folder = tmp_path_factory.mktemp("prompting")
    made = {
        "chat": write_tiny_llama(folder / "chat.gguf", chat_template=CHATML_TEMPLATE),
        "plain": write_tiny_llama(folder / "plain.gguf"),
        "nosystem": write_tiny_llama(folder / "nosys.gguf", chat_template=NO_SYSTEM_TEMPLATE),
    }
    loaded = {name: BatchContext(path, OPTIONS, 1) for name, path in made.items()}
    yield loaded
    for ctx in loaded.values():
        ctx.close()


def spec(ctx: BatchContext, **fields: object) -> JobSpec:
    return JobSpec.model_validate({"model": str(ctx.path), "prompt": "hi", **fields})


def chat_tokens(ctx: BatchContext, text: str) -> list[int]:
    """llama.cpp's tokens for a chat-formatted text (special tokens parsed, BOS as the model
    wants it)."""
    return list(ctx.model.tokenize(text.encode(), True, True))


def raw_tokens(ctx: BatchContext, text: str) -> list[int]:
    return list(ctx.model.tokenize(text.encode(), True, False))


def test_builtin_templates_are_llama_cpps() -> None:
    """The window offers BUILTIN_TEMPLATES without loading llama.cpp: it must match."""
    n = llama_cpp.llama_chat_builtin_templates((ctypes.c_char_p * 1)(), 0)
    names = (ctypes.c_char_p * n)()
    assert llama_cpp.llama_chat_builtin_templates(names, n) == n
    assert tuple(sorted(name.decode() for name in names if name)) == BUILTIN_TEMPLATES


def test_model_template_puts_the_system_prompt_first(contexts: dict[str, BatchContext]) -> None:
    ctx = contexts["chat"]
    jinja = jinja2.Template(CHATML_TEMPLATE).render(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        add_generation_prompt=True,
    )
    assert jinja == CHATML
    for fmt in (None, "auto"):
        job = spec(ctx, system="Be brief.", prompt_format=fmt)
        assert ctx.prompts.text(job) == (CHATML, True)
        assert ctx.prompt_tokens(job) == chat_tokens(ctx, CHATML)


@pytest.mark.parametrize("model", ["chat", "plain"])
def test_builtin_chatml_is_llama_cpps(contexts: dict[str, BatchContext], model: str) -> None:
    """With or without a template of its own, the model gets llama.cpp's ChatML."""
    ctx = contexts[model]
    job = spec(ctx, system="Be brief.", prompt_format="chatml")
    assert ctx.prompts.text(job) == (CHATML, True)
    assert ctx.prompt_tokens(job) == chat_tokens(ctx, CHATML)


@pytest.mark.parametrize("model", ["chat", "plain"])
@pytest.mark.parametrize("fields", [{"prompt_format": "raw"}, {"raw": True},
                                    {"raw": True, "prompt_format": "chatml"}])  # fmt: skip
def test_raw_is_the_text_with_the_system_prompt_above(
    contexts: dict[str, BatchContext], model: str, fields: dict[str, object]
) -> None:
    ctx = contexts[model]
    job = spec(ctx, system="Be brief.", prompt="<|im_start|>hi", **fields)
    assert ctx.prompts.text(job) == ("Be brief.\n\n<|im_start|>hi", False)
    assert ctx.prompt_tokens(job) == raw_tokens(ctx, "Be brief.\n\n<|im_start|>hi")


def test_auto_without_a_template_is_raw(contexts: dict[str, BatchContext]) -> None:
    ctx = contexts["plain"]
    assert ctx.prompts.text(spec(ctx)) == ("hi", False)
    assert ctx.prompt_tokens(spec(ctx, system="Be brief.")) == raw_tokens(ctx, "Be brief.\n\nhi")


def test_a_system_message_wins_over_the_system_prompt(contexts: dict[str, BatchContext]) -> None:
    ctx = contexts["chat"]
    messages = [Message(role="system", content="Be brief."), Message(role="user", content="hi")]
    job = JobSpec(model=str(ctx.path), messages=messages, system="Be verbose.")
    assert ctx.prompts.text(job) == (CHATML, True)
    raw = job.model_copy(update={"prompt_format": "raw"})
    assert ctx.prompts.text(raw) == ("system: Be brief.\nuser: hi\nassistant:", False)


def test_a_template_without_a_system_role_gets_it_atop_the_prompt(
    contexts: dict[str, BatchContext],
) -> None:
    ctx = contexts["nosystem"]
    text, _ = ctx.prompts.text(spec(ctx, system="Be brief."))
    assert text == "<s><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\n"
    tokens = ctx.prompt_tokens(spec(ctx, system="Be brief."))
    assert tokens.count(ctx.model.token_bos()) == 1  # the template's BOS, none added


@pytest.mark.parametrize("name", BUILTIN_TEMPLATES)
def test_every_builtin_template_takes_a_system_prompt(name: str) -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    text = builtin_template_text(name, chat)
    assert "Say hi" in text and "Be brief." in text


def test_an_unknown_builtin_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'nonesuch'"):
        builtin_template_text("nonesuch", [{"role": "user", "content": "hi"}])


def test_a_long_prompt_fits_the_builtin_template() -> None:
    text = builtin_template_text("chatml", [{"role": "user", "content": "é" * 100_000}])
    assert text.endswith("é" * 100_000 + "<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.parametrize(
    ("has_template", "fmt", "words"),
    [
        (True, None, "the model's chat template"),
        (True, "auto", "the model's chat template"),
        (False, "auto", "raw text (the model has no chat template: pick a Format for "
                        "chat-style prompts)"),
        (None, "auto", "the model's chat template if it has one, else raw text"),
        (False, "raw", "raw text, as written"),
        (True, "chatml", "llama.cpp's built-in 'chatml' template"),
    ],
)  # fmt: skip
def test_prompt_format_in_words(has_template: bool | None, fmt: str | None, words: str) -> None:
    assert describe_prompt_format(has_template, fmt) == words


def test_model_line_says_what_a_loaded_model_gets(contexts: dict[str, BatchContext]) -> None:
    plain, chat = contexts["plain"].prompts, contexts["chat"].prompts
    assert (plain.has_chat_template, chat.has_chat_template) == (False, True)
    assert describe_prompt_format(plain.has_chat_template, "auto").startswith("raw text")


def test_gemma4_template_gets_the_system_turn(gemma4_model: Path) -> None:
    """Gemma 4's own chat template (Jinja, from its GGUF): a system turn, one BOS."""
    ctx = BatchContext(gemma4_model, OPTIONS, 1)
    try:
        job = spec(ctx, system="Be brief.")
        text, chat = ctx.prompts.text(job)
        tokens = ctx.prompt_tokens(job)
        first = [ctx.model.token_bos(), *ctx.model.tokenize(b"<|turn>", False, True)]
    finally:
        ctx.close()
    assert chat and text.startswith(
        "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nhi<turn|>\n<|turn>model\n"
    )
    assert tokens[:2] == first and tokens.count(first[0]) == 1
