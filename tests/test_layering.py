"""core/ is the product without a screen: it must never import Qt or gui/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "core"
FORBIDDEN = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "gui")


def test_core_sources_import_no_qt() -> None:
    offenders = []
    for source in sorted(CORE.rglob("*.py")):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{source.name}:{node.lineno} imports {name}")
    assert not offenders, offenders


def test_importing_all_of_core_loads_no_qt() -> None:
    modules = sorted(f"core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'gui')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent, check=True
    )
    assert out.stdout.strip() == ""
