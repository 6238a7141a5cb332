"""Takes the README's screenshots of the desktop app over a real queue (offscreen by default).

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m scripts.screenshots [--out docs/screenshots]

Needs ../shared/models/stories260K.gguf for readable text. Writes main-window.png
(1280x800), main-window-dark.png, small-screen.png (1024x640), welcome.png,
drop-overlay.png, drop-summary.png, batches.png, settings.png, settings-refused.png,
follow-up.png, quit.png and about.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync

from desktop.app import make_application
from desktop.common.theme import dark_palette
from desktop.controller import Controller
from desktop.services.httpapi import ApiState
from desktop.window.about import UNKNOWN
from worker.jobs.job import JobOrigin, JobState
from worker.jobs.spec import JobSpec
from worker.settings import DEFAULT_HTTP_PORT
from worker.testing.harness import Queue, free_port, temp_queue

STORIES = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K.gguf"
PROMPTS = {
    "bedtime-story.txt": "Once upon a time, a little fox could not sleep.",
    "the-brave-cat.md": "Tell a story about a brave cat and a big tree.",
    "rainy-day.prompt": "Lily looked out of the window at the rain.",
    "lost-ball.txt": "Tom lost his red ball in the park.",
    "birthday.txt": "It was Sam's birthday and the sun was shining.",
}


async def until(check: Callable[[], bool], interval: float = 0.01, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise TimeoutError(f"screenshot scene did not come about: {check.__name__}")
        await asyncio.sleep(interval)


class Throttle:
    """Slows a worker process to a big model's pace on a CPU: SIGCONT for a slice, then SIGSTOP.

    The tiny story model writes ~2000 tokens/s and stops after ~200: too fast to be seen
    streaming. Throttled, the screenshot shows a job mid-stream at a believable speed.
    """

    def __init__(self, pid: int, duty: float = 0.03, period: float = 0.05) -> None:
        self.pid, self.duty, self.period = pid, duty, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Throttle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        os.kill(self.pid, signal.SIGCONT)

    def _run(self) -> None:
        while not self._stop.is_set():
            os.kill(self.pid, signal.SIGCONT)
            self._stop.wait(self.period * self.duty)
            os.kill(self.pid, signal.SIGSTOP)
            self._stop.wait(self.period * (1 - self.duty))


async def save(widget: Any, path: Path) -> None:
    await asyncio.sleep(0.1)  # let layouts and pending paints settle
    widget.grab().save(str(path))
    print(f"wrote {path} ({widget.width()}x{widget.height()})")


def batch_line(n: int, text: str, **body: Any) -> str:
    """A line of an OpenAI batch file: a chat completion with the model the editor has."""
    request = {"model": "default", "messages": [{"role": "user", "content": text}],
               "max_tokens": 60, **body}  # fmt: skip
    line = {"custom_id": f"request-{n}", "method": "POST", "url": "/v1/chat/completions"}
    return json.dumps({**line, "body": request})


def drop_folder(root: Path) -> list[Path]:
    (root / "prompts" / "more").mkdir(parents=True)
    (root / "prompts" / "story.txt").write_text("Once upon a time", encoding="utf-8")
    (root / "prompts" / "more" / "two.jsonl").write_text(
        '{"prompt": "A dog"}\n{"prompt": "A bird", "max_tokens": 40}\n', encoding="utf-8"
    )
    (root / "prompts" / "broken.json").write_text('{"prompt": "no end"', encoding="utf-8")
    (root / "prompts" / "half.jsonl").write_text('{"prompt": "ok"}\n{"tokens": 3}\n', "utf-8")
    (root / "photo.png").write_bytes(b"\x89PNG")
    (root / "empty.md").write_text("\n", encoding="utf-8")
    lines = [batch_line(n, f"Summarise story {n}.") for n in range(1, 5)]
    (root / "requests.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    bad = [lines[0], batch_line(2, "Hi", temperature=9), lines[1].replace("request-2", "request-1")]
    (root / "bad-requests.jsonl").write_text("\n".join(bad) + "\n", encoding="utf-8")
    names = ["prompts", "photo.png", "empty.md", "requests.jsonl", "bad-requests.jsonl"]
    return [root / name for name in names]


BATCH_PROMPTS = [
    "Summarise: the fox found a warm den before the snow came.",
    "Summarise: Lily and her mom baked a cake for grandpa.",
    "Summarise: the boat was small but the sea was calm.",
    "Summarise: Tim shared his toys with the new boy.",
    "Summarise: a bird built a nest in the old tree.",
    "Summarise: the dog waited by the door all day.",
]


async def batch_scene(desk: Controller, queue: Queue, out: Path) -> None:
    """Jobs of a batch (as the HTTP API's batches make them), the window filtered to it."""
    batch = "batch_6f3a2b9c0d1e4f5a6b7c8d9e"
    specs = [JobSpec(model=str(STORIES), prompt=p, max_tokens=80, seed=n)
             for n, p in enumerate(BATCH_PROMPTS)]  # fmt: skip
    origins = [JobOrigin(via="batch", batch=batch, custom_id=f"request-{n + 1}")
               for n in range(len(specs))]  # fmt: skip
    ids = queue.client.submit(specs, origins)
    await until(lambda: all((r := desk.jobs.job(i)) and r.state.finished for i in ids))
    window = desk.window
    await until(lambda: window.filter.batch.count() > 1)
    window.show_batch(batch)
    window.select_job(ids[1])
    await until(lambda: window.detail.job_id == ids[1] and bool(window.detail.output_text()))
    await save(window, out / "batches.png")
    window.filter.choose_batch(None)


async def scene(app: Any, queue: Queue, out: Path, home: Path) -> None:
    desk = Controller(queue.settings)  # attaches to the queue's server and worker; starts the API
    await desk.start()
    window = desk.window
    window.resize(1280, 800)
    await until(lambda: desk._loaded)
    api = desk.supervisor
    await until(lambda: api is not None and api.api_status.state is ApiState.ready)
    await save(window, out / "welcome.png")

    desk.commands.choose_model(str(STORIES))
    client = queue.client
    done = client.submit(
        [JobSpec(model=str(STORIES), prompt=p, title=t, max_tokens=120, seed=n)
         for n, (t, p) in enumerate(PROMPTS.items())]
    )  # fmt: skip
    transcript = " ".join(["the team said the plan was good and then they went home"] * 300)
    [failed] = client.submit(
        [JobSpec(model=str(STORIES), prompt=transcript, title="meeting-transcript.txt")]
    )
    await until(lambda: all((r := desk.jobs.job(i)) and r.state.finished for i in [*done, failed]))
    await follow_up_scene(desk, queue, done[0], out)
    worker = queue.workers[0].process.pid
    with Throttle(worker):
        [running, *waiting] = client.submit(
            [JobSpec(model=str(STORIES), prompt="Once upon a time, in a big forest,",
                     title="the-long-story.txt", max_tokens=600, seed=11)]
            + [JobSpec(model=str(STORIES), prompt=f"Chapter {n}", title=f"chapter-{n}.md")
               for n in (2, 3, 4)]
        )  # fmt: skip
        client.cancel(waiting[-1])
        await until(lambda: window.select_job(running))
        window.editor.prompt.setPlainText("Write a short story about a snail who wants to fly.")

        def streaming() -> bool:
            row = desk.jobs.job(running)
            if row is None or row.state is not JobState.running:
                return False
            loaded = "stories" in window.status.model.text()
            return loaded and row.done > 40 and len(window.detail.output_text()) > 200

        await until(streaming, interval=0.005)
        await save(window, out / "main-window.png")
        window.resize(1024, 640)
        await save(window, out / "small-screen.png")
        window.resize(1280, 800)
        await quit_scene(desk, out)
    await until(lambda: (r := desk.jobs.job(running)) is not None and r.state.finished)
    window.resize(1280, 800)
    window.select_job(failed)
    await until(lambda: window.detail.job_id == failed)
    await until(lambda: "stories" in window.status.model.text())
    light = app.palette()
    app.setPalette(dark_palette())  # what a dark system theme gives (offscreen has none)
    await save(window, out / "main-window-dark.png")
    app.setPalette(light)

    await batch_scene(desk, queue, out)
    await dialogs_scene(desk, out, home)
    await desk.shutdown()


async def follow_up_scene(desk: Controller, queue: Queue, parent: str, out: Path) -> None:
    """A finished story followed up: the editor carries the conversation on."""
    window = desk.window
    window.select_job(parent)
    await until(lambda: window.detail.job_id == parent and bool(window.detail.output_text()))
    window.editor.start_follow_up(queue.client.get(parent, with_output=True))
    window.editor.prompt.setPlainText("Now tell it again, as the fox would tell it.")
    await save(window, out / "follow-up.png")
    window.editor.leave_follow_up()


async def quit_scene(desk: Controller, out: Path) -> None:
    """Quit while a job runs and others wait: the app asks first."""
    await until(lambda: desk.quitting.work.any)
    desk.ask_quit()
    box = desk.quitting.box
    assert box is not None
    await save(box, out / "quit.png")
    box.reject()


async def dialogs_scene(desk: Controller, out: Path, home: Path) -> None:
    """The drop overlay and summary, and the settings dialog."""
    window = desk.window
    paths = drop_folder(home / "dropped")
    window.overlay.show_over_parent()  # what a file drag over the window shows
    await save(window, out / "drop-overlay.png")
    window.overlay.hide()
    await desk.commands.drop(paths)
    assert window.drop_summary is not None
    await save(window.drop_summary, out / "drop-summary.png")
    window.drop_summary.close()
    desk.commands.open_settings()
    dialog = desk.commands.settings_dialog
    assert dialog is not None
    await save(dialog, out / "settings.png")
    dialog.model.setText(str(home / "models" / "llama-3.2-3b.gguf"))  # a file that is not there
    await save(dialog, out / "settings-refused.png")
    dialog.close()
    about = desk.commands.open_about()
    await until(lambda: about.labels["Queue server"].text() != UNKNOWN)
    await save(about, out / "about.png")
    about.close()


def api_port() -> int:
    """The API's default port when it is free here (as the pictures show it), else another."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", DEFAULT_HTTP_PORT))
        except OSError:
            return free_port()
    return DEFAULT_HTTP_PORT


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.screenshots")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["PROMPTSPOOL_HTTP_PORT"] = str(api_port())
    with temp_queue(env={"PROMPTSPOOL_N_CTX": "2048"}, prefix="ps-s-") as queue:
        os.environ["PROMPTSPOOL_HOME"] = str(queue.home)
        app = make_application()
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        with loop:
            loop.run_until_complete(scene(app, queue, args.out, queue.home))


if __name__ == "__main__":
    main()
