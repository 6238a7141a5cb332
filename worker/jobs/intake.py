"""What prompt files and folders will queue: their specs, and each file refused with its reason.

A file is refused as a whole when it cannot be read or validated (see promptfiles) or when
a model it names is not a usable GGUF file; the other files are still queued. The command
line and the window's drops both take files in through here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from worker.jobs.promptfiles import LoadResult, Refusal, load_prompt_paths
from worker.jobs.target import check_model


def plan(
    paths: Iterable[Path | str],
    defaults: Mapping[str, Any],
    *,
    deep: bool = False,
    endpoints: Collection[str] = (),
) -> LoadResult:
    """Load the files (blocking: off any GUI thread) and refuse those whose model is bad.

    `deep` also reads each model's header and tensor table (see check_model_file); each
    distinct model is checked once. A model `NAME/MODEL` whose NAME is one of `endpoints`
    runs remotely: nothing to check here.
    """
    loaded = load_prompt_paths(paths, defaults)
    refused = list(loaded.refused)
    problems: dict[str, str | None] = {}
    sources = []
    for source in loaded.sources:
        problem = None
        for spec in source.specs:
            if spec.model not in problems:
                try:
                    check_model(spec.model, endpoints, deep=deep)
                    problems[spec.model] = None
                except ValueError as exc:
                    problems[spec.model] = str(exc)
            problem = problem or problems[spec.model]
        if problem:
            refused.append(Refusal(source.path, problem))
        else:
            sources.append(source)
    return LoadResult(sources, refused)
