"""Tests for worker.promptfiles: prompt files and folders to JobSpecs, or refusals."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.jobs import promptfiles
from worker.jobs.promptfiles import MAX_FILE_BYTES, LoadResult, Refusal, load_prompt_paths
from worker.jobs.spec import JobSpec, Priority
from worker.jobs.validation import describe_validation_error
from worker.testing.harness import deny_open

MODEL = "/models/x.gguf"
DEFAULTS: dict[str, Any] = {"model": MODEL}


def load(*paths: Path | str, defaults: dict[str, Any] | None = None) -> LoadResult:
    return load_prompt_paths(paths, DEFAULTS if defaults is None else defaults)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def only_refusal(result: LoadResult) -> Refusal:
    assert result.sources == []
    assert len(result.refused) == 1
    return result.refused[0]


# --- text files -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".txt", ".md", ".prompt", ".TXT"])
def test_text_file_is_one_prompt_titled_by_file_name(tmp_path: Path, suffix: str) -> None:
    text = "Write a story.\n\nAbout a fox.\n"
    path = write(tmp_path / f"story{suffix}", text)
    result = load(path)
    assert result.refused == []
    assert [s.path for s in result.sources] == [path]
    (spec,) = result.specs
    assert spec.prompt == text
    assert spec.title == f"story{suffix}"
    assert spec.model == MODEL


def test_str_paths_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "hi")
    assert [s.prompt for s in load(str(path)).specs] == ["hi"]


def test_defaults_apply_to_text_files(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "hi")
    defaults = {
        "model": MODEL,
        "max_tokens": 64,
        "temperature": 0.2,
        "seed": 7,
        "priority": "high",
        "timeout": 30,
    }
    (spec,) = load(path, defaults=defaults).specs
    assert (spec.max_tokens, spec.temperature, spec.seed) == (64, 0.2, 7)
    assert spec.priority is Priority.high
    assert spec.timeout == 30


def test_long_file_name_title_is_shortened(tmp_path: Path) -> None:
    path = write(tmp_path / ("n" * 240 + ".txt"), "hi")
    (spec,) = load(path).specs
    assert spec.title is not None
    assert len(spec.title) == 200
    assert spec.title.endswith("…")


# --- refusals of a whole file -------------------------------------------------------------


def test_missing_path_is_refused(tmp_path: Path) -> None:
    refusal = only_refusal(load(tmp_path / "nope.txt"))
    assert refusal.path == tmp_path / "nope.txt"
    assert refusal.reason == "no such file or directory"
    assert str(refusal) == f"{tmp_path / 'nope.txt'}: no such file or directory"


def test_explicit_unsupported_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "paper.pdf", "%PDF")
    refusal = only_refusal(load(path))
    assert refusal.reason == (
        "unsupported file type '.pdf'; use .txt, .md, .prompt, .json or .jsonl"
    )
    no_ext = write(tmp_path / "README", "hi")
    assert "no extension" in only_refusal(load(no_ext)).reason


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.txt", "hi")
    path.chmod(0)
    try:
        try:
            with path.open("rb"):
                pass
        except PermissionError:
            pass
        else:
            pytest.skip("this user can read a mode-000 file (root?)")
        refusal = only_refusal(load(path))
        assert "permission" in refusal.reason
    finally:
        path.chmod(0o644)


def test_permission_error_while_reading_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same rule as above, also checked when running as root."""
    path = write(tmp_path / "secret.txt", "hi")
    deny_open(monkeypatch, path)
    refusal = only_refusal(load(path))
    assert refusal.reason == "cannot be read: permission denied"


def test_too_large_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: cheap to make
    refusal = only_refusal(load(path))
    assert "too large" in refusal.reason
    assert str(MAX_FILE_BYTES) in refusal.reason


def test_file_at_the_size_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(promptfiles, "MAX_FILE_BYTES", 10)
    ok = write(tmp_path / "ok.txt", "0123456789")
    big = write(tmp_path / "big.txt", "0123456789A")
    result = load(ok, big)
    assert [s.prompt for s in result.specs] == ["0123456789"]
    assert [r.path for r in result.refused] == [big]


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "blob.txt", b"abc\x00\x01\x02def")
    assert "NUL" in only_refusal(load(path)).reason


def test_invalid_utf8_is_refused_with_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", "café".encode("latin-1"))
    assert only_refusal(load(path)).reason == "not UTF-8 text (invalid byte at offset 3)"


def test_invalid_utf8_offset_counts_the_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", b"\xef\xbb\xbfab\xff")
    assert only_refusal(load(path)).reason == "not UTF-8 text (invalid byte at offset 5)"


