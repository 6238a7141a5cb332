"""`submit --system/--format` and prompt files carry a system prompt and a prompt format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from worker.testing.harness import Queue


def test_system_and_format_reach_every_job_over_the_settings(
    queue: Queue, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTSPOOL_SYSTEM_PROMPT", "From the settings.")
    monkeypatch.setenv("PROMPTSPOOL_PROMPT_FORMAT", "llama3")
    (tmp_path / "plain.txt").write_text("A text file")
    own = {"prompt": "Its own", "system": "From the file.", "prompt_format": "gemma",
           "parent": "abc-123"}  # fmt: skip
    (tmp_path / "own.json").write_text(json.dumps(own))
    common = ["--model", str(tiny_model), "--max-tokens", "2", "--json"]
    settings = run("submit", "--prompt", "hi", str(tmp_path / "plain.txt"), *common)
    given = run("submit", "--prompt", "hi", str(tmp_path), "--system", "Be brief.",
                "--format", "chatml", *common)  # fmt: skip
    none = run("submit", "--prompt", "hi", "--system", "", "--format", "raw", *common)
    for done in (settings, given, none):
        assert done.returncode == 0, done.stderr
    specs = [[job["spec"] for job in json.loads(done.stdout)] for done in (settings, given, none)]
    pairs = [[(s["system"], s["prompt_format"], s["parent"]) for s in jobs] for jobs in specs]
    assert pairs[0] == [("From the settings.", "llama3", None)] * 2
    assert pairs[1] == [("Be brief.", "chatml", None), ("From the file.", "gemma", "abc-123"),
                        ("Be brief.", "chatml", None)]  # fmt: skip
    assert pairs[2] == [("", "raw", None)]


def test_an_unknown_format_is_refused_with_the_nearest_name(queue: Queue, tiny_model: Path) -> None:
    done = run("submit", "--model", str(tiny_model), "--prompt", "hi", "--format", "chatlm")
    assert done.returncode == 2
    assert "unknown prompt format 'chatlm'" in done.stderr and "'chatml'?" in done.stderr
