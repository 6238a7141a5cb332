"""Continuous batching: up to N jobs decode together as sequences of one llama.cpp context.

One thread owns the model and runs the decode loop. Each step is one llama_decode of the
next token of every generating job, then the prompts still being read, in the chunks they
would have alone, up to N_BATCH tokens: a long prompt holds the others up by one chunk per
step, never by the whole prompt. Jobs join between steps and leave as soon as they finish,
are cancelled or time out; leaving drops only their own KV cells. A job's progress
callbacks run on the thread that submitted it, never on the loop thread, so a slow reader
(or a Redis round trip) does not slow the batch down; its text goes from the loop thread
to a callback that only records it (the worker's publisher writes it out in batches).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp

from worker.engine.api import (
    Cancelled,
    EngineError,
    GenerationResult,
    GpuStatus,
    LoadOptions,
    ProgressFn,
    StopSignal,
    TextFn,
)
from worker.engine.context import BatchContext
from worker.engine.hardware import gpu_offload_supported
from worker.engine.loaderrors import load_error_message, scan_model
from worker.engine.sampling import SamplerChain, SamplerPool, job_seed
from worker.engine.slots import BatchSequence, padding_slots
from worker.engine.stats import BatchStats
from worker.engine.textstream import TextAssembler
from worker.engine.tickets import DONE, FAILED, PROGRESS, StepInfo, Ticket
from worker.jobs.spec import JobSpec
from worker.modelfile.check import check_model_file

log = logging.getLogger(__name__)


class BatchEngine:
    """Runs up to `slots` jobs at once on one loaded model; the JobEngine API, thread-safe.

    `generate()` blocks its caller until the job ends, so a worker runs one task thread per
    slot. A job for another model (or other load options) waits until the running jobs have
    finished; the model is then swapped. Waiting jobs enter by priority, then arrival.
    """

    def __init__(
        self,
        options: LoadOptions,
        slots: int = 1,
        sampling_threads: int | None = None,
        backend_sampling: bool = False,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.options = options
        self.slots = slots
        # Sample inside llama.cpp's decode graph: on a GPU the logits never leave it, and the
        # loop thread does not walk each job's whole vocabulary every step.
        self.backend_sampling = backend_sampling
        # Chains of ended jobs stay attached until their slot's next job replaces them: each
        # change makes llama.cpp re-plan its graph memory, so one per join, not two.
        self._parked: dict[int, SamplerChain] = {}
        if backend_sampling:  # llama.cpp samples in its graph: nothing left to spread
            sampling_threads = 0
        elif sampling_threads is None:  # the cores are idle while sampling: use a few
            sampling_threads = min(4, (os.cpu_count() or 1) // 4) if slots >= 8 else 0
        self._sampler_pool = SamplerPool(sampling_threads) if sampling_threads > 1 else None
        self.gpu = GpuStatus(gpu_offload_supported(), 0, 0, "no model loaded yet")
        self.on_step: Callable[[StepInfo], None] | None = None
        self.on_load: Callable[[float], None] | None = None  # load progress (diagnostics, tests)
        self.stats = BatchStats()  # written by the loop thread only
        self._cond = threading.Condition()
        self._waiting: list[Ticket] = []
        self._active: list[BatchSequence] = []
        self._ctx: BatchContext | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._step_no = 0
        self._reading: BatchSequence | None = None  # the job whose prompt chunk is decoding
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)

    # --- the JobEngine API --------------------------------------------------------------

    @property
    def model_path(self) -> Path | None:
        ctx = self._ctx
        return ctx.path if ctx is not None else None

    def ensure_model(self, model: str | Path, options: LoadOptions | None = None) -> bool:
        """Load `model` now if the engine is idle; True if it was loaded by this call.

        When other jobs are running the model is left alone: a job for another model then
        waits in `generate()` until they finish. Raises ValueError for a missing file and
        EngineError when the model does not load.
        """
        if options is not None:
            self.options = options
        ticket = Ticket(None, check_model_file(model), self.options)
        self._enqueue(ticket)
        return bool(ticket.wait())

    def generate(
        self, spec: JobSpec, stop: StopSignal, on_progress: ProgressFn, on_text: TextFn
    ) -> GenerationResult:
        """Run one job to its end. Raises Cancelled (partial text already sent) or EngineError."""
        result: GenerationResult = self.submit(spec, stop, on_text).wait(on_progress)
        return result

    def submit(self, spec: JobSpec, stop: StopSignal, on_text: TextFn | None = None) -> Ticket:
        """Queue a job and return at once; the caller must then `wait()` on the ticket.
        `on_text` gets each token's text on the loop thread: it must return at once."""
        path = check_model_file(spec.model)
        ticket = Ticket(spec, path, self.options, stop, on_text)
        self._enqueue(ticket)
        return ticket

    def close(self) -> None:
        """Stop the loop (jobs still in it fail) and free the model now."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        else:
            self._close_context()
        if self._sampler_pool is not None:
            self._sampler_pool.close()

    # --- admission (under the lock) -----------------------------------------------------

    def _enqueue(self, ticket: Ticket) -> None:
        with self._cond:
            if self._closed:
                raise EngineError("the engine is closed")
            self._waiting.append(ticket)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="batch-engine", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loaded(self, ticket: Ticket) -> bool:
        ctx = self._ctx
        return ctx is not None and ctx.path == ticket.path and ctx.options == ticket.options

    def _pick(self) -> list[Ticket]:
        """Tickets to admit now, best first; a model swap admits its ticket alone."""
        cancelled = [t for t in self._waiting if t.spec is not None and t.reason() is not None]
        for ticket in cancelled:  # answered at once by _admit
            self._waiting.remove(ticket)
        picked: list[Ticket] = []
        free = self.slots - len(self._active)
        while self._waiting:
            head = min(self._waiting, key=lambda t: (t.rank, t.id))
            if head.spec is None:  # a preload: done now, or not at all (never waits)
                self._waiting.remove(head)
                if self._loaded(head) or self._active or picked:
                    head.post(DONE, False)
                    continue
                return [*cancelled, head]
            if free == 0:
                break
            if not self._loaded(head):
                if self._active or picked:
                    break  # the batch drains before the model is swapped
                self._waiting.remove(head)
                return [*cancelled, head]
            self._waiting.remove(head)
            picked.append(head)
            free -= 1
        return cancelled + picked

    # --- the loop thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._closed and not self._active and not self._waiting:
                        self._cond.wait()
                    if self._closed:
                        return
                    picked = self._pick()
                for ticket in picked:
                    self._admit(ticket)
                if self._active:
                    self._step()
        except BaseException as exc:  # a bug: fail every job rather than hang them
            log.exception("the batch loop failed")
            with self._cond:
                self._closed = True  # later jobs fail at once instead of waiting forever
            self._fail_all(EngineError(f"internal error in the batch loop: {exc!r}"))
            raise
        finally:
            self._fail_all(EngineError("the worker's engine was closed"))
            self._close_context()

    def _close_context(self) -> None:
        """Free the model and context, then the sampler chains parked in them."""
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        for sampler in self._parked.values():
            sampler.close()
        self._parked.clear()

    def _fail_all(self, error: Exception) -> None:
        with self._cond:
            waiting, self._waiting = self._waiting, []
        for ticket in waiting:
            ticket.post(FAILED, error)
        for seq in list(self._active):
            self._end(seq, error)

    def _load(self, ticket: Ticket) -> BatchContext:
        assert ticket.path is not None
        self._close_context()
        layout = scan_model(ticket.path)  # a truncated or corrupt file fails here, with why
        log.info("loading model %s (%s slots, %s)", ticket.path, self.slots, ticket.options)

        def keep_loading(progress: float) -> bool:
            if self.on_load is not None:
                self.on_load(progress)
            return ticket.reason() is None  # a cancel or the time limit stops a long load

        try:
            ctx = BatchContext(ticket.path, ticket.options, self.slots, keep_loading)
        except (ValueError, RuntimeError, OSError) as exc:
            if (reason := ticket.reason()) is not None:
                raise Cancelled(reason) from exc
            raise EngineError(load_error_message(ticket.path, layout, ticket.options, exc)) from exc
        self._ctx = ctx
        self.gpu = ctx.gpu
        if not ctx.gpu.active:
            log.warning("GPU offload inactive: %s", ctx.gpu.reason)
        return ctx

    def _admit(self, ticket: Ticket) -> None:
        reason = ticket.reason()
        if reason is not None:
            ticket.post(FAILED, Cancelled(reason))
            return
        try:
            ctx = self._ctx
            loaded_now = False
            if ctx is None or not self._loaded(ticket):
                ctx = self._load(ticket)
                loaded_now = True
            if ticket.spec is None:
                ticket.post(DONE, loaded_now)
                return
            seq = self._new_sequence(ctx, ticket, ticket.spec)
        except Exception as exc:  # reported to the job; the loop goes on
            ticket.post(FAILED, exc)
            return
        self._active.append(seq)
        self._active.sort(key=lambda s: s.slot)  # ubatches take consecutive sequence ids
        ticket.admitted_step = self._step_no
        ticket.post(PROGRESS, ("prompt", 0, len(seq.tokens)), {})

    def _new_sequence(self, ctx: BatchContext, ticket: Ticket, spec: JobSpec) -> BatchSequence:
        tokens = ctx.prompt_tokens(spec)
        if len(tokens) >= ctx.n_ctx_seq:
            raise EngineError(
                f"the prompt is {len(tokens)} tokens; the context window is {ctx.n_ctx_seq} "
                "(shorten the prompt or raise the context size)"
            )
        max_tokens = min(spec.max_tokens, ctx.n_ctx_seq - len(tokens))
        used = {s.slot for s in self._active}
        free = [i for i in range(self.slots) if i not in used]
        # A prompt read over several steps sits between generating jobs less often (and
        # splits their batch less often) in the highest free slot; others take the lowest.
        slot = free[-1] if len(tokens) > ctx.n_batch else free[0]
        in_graph = self.backend_sampling
        sampler = SamplerChain(spec, job_seed(spec), ctx.n_vocab, in_graph=in_graph)
        if in_graph:
            in_graph = ctx.attach_sampler(slot, sampler.handle or 0)
            if not in_graph:
                log.warning("slot %d samples on the CPU: llama.cpp cannot run its chain", slot)
            parked = self._parked.pop(slot, None)
            if parked is not None:  # replaced (or dropped) in the context just now
                parked.close()
        return BatchSequence(
            ticket=ticket,
            slot=slot,
            tokens=tokens,
            sampler=sampler,
            assembler=TextAssembler(spec.stop),
            max_tokens=max_tokens,
            finish="length" if max_tokens == spec.max_tokens else "context",
            order=ticket.id,
            in_graph=in_graph,
        )

    # --- one step -----------------------------------------------------------------------

    def _should_abort(self, _data: Any) -> bool:
        """Stop a prompt chunk's decode when its job must stop anyway."""
        seq = self._reading
        return seq is not None and seq.ticket.reason() is not None

    def _step(self) -> None:
        """One round: one decode for every generating job's next token, then prompt chunks.

        Prompts are read apart from the generating jobs, in the chunks they would have
        alone (N_BATCH tokens), at most N_BATCH tokens per step but at least one chunk.
        """
        ctx = self._ctx
        assert ctx is not None
        for seq in list(self._active):
            reason = seq.ticket.reason()
            if reason is not None:
                self._end(seq, Cancelled(reason))
        generating = [seq for seq in self._active if seq.pending is not None]
        reading = sorted(
            (seq for seq in self._active if seq.pending is None), key=lambda seq: seq.order
        )
        generated = self._generate(ctx, generating) if generating else ()
        prompt: dict[int, int] = {}
        budget = ctx.n_batch
        for seq in reading:
            take = min(ctx.n_batch, len(seq.tokens) - seq.fed)
            if prompt and take > budget:
                break
            budget -= take
            prompt[seq.ticket.id] = take
            self._read_chunk(ctx, seq, take)
        self._step_no += 1
        if self.on_step is not None:
            self.on_step(StepInfo(self._step_no, prompt, generated))

    def _generate(self, ctx: BatchContext, seqs: list[BatchSequence]) -> tuple[int, ...]:
        """Decode the last sampled token of each job in one batch; sample and emit the next.

        On the CPU with more than one slot, free slots in gaps and next to a lone job get a
        throwaway token, so that ggml multiplies at least two rows in every ubatch, always
        with the same kernels: a job's logits do not depend on how many others run beside
        it. (One row goes through a dot product, more through tinyBLAS, which sums in
        another order.) It costs a lone job on a tiny model ~40 % of its speed; on a GPU,
        where it would not make batches of more than 8 rows invariant, it is left out.
        """
        began = time.perf_counter()
        pad = self.slots > 1 and not ctx.gpu.active
        used = {s.slot for s in self._active}
        fillers = padding_slots(used, [s.slot for s in seqs], self.slots) if pad else []
        entries: list[tuple[int, BatchSequence | None]] = [(seq.slot, seq) for seq in seqs]
        entries += [(slot, None) for slot in fillers]
        entries.sort(key=lambda entry: entry[0])  # llama.cpp splits at non-consecutive ids
        for slot, seq in entries:
            if seq is None:
                ctx.add(0, 0, slot, False)
            else:
                seq.out = ctx.add(seq.pending or 0, seq.pos, slot, True)
        decoding = time.perf_counter()
        rc = ctx.decode(False)
        now = time.perf_counter()
        for slot in fillers:
            ctx.forget(slot)
        if rc != 0:
            self._decode_failed(rc, seqs)
            return ()
        pool = self._sampler_pool
        jobs = [(seq.sampler, seq.out) for seq in seqs]
        if pool is not None and pool.worth_it(len(jobs), ctx.n_vocab):
            tokens = pool.sample(ctx.ctx, jobs)
        else:
            tokens = [sampler.sample(ctx.ctx, index) for sampler, index in jobs]
        for seq, token in zip(seqs, tokens, strict=True):
            seq.pos += 1
            self._emit(ctx, seq, token, now)
        stats = self.stats
        stats.steps += 1
        stats.tokens += len(seqs)
        stats.decode_s += now - decoding
        stats.host_s += time.perf_counter() - began - (now - decoding)
        return tuple(seq.ticket.id for seq in seqs)

    def _read_chunk(self, ctx: BatchContext, seq: BatchSequence, take: int) -> None:
        """Decode the job's next `take` prompt tokens, alone; at the end, sample its first."""
        start, tokens, slot = seq.fed, seq.tokens, seq.slot
        end = start + take
        for p in range(start, end - 1):
            ctx.add(tokens[p], p, slot, False)
        seq.out = ctx.add(tokens[end - 1], end - 1, slot, end == len(tokens))
        self._reading = seq  # worth interrupting: long, unlike a generation step
        ctx.set_abort(self._abort_cb)
        began = time.perf_counter()
        try:
            rc = ctx.decode(True)
        finally:
            ctx.set_abort(None)
            self._reading = None
        self.stats.prompt_s += time.perf_counter() - began
        self.stats.prompt_tokens += take
        if rc != 0:
            self._decode_failed(rc, [seq])
            return
        seq.fed = seq.pos = end
        seq.ticket.post(PROGRESS, ("prompt", end, len(tokens)), {})
        if end < len(tokens):
            return
        seq.ticket.post(PROGRESS, ("generating", 0, seq.max_tokens), {})
        seq.started = now = time.perf_counter()
        self._emit(ctx, seq, seq.sampler.sample(ctx.ctx, seq.out), now)

    def _decode_failed(self, rc: int, seqs: list[BatchSequence]) -> None:
        for seq in seqs:
            reason = seq.ticket.reason()
            if rc == 2 and reason is not None:
                self._end(seq, Cancelled(reason))
            else:
                self._end(seq, EngineError(f"llama_decode failed (code {rc})"))

    def _emit(self, ctx: BatchContext, seq: BatchSequence, token: int, now: float) -> None:
        """Stream the sampled token, or end the job on its end token, stop string or limit.

        A stop request is honoured at the start of the next step, before any more decoding.
        """
        piece = ctx.piece(token)
        if piece is None:  # end of generation
            self._end(seq, None, "stop")
            return
        seq.done += 1
        text = seq.assembler.feed(piece)
        elapsed = now - seq.started
        tps = seq.tps = seq.done / elapsed if elapsed > 0 else None
        if text:
            seq.pieces.append(text)
        seq.ticket.post_text(text, seq.done, seq.max_tokens, tps)
        if seq.assembler.stopped:
            self._end(seq, None, "stop")
        elif seq.done >= seq.max_tokens:
            self._end(seq, None, seq.finish)
        else:
            seq.pending = token

    def _end(self, seq: BatchSequence, error: Exception | None, finish: str = "") -> None:
        """Take the job out of the batch: free its KV cells, sampler and slot; post the end."""
        self._active.remove(seq)
        if self._ctx is not None:
            self._ctx.forget(seq.slot)
        if seq.in_graph and self._ctx is not None:
            self._parked[seq.slot] = seq.sampler  # freed when the slot's next job replaces it
        else:
            seq.sampler.close()
        ticket = seq.ticket
        ticket.finished_step = self._step_no
        if error is not None:
            ticket.post(FAILED, error)
            return
        tail = seq.assembler.finish()
        if tail:
            seq.pieces.append(tail)
            ticket.post_text(tail, seq.done, seq.max_tokens, seq.tps)
        result = GenerationResult("".join(seq.pieces), len(seq.tokens), seq.done, seq.tps, finish)
        ticket.post(DONE, result)
