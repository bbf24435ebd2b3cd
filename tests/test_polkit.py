"""What Apply will involve, and what pkexec's failures mean, with pkexec's and pkcheck's real
messages (polkit 122: read from the real programs, with and without a polkit daemon)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from core import elevate
from core import root_helper as rh

NOBODY = 65534
NO_DAEMON_TEXT = (
    "Error getting authority: Error initializing authority: Could not connect: No such file or "
    "directory"
)
NO_TTY_AGENT_TEXT = (
    "Error creating textual authentication agent: Error opening current controlling terminal "
    "for the process (`/dev/tty'): No such device or address"
)


@pytest.mark.parametrize(
    "code, stderr, status, says",
    [
        (127, NO_DAEMON_TEXT, elevate.UNAVAILABLE, "cannot reach the polkit daemon"),
        (127, NO_TTY_AGENT_TEXT, elevate.UNAVAILABLE, "no polkit authentication agent"),
        (127, "Error executing command as another user: No authentication agent found.",
         elevate.UNAVAILABLE, "no polkit authentication agent"),
        (127, ("Error executing command as another user: Not authorized\n\nThis incident has been "
         "reported."), elevate.NOT_AUTHORISED, "does not let this user"),
        (126, "Error executing command as another user: Request dismissed", elevate.DISMISSED,
         "dismissed"),
        (1, "zeroinstall-admin-helper: useradd failed: boom", elevate.FAILED, "useradd failed"),
    ],
)  # fmt: skip
def test_pkexec_failures_say_what_is_missing(code: int, stderr: str, status: str, says: str):
    outcome = elevate.interpret("create-user", (), code, "", stderr)
    assert outcome.status == status
    assert says in outcome.message
    if status in (elevate.UNAVAILABLE, elevate.NOT_AUTHORISED):
        assert outcome.message.endswith(outcome.root_command)
    assert "needs an administrator's password" not in outcome.message


def fake_program(directory: Path, name: str, code: int, stderr: str) -> None:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' '{stderr}' >&2\nexit {code}\n")
    path.chmod(0o755)


@pytest.mark.parametrize(
    "code, stderr, state, reason",
    [
        (2, "Authorization requires authentication and -u wasn't passed.", elevate.ASKS, ""),
        (0, "", elevate.ALLOWED, ""),
        (1, "Not authorized.", elevate.NOT_AUTHORISED, "does not let this user"),
        (126, NO_DAEMON_TEXT, elevate.UNAVAILABLE, "cannot reach the polkit daemon"),
        (127, ("Error checking for authorization net.zeroinstall.Admin.enable: GDBus.Error:org."
         "freedesktop.PolicyKit1.Error.Failed: Action net.zeroinstall.Admin.enable is not "
         "registered"), elevate.UNAVAILABLE, "policy for net.zeroinstall.Admin.enable"),
    ],
)  # fmt: skip
def test_readiness_asks_pkcheck_before_anything_runs(
    tmp_path: Path, monkeypatch, code: int, stderr: str, state: str, reason: str
):
    fake_program(tmp_path / "bin", "pkcheck", code, stderr)
    fake_program(tmp_path / "bin", "pkexec", 0, "")
    helper = tmp_path / "zeroinstall-admin-helper"
    helper.write_text("")
    monkeypatch.setattr(elevate, "PKCHECK_DIRS", str(tmp_path / "bin"))
    monkeypatch.setattr(elevate, "PKEXEC_CANDIDATES", (str(tmp_path / "bin/pkexec"),))
    monkeypatch.setattr(rh, "INSTALLED_PATH", str(helper))
    monkeypatch.setattr(elevate.os, "geteuid", lambda: 1000)
    ready = elevate.readiness()
    assert ready.state == state and reason in ready.reason
    assert ready.possible == (state in (elevate.ASKS, elevate.ALLOWED))


def test_readiness_says_what_is_missing(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(elevate.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(elevate, "PKEXEC_CANDIDATES", ())
    monkeypatch.setattr(elevate.shutil, "which", lambda *a, **k: None)
    assert elevate.readiness() == elevate.Readiness(elevate.UNAVAILABLE, elevate.NO_PKEXEC)
    fake_program(tmp_path / "bin", "pkexec", 0, "")
    monkeypatch.setattr(elevate, "PKEXEC_CANDIDATES", (str(tmp_path / "bin/pkexec"),))
    monkeypatch.setattr(rh, "INSTALLED_PATH", str(tmp_path / "missing-helper"))
    assert "privileged helper is not installed" in elevate.readiness().reason
    (tmp_path / "missing-helper").write_text("")
    assert "'polkitd'" in elevate.readiness().reason  # no pkcheck: no polkit daemon package
    monkeypatch.setattr(elevate.os, "geteuid", lambda: 0)
    assert elevate.readiness().state == elevate.AS_ROOT


@pytest.mark.skipif(
    not os.path.exists("/usr/bin/pkexec") or os.path.exists("/run/dbus/system_bus_socket"),
    reason="needs the real pkexec and no system bus (no polkit daemon to answer)",
)
def test_the_real_pkexec_without_a_polkit_daemon(code_for_other_users):
    """As an ordinary user with the real pkexec and no polkit daemon: exit 127, "Error getting
    authority", told as what is missing, with the command to run as root instead."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="zia-pkexec-", dir="/tmp"))  # nobody must reach it
    base.chmod(0o755)
    helper = base / "zeroinstall-admin-helper"
    helper.write_text("#!/bin/sh\nexit 0\n")
    helper.chmod(0o755)
    code = (
        f"import json, sys; sys.path.insert(0, {str(code_for_other_users.path)!r})\n"
        "from core import elevate, root_helper\n"
        f"root_helper.INSTALLED_PATH = {str(helper)!r}\n"
        "o = elevate.run_helper('create-user')\n"
        "r = elevate.readiness()\n"
        "print(json.dumps([o.status, o.message, o.output, r.state, r.reason]))"
    )
    proc = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         code_for_other_users.python, "-I", "-c", code],
        capture_output=True, text=True, timeout=60, cwd="/", check=False,
    )  # fmt: skip
    shutil.rmtree(base)
    assert proc.returncode == 0, proc.stderr
    status, message, output, state, reason = json.loads(proc.stdout)
    assert "Error getting authority" in output
    assert status == elevate.UNAVAILABLE and "cannot reach the polkit daemon" in message
    assert state == elevate.UNAVAILABLE and reason == elevate.NO_DAEMON