@pytest.mark.parametrize("content", ["", "   \n\t\r\n  ", "\ufeff", "\ufeff \n"])
@pytest.mark.parametrize("suffix", [".txt", ".json", ".jsonl"])
def test_empty_or_blank_file_is_refused(tmp_path: Path, content: str, suffix: str) -> None:
    path = write(tmp_path / f"empty{suffix}", content)
    assert only_refusal(load(path)).reason == "empty prompt file"


def test_fifo_named_explicitly_is_refused_not_opened(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    assert only_refusal(load(fifo)).reason == "not a regular file (a FIFO)"


# --- byte order marks ------------------------------------------------------------------------


def test_utf8_bom_is_stripped(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.txt", b"\xef\xbb\xbfHello")
    assert [s.prompt for s in load(path).specs] == ["Hello"]


def test_utf8_bom_in_json_is_stripped(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.json", b'\xef\xbb\xbf{"prompt": "Hi"}')
    assert [s.prompt for s in load(path).specs] == ["Hi"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_decoded(tmp_path: Path, encoding: str) -> None:
    text = "Grüße, 世界\n"
    data = text.encode(encoding)
    if encoding != "utf-16":  # the plain codec writes its own BOM
        data = "\ufeff".encode(encoding) + data
    path = write(tmp_path / "wide.txt", data)
    assert [s.prompt for s in load(path).specs] == [text]


def test_utf16_json_is_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "wide.json", '{"prompt": "Hi"}'.encode("utf-16"))
    assert [s.prompt for s in load(path).specs] == ["Hi"]


def test_broken_utf16_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.txt", b"\xff\xfeA\x00B")  # odd number of bytes
    assert "not UTF-16 text" in only_refusal(load(path)).reason


def test_utf16_with_nul_characters_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "nul.txt", "a\x00b".encode("utf-16"))
    assert "NUL" in only_refusal(load(path)).reason


# --- JSON ---------------------------------------------------------------------------------


def test_json_object_is_one_spec_with_defaults_under_it(tmp_path: Path) -> None:
    path = write(tmp_path / "job.json", json.dumps({"prompt": "Hi", "temperature": 0.1}))
    defaults = {"model": MODEL, "temperature": 1.5, "max_tokens": 99}
    (spec,) = load(path, defaults=defaults).specs
    assert spec.prompt == "Hi"
    assert spec.temperature == 0.1  # the file wins
    assert spec.max_tokens == 99  # the default fills in
    assert spec.model == MODEL
    assert spec.title == "job.json"


def test_json_spec_can_name_its_own_model_and_title(tmp_path: Path) -> None:
    spec_in = {"prompt": "Hi", "model": "/other.gguf", "title": "Mine"}
    path = write(tmp_path / "job.json", json.dumps(spec_in))
    (spec,) = load(path).specs
    assert (spec.model, spec.title) == ("/other.gguf", "Mine")


def test_json_messages_spec(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    path = write(tmp_path / "chat.json", json.dumps({"messages": messages}))
    (spec,) = load(path).specs
    assert spec.messages is not None
    assert [m.role for m in spec.messages] == ["system", "user"]
    assert spec.prompt is None


def test_json_list_gives_numbered_titles(tmp_path: Path) -> None:
    items = [{"prompt": "one"}, {"prompt": "two", "title": "Second"}, {"prompt": "three"}]
    path = write(tmp_path / "batch.json", json.dumps(items))
    specs = load(path).specs
    assert [s.prompt for s in specs] == ["one", "two", "three"]
    assert [s.title for s in specs] == ["batch.json#1", "Second", "batch.json#3"]


def test_json_list_of_one_is_titled_by_file_name(tmp_path: Path) -> None:
    path = write(tmp_path / "batch.json", json.dumps([{"prompt": "one"}]))
    assert [s.title for s in load(path).specs] == ["batch.json"]


def test_json_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", '{\n  "prompt": "Hi"\n  "seed": 1\n}')
    reason = only_refusal(load(path)).reason
    assert reason.startswith("invalid JSON at line 3, column 3:")
    assert "delimiter" in reason


def test_json_wrong_type_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", json.dumps({"prompt": "Hi", "max_tokens": "many"}))
    assert only_refusal(load(path)).reason == (
        "field 'max_tokens': Input should be a valid integer, unable to parse string as an integer"
    )


def test_json_unknown_field_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", json.dumps({"prompt": "Hi", "nope": 1}))
    assert only_refusal(load(path)).reason == "field 'nope': unknown field"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("temprature", "temperature"), ("temp", "temperature"), ("max_token", "max_tokens"),
     ("Seed", "seed"), ("prompt_fromat", "prompt_format")],
)  # fmt: skip
def test_json_misspelt_field_names_the_nearest(tmp_path: Path, typo: str, meant: str) -> None:
    path = write(tmp_path / "typo.json", json.dumps({"prompt": "Hi", typo: 1}))
    assert only_refusal(load(path)).reason == (
        f"field '{typo}': unknown field; did you mean '{meant}'?"
    )


def test_misspelt_field_inside_a_message_names_the_nearest(tmp_path: Path) -> None:
    spec_in = {"messages": [{"role": "user", "content": "a", "contnet": "b"}]}
    path = write(tmp_path / "chat.json", json.dumps(spec_in))
    assert only_refusal(load(path)).reason == (
        "field 'messages[0].contnet': unknown field; did you mean 'content'?"
    )


def test_json_out_of_range_value_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", json.dumps({"prompt": "Hi", "temperature": 9}))
    assert only_refusal(load(path)).reason == (
        "field 'temperature': Input should be less than or equal to 5"
    )


def test_json_nested_field_location(tmp_path: Path) -> None:
    spec_in = {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}
    path = write(tmp_path / "bad.json", json.dumps(spec_in))
    assert only_refusal(load(path)).reason.startswith("field 'messages[1].role':")


def test_json_empty_prompt_has_no_value_error_prefix(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", json.dumps({"prompt": "   "}))
    assert only_refusal(load(path)).reason == "the prompt is empty"


@pytest.mark.parametrize(
    ("content", "kind"), [("[1, 2]", "number"), ('"hello"', "string"), ("null", "null")]
)
def test_json_non_object_is_refused(tmp_path: Path, content: str, kind: str) -> None:
    path = write(tmp_path / "bad.json", content)
    reason = only_refusal(load(path)).reason
    assert f"expected a JSON object (a job spec), got {kind}" in reason


def test_json_list_with_one_bad_item_refuses_the_file(tmp_path: Path) -> None:
    items = [{"prompt": "ok"}, {"prompt": "ok"}, {"prompt": "Hi", "top_p": 2}]
    path = write(tmp_path / "batch.json", json.dumps(items))
    refusal = only_refusal(load(path))
    assert refusal.reason == "item 3: field 'top_p': Input should be less than or equal to 1"


def test_empty_json_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "none.json", "[]")
    assert "empty" in only_refusal(load(path)).reason


def test_json_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    assert "invalid JSON" in only_refusal(load(path)).reason


def test_json_huge_integer_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "big.json", '{"prompt": "Hi", "seed": ' + "9" * 5000 + "}")
    assert only_refusal(load(path)).path == path


