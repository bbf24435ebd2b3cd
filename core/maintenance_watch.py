"""The watch of scheduled maintenance: it verifies each entry that appeared since its last run
(0store-secure-add renames ``tmp-*`` into a digest name; a path unit starts a run), then checks
free space. It keeps the listing of entries already seen in root's state directory; the daily
verification writes the first one, and stays the ground truth (inotify misses changes over NFS
and overflows: :func:`core.maintenance_jobs.follow` polls instead).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

from core import root_helper as rh
from core.display import display_path
from core.maintenance_clean import free_space_if_low
from core.maintenance_run import INFO, Run, findings_for, verify_entries
from core.maintenance_status import MAX_FINDINGS, Finding, RunResult, current_findings
from core.store_lock import StoreBusy
from core.units import count_text

WATCH_FIRST_RECENT_S = 600.0
"""A watch's first run (before any verification) verifies entries that arrived this recently."""
WATCH_IN_FLIGHT_S = 600.0
"""A ``tmp-*`` directory changed this recently is an add under way (older ones are leftovers)."""
WATCH_FOLLOW_S = 1800.0
"""How long one watch run follows adds under way before it leaves them to the next trigger."""
WATCH_POLL_S = 0.5
"""How often a watch run that follows an add under way looks again."""


def watch_job(run: Run) -> RunResult:
    """Verify the entries that appeared (or changed identity) since the last watch run, until no
    new one is left and no add is under way (a run started by a ``tmp-*`` directory's creation
    follows it to its rename; the lock is let go while it waits). A first run before any
    verification takes what was there before the last minutes as its baseline."""
    from core import cache

    place = run.place
    r = run.result
    new_findings: list[Finding] = []
    checked_names: set[str] = set()
    if run.cancel is None:
        run.cancel = threading.Event()
    cancel = run.cancel
    deadline = time.monotonic() + WATCH_FOLLOW_S

    def take_new() -> None:
        """Every round of new entries, holding the lock."""
        seen = read_seen(place.seen_file)
        if seen is None:
            recent = time.time_ns() - int(WATCH_FIRST_RECENT_S * 1e9)
            seen = {n: i for n, i in store_listing(place.store).items() if i[1] < recent}
            write_seen(place.seen_file, seen)
            recorded = count_text(len(seen), "entry")
            run.say(INFO, f"watch: {recorded} recorded; new ones are verified as they appear")
        for _round in range(100):  # entries keep arriving: take them too, within reason
            now = store_listing(place.store)
            fresh = [n for n, ident in now.items() if seen.get(n) != ident]
            if not fresh or cancel.is_set():
                return
            store = place.stores()[0]
            entries = [e for e in (cache.classify(store, n) for n in sorted(fresh)) if e]
            outcomes = verify_entries([e.path for e in entries], cancel=cancel)
            found = findings_for(entries, outcomes)
            run.say_findings(found)
            for e, o in zip(entries, outcomes, strict=True):
                if o is not None and o.status == "ok":
                    run.say(INFO, f"verified new entry {display_path(e.path)}: OK")
            r.checked += sum(1 for o in outcomes if o is not None)
            new_findings.extend(found)
            checked_names.update(e.name for e in entries)
            seen = dict(now)  # every entry there now is verified or was seen before
            write_seen(place.seen_file, seen)

    try:
        while True:
            with run.locked():
                take_new()
                busy = _in_flight(place.store)
                if not busy or time.monotonic() >= deadline or cancel.is_set():
                    free_space_if_low(run)
                    break
            cancel.wait(WATCH_POLL_S)  # an add under way: look again soon, unlocked
    except StoreBusy as exc:
        run.busy(exc, "deferred")
        return run.finish()
    r.findings = new_findings

    def update(check: dict[str, Any]) -> None:
        old = [f for f in current_findings({"check": check}) if f.name not in checked_names]
        check["findings"] = [f.to_json() for f in (old + new_findings)[:MAX_FINDINGS]]
        check["updated"] = r.finished

    return run.finish(update if checked_names else None, mail=bool(new_findings))


# --- the entries already seen ---------------------------------------------------------------------


def _identity(path: str) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_ctime_ns]


def store_listing(store: str) -> dict[str, list[int]]:
    """The identity (inode, ctime) of every entry of ``store`` by name, ``tmp-*`` left out."""
    out = {}
    with os.scandir(store) as it:
        for de in it:
            if de.name.startswith("tmp-"):
                continue  # still being filled (or being removed): its rename is the event
            ident = _identity(de.path)
            if ident is not None:
                out[de.name] = ident
    return out


def read_seen(path: str) -> dict[str, list[int]] | None:
    """The listing the last run left (None before any: the first run takes a baseline)."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    return {os.fsdecode(k.encode("utf-8", "surrogateescape")): v for k, v in raw.items()
            if isinstance(v, list)}  # fmt: skip


def write_seen(path: str, seen: Mapping[str, list[int]]) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".watch-seen-", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
        json.dump(dict(seen), f, ensure_ascii=True)
    os.replace(tmp, path)


def _in_flight(store: str) -> bool:
    """Whether an add is under way: a ``tmp-*`` directory (not one of our removals) changed in
    the last minutes, which 0store-secure-add will rename to its digest when it is complete."""
    limit = time.time() - WATCH_IN_FLIGHT_S
    try:
        with os.scandir(store) as it:
            for de in it:
                if de.name.startswith("tmp-") and not de.name.startswith(rh.REMOVAL_PREFIX):
                    try:
                        if de.stat(follow_symlinks=False).st_mtime >= limit:
                            return True
                    except OSError:
                        continue
    except OSError:
        return False
    return False
