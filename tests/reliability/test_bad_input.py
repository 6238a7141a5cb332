"""The bad-input matrix (docs/bad-input.md): one test per row, through the real CLI.

Every row checks the same three things: a message that names the thing and the reason,
a non-zero exit, and nothing half-queued. The CLI runs in-process (`worker.cli.main`)
against a real server, so each row costs milliseconds; rows the worker decides (the model
will not load, the prompt does not fit) run a real worker.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.cli.main import main
from worker.jobs.promptfiles import MAX_FILE_BYTES, MAX_FILES, load_prompt_paths
from worker.jobs.spec import JobSpec
from worker.jobs.validation import describe_validation_error
from worker.testing.harness import Queue, deny_open, start_queue

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(queue: Queue, capsys: pytest.CaptureFixture[str]) -> Run:
    """`promptspool ARGS...` in-process against the queue: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusals
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def queued(queue: Queue) -> int:
    return len(queue.client.list())


def refused(cli: Run, queue: Queue, model: Path, path: Path, *reason: str) -> str:
    """Submit one path that must be refused as a whole; returns stderr."""
    code, out, err = cli("submit", str(path), "--model", str(model))
    assert code == 1, (out, err)
    assert str(path) in err, err
    for part in reason:
        assert part in err, err
    assert out == "", "no job id printed"
    assert queued(queue) == 0, "nothing half-queued"
    return err


# --- prompt files ---------------------------------------------------------------------------


