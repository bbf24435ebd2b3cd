"""The jobs the maintenance services start (``zeroinstall-admin maintenance run
verify|clean|watch``, as root), through one door, :func:`run_job`: the daily verification (here),
the weekly clean-up (:mod:`core.maintenance_clean`) and the watch on new entries
(:mod:`core.maintenance_watch`); and :func:`follow`, the watch by polling for NFS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from core.maintenance import Place, Settings, load_settings
from core.maintenance_clean import clean_job, free_space_if_low
from core.maintenance_run import (
    INFO,
    NOTICE,
    WARNING,
    Emit,
    FreeSpace,
    Run,
    check_can_run,
    findings_for,
    statvfs_space,
    verify_entries,
)
from core.maintenance_status import MAX_FINDINGS, RunResult
from core.maintenance_watch import read_seen, store_listing, watch_job, write_seen
from core.store_lock import StoreBusy
from core.units import count_text


def run_job(
    job: str,
    place: Place,
    emit: Emit,
    *,
    settings: Settings | None = None,
    free_space: FreeSpace = statvfs_space,
    cancel: threading.Event | None = None,
) -> RunResult:
    """One run of ``job`` ("verify", "clean" or "watch") on ``place``, with ``settings`` (by
    default those written, else the defaults); each line goes to ``emit``, the record to the
    status file. Raises :class:`core.maintenance.MaintenanceError` when it cannot start."""
    check_can_run(place)
    settings = settings or load_settings(place.root) or Settings()
    return JOBS[job](Run(job, place, emit, settings, free_space, cancel))


def verify_job(run: Run) -> RunResult:
    """Verify every entry of the store; report corrupt, planted, suspicious and unreadable ones;
    then the free-space check."""
    from core import cache

    place, r = run.place, run.result
    try:
        with run.locked():
            scan = cache.scan(place.stores(), place.env())
            for problem in scan.problems:
                run.say(WARNING, problem)
            entries = scan.entries
            listing = store_listing(place.store) if read_seen(place.seen_file) is None else None
            outcomes = verify_entries([e.path for e in entries], cancel=run.cancel)
            if listing is not None and not run.cancelled():
                write_seen(place.seen_file, listing)  # the watch's first baseline: all verified
            r.checked = sum(1 for o in outcomes if o is not None)
            r.findings = findings_for(entries, outcomes)
            run.say_findings(r.findings)
            if run.cancelled():
                r.message = "cancelled before every entry was checked"
            free_space_if_low(run)
    except StoreBusy as exc:
        run.busy(exc)
        return run.finish()
    n = len(r.findings)
    run.say(
        NOTICE if n else INFO,
        f"verify: {count_text(r.checked, 'entry')} checked, {count_text(n, 'problem')}",
    )

    def update(check: dict[str, Any]) -> None:
        check["finished"] = r.finished
        check["job"] = "verify"
        check["checked"] = r.checked
        check["message"] = r.message
        check["findings"] = [f.to_json() for f in r.findings[:MAX_FINDINGS]]

    return run.finish(update, mail=True)


JOBS: dict[str, Callable[[Run], RunResult]] = {
    "verify": verify_job,
    "clean": clean_job,
    "watch": watch_job,
}


def follow(
    place: Place,
    emit: Emit,
    *,
    interval: float = 2.0,
    stop: threading.Event | None = None,
    settings: Settings | None = None,
) -> None:
    """The watch by polling, for stores where inotify sees nothing (NFS): a watch run every
    ``interval`` seconds until ``stop`` is set."""
    stop = stop or threading.Event()
    while not stop.is_set():
        run_job("watch", place, emit, settings=settings, cancel=stop)
        stop.wait(interval)
