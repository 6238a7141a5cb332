"""`python -m bench [NAME ...]`: run the benchmarks and print one JSON object per figure."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from typing import Any

from bench import (
    batching,
    clistart,
    http_api,
    latency,
    library,
    modelinfo,
    openai_api,
    peer,
    reliability,
    remote,
    steady,
    streaming,
)
from bench.common import emit, machine, stories_model


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    model = stories_model()
    suites: dict[str, Callable[[], Any]] = {
        "streaming": lambda: streaming.run(model),
        # The same with one decode thread: on a 2-core machine that leaves the server and
        # the publisher a core of their own, as a larger machine always has.
        "streaming_1t": lambda: streaming.run(model, n_threads=1),
        "submit": lambda: latency.submit_latency(model),
        "bulk_submit": lambda: latency.bulk_submit(model),
        "token_latency": lambda: latency.token_to_reader(model),
        "throughput": lambda: latency.tiny_job_throughput(model),
        "cold_start": latency.serve_cold_start,
        "single_stream": lambda: batching.single_stream(model),
        "batching": lambda: batching.aggregate(model),
        "batching_in_graph": lambda: batching.aggregate(model, backend_sampling=True),
        "fsync": lambda: reliability.fsync_policy(model),
        "endurance": reliability.endurance,
        # The HTTP API, each figure against the same work done with JobClient directly.
        "http_submit": lambda: http_api.submit_latency(model),
        "http_token_latency": lambda: http_api.token_latency(model),
        "http_streams": lambda: http_api.concurrent_streams(model),
        # One decode thread: on 2 cores the API process then has a core, and the decode does
        # not collapse whenever anything else runs (see streaming_1t).
        "http_streams_1t": lambda: http_api.concurrent_streams(model, n_threads=1),
        "http_memory": lambda: http_api.memory_with_open_streams(model),
        "chat_token_latency": lambda: openai_api.chat_token_latency(model),
        "batch_upload": lambda: openai_api.batch_upload(model),
        # A model's details: the header scan vs gguf.GGUFReader, on 128k-262k vocabularies.
        "modelinfo": modelinfo.run,
        # `promptspool list`, `submit` and `show` as whole processes, vs `python -c pass`.
        "cli_start": lambda: clistart.run(model),
        # PromptSpool end to end vs llama.cpp's llama-server, same build, model and prompts.
        "peer": peer.run,
        # One job's decode through the queue (defaults) vs raw at its best thread count.
        "steady_decode": steady.run,
        # Remote endpoints: 200 jobs under a remote's rate limit; remote jobs beside the GPU's.
        "remote": remote.run,
        # The model library: 500 GGUF files across every tool's layout, cold and warm.
        "library": library.run,
    }
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", choices=[*suites, []], metavar="NAME")
    args = parser.parse_args()
    emit("machine", machine())
    results = [suites[name]() for name in (args.names or suites)]
    print(json.dumps({"bench": "done", "count": len(results)}))


if __name__ == "__main__":
    main()