def test_binary_file(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    refused(cli, queue, tiny_model, path, "NUL bytes", "binary file")


def test_invalid_utf8(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    refused(cli, queue, tiny_model, path, "not UTF-8 text", "offset 3")


def test_utf16_with_bom_is_decoded(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "windows.txt"
    path.write_bytes("Tell me a story".encode("utf-16"))
    code, out, _ = cli("submit", str(path), "--model", str(tiny_model))
    assert code == 0 and len(out.split()) == 1
    assert queue.client.list()[0].spec.prompt == "Tell me a story"


def test_empty_file(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_bytes(b"")
    refused(cli, queue, tiny_model, path, "empty prompt file")


def test_whitespace_only_file(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "blank.prompt"
    path.write_text(" \n\t\r\n  \n")
    refused(cli, queue, tiny_model, path, "empty prompt file")


def test_file_over_the_size_limit(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:  # sparse: no 8 MB written
        handle.truncate(MAX_FILE_BYTES + 1)
    refused(cli, queue, tiny_model, path, "file too large", f"limit is {MAX_FILE_BYTES} bytes")


def test_folder_with_thousands_of_files_is_queued_in_one_go(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(2000):
        (folder / f"p{n:04d}.txt").write_text(f"prompt {n}")
    code, out, err = cli("submit", str(folder), "--model", str(tiny_model))
    assert code == 0, err
    assert len(out.split()) == queued(queue) == 2000


def test_folder_over_the_file_limit(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.jobs.promptfiles.MAX_FILES", 50)  # the real limit is MAX_FILES
    folder = tmp_path / "toomany"
    folder.mkdir()
    for n in range(51):
        (folder / f"p{n}.txt").write_text("x")
    refused(cli, queue, tiny_model, folder, "contains 51 prompt files", "limit of 50")
    assert MAX_FILES == 10_000


def test_nested_folders_are_walked_in_order(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "b" / "c").mkdir(parents=True)
    (root / "a.txt").write_text("one")
    (root / "b" / "b.md").write_text("two")
    (root / "b" / "c" / "c.prompt").write_text("three")
    (root / "b" / "notes.pdf").write_text("skipped: not a prompt file")
    code, out, err = cli("submit", str(root), "--model", str(tiny_model))
    assert code == 0, err
    jobs = queue.client.get_many(out.split())
    assert [job.spec.prompt for job in jobs] == ["one", "two", "three"]


def test_symlink_loop(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "loop"
    root.mkdir()
    (root / "a.txt").write_text("only once")
    (root / "again").symlink_to(root)
    (root / "self.txt").symlink_to(root / "self.txt")  # a file link pointing at itself
    code, out, err = cli("submit", str(root), "--model", str(tiny_model))
    assert code == 1  # the self-referencing link is refused by name; the rest is queued
    assert "self.txt" in err and "too many levels of symbolic links" in err.lower()
    assert len(out.split()) == queued(queue) == 1


def test_unreadable_file(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("private")
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the open fail as it would
        deny_open(monkeypatch, path)
    refused(cli, queue, tiny_model, path, "permission denied")


def test_json_of_wrong_types(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"prompt": 42, "max_tokens": "many"}))
    refused(cli, queue, tiny_model, path, "field 'prompt'", "valid string", "and 1 more")


def test_json_unknown_field(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"prompt": "hi", "tempreature": 0.5}))
    refused(cli, queue, tiny_model, path, "field 'tempreature'", "did you mean 'temperature'?")


def test_json_that_is_not_an_object(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "number.json"
    path.write_text("3.14")
    refused(cli, queue, tiny_model, path, "expected a JSON object", "got number")


def test_json_syntax_error(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"prompt": "hi",\n "max_tokens": }')
    refused(cli, queue, tiny_model, path, "invalid JSON at line 2, column 16")


def test_jsonl_with_one_bad_line_queues_nothing_from_it(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good.txt"
    good.write_text("this one is fine")
    bad = tmp_path / "batch.jsonl"
    lines = [{"prompt": "one"}, {"prompt": "two"}, {"prompt": "three", "max_tokens": -1}]
    bad.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, out, err = cli("submit", str(bad), str(good), "--model", str(tiny_model))
    assert code == 1
    assert str(bad) in err and "line 3" in err and "max_tokens" in err
    assert [job.spec.prompt for job in queue.client.list()] == ["this one is fine"]
    assert len(out.split()) == 1


def test_unsupported_file_type(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7")
    refused(cli, queue, tiny_model, path, "unsupported file type '.pdf'")


def test_missing_prompt_file(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    refused(cli, queue, tiny_model, tmp_path / "nowhere.txt", "no such file or directory")


def test_messages_with_an_unknown_role(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}))
    refused(cli, queue, tiny_model, path, "field 'messages[0].role'", "'system', 'user'")


def test_prompt_and_messages_both_given(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "both.json"
    spec = {"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}
    path.write_text(json.dumps(spec))
    refused(cli, queue, tiny_model, path, "either 'prompt' or 'messages', not both")


def test_json_list_that_is_empty(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "none.json"
    path.write_text("[]")
    refused(cli, queue, tiny_model, path, "the JSON list is empty")


# --- parameters ----------------------------------------------------------------------------


def submit_refused(cli: Run, queue: Queue, *args: str) -> str:
    code, out, err = cli("submit", *args)
    assert code != 0 and out == "", (code, out, err)
    assert queued(queue) == 0, "nothing half-queued"
    return err


def test_max_tokens_out_of_range(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tiny_model),
                         "--max-tokens", "2000000")  # fmt: skip
    assert "field 'max_tokens'" in err and "less than or equal to 1000000" in err


def test_negative_max_tokens(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tiny_model),
                         "--max-tokens", "-5")  # fmt: skip
    assert "field 'max_tokens'" in err and "greater than or equal to 1" in err


def test_temperature_out_of_range(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tiny_model),
                         "--temperature", "9")  # fmt: skip
    assert "field 'temperature'" in err and "less than or equal to 5" in err


def test_parameter_of_the_wrong_type(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tiny_model),
                         "--temperature", "warm")  # fmt: skip
    assert "--temperature" in err and "invalid float value: 'warm'" in err


def test_negative_seed(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tiny_model),
                         "--seed", "-1")  # fmt: skip
    assert "field 'seed'" in err and "greater than or equal to 0" in err


def test_zero_timeout(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tiny_model),
                         "--timeout", "0")  # fmt: skip
    assert "field 'timeout'" in err and "greater than 0" in err


def test_json_parameter_out_of_range(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "sampling.json"
    path.write_text(json.dumps({"prompt": "hi", "top_p": 2}))
    refused(cli, queue, tiny_model, path, "field 'top_p'", "less than or equal to 1")


def test_empty_stop_string(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "stop.json"
    path.write_text(json.dumps({"prompt": "hi", "stop": ["\n", ""]}))
    refused(cli, queue, tiny_model, path, "field 'stop'", "stop strings must not be empty")


def test_empty_prompt_argument(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "   ", "--model", str(tiny_model))
    assert "--prompt" in err and "the prompt is empty" in err


def test_nothing_to_submit(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--model", str(tiny_model))
    assert "nothing to submit" in err


def test_absurd_context_size(
    cli: Run, queue: Queue, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTSPOOL_N_CTX", "100000000")
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tiny_model))
    assert "bad setting" in err and "field 'n_ctx'" in err and "1048576" in err


# --- models ---------------------------------------------------------------------------------


def test_model_missing(cli: Run, queue: Queue, tmp_path: Path) -> None:
    path = tmp_path / "gone.gguf"
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(path))
    assert str(path) in err and "no such file" in err


def test_model_is_a_directory(cli: Run, queue: Queue, tmp_path: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(tmp_path))
    assert str(tmp_path) in err and "is a directory" in err


def test_model_not_gguf(cli: Run, queue: Queue, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b'{"__metadata__": {}}' + b"\0" * 64)
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(path))
    assert str(path) in err and "not a GGUF file" in err


def test_model_truncated(cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "partial.gguf"
    path.write_bytes(tiny_model.read_bytes()[: tiny_model.stat().st_size * 3 // 4])
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(path))
    assert str(path) in err and "truncated" in err and "incomplete download" in err


def test_model_with_an_old_gguf_version(cli: Run, queue: Queue, tmp_path: Path) -> None:
    path = tmp_path / "old.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<III", 1, 0, 0))
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(path))
    assert str(path) in err and "GGUF version 1 is too old" in err


def test_no_model_given(cli: Run, queue: Queue) -> None:
    err = submit_refused(cli, queue, "--prompt", "hi")
    assert "no model" in err and "PROMPTSPOOL_MODEL" in err


def test_model_with_an_unsupported_architecture(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "future.gguf"
    data = tiny_model.read_bytes()
    arch = struct.pack("<Q", 5) + b"llama"
    path.write_bytes(data.replace(arch, struct.pack("<Q", 5) + b"mamba", 1))
    queue.start_worker()
    code, out, err = cli("submit", "--prompt", "hi", "--model", str(path), "--wait")
    assert code == 1
    [job] = queue.client.list()
    assert job.state.value == "failed" and out.split() == [job.id]
    assert f"job {job.id} failed" in err and str(path) in err
    assert "architecture is 'mamba'" in err and "may not support it" in err


def test_prompt_longer_than_the_context(cli: Run, queue: Queue, tiny_model: Path) -> None:
    """Refused with a clear error, never truncated: a cut prompt would change its meaning."""
    queue.start_worker(PROMPTSPOOL_N_CTX="64")
    prompt = " ".join(["the cat sat on the mat"] * 40)
    code, out, err = cli("submit", "--prompt", prompt, "--model", str(tiny_model), "--wait")
    assert code == 1
    [job] = queue.client.list()
    assert out.split() == [job.id] and job.state.value == "failed"
    assert "tokens; the context window is" in err and "shorten the prompt" in err


# --- job ids --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "watch", "cancel", "retry"])
def test_unknown_job_id(cli: Run, queue: Queue, command: str) -> None:
    code, out, err = cli(command, "f00dfeedbeef")
    assert code == 1 and out == ""
    assert err.strip() == "promptspool: no job with id 'f00dfeedbeef'"


def test_cancel_a_finished_job(cli: Run, queue: Queue, tiny_model: Path) -> None:
    [job_id] = queue.client.submit([json_spec(tiny_model, max_tokens=2)])
    queue.start_worker()
    queue.wait_state(job_id, "succeeded")
    code, _, err = cli("cancel", job_id)
    assert code == 1 and f"job {job_id} has already succeeded; nothing to cancel" in err


def test_retry_a_queued_job(cli: Run, queue: Queue, tiny_model: Path) -> None:
    [job_id] = queue.client.submit([json_spec(tiny_model)])
    code, _, err = cli("retry", job_id)
    assert code == 1 and f"job {job_id} is queued; only finished jobs can be retried" in err
    assert queue.client.get(job_id).attempt == 1


# --- files that never answer, and errors that name the right thing ------------------------


def test_model_that_is_a_fifo_is_refused_at_once(cli: Run, queue: Queue, tmp_path: Path) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    err = submit_refused(cli, queue, "--prompt", "hi", "--model", str(fifo))
    assert f"model '{fifo}': is a FIFO, not a GGUF file" in err


def test_folder_holding_a_link_to_the_root_is_refused_quickly(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.jobs.promptfiles.MAX_FOLDERS", 200)  # the real limit is 10,000
    folder = tmp_path / "prompts"
    folder.mkdir()
    (folder / "a.txt").write_text("a", encoding="utf-8")
    (folder / "everything").symlink_to("/", target_is_directory=True)
    err = refused(cli, queue, tiny_model, folder, "holds more than 200 folders", "link to /")
    assert "nothing queued" in err


def test_folder_where_one_file_names_a_missing_model_queues_the_others(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"prompt": "a"}), encoding="utf-8")
    gone = tmp_path / "gone.gguf"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"prompt": "b", "model": str(gone)}), encoding="utf-8")
    code, out, err = cli("submit", str(tmp_path), "--model", str(tiny_model))
    assert code == 1
    assert f"refused {bad}: model '{gone}': no such file" in err
    [job] = queue.client.list()
    assert out.split() == [job.id] and job.spec.prompt == "a"


@pytest.mark.parametrize(
    ("target", "reason"),
    [("folder", "Is a directory"), ("missing", "No such file or directory"),
     ("full", "No space left on device")],
)  # fmt: skip
def test_export_to_a_path_that_cannot_be_written_names_it(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path, target: str, reason: str
) -> None:
    queue.client.submit([json_spec(tiny_model)])
    path = {"folder": tmp_path, "missing": tmp_path / "no" / "x.md", "full": Path("/dev/full")}
    code, out, err = cli("export", "--format", "md", "-o", str(path[target]))
    assert code == 1 and out == ""
    assert err.strip() == f"promptspool: cannot write {path[target]}: {reason}"
    assert "queue" not in err  # a file's problem, not the queue's


def test_a_closed_pipe_ends_the_command_quietly(queue: Queue, tiny_model: Path) -> None:
    [job_id] = queue.client.submit([json_spec(tiny_model)])
    reader, writer = os.pipe()
    os.close(reader)  # as `promptspool show ID | head` once head has read enough
    done = subprocess.run(
        [sys.executable, "-m", "worker", "show", job_id],
        env=queue.env, stdout=writer, stderr=subprocess.PIPE, timeout=60, check=False,
    )  # fmt: skip
    os.close(writer)
    assert (done.returncode, done.stderr) == (0, b"")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b'{"n_ctx": 4096', "invalid JSON at line 1, column 15: Expecting ',' delimiter"),
     (b'{"model": "caf\xe9"}', "not UTF-8 text (invalid byte at offset 14)"),
     (b"[1, 2]", "expected a JSON object of settings")],
)  # fmt: skip
def test_malformed_settings_file_is_named_with_the_reason(
    cli: Run, isolated_home: Path, content: bytes, reason: str
) -> None:
    path = isolated_home / "config" / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    code, out, err = cli("list")
    assert code == 1 and out == ""
    assert err.strip() == f"promptspool: bad settings file {path}: {reason}"


