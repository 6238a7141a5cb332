"""The frozen app, smoke-tested: `PromptSpool --self-test --model FILE` on the built bundle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.testing.harness import wait_until

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "dist" / "PromptSpool" / "PromptSpool"
WANTED = os.environ.get("CI") == "true" or os.environ.get("PROMPTSPOOL_TEST_PACKAGE") == "1"

pytestmark = [
    pytest.mark.package,
    pytest.mark.skipif(not WANTED, reason="set PROMPTSPOOL_TEST_PACKAGE=1 (CI sets CI=true)"),
]


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The bundle, built with `make package` unless a current one is there."""
    sources = [*(ROOT / "worker").rglob("*.py"), *(ROOT / "desktop").rglob("*.py")]
    newest_source = max(p.stat().st_mtime for p in sources)
    if not BUNDLE.exists() or BUNDLE.stat().st_mtime < newest_source:
        subprocess.run(["make", "-C", str(ROOT), "package"], check=True, timeout=1200)
    return BUNDLE


def test_frozen_self_test_runs_a_job(bundle: Path, stories_model: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTSPOOL_", "PYTHON"))}
    done = subprocess.run(
        [str(bundle), "--self-test", "--model", str(stories_model)],
        check=False, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Once upon a time")
    assert "self-test: ok" in done.stdout
    assert done.stderr == "", f"unexpected error output:\n{done.stderr}"


def test_frozen_cli_reports_no_queue(bundle: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [str(bundle), "list"], check=False, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 3
    assert "promptspool serve" in done.stderr
    assert sys.platform.startswith("linux")


def test_frozen_command_server_serves_the_next_commands(bundle: Path, isolated_home: Path) -> None:
    """The first short command starts the frozen app's command server; the next runs in it,
    with the same answer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PROMPTSPOOL_CLI_SERVER"] = "1"
    first = subprocess.run([str(bundle), "list"], check=False, capture_output=True, text=True,
                           timeout=60, env=env)  # fmt: skip
    sock = isolated_home / "run" / "cli.sock"
    wait_until(sock.exists, timeout=120, what="the frozen command server")
    second = subprocess.run([str(bundle), "list"], check=False, capture_output=True, text=True,
                            timeout=60, env=env)  # fmt: skip
    assert first.returncode == 3, first.stderr
    assert (second.returncode, second.stderr) == (first.returncode, first.stderr)
    log = (isolated_home / "logs" / "cli-server.log").read_text(encoding="utf-8")
    assert "runs ['list']" in log
    sock.unlink()  # the server leaves once its socket is gone
