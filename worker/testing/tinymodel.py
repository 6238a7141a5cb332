"""Writes tiny Llama-shaped GGUF models with random weights (for tests and benchmarks)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

# A small SentencePiece-style vocabulary: control tokens, the 256 byte tokens, some words.
WORDS = [
    "the",
    "a",
    "and",
    "to",
    "of",
    "in",
    "was",
    "he",
    "she",
    "it",
    "they",
    "said",
    "one",
    "day",
    "once",
    "upon",
    "time",
    "little",
    "big",
    "cat",
    "dog",
    "bird",
    "tree",
    "sun",
    "moon",
    "happy",
    "sad",
    "play",
    "run",
    "jump",
    "see",
    "look",
    "friend",
    "mom",
    "dad",
    "ball",
    "red",
    "blue",
    "green",
    "went",
    "home",
    "park",
    "water",
    "food",
    "sky",
    "rain",
    "snow",
    "very",
    "good",
    "bad",
    "nice",
    "night",
    "star",
    "fish",
    "boat",
]
BOS, EOS, UNK = 1, 2, 0


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    pieces = ["▁"] + [f"▁{w}" for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz.,!?")
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    ffn: int = 128,
    context: int = 4096,
    chat_template: str | None = None,
    seed: int = 0,
) -> Path:
    """A random-weight Llama GGUF whose end-of-text token is never the likeliest one.

    The output row of `</s>` is zero, so its logit is 0 while a few hundred random logits
    sit around it: greedy and top-k sampling never end early, and jobs run to max_tokens.
    """
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("promptspool-tiny")
    writer.add_context_length(context)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    writer.add_unk_token_id(UNK)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    rng = np.random.default_rng(seed)

    def mat(rows: int, cols: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    ones = np.ones(hidden, dtype=np.float32)
    writer.add_tensor("token_embd.weight", mat(n_vocab, hidden, 1.0))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.attn_q.weight", mat(hidden, hidden))
        writer.add_tensor(f"blk.{i}.attn_k.weight", mat(hidden, hidden))
        writer.add_tensor(f"blk.{i}.attn_v.weight", mat(hidden, hidden))
        writer.add_tensor(f"blk.{i}.attn_output.weight", mat(hidden, hidden))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", mat(ffn, hidden))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", mat(ffn, hidden))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", mat(hidden, ffn))
    writer.add_tensor("output_norm.weight", ones)
    output = mat(n_vocab, hidden, 1.0)
    output[EOS] = 0.0
    writer.add_tensor("output.weight", output)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return path


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
