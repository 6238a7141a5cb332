"""The peer benchmark's models (slow-cpu shape, real tokenizers) and its 128-token prompts."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import llama_cpp

from bench.common import REPO
from bench.llamabuild import cache_root

SHARED = REPO.parent / "shared"
SYNTH = SHARED / "gpu" / "synth_gguf.py"
# Vocabulary size -> the vocab-only GGUF whose tokenizer the synthetic model gets.
VOCABS = {
    "32k": SHARED / "gpu" / "ggml-vocab-llama-spm.gguf",  # Llama 2
    "128k": SHARED / "models" / "vocab" / "ggml-vocab-llama-bpe.gguf",  # Llama 3
    "262k": SHARED / "models" / "vocab" / "ggml-vocab-gemma-4.gguf",  # Gemma 4, llama arch
}
_WORD_TEXT = (
    "the a little old river town night morning bright quiet people walked along stone bridge "
    "while children laughed near market where bakers sold warm bread and sweet apples every "
    "day farmer carried baskets through narrow streets toward harbor ships waited with sails "
    "folded under grey clouds that promised rain before evening lanterns glowed softly in "
    "windows of houses painted blue green yellow red"
)
WORDS = _WORD_TEXT.split()


def model(vocab: str, shape: str = "slow-cpu") -> Path:
    """cache/models/{shape}-{vocab}.gguf: F16 random weights with the vocabulary's tokenizer,
    written by ../shared/gpu/synth_gguf.py first if missing."""
    target = cache_root() / "models" / f"{shape}-{vocab}.gguf"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    print(f"bench: writing {target}", file=sys.stderr, flush=True)
    subprocess.run(
        [sys.executable, str(SYNTH), str(VOCABS[vocab]), str(partial), "--shape", shape],
        check=True,
    )
    partial.rename(target)
    return target


def _text(seed: int, words: int = 400) -> str:
    """Different plain English-looking text for each seed, well over 128 tokens."""
    rng = random.Random(seed)
    return f"Story {seed}: " + " ".join(rng.choice(WORDS) for _ in range(words))


def prompts(model_path: Path, count: int, length: int = 128) -> list[str]:
    """`count` different texts that the model's tokenizer reads as exactly `length` tokens
    (its BOS included, as both llama-server and PromptSpool add it)."""
    llm = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    try:
        return [_cut(llm, _text(seed), length) for seed in range(1, count + 1)]
    finally:
        llm.close()


def _count(llm: llama_cpp.Llama, text: str) -> int:
    return len(llm.tokenize(text.encode(), add_bos=True, special=False))


def _cut(llm: llama_cpp.Llama, text: str, length: int) -> str:
    """The start of `text` that tokenizes to `length` tokens (cut at a token boundary)."""
    tokens = llm.tokenize(text.encode(), add_bos=True, special=False)
    bos = 1 if _count(llm, "x") > len(llm.tokenize(b"x", add_bos=False, special=False)) else 0
    for keep in sorted(range(length - 8, length + 9), key=lambda k: abs(k - length)):
        candidate = llm.detokenize(tokens[bos:keep]).decode(errors="ignore").strip()
        if _count(llm, candidate) == length:
            return candidate
    raise RuntimeError(f"no cut of the text tokenizes to {length} tokens")