def test_missing_model_in_defaults_and_spec_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "hi")
    assert only_refusal(load(path, defaults={})).reason == "field 'model': Field required"


# --- JSONL --------------------------------------------------------------------------------


def test_jsonl_one_spec_per_non_blank_line(tmp_path: Path) -> None:
    content = '{"prompt": "a"}\n\n   \n{"prompt": "b", "seed": 3}\r\n{"prompt": "c"}\n'
    path = write(tmp_path / "jobs.jsonl", content)
    specs = load(path, defaults={"model": MODEL, "seed": 1}).specs
    assert [s.prompt for s in specs] == ["a", "b", "c"]
    assert [s.seed for s in specs] == [1, 3, 1]
    assert [s.title for s in specs] == ["jobs.jsonl#1", "jobs.jsonl#2", "jobs.jsonl#3"]


def test_jsonl_single_line_is_titled_by_file_name(tmp_path: Path) -> None:
    path = write(tmp_path / "one.jsonl", '{"prompt": "a"}\n')
    assert [s.title for s in load(path).specs] == ["one.jsonl"]


def test_jsonl_bad_field_on_one_line_refuses_whole_file(tmp_path: Path) -> None:
    content = '{"prompt": "a"}\n\n{"prompt": "b", "temperature": 7}\n{"prompt": "c"}\n'
    path = write(tmp_path / "jobs.jsonl", content)
    refusal = only_refusal(load(path))
    assert refusal.reason == "line 3: field 'temperature': Input should be less than or equal to 5"


def test_jsonl_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs.jsonl", '{"prompt": "a"}\n{"prompt": "b",}\n')
    reason = only_refusal(load(path)).reason
    assert reason.startswith("line 2: invalid JSON at column 16:")


def test_jsonl_non_object_line_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs.jsonl", '{"prompt": "a"}\n["b"]\n')
    assert only_refusal(load(path)).reason == (
        "line 2: expected a JSON object (a job spec), got array"
    )


