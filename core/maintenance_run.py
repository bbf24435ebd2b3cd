"""One scheduled maintenance run's frame, whatever its job: it may run only as root on a store
that exists; it holds :func:`core.store_lock.store_lock` (root's lock file in a root-only
directory, which no other user can open and so cannot hold to keep the daily check off the store;
the remove and quarantine verbs of the helper take the same one); it writes one journal line per
finding with its priority (``<4>``: systemd reads the prefix of a service's output as the syslog
priority), its record to the status file the window reads, and mails root when asked to; and it
verifies entries through :func:`verify_entries`, the one place maintenance verifies from.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import IO, Any

from core.display import display_path, safe_text
from core.maintenance import MaintenanceError, Place, Settings
from core.maintenance_status import (
    Finding,
    RunResult,
    current_findings,
    read_status,
    write_status,
)
from core.store_lock import StoreBusy, store_lock
from core.units import count_text

LOCK_WAIT_S = {"verify": 3600.0, "clean": 3600.0, "watch": 120.0}
"""How long a scheduled run waits for another run on the same store before it gives up."""

# Journal priorities (sd-daemon(3): "<N>" at the start of a line a service writes).
ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6

Emit = Callable[[int, str], None]


def journal_writer(stream: IO[str]) -> Emit:
    """Lines ``<N>text`` on ``stream``: under systemd the journal stores each with priority N."""

    def emit(priority: int, text: str) -> None:
        stream.write(f"<{priority}>{safe_text(text)}\n")
        stream.flush()

    return emit


FreeSpace = Callable[[str], tuple[int, int]]
"""(free bytes, total bytes) of the filesystem holding a path."""


def statvfs_space(path: str) -> tuple[int, int]:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def check_can_run(place: Place) -> None:
    """Raises :class:`MaintenanceError` when a run cannot start: not root on this machine, or
    no shared store to maintain."""
    if place.root == "/" and os.geteuid() != 0:
        raise MaintenanceError(
            "maintenance runs as root (the services do): run it with sudo, or as root"
        )
    if not os.path.isdir(place.store):
        raise MaintenanceError(
            f"{display_path(place.store)} does not exist: nothing to maintain (enable sharing "
            "first)"
        )


class Run:
    """One run of ``job``: what it works on and with, and how it reports (each line to the
    journal and to the mail, its record to the status file)."""

    def __init__(
        self,
        job: str,
        place: Place,
        emit: Emit,
        settings: Settings,
        free_space: FreeSpace,
        cancel: threading.Event | None,
    ) -> None:
        self.job = job
        self.place = place
        self.settings = settings
        self.free_space = free_space
        self.cancel = cancel
        self.result = RunResult(job, time.time())
        self._emit = emit

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def say(self, priority: int, text: str) -> None:
        self.result.lines.append(text)
        self._emit(priority, text)

    def say_findings(self, findings: Sequence[Finding]) -> None:
        for finding in findings:
            self.say(WARNING, finding.line())  # corrupt, planted, suspicious or unreadable

    def locked(self) -> AbstractContextManager[None]:
        """The store's lock, waited for as long as this job may (raises StoreBusy)."""
        return store_lock([self.place.store], wait=LOCK_WAIT_S[self.job], cancel=self.cancel)

    def busy(self, exc: StoreBusy, what: str = "skipped") -> None:
        """Another run holds the store: said, and the reason this one stopped."""
        self.result.message = str(exc)
        self.say(NOTICE, f"{self.job} {what}: {exc}")

    def finish(
        self, check_update: Callable[[dict[str, Any]], None] | None = None, *, mail: bool = False
    ) -> RunResult:
        """Write the run's record (and, through ``check_update``, the last check's) to the status
        file; then mail root when ``mail`` and the settings ask for it."""
        r = self.result
        r.finished = time.time()
        status = read_status(path=self.place.status_file)
        status["version"] = 1
        status[r.job] = r.to_json()
        check = status.get("check") if isinstance(status.get("check"), dict) else None
        if check_update is not None:
            check = check if check is not None else {}
            check_update(check)
        if check is not None:  # an entry removed or quarantined since is no longer a problem
            check["findings"] = [
                f.to_json() for f in current_findings({"check": check}) if os.path.lexists(f.path)
            ]
            status["check"] = check
        problem = write_status(self.place, status)
        if problem:
            self.say(ERR, problem)
            r.message = r.message or problem
        if mail:
            send_mail(self.place, self.settings, r)
        return r


# --- verification ---------------------------------------------------------------------------------


def verify_entries(paths: Sequence[str], *, cancel: threading.Event | None = None) -> list:
    """Verify these top-level entries; one outcome (or None when cancelled) per path.

    The only place maintenance verifies from: the incremental verification (records of what
    was verified and unchanged since) replaces the full one here once it exists."""
    from core import verify

    return verify.verify_paths(list(paths), cancel=cancel)


def findings_for(entries: Sequence, outcomes: Sequence) -> list[Finding]:
    """The problems among verified ``entries``: corrupt or unreadable, or suspicious (planted)."""
    out = []
    for entry, outcome in zip(entries, outcomes, strict=True):
        if outcome is not None and outcome.status in ("corrupt", "error"):
            out.append(
                Finding(entry.path, entry.name, outcome.status, outcome.detail,
                        entry.program if entry.feed else "", entry.version)
            )  # fmt: skip
        elif entry.kind == "suspicious":
            out.append(Finding(entry.path, entry.name, "suspicious", entry.reason,
                               entry.program if entry.feed else "", entry.version))  # fmt: skip
    return out


# --- mail -----------------------------------------------------------------------------------------


def mail_text(result: RunResult, host: str) -> str:
    n = len(result.findings)
    subject = f"zeroinstall-admin {result.job} on {host}: "
    subject += count_text(n, "problem") if n else f"{result.removed} removed"
    if result.message:
        subject += " (stopped early)"
    body = "\n".join(result.lines)
    return f"To: root\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"


def send_mail(place: Place, settings: Settings, result: RunResult) -> None:
    """Mail root through sendmail when mail is on and the run found, removed or failed
    something; a mail that cannot be sent is only noted (the journal has it all)."""
    if not settings.mail or not (result.findings or result.removed or result.message):
        return
    sendmail = place.sendmail
    if not os.path.isfile(sendmail):
        return
    import socket

    try:
        subprocess.run(
            [sendmail, "-oi", "-t"], input=mail_text(result, socket.gethostname()).encode(),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        _ = exc  # the status file and the journal have everything the mail would say