def test_home_with_url_characters_in_its_path_works(tiny_model: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="ps#?%", dir="/tmp"))
    try:
        queue = start_queue(home)
        try:
            queue.client.submit([json_spec(tiny_model)])
            done = subprocess.run(
                [sys.executable, "-m", "worker", "list"],
                env={**queue.env, "PROMPTSPOOL_REDIS_URL": ""},  # found through the home
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "queued" in done.stdout
        finally:
            queue.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)


ODD_JSON = [
    ('{"prompt": "a", "temperature": NaN}', "field 'temperature': Input should be a finite number"),
    (
        '{"prompt": "a", "max_tokens": true}',
        "field 'max_tokens': must be a number, not true or false",
    ),
    ('{"prompt": "a", "prompt": "b"}', "the key 'prompt' appears twice in one object"),
    (
        '{"prompt": "a", "seed": ' + "9" * 5000 + "}",
        "invalid JSON: a number with more than 4300 digits",
    ),
]


@pytest.mark.parametrize(("line", "reason"), ODD_JSON)
def test_json_values_that_python_would_take_are_refused_with_a_reason(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path, line: str, reason: str
) -> None:
    path = tmp_path / "odd.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    refused(cli, queue, tiny_model, path, f"line 1: {reason}")


def test_nan_on_the_command_line_is_refused(cli: Run, queue: Queue, tiny_model: Path) -> None:
    err = submit_refused(cli, queue, "--prompt", "a", "--temperature", "nan",
                         "--model", str(tiny_model))  # fmt: skip
    assert "field 'temperature': Input should be a finite number" in err


