"""The exported script and playbook that enable maintenance on other machines: the script run for
real in a private mount namespace whose /etc, /usr/bin and /var/cache are overlays (everything it
writes lands in their upper directories under tmp_path, never on this machine), the playbook
through ansible-playbook's syntax check."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core import maintenance_export
from core import root_helper as rh
from core.maintenance import Settings

OVERLAID = ("/etc", "/usr/bin", "/var/cache")


def run_in_overlays(tmp_path: Path, script: str, prepare: str = "") -> tuple[int, str, dict]:
    """Run ``script`` as root with /etc, /usr/bin and /var/cache overlaid; returns its exit code,
    its output and each overlay's upper directory."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a private mount namespace)")
    uppers = {}
    mounts = []
    for i, lower in enumerate(OVERLAID):
        upper, work = tmp_path / f"upper{i}", tmp_path / f"work{i}"
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        uppers[lower] = upper
        mounts.append(
            f"mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {lower}"
        )
    (tmp_path / "enable.sh").write_text(script)
    inner = " && ".join(
        [*mounts, "mkdir -p /var/cache/0install.net/implementations",
         "printf '#!/bin/sh\\n' > /usr/bin/zeroinstall-admin",
         "chmod 755 /usr/bin/zeroinstall-admin",
         prepare or "true", f"sh {tmp_path / 'enable.sh'}"]
    )  # fmt: skip
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", inner],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr, uppers


def test_script_writes_what_the_helper_writes_and_enables_the_timers(tmp_path: Path):
    settings = Settings(clean="Sun *-*-* 05:00", watch=True)
    script = maintenance_export.posix_script(settings)
    assert subprocess.run(["dash", "-n"], input=script, text=True, check=False).returncode == 0
    code, output, uppers = run_in_overlays(tmp_path, script)
    assert code == 0, output
    etc = uppers["/etc"]
    for f in rh.maintenance_files(rh.check_maintenance_settings(settings.as_args())):
        written = etc / f.path.removeprefix("/etc/")
        assert written.read_text() == f.content, f.path
        assert oct(written.stat().st_mode)[-3:] == "644"
        if f.wanted_by:
            link = etc / "systemd/system" / f"{f.wanted_by}.wants" / os.path.basename(f.path)
            assert link.is_symlink(), link
    assert not Path("/etc/zeroinstall-admin/maintenance.conf").exists()  # this machine: untouched
    # Again: nothing in the way, the same result.
    code, output, _ = run_in_overlays(tmp_path, script)
    assert code == 0, output


def test_script_checks_before_writing(tmp_path: Path):
    bad = maintenance_export.posix_script(Settings())
    bad = bad.replace("systemd-analyze calendar daily", "systemd-analyze calendar 'no such day'")
    (tmp_path / "a").mkdir()
    code, output, uppers = run_in_overlays(tmp_path / "a", bad)
    assert code != 0 and not (uppers["/etc"] / "zeroinstall-admin").exists(), output

    foreign = "/etc/systemd/system/zeroinstall-admin-verify.timer"
    prepare = f"mkdir -p /etc/systemd/system && echo '[Timer]' > {foreign}"
    (tmp_path / "b").mkdir()
    script = maintenance_export.posix_script(Settings())
    code, output, uppers = run_in_overlays(tmp_path / "b", script, prepare)
    assert code != 0 and "was not written by zeroinstall-admin" in output
    assert (uppers["/etc"] / foreign.removeprefix("/etc/")).read_text() == "[Timer]\n"
    assert not (uppers["/etc"] / "zeroinstall-admin").exists()


def test_playbook_passes_ansible_syntax_check_and_carries_the_same_units(tmp_path: Path):
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-playbook is installed by installers/test.sh")
    settings = Settings(watch=False, mail=False)
    text = maintenance_export.ansible_playbook(settings)
    playbook = tmp_path / "maintenance.yml"
    playbook.write_text(text)
    proc = subprocess.run(
        ["ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for f in rh.maintenance_files(rh.check_maintenance_settings(settings.as_args())):
        indented = "\n".join("          " + ln if ln else "" for ln in f.content.splitlines())
        assert indented in text, f.path
    assert "zeroinstall-admin-watch" not in text
    assert "systemd-analyze verify" in text and "systemd-analyze, calendar" in text
