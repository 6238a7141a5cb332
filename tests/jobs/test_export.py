"""Exports: Markdown with the parameters and no live HTML; JSON with ISO 8601 times."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from markdown_it import MarkdownIt

from worker.jobs.export import export_text, fenced, inline_code, iso_time, plain
from worker.jobs.job import Attempt, Job, JobState
from worker.jobs.spec import JobSpec, Message

CREATED = 1796130317.123  # 2026-12-01T13:05:17.123Z
HOSTILE = '<script>alert(1)</script>\n<img src=x onerror="alert(2)">\n```\nfenced?\n````'


def a_job(**spec: object) -> Job:
    run = {"started_at": CREATED + 1, "finished_at": CREATED + 3.5}
    fields = {"model": "/models/tiny.gguf", "prompt": "Write about rivers", **spec}
    return Job(
        id="abc123def456",
        spec=JobSpec.model_validate(fields),
        state=JobState.succeeded,
        created_at=CREATED,
        **run,
        output=HOSTILE,
        prompt_tokens=5,
        completion_tokens=9,
        tokens_per_second=3.6,
        finish_reason="length",
        attempts=[Attempt(number=1, state=JobState.succeeded, **run)],
    )


def rendered(markdown: str) -> str:
    """HTML as a Markdown viewer makes it (raw HTML allowed, as most viewers do)."""
    return str(MarkdownIt("commonmark", {"html": True}).render(markdown))


def test_markdown_shows_the_parameters_state_times_and_tokens() -> None:
    job = a_job(temperature=0.2, seed=7, stop=["END"], system="Be brief", priority="high",
                prompt_format="chatml", title="rivers.txt")  # fmt: skip
    md = export_text([job], "md")
    assert md.startswith("## rivers.txt\n")
    assert "- **Job** `abc123def456` · succeeded · priority high\n" in md
    assert "- **Model** `tiny.gguf`\n" in md
    settings = re.search(r"- \*\*Settings\*\* (.*)\n", md)
    assert settings is not None
    assert settings.group(1) == (
        'temperature `0.2` · stop `["END"]` · seed `7` · prompt_format `chatml`'
    )  # only what differs from the defaults; the title is the heading
    assert "created 2026-12-01 13:05:17 UTC · started 2026-12-01 13:05:18 UTC" in md
    assert "took 2.5 s" in md
    assert "- **Tokens** 5 prompt · 9 generated · 3.6 tok/s · stopped: length\n" in md
    assert "### System prompt\n\n```text\nBe brief\n```\n" in md
    assert "### Prompt\n\n```text\nWrite about rivers\n```\n" in md


def test_markdown_with_default_settings_says_so() -> None:
    assert "- **Settings** defaults\n" in export_text([a_job()], "md")


def test_markdown_never_renders_the_model_text_as_html() -> None:
    job = a_job(title='<img src=x onerror="alert(3)"> *bold*', prompt=HOSTILE)
    job = job.model_copy(update={"error": "<b>oops</b>"})
    html = rendered(export_text([job], "md"))
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "<strong>" not in html.split("<ul>")[0]  # the title is text, not emphasis
    # The text is all there, shown as it is.
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # prompt and output
    assert "fenced?\n````" in html


def test_markdown_chat_messages_each_in_a_block() -> None:
    chat = [Message(role="system", content="Be kind"), Message(role="user", content="<hi>")]
    md = export_text([a_job(prompt=None, messages=chat)], "md")
    assert "### Messages\n\n**system**\n\n```text\nBe kind\n```\n" in md
    assert "**user**\n\n```text\n<hi>\n```\n" in md
    assert "### Prompt" not in md


@pytest.mark.parametrize("text", ["", "plain", "a ``` b", "````", "`edge`", "x\n`````\ny"])
def test_fenced_and_inline_code_hold_any_text(text: str) -> None:
    html = rendered(fenced(text))
    assert html.startswith("<pre><code")
    assert html.count("</code></pre>") == 1
    one_line = text.replace("\n", " ")
    if one_line.strip():
        inline = rendered(inline_code(one_line))
        assert inline.count("<code>") == 1


def test_plain_text_escapes_markdown_and_html() -> None:
    assert rendered(plain("a <i>b</i> & *c* [d](e) `f`")) == (
        "<p>a &lt;i&gt;b&lt;/i&gt; &amp; *c* [d](e) `f`</p>\n"
    )


def test_json_times_are_iso_8601_in_utc() -> None:
    [record] = json.loads(export_text([a_job()], "json"))
    assert record["created_at"] == "2026-12-01T13:05:17.123Z"
    assert record["started_at"] == "2026-12-01T13:05:18.123Z"
    assert record["finished_at"] == "2026-12-01T13:05:20.623Z"
    assert record["attempts"][0]["finished_at"] == "2026-12-01T13:05:20.623Z"
    assert datetime.fromisoformat(record["created_at"]).timestamp() == pytest.approx(CREATED)
    assert record["spec"]["prompt"] == "Write about rivers" and record["output"] == HOSTILE


def test_jsonl_times_are_iso_8601_and_unstarted_ones_null() -> None:
    queued = a_job().model_copy(update={"state": JobState.queued, "started_at": None,
                                        "finished_at": None, "attempts": []})  # fmt: skip
    [line] = export_text([queued], "jsonl").splitlines()
    record = json.loads(line)
    assert record["created_at"] == iso_time(CREATED) == "2026-12-01T13:05:17.123Z"
    assert record["started_at"] is None and record["finished_at"] is None
