"""What scheduled maintenance found and did, as the status file keeps it: the findings (one
problem on one entry), each run's record, and the lines the window and ``maintenance status`` show
("Last check: today 03:12, 2 problems").

The runs write the file (root's state directory, 0644: every user's window reads it); everything
else only reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.display import display_path, json_name
from core.maintenance import Place
from core.units import count_text, size_text

MAX_FINDINGS = 500
"""Findings kept in the status file (the journal has every one)."""
JOB_NAMES = ("verify", "clean", "watch")
"""The jobs the services run, each with its record in the status file."""


@dataclass
class Finding:
    """One problem found on one entry."""

    path: str
    name: str
    status: str  # "corrupt", "error", "suspicious"
    detail: str
    program: str = ""
    version: str = ""
    found: float = field(default_factory=time.time)

    def line(self) -> str:
        what = f" ({self.program} {self.version})".rstrip() if self.program else ""
        first = self.detail.splitlines()[0] if self.detail else ""
        return f"{self.status}: {display_path(self.path)}{what}: {first}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": json_name(self.path), "name": json_name(self.name), "status": self.status,
            "detail": _text(self.detail), "program": _text(self.program),
            "version": _text(self.version), "found": self.found,
        }  # fmt: skip

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Finding:
        return cls(
            path=_name_from_json(raw.get("path")), name=_name_from_json(raw.get("name")),
            status=str(raw.get("status", "")), detail=str(raw.get("detail", "")),
            program=str(raw.get("program", "")), version=str(raw.get("version", "")),
            found=float(raw.get("found", 0.0)),
        )  # fmt: skip


def _text(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _name_from_json(value: Any) -> str:
    if isinstance(value, dict):
        import base64

        try:
            return os.fsdecode(base64.b64decode(str(value.get("base64", ""))))
        except ValueError:
            return str(value.get("text", ""))
    return str(value or "")


def read_status(root: str = "/", path: str | None = None) -> dict[str, Any]:
    """The status file as written by the runs ({} when there is none or it is not readable)."""
    path = path or Place(root).status_file
    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read(16 << 20))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def current_findings(status: Mapping[str, Any]) -> list[Finding]:
    """The findings of the last check (and of the watch since), as the status file keeps them."""
    check = status.get("check")
    if not isinstance(check, dict):
        return []
    out = []
    for raw in check.get("findings", []):
        if isinstance(raw, dict):
            try:
                out.append(Finding.from_json(raw))
            except (TypeError, ValueError):
                continue
    return out


def write_status(place: Place, status: Mapping[str, Any]) -> str | None:
    """Write the status file atomically (0644: every user's window reads it); None or why not."""
    try:
        os.makedirs(place.state_dir, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".maintenance-status-", dir=place.state_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(status, f, ensure_ascii=False, indent=1)
                f.write("\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, place.status_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        return f"the status file {place.status_file} could not be written: {exc.strerror or exc}"
    return None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))


def when_text(ts: float, now: float | None = None) -> str:
    """ "today 03:12", "yesterday 03:12" or "2026-03-01 03:12" (local time)."""
    now = time.time() if now is None else now
    day = time.localtime(ts)
    if day[:3] == time.localtime(now)[:3]:
        return "today " + time.strftime("%H:%M", day)
    if day[:3] == time.localtime(now - 86400)[:3]:
        return "yesterday " + time.strftime("%H:%M", day)
    return time.strftime("%Y-%m-%d %H:%M", day)


def last_check_text(status: Mapping[str, Any], now: float | None = None) -> str | None:
    """ "Last check: today 03:12, 2 problems" (None when no check ever ran)."""
    check = status.get("check")
    if not isinstance(check, dict) or not isinstance(check.get("finished"), (int, float)):
        return None
    n = len(current_findings(status))
    problems = "no problems" if n == 0 else count_text(n, "problem")
    line = f"Last check: {when_text(float(check['finished']), now)}, {problems}"
    if check.get("message"):
        line += f" ({check['message']})"
    return line


def run_summaries(status: Mapping[str, Any], now: float | None = None) -> list[str]:
    """One line per job that has run: "Last clean: today 04:02, 120 checked, 3 removed"."""
    lines = []
    for job in JOB_NAMES:
        run = status.get(job)
        if not isinstance(run, dict) or not isinstance(run.get("finished"), (int, float)):
            continue
        parts = [f"Last {job}: {when_text(float(run['finished']), now)}"]
        parts.append(f"{run.get('checked', 0)} checked")
        if job != "clean":
            parts.append(count_text(int(run.get("problems", 0)), "problem"))
        if run.get("removed") or job == "clean":
            parts.append(f"{run.get('removed', 0)} removed ({size_text(run.get('freed', 0))})")
        if run.get("failed"):
            parts.append(f"{run['failed']} failed")
        line = ", ".join(parts)
        if run.get("message"):
            line += f"; {run['message']}"
        lines.append(line)
    return lines


@dataclass
class RunResult:
    """What one run did: for the status file, the exit code and the mail."""

    job: str
    started: float
    finished: float = 0.0
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    removed: int = 0
    freed: int = 0
    failed: int = 0
    message: str = ""  # why it stopped early or what it could not do ("" when it all went)
    lines: list[str] = field(default_factory=list)  # every journal line, for the mail

    @property
    def exit_code(self) -> int:
        """0 all went and nothing is wrong, 1 problems found or something failed."""
        return 1 if (self.findings or self.failed or self.message) else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job, "started": self.started, "finished": self.finished,
            "started_text": _iso(self.started), "finished_text": _iso(self.finished),
            "checked": self.checked, "problems": len(self.findings), "removed": self.removed,
            "freed": self.freed, "failed": self.failed, "message": self.message,
        }  # fmt: skip