def test_jsonl_single_bad_line_still_has_line_prefix(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs.jsonl", '\n{"prompt": "a", "nope": 1}\n')
    refusal = only_refusal(load(path))
    assert refusal.reason == "line 2: field 'nope': unknown field"
    assert refusal.problems == ()  # the reason says it all


def test_jsonl_lists_every_bad_line_a_truncated_last_one_too(tmp_path: Path) -> None:
    lines = ['{"prompt": "a"}', '{"prompt": "b", "temprature": 0.5}', '{"prompt": "c"}',
             '{"prompt": "d", "max_tok']  # fmt: skip
    path = write(tmp_path / "jobs.jsonl", "\n".join(lines))
    refusal = only_refusal(load(path))
    first = "line 2: field 'temprature': unknown field; did you mean 'temperature'?"
    assert refusal.reason == f"{first} (and 1 more bad line)"
    assert refusal.problems == (
        first,
        "line 4: invalid JSON at column 17: Unterminated string starting at",
    )


def test_jsonl_with_many_bad_lines_lists_the_first_ones_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    count = promptfiles.MAX_LISTED + 5
    path = write(tmp_path / "jobs.jsonl", "\n".join(['{"prompt": 1}'] * count))
    refusal = only_refusal(load(path))
    assert refusal.reason.endswith(f"(and {count - 1} more bad lines)")
    assert len(refusal.problems) == promptfiles.MAX_LISTED + 1
    assert refusal.problems[0].startswith("line 1: field 'prompt':")
    assert refusal.problems[-2].startswith(f"line {promptfiles.MAX_LISTED}: ")
    assert refusal.problems[-1] == "and 5 more bad lines"


def test_json_list_lists_every_bad_item(tmp_path: Path) -> None:
    items = [{"prompt": "ok", "sed": 1}, {"prompt": "ok"}, 7]
    path = write(tmp_path / "batch.json", json.dumps(items))
    refusal = only_refusal(load(path))
    assert refusal.problems == (
        "item 1: field 'sed': unknown field; did you mean 'seed'?",
        "item 3: expected a JSON object (a job spec), got number",
    )
    assert refusal.reason == f"{refusal.problems[0]} (and 1 more bad item)"


# --- folders --------------------------------------------------------------------------------


def test_folder_is_walked_recursively_in_path_order(tmp_path: Path) -> None:
    root = tmp_path / "drop"
    write(root / "b.txt", "B")
    write(root / "a" / "z.md", "AZ")
    write(root / "a" / "deeper" / "x.prompt", "AX")
    write(root / "c.jsonl", '{"prompt": "C1"}\n{"prompt": "C2"}\n')
    write(root / "a.json", '{"prompt": "A"}')
    write(root / "notes.pdf", "skip me")
    write(root / "image.png", b"\x89PNG\x00\x00")
    write(root / ".hidden.txt", "hidden")
    write(root / ".git" / "HEAD.txt", "hidden dir")
    result = load(root)
    assert result.refused == []
    assert [s.prompt for s in result.specs] == ["AX", "AZ", "A", "B", "C1", "C2"]
    assert [s.path.relative_to(root).as_posix() for s in result.sources] == [
        "a/deeper/x.prompt",
        "a/z.md",
        "a.json",
        "b.txt",
        "c.jsonl",
    ]


def test_bad_file_in_folder_is_refused_others_are_queued(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "A")
    write(tmp_path / "b.json", "{oops")
    write(tmp_path / "c.txt", "C")
    result = load(tmp_path)
    assert [s.prompt for s in result.specs] == ["A", "C"]
    assert [r.path for r in result.refused] == [tmp_path / "b.json"]


def test_given_paths_keep_their_order(tmp_path: Path) -> None:
    first = write(tmp_path / "z.txt", "Z")
    folder = tmp_path / "f"
    write(folder / "m.txt", "M")
    last = write(tmp_path / "a.txt", "A")
    assert [s.prompt for s in load(first, folder, last).specs] == ["Z", "M", "A"]


def test_file_reached_twice_is_loaded_once(tmp_path: Path) -> None:
    path = write(tmp_path / "f" / "a.txt", "A")
    assert [s.prompt for s in load(tmp_path / "f", path, path).specs] == ["A"]


def test_empty_folder_gives_nothing(tmp_path: Path) -> None:
    result = load(tmp_path)
    assert (result.sources, result.refused) == ([], [])


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "sub" / "a.txt", "A")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to(root / "sub", target_is_directory=True)
    result = load(root)
    assert [s.prompt for s in result.specs] == ["A"]
    assert result.refused == []


