"""Scheduled maintenance as installed on a machine: which of the files ``maintenance-enable``
writes are there (and whether they carry this tool's mark), what enabling would write, whether
systemd accepts the calendar specs, and what systemd says of the units.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from core import root_helper as rh
from core.maintenance import MaintenanceError, Settings, in_root, load_settings


@dataclass
class InstalledState:
    """What maintenance-enable wrote that is there now."""

    files: list[str]  # target paths present and carrying this tool's mark
    foreign: list[str]  # target paths present without the mark (not ours)
    settings: Settings | None
    settings_problem: str = ""

    @property
    def enabled(self) -> bool:
        return self.settings is not None and any(p.endswith(".timer") for p in self.files)


def installed(root: str = "/") -> InstalledState:
    """What maintenance-enable wrote that is on this machine (or under the fake ``root``) now."""
    files, foreign = [], []
    paths = [rh.MAINTENANCE_CONFIG] + [f"{rh.UNIT_DIR}/{u}" for u in rh.MAINTENANCE_UNITS]
    for path in paths:
        mine = rh._marked(in_root(root, path))
        if mine:
            files.append(path)
        elif mine is False:
            foreign.append(path)
    try:
        settings = load_settings(root)
        problem = ""
    except MaintenanceError as exc:
        settings, problem = None, str(exc)
    return InstalledState(files, foreign, settings, problem)


def calendar_problem(settings: Settings) -> str | None:
    """Why systemd would not accept a calendar spec of ``settings`` (``systemd-analyze
    calendar``), or None; raises :class:`MaintenanceError` when systemd-analyze is missing."""
    for key, spec in (("verify", settings.verify), ("clean", settings.clean)):
        try:
            problem = rh.check_calendar(spec)
        except rh.HelperError as exc:
            raise MaintenanceError(str(exc)) from None
        if problem:
            return f"'{spec}' is not a calendar spec for {key}: {problem}"
    return None


def enable_preview(settings: Settings) -> list[tuple[str, str]]:
    """(path, content) of every file maintenance-enable would write for ``settings``."""
    checked = rh.check_maintenance_settings(settings.as_args())
    return [(f.path, f.content) for f in rh.maintenance_files(checked)]


def systemctl_state(unit: str) -> str | None:
    """systemd's ActiveState of ``unit`` on this machine, None when systemd does not run it."""
    if not os.path.isdir(rh.SYSTEMD_RUNNING_DIR):
        return None
    program = shutil.which("systemctl")
    if program is None:
        return None
    try:
        proc = subprocess.run(
            [program, "is-active", unit], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None
