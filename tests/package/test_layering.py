"""The house's rules hold: the contracts catch a broken layer, and the command line has no Qt."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from worker.testing.harness import Queue

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
QT_MODULES = ("PySide6", "qasync", "shiboken6")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packages and the contracts, copied where a test may break them."""
    tree = tmp_path_factory.mktemp("house")
    for name in ("worker", "desktop", "tests", "bench", "scripts"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    return tree


def test_the_contracts_hold(tree_copy: Path) -> None:
    done = lint_imports(tree_copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("worker/cli/jobs.py", "from desktop.app import run_app", "never imports the desktop"),
        ("worker/queue/ledger.py", "from worker.runtime.runner import JobRunner", "core's layers"),
        ("worker/engine/api.py", "from worker.queue import keys", "core's layers"),
        ("desktop/common/theme.py", "from desktop.window import tray", "desktop's layers"),
        ("desktop/launch.py", "import PySide6", "loads Qt only for `gui`"),
        ("desktop/controller.py", "from tests import conftest", "never imports the tests"),
    ],
)
def test_a_broken_rule_fails_the_contracts(
    tree_copy: Path, module: str, line: str, contract: str
) -> None:
    path = tree_copy / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{line}  # noqa\n", encoding="utf-8")
    try:
        done = lint_imports(tree_copy)
    finally:
        path.write_text(original, encoding="utf-8")
    assert done.returncode != 0
    broken = [ln for ln in done.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), done.stdout


def test_the_command_line_loads_no_qt(queue: Queue, tiny_model: Path) -> None:
    """`import worker.cli`, and `promptspool submit` run to the end, never import Qt."""
    script = f"""
import sys
import worker.cli
from desktop.launch import main
code = main(["submit", "--prompt", "hello", "--model", {str(tiny_model)!r}, "--json"])
qt = sorted(m for m in sys.modules if m.split(".")[0] in {QT_MODULES!r})
print("QT:", qt)
sys.exit(code)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=queue.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "QT: []" in done.stdout
    assert queue.client.list()[0].spec.prompt == "hello"


def test_without_a_command_the_core_prints_help_and_the_app_opens_the_window() -> None:
    core = subprocess.run(
        [sys.executable, "-m", "worker"], capture_output=True, text=True, timeout=60, check=False
    )
    assert core.returncode == 0 and "submit" in core.stdout and "gui" not in core.stdout
    app = subprocess.run(
        [sys.executable, "-m", "desktop", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert app.returncode == 0 and "gui" in app.stdout and "submit" in app.stdout
