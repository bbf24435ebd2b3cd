"""``zeroinstall-admin sharing ...`` on fake roots (the real tools, nothing outside tmp_path)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli
from core import root_helper as rh
from tests.test_sharing import make_root

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("no_real_root")  # (tests/conftest.py)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main(list(argv))
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def test_status_enable_status_disable_on_a_fake_root(tmp_path: Path):
    root = make_root(tmp_path)
    code, out, _ = run("sharing", "status", "--json", "--root", str(root))
    data = json.loads(out)
    assert code == 1 and data["enabled"] is False and data["root"] == str(root)
    assert [s["state"] for s in data["steps"]][:4] == ["missing"] * 4
    assert data["steps"][3]["preview"].count("NOPASSWD: /usr/bin/0store-secure-add") == 1

    code, out, err = run("sharing", "enable", "--yes", "--root", str(root))
    assert code == 0, err
    assert "useradd --system --user-group" in out  # the plan shows the exact command
    assert "System user zeroinst: user zeroinst created" in out
    assert "Sharing is enabled on" in out

    code, out, _ = run("sharing", "status", "--root", str(root))
    assert code == 0 and out.startswith("Sharing is enabled (root ")
    assert "[done     ] sudoers rule:" in out and "[n/a      ] AppArmor profile:" in out

    code, out, _ = run("sharing", "enable", "--yes", "--root", str(root))
    assert code == 0 and "already enabled: nothing to change" in out

    code, out, err = run("sharing", "disable", "--yes", "--root", str(root))
    assert code == 0, err
    assert "/etc/sudoers.d/zeroinstall: removed" in out
    assert not (root / "etc/sudoers.d/zeroinstall").exists()
    assert rh.read_account("zeroinst", str(root)) is not None


def test_enable_refuses_with_blockers_and_changes_nothing(tmp_path: Path):
    root = make_root(tmp_path, includedir=False)
    code, out, err = run("sharing", "enable", "--yes", "--root", str(root))
    assert code == 1
    assert "@includedir /etc/sudoers.d" in out and "nothing was changed" in err
    assert rh.read_account("zeroinst", str(root)) is None


def test_enable_without_yes_and_without_a_terminal_is_a_usage_error(tmp_path: Path, monkeypatch):
    root = make_root(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    code, _, err = run("sharing", "enable", "--root", str(root))
    assert code == 2 and "--yes" in err
    assert rh.read_account("zeroinst", str(root)) is None


def test_usage_errors(tmp_path: Path):
    assert run("sharing")[0] == 2
    assert run("sharing", "frobnicate")[0] == 2
    assert run("sharing", "status", "--root", str(tmp_path / "missing"))[0] == 2
    code, _, err = run("sharing", "enable", "--yes", "--root", "/")
    assert code == 2 and "real system" in err


def test_script_and_playbook_are_printed():
    code, out, _ = run("sharing", "script")
    assert code == 0 and out.startswith("#!/bin/sh\n")
    code, out, _ = run("sharing", "script", "--ansible")
    assert code == 0 and out.startswith("---\n")


def test_the_entry_point_passes_sharing_through_without_a_display(tmp_path: Path):
    root = make_root(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY",
                                                              "QT_QPA_PLATFORM")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "gui.launch", "sharing", "status", "--root", str(root)],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("Sharing is not enabled: 4 steps to apply (root ")