def test_file_name_that_is_not_utf8_becomes_a_readable_title(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    path = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.txt"))
    path.write_text("a prompt", encoding="utf-8")
    code, _, err = cli("submit", str(path), "--model", str(tiny_model))
    assert code == 0, err
    [job] = queue.client.list()
    assert job.title == "caf\ufffd.txt"


def test_control_characters_in_names_and_titles_never_reach_the_terminal(
    cli: Run, queue: Queue, tiny_model: Path, tmp_path: Path
) -> None:
    """A newline in a file name would forge a line of output; an escape sequence in a title
    would clear the screen or retitle the terminal. Both are printed escaped."""
    forged = tmp_path / "notes\npromptspool: all jobs deleted.pdf"
    forged.write_text("x", encoding="utf-8")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"prompt": "a", "title": "\x1b]0;pwned\x07\x1b[2Jtitle"}))
    code, out, err = cli("submit", str(forged), str(spec), "--model", str(tiny_model))
    assert code == 1
    assert err.count("\n") == 1 and "notes\\npromptspool: all jobs deleted.pdf" in err
    code, out, _ = cli("list")
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2Jtitle" in out


def json_spec(model: Path, **fields: Any) -> JobSpec:
    return JobSpec.model_validate({"model": str(model), "prompt": "hi", **fields})


