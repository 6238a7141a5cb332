"""Engine fixtures: tiny models with real large tokenizers (Gemma 4's 262k, Llama 3's 128k)."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from tests.engine.vocabmodel import write_vocab_model

SHARED_VOCAB = Path(__file__).resolve().parents[3] / "shared" / "models" / "vocab"
GEMMA4_VOCAB = SHARED_VOCAB / "ggml-vocab-gemma-4.gguf"
# Gemma 4's markers, each as its GGUF types it: control, user-defined and plain.
MARKERS = ["<|image>", "<|tool_call>", "<|channel>", "<unused0>", "<bos>"]
WORDS = [" cat", " dog", " tree", " moon", " sun"]


@pytest.fixture(scope="session")
def gemma4_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model with Gemma 4's tokenizer and chat template whose likeliest next
    token is always one of MARKERS or WORDS (a marker and a word share a step's odds)."""
    if not GEMMA4_VOCAB.is_file():
        pytest.skip(f"{GEMMA4_VOCAB} is not available")
    vocab = vocab_only(GEMMA4_VOCAB)
    try:
        pairs = zip(MARKERS, WORDS, strict=True)
        ids = [one_token(vocab, text) for pair in pairs for text in pair]
    finally:
        llama_cpp.llama_model_free(vocab)
    path = tmp_path_factory.mktemp("gemma4") / "gemma4-tiny.gguf"
    return write_vocab_model(GEMMA4_VOCAB, path, favour=ids)


@pytest.fixture(scope="session")
def llama3_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model with Llama 3's 128k-token tokenizer, all of whose logits vary."""
    vocab = SHARED_VOCAB / "ggml-vocab-llama-bpe.gguf"
    if not vocab.is_file():
        pytest.skip(f"{vocab} is not available")
    path = tmp_path_factory.mktemp("llama3") / "llama3-tiny.gguf"
    return write_vocab_model(vocab, path, random_output=True)


def vocab_only(path: Path) -> int:
    """A llama_model pointer holding `path`'s vocabulary alone (free it when done)."""
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    assert model, path
    return int(model)


def one_token(model: int, text: str) -> int:
    """The token whose text is `text` (Gemma's <unusedN> are not reached by tokenizing)."""
    vocab = llama_cpp.llama_model_get_vocab(model)
    out = (llama_cpp.llama_token * 8)()
    n = llama_cpp.llama_tokenize(vocab, text.encode(), len(text.encode()), out, 8, False, True)
    if n == 1:
        return int(out[0])
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        if llama_cpp.llama_vocab_get_text(vocab, token) == text.encode():
            return token
    raise AssertionError(f"no token {text!r}")