def test_symlinked_file_and_folder_are_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "o.txt", "O")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    (root / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    result = load(root)
    assert [s.prompt for s in result.specs] == ["O"]  # one file, reached twice
    assert result.refused == []


def test_broken_symlink_in_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").symlink_to(tmp_path / "missing.txt")
    refusal = only_refusal(load(tmp_path))
    assert refusal.path == tmp_path / "gone.txt"
    assert refusal.reason == "no such file or directory"


def test_explicit_hidden_file_is_loaded(tmp_path: Path) -> None:
    path = write(tmp_path / ".secret.txt", "S")
    assert [s.prompt for s in load(path).specs] == ["S"]


def test_too_many_files_refuses_the_whole_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(promptfiles, "MAX_FILES", 3)
    big = tmp_path / "big"
    for n in range(4):
        write(big / f"sub{n % 2}" / f"{n}.txt", str(n))
    write(big / "skip.pdf", "not counted")
    small = tmp_path / "small"
    for n in range(3):
        write(small / f"{n}.txt", str(n))
    result = load(big, small)
    assert [r.path for r in result.refused] == [big]
    assert "4" in result.refused[0].reason
    assert "3" in result.refused[0].reason
    assert [s.prompt for s in result.specs] == ["0", "1", "2"]


# --- describe_validation_error ------------------------------------------------------------------


def test_describe_validation_error_counts_further_errors() -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"prompt": "x", "model": MODEL, "top_k": -1, "min_p": 9})
    assert describe_validation_error(info.value) == (
        "field 'top_k': Input should be greater than or equal to 0 (and 1 more)"
    )


def test_describe_validation_error_strips_value_error_prefix() -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"prompt": "x", "model": MODEL, "stop": ["ok", ""]})
    assert describe_validation_error(info.value) == ("field 'stop': stop strings must not be empty")


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(text=st.text())
def test_any_text_file_gives_its_text_or_one_refusal(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder) / "t.txt", text)
        result = load(path)
    if result.sources:
        assert result.refused == []
        (spec,) = result.specs
        assert spec.prompt == text.removeprefix("\ufeff")
    else:
        assert len(result.refused) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "prompt",
                    "model",
                    "max_tokens",
                    "temperature",
                    "seed",
                    "stop",
                    "messages",
                    "priority",
                    "title",
                    "role",
                    "content",
                    "other",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
# Mostly-valid specs too, so that the property also sees files that are accepted.
spec_dicts = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1)},
    optional={
        "max_tokens": st.integers(),
        "temperature": st.floats(),
        "seed": st.integers(),
        "priority": st.sampled_from(["high", "normal", "low", "urgent"]),
        "stop": st.lists(st.text(max_size=3), max_size=3),
        "bogus": st.none(),
    },
)
json_inputs = json_values | spec_dicts | st.lists(spec_dicts, min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(value=json_inputs, as_jsonl=st.booleans())
def test_any_json_value_gives_specs_or_one_refusal(value: Any, as_jsonl: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if as_jsonl:
            items = value if isinstance(value, list) else [value]
            content = "\n".join(json.dumps(item) for item in items)
            path = write(Path(folder) / "v.jsonl", content)
        else:
            path = write(Path(folder) / "v.json", json.dumps(value))
        result = load(path)
    if result.sources:
        assert result.refused == []
        assert all(isinstance(spec, JobSpec) for spec in result.specs)
    else:
        assert len(result.refused) == 1


BATCH_LINE = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions",
                         "body": {"model": "m", "prompt": "x"}})  # fmt: skip


def test_batch_files_are_split_from_prompt_files_inside_folders_too(tmp_path: Path) -> None:
    named = write(tmp_path / "named.jsonl", "\n" + BATCH_LINE + "\n")
    folder = tmp_path / "folder"
    inside = write(folder / "deep" / "inside.jsonl", BATCH_LINE + "\n")
    prompts = write(folder / "prompts.jsonl", json.dumps({"prompt": "hi"}) + "\n")
    write(folder / "story.txt", "Once")
    batches, others = promptfiles.split_batch_files([named, folder, named])
    assert [b.path for b in batches] == [named, inside]  # each once
    assert batches[0].data == named.read_bytes()
    assert others == [folder]
    loaded = load(*others)
    assert [s.path for s in loaded.sources] == [prompts, folder / "story.txt"]
    assert loaded.refused == []


def test_a_named_batch_file_is_not_read_as_prompts(tmp_path: Path) -> None:
    named = write(tmp_path / "named.jsonl", BATCH_LINE + "\n")
    loaded = load(named)
    assert loaded.sources == []
    assert loaded.refused == [Refusal(named, promptfiles.BATCH_FILE)]
