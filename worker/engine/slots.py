"""A job in a batch slot, and the free slots that pad a generation batch on the CPU."""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.engine.sampling import SamplerChain
from worker.engine.textstream import TextAssembler
from worker.engine.tickets import Ticket


@dataclass(eq=False)
class BatchSequence:
    """A job in a slot: its prompt, sampler and text so far."""

    ticket: Ticket
    slot: int
    tokens: list[int]
    sampler: SamplerChain
    assembler: TextAssembler
    max_tokens: int
    finish: str
    fed: int = 0  # prompt tokens in the KV cache
    pos: int = 0  # position of the next token to decode
    pending: int | None = None  # sampled, not yet decoded
    order: int = 0  # admission order: prompts are read first come, first served
    in_graph: bool = False  # its sampler chain runs in llama.cpp's graph (backend sampling)
    out: int = -1  # batch index of the logits to sample from in the current step
    done: int = 0
    started: float = 0.0
    tps: float | None = None
    pieces: list[str] = field(default_factory=list)


def padding_slots(used: set[int], generating: list[int], n_slots: int) -> list[int]:
    """Free slots to pad a generation batch with: every gap between the generating slots,
    and a neighbour of any generating job left alone between slots that are reading their
    prompts (or at the edges). `used`: every occupied slot, reading or generating.

    ggml multiplies one row with a dot product and more rows with tinyBLAS, which sums in
    another order; with at least two rows in every ubatch a job's logits do not depend on
    how many others run beside it.
    """
    slots = sorted(generating)
    fill = [slot for slot in range(slots[0] + 1, slots[-1]) if slot not in used]
    ids = sorted(slots + fill)
    runs: list[list[int]] = []
    for slot in ids:
        if runs and slot == runs[-1][-1] + 1:
            runs[-1].append(slot)
        else:
            runs.append([slot])
    for run in runs:
        if len(run) == 1:
            near = [s for s in (run[0] + 1, run[0] - 1) if 0 <= s < n_slots]
            fill += [s for s in near if s not in used and s not in fill][:1]
    return fill
