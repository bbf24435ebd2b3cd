"""core/ stays type-correct (mypy) and the whole tree passes the lint rules configured in
pyproject.toml (ruff)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_core_passes_mypy() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary", "core"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_tree_passes_the_configured_lint_rules() -> None:
    """Every Python file of the checkout, with the rules ``[tool.ruff.lint]`` selects: mistakes
    (F), style (E, W), likely bugs (B), simpler forms (SIM, UP) and sorted imports (I)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