# --- properties (hypothesis) ----------------------------------------------------------------

SPEC_FIELDS = [
    "prompt", "messages", "model", "title", "max_tokens", "temperature", "top_p", "top_k",
    "min_p", "repeat_penalty", "stop", "seed", "priority", "timeout", "raw",
]  # fmt: skip
BOUNDS = {
    "max_tokens": (1, 1_000_000), "temperature": (0.0, 5.0), "top_p": (0.0, 1.0),
    "top_k": (0, 100_000), "min_p": (0.0, 1.0), "repeat_penalty": (0.0, 10.0),
    "seed": (0, 2**32 - 1),
}  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["high", "normal", "low", "user", "system", "", " ", "\n", "1e3"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["role", "content", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)
spec_inputs = st.dictionaries(
    st.sampled_from(SPEC_FIELDS) | st.text(min_size=1, max_size=8), values, max_size=8
) | st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=50), "model": st.just("/m.gguf")},
    optional={name: values for name in SPEC_FIELDS if name not in ("prompt", "model")},
)


@settings(max_examples=400, deadline=None)
@given(fields=spec_inputs)
def test_spec_validation_accepts_only_bounded_specs_or_names_the_field(
    fields: dict[str, Any],
) -> None:
    """Any mapping is a spec within every bound, or one ValidationError described on one line."""
    try:
        spec = JobSpec.model_validate(fields)
    except ValidationError as exc:
        text = describe_validation_error(exc)
        assert text and "\n" not in text
        first_loc = exc.errors()[0]["loc"]
        if first_loc:
            assert text.startswith(f"field '{first_loc[0]}")
        return
    assert set(fields) <= set(SPEC_FIELDS), "unknown fields are refused"
    for name, (low, high) in BOUNDS.items():
        value = getattr(spec, name)
        assert value is None or (low <= value <= high and math.isfinite(value)), name
    assert spec.timeout is None or 0 < spec.timeout <= 7 * 86_400
    prompt = spec.prompt or "".join(m.content for m in spec.messages or [])
    assert prompt.strip(), "an accepted spec has a non-empty prompt"
    assert spec.model and all(s for s in spec.stop)
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec  # survives the ledger


line_specs = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=30)},
    optional={
        "max_tokens": st.integers(-3, 3),
        "temperature": st.floats(-1, 6),
        "seed": st.integers(-1, 3),
    },
)
jsonl_lines = st.lists(
    line_specs.map(json.dumps) | st.sampled_from(["", "  ", "{", "[]", "42", '{"prompt": 1}']),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(lines=jsonl_lines)
def test_jsonl_is_queued_whole_or_refused_at_its_first_bad_line(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8")
        result = load_prompt_paths([path], {"model": "/m.gguf"})
    first_bad = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            JobSpec.model_validate({"model": "/m.gguf", **json.loads(line)})
        except (ValueError, TypeError):  # JSONDecodeError and ValidationError are ValueErrors
            first_bad = number
            break
    if first_bad is None and any(line.strip() for line in lines):
        assert result.refused == []
        assert len(result.specs) == sum(1 for line in lines if line.strip())
    else:
        assert result.specs == [], "nothing from a refused file is queued"
        [refusal] = result.refused
        if first_bad is not None:
            assert refusal.reason.startswith(f"line {first_bad}: "), refusal.reason


@pytest.fixture(scope="module")
def tiny_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from worker.testing.tinymodel import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny.gguf").read_bytes()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_gguf_check_refuses_any_damage_with_a_reason(
    tiny_bytes: bytes, data: st.DataObject
) -> None:
    """Truncations and flipped header bytes: GgufError or a layout that fits, never a crash."""
    from worker.modelfile.layout import GgufError, scan_gguf

    blob = bytearray(tiny_bytes)
    if data.draw(st.booleans(), label="truncate"):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if blob:
            where = data.draw(st.integers(0, min(len(blob), 12_000) - 1), label="where")
            blob[where] = data.draw(st.integers(0, 255), label="byte")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.gguf"
        path.write_bytes(bytes(blob))
        try:
            layout = scan_gguf(path)
        except GgufError as exc:
            assert str(exc)
            return
    assert layout.data_end <= layout.file_size == len(blob)
    assert len(blob) == len(tiny_bytes) or layout.data_end <= len(blob)
