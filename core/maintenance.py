"""Maintenance without opening the app: scheduled verification and clean-up of the shared store, a
watch that verifies each new entry, a free-space trigger, and the results where an admin looks
(issue 23).

The privileged helper (:mod:`core.root_helper`, verbs ``maintenance-enable``/``-disable``) writes
the settings file and the systemd units; those run ``zeroinstall-admin maintenance run JOB``
as root, in a sandbox, which lands here:

* :func:`run_verify` verifies every entry of the shared store (through :func:`verify_entries`,
  the one place verification is called from, so the incremental verification can take over
  there), reports suspicious entries too, then checks free space;
* :func:`run_clean` cleans with the configured policy (age, keep-N, pins of root and of every
  user, every user's apps) and stops without removing anything when a home cannot be read, then
  checks free space;
* :func:`run_watch` verifies the entries that appeared since its last run (0store-secure-add
  renames ``tmp-*`` into a digest name), then checks free space; the daily verification stays
  the ground truth (inotify misses changes over NFS and overflows);
* :func:`free_space_pass`: below the lower limit (default the smaller of 10% and 5 GB free), the
  least recently used entries that nothing uses, pins or selects and that are past the grace
  period go, one at a time, until the upper limit is met.

Each run holds :func:`core.store_lock.store_lock` (root's lock file in a root-only directory,
which no other user can open and so cannot hold to keep the daily check off the store; the remove
and quarantine verbs of the helper take the same one), writes one journal line per
finding with its priority (``<4>``: systemd reads the prefix of a service's output as the
syslog priority), records every removal in the action log and writes the status file the window
reads (:func:`read_status`, :func:`last_check_text`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from core import root_helper as rh
from core.display import display_path, json_name, safe_text
from core.store_lock import StoreBusy, store_lock
from core.units import count_text, size_text

STATUS_NAME = "maintenance-status.json"
WATCH_SEEN_NAME = "maintenance-watch-seen.json"
ACTIONS_NAME = "actions.jsonl"
LOCK_WAIT_S = {"verify": 3600.0, "clean": 3600.0, "watch": 120.0}
"""How long a scheduled run waits for another run on the same store before it gives up."""
WATCH_FIRST_RECENT_S = 600.0
"""A watch's first run (before any verification) verifies entries that arrived this recently."""
WATCH_IN_FLIGHT_S = 600.0
"""A ``tmp-*`` directory changed this recently is an add under way (older ones are leftovers)."""
WATCH_FOLLOW_S = 1800.0
"""How long one watch run follows adds under way before it leaves them to the next trigger."""
WATCH_POLL_S = 0.5
"""How often a watch run that follows an add under way looks again."""
MAX_FINDINGS = 500
"""Findings kept in the status file (the journal has every one)."""

# Journal priorities (sd-daemon(3): "<N>" at the start of a line a service writes).
ERR, WARNING, NOTICE, INFO = 3, 4, 5, 6


# --- settings -------------------------------------------------------------------------------------


@dataclass
class Settings:
    """The maintenance settings (``/etc/zeroinstall-admin/maintenance.conf``), checked."""

    verify: str = rh.MAINTENANCE_DEFAULTS["verify"]
    clean: str = rh.MAINTENANCE_DEFAULTS["clean"]
    older_than_days: float = float(rh.MAINTENANCE_DEFAULTS["older_than_days"])
    keep: int = int(rh.MAINTENANCE_DEFAULTS["keep"])
    grace_days: float = float(rh.MAINTENANCE_DEFAULTS["grace_days"])
    min_free: str = rh.MAINTENANCE_DEFAULTS["min_free"]
    max_free: str = rh.MAINTENANCE_DEFAULTS["max_free"]
    watch: bool = True
    mail: bool = False

    def as_args(self) -> list[str]:
        """The helper verb's arguments, in its order."""
        values = {
            "verify": self.verify, "clean": self.clean,
            "older_than_days": f"{self.older_than_days:g}", "keep": str(self.keep),
            "grace_days": f"{self.grace_days:g}", "min_free": self.min_free,
            "max_free": self.max_free, "watch": "yes" if self.watch else "no",
            "mail": "yes" if self.mail else "no",
        }  # fmt: skip
        return [values[k] for k in rh.MAINTENANCE_KEYS]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str]) -> Settings:
        """Settings from text values (missing ones take the defaults); raises
        :class:`core.root_helper.UsageError` naming the bad one."""
        values = {k: raw.get(k, v) for k, v in rh.MAINTENANCE_DEFAULTS.items()}
        checked = rh.check_maintenance_settings([values[k] for k in rh.MAINTENANCE_KEYS])
        return cls(
            verify=checked["verify"],
            clean=checked["clean"],
            older_than_days=float(checked["older_than_days"]),
            keep=int(checked["keep"]),
            grace_days=float(checked["grace_days"]),
            min_free=checked["min_free"],
            max_free=checked["max_free"],
            watch=checked["watch"] == "yes",
            mail=checked["mail"] == "yes",
        )


class MaintenanceError(Exception):
    """A run or a setting that cannot go ahead; one line naming the thing and what to do."""


def _under(root: str, path: str) -> str:
    return path if root == "/" else os.path.normpath(root + path)


def load_settings(root: str = "/") -> Settings | None:
    """The written settings, None when maintenance was never enabled; raises
    :class:`MaintenanceError` for a file that is not valid."""
    path = _under(root, rh.MAINTENANCE_CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(65536)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MaintenanceError(f"{path} cannot be read: {exc.strerror or exc}") from None
    raw: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            raw[key.strip()] = value.strip()
    try:
        return Settings.from_mapping(raw)
    except rh.UsageError as exc:
        raise MaintenanceError(f"{path}: {exc}; enable maintenance again to rewrite it") from None


# --- where things are -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """The paths a run uses: on this machine (root "/") or under a fake root."""

    root: str = "/"

    @property
    def store(self) -> str:
        return _under(self.root, rh.SHARED_STORE)

    @property
    def state_dir(self) -> str:
        return _under(self.root, rh.MAINTENANCE_STATE_DIR)

    @property
    def status_file(self) -> str:
        return os.path.join(self.state_dir, STATUS_NAME)

    @property
    def seen_file(self) -> str:
        return os.path.join(self.state_dir, WATCH_SEEN_NAME)

    @property
    def action_log(self) -> str:
        return os.path.join(_under(self.root, rh.MAINTENANCE_LOG_DIR), ACTIONS_NAME)

    @property
    def pins_file(self) -> str:
        from core.pins import PINS_NAME

        return os.path.join(self.state_dir, PINS_NAME)

    @property
    def sendmail(self) -> str:
        return _under(self.root, rh.SENDMAIL)

    def env(self) -> Mapping[str, str] | None:
        """The environment 0install's paths are read from: None (this machine's) on "/", else
        one pointing into the fake root (root's home is PREFIX/root)."""
        if self.root == "/":
            return None
        r = self.root
        return {
            "HOME": f"{r}/root", "XDG_CACHE_HOME": f"{r}/root/.cache",
            "XDG_CONFIG_HOME": f"{r}/root/.config", "XDG_DATA_HOME": f"{r}/root/.local/share",
            "XDG_STATE_HOME": f"{r}/var/lib", "XDG_CACHE_DIRS": f"{r}/var/cache",
            "XDG_CONFIG_DIRS": f"{r}/etc/xdg", "XDG_DATA_DIRS": f"{r}/usr/share",
        }  # fmt: skip

    def homes(self) -> list[str] | None:
        """Every user's home whose apps and pins count: None on "/" (the password database, as
        root); under a fake root, the homes of its /etc/passwd that exist there."""
        if self.root == "/":
            return None
        homes = []
        try:
            with open(_under(self.root, "/etc/passwd"), encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if len(fields) >= 7 and fields[5] not in ("", "/"):
                        home = _under(self.root, fields[5])
                        if os.path.isdir(home):
                            homes.append(home)
        except OSError:
            pass
        return sorted(set(homes))

    def stores(self) -> list:
        from core.stores import stores_from_paths

        return stores_from_paths([self.store], self.env())


# --- journal lines --------------------------------------------------------------------------------


Emit = Callable[[int, str], None]


def journal_writer(stream: IO[str]) -> Emit:
    """Lines ``<N>text`` on ``stream``: under systemd the journal stores each with priority N."""

    def emit(priority: int, text: str) -> None:
        stream.write(f"<{priority}>{safe_text(text)}\n")
        stream.flush()

    return emit


# --- findings and the status file ----------------------------------------------------------------


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


def _write_status(place: Place, status: Mapping[str, Any]) -> str | None:
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


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def last_check_text(status: Mapping[str, Any], now: float | None = None) -> str | None:
    """ "Last check: today 03:12, 2 problems" (None when no check ever ran)."""
    check = status.get("check")
    if not isinstance(check, dict) or not isinstance(check.get("finished"), (int, float)):
        return None
    n = len(current_findings(status))
    problems = "no problems" if n == 0 else _count(n, "problem")
    line = f"Last check: {when_text(float(check['finished']), now)}, {problems}"
    if check.get("message"):
        line += f" ({check['message']})"
    return line


def run_summaries(status: Mapping[str, Any], now: float | None = None) -> list[str]:
    """One line per job that has run: "Last clean: today 04:02, 120 checked, 3 removed"."""
    lines = []
    for job in ("verify", "clean", "watch"):
        run = status.get(job)
        if not isinstance(run, dict) or not isinstance(run.get("finished"), (int, float)):
            continue
        parts = [f"Last {job}: {when_text(float(run['finished']), now)}"]
        parts.append(f"{run.get('checked', 0)} checked")
        if job != "clean":
            parts.append(_count(int(run.get("problems", 0)), "problem"))
        if run.get("removed") or job == "clean":
            parts.append(f"{run.get('removed', 0)} removed ({size_text(run.get('freed', 0))})")
        if run.get("failed"):
            parts.append(f"{run['failed']} failed")
        line = ", ".join(parts)
        if run.get("message"):
            line += f"; {run['message']}"
        lines.append(line)
    return lines


# --- verification ---------------------------------------------------------------------------------


def verify_entries(paths: Sequence[str], *, cancel: threading.Event | None = None) -> list:
    """Verify these top-level entries; one outcome (or None when cancelled) per path.

    The only place maintenance verifies from: the incremental verification (records of what
    was verified and unchanged since) replaces the full one here once it exists."""
    from core import verify

    return verify.verify_paths(list(paths), cancel=cancel)


def _findings_for(entries: Sequence, outcomes: Sequence) -> list[Finding]:
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


def _priority(finding: Finding) -> int:
    return WARNING  # corrupt, planted, suspicious, or could not be checked: all need a look


# --- runs -----------------------------------------------------------------------------------------


FreeSpace = Callable[[str], tuple[int, int]]
"""(free bytes, total bytes) of the filesystem holding a path."""


def statvfs_space(path: str) -> tuple[int, int]:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def space_limit(spec: str, total: int) -> int | None:
    """The free bytes a MIN_FREE/MAX_FREE setting asks for on a filesystem of ``total`` bytes:
    the smaller of its percentage and its size; None when off."""
    pct, size = rh.free_space_limit(spec)
    limits = [x for x in (pct * total // 100 if pct is not None else None, size) if x is not None]
    return min(limits) if limits else None


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


class _Runner:
    """The common frame of a run: emit and remember lines, lock, write the status."""

    def __init__(self, job: str, place: Place, emit: Emit):
        self.place = place
        self.result = RunResult(job, time.time())
        self._emit = emit

    def say(self, priority: int, text: str) -> None:
        self.result.lines.append(text)
        self._emit(priority, text)

    def finish(self, check_update: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
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
        problem = _write_status(self.place, status)
        if problem:
            self.say(ERR, problem)
            r.message = r.message or problem
        return r


def _check_root(place: Place) -> None:
    if place.root == "/" and os.geteuid() != 0:
        raise MaintenanceError(
            "maintenance runs as root (the services do): run it with sudo, or as root"
        )
    if not os.path.isdir(place.store):
        raise MaintenanceError(
            f"{display_path(place.store)} does not exist: nothing to maintain (enable sharing "
            "first)"
        )


def run_verify(
    place: Place,
    emit: Emit,
    *,
    settings: Settings | None = None,
    free_space: FreeSpace = statvfs_space,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Verify every entry of the store; report corrupt, planted, suspicious and unreadable ones;
    then the free-space check."""
    from core import cache

    _check_root(place)
    settings = settings or load_settings(place.root) or Settings()
    run = _Runner("verify", place, emit)
    r = run.result
    try:
        with store_lock([place.store], wait=LOCK_WAIT_S["verify"], cancel=cancel):
            scan = cache.scan(place.stores(), place.env())
            for problem in scan.problems:
                run.say(WARNING, problem)
            entries = scan.entries
            listing = _listing(place.store) if _read_seen(place.seen_file) is None else None
            outcomes = verify_entries([e.path for e in entries], cancel=cancel)
            if listing is not None and not (cancel is not None and cancel.is_set()):
                _write_seen(place.seen_file, listing)  # the watch's first baseline: all verified
            r.checked = sum(1 for o in outcomes if o is not None)
            r.findings = _findings_for(entries, outcomes)
            for finding in r.findings:
                run.say(_priority(finding), finding.line())
            if cancel is not None and cancel.is_set():
                r.message = "cancelled before every entry was checked"
            _free_space_if_low(run, settings, free_space, cancel)
    except StoreBusy as exc:
        r.message = str(exc)
        run.say(NOTICE, f"verify skipped: {exc}")
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

    result = run.finish(update)
    _mail(place, settings, result)
    return result


def _survey(place: Place, policy: Any, cancel: threading.Event | None) -> Any:
    """clean.survey of the store with the pins of root and of every user merged."""
    from core import clean

    result = clean.survey(
        place.stores(), place.env(), policy, homes=place.homes(), pins_file=place.pins_file,
        cancel=cancel,
    )  # fmt: skip
    merged = _all_pins(place)
    result.evidence.pins = merged
    result.verdicts = clean.judge(result.entries, result.evidence, policy,
                                  atime_modes=result.atime_modes)  # fmt: skip
    for v in result.verdicts:
        if v.candidate and v.footprint is None:
            v.footprint = clean.footprint(v.entry.path)
    return result


def _all_pins(place: Place) -> Any:
    """Root's pins plus every user's (``~/.local/state/zeroinstall-admin/pins.json``): an entry a
    user pinned in their window stays. Raises PinError for root's unreadable file."""
    from core import pins

    merged = pins.load(place.pins_file)
    homes = place.homes()
    if homes is None:
        from core.evidence import all_homes

        homes = all_homes()
    for home in homes:
        path = os.path.join(home, ".local", "state", "zeroinstall-admin", pins.PINS_NAME)
        try:
            theirs = pins.load(path)
        except pins.PinError:
            continue  # a user's broken file: theirs to fix; their apps still count
        merged.entries += [e for e in theirs.entries if e not in merged.entries]
        merged.programs += [p for p in theirs.programs if p not in merged.programs]
    return merged


def _recheck(place: Place, result: Any) -> Callable[[], Any]:
    from core import evidence as ev_mod

    def again() -> Any:
        return ev_mod.collect(
            result.stores, result.entries, pins=_all_pins(place), env=place.env(),
            homes=place.homes(),
        )  # fmt: skip

    return again


def _remove(run: _Runner, result: Any, chosen: Sequence, stop: Callable[[], bool] | None) -> None:
    from core import clean

    r = run.result
    cancel = threading.Event()

    def progress(done: int, total: int, outcome: Any) -> None:
        e = outcome.verdict.entry
        what = f" ({e.program} {e.version})".rstrip() if e.feed is not None else ""
        if outcome.ok:
            r.removed += 1
            r.freed += outcome.size
            run.say(NOTICE, f"{outcome.action}: {display_path(e.path)}{what}: "
                            + "; ".join(outcome.verdict.reasons[:1]))  # fmt: skip
        else:
            r.failed += outcome.action == "failed"
            run.say(WARNING, f"{outcome.action}: {display_path(e.path)}{what}: {outcome.message}")
        if stop is not None and stop():
            cancel.set()

    clean.remove(
        chosen, _recheck(run.place, result), log_path=run.place.action_log,
        on_progress=progress, cancel=cancel,
    )  # fmt: skip


def _homes_problem(result: Any) -> str | None:
    ev = result.evidence
    if ev.every_home_read:
        return None
    why = "; ".join(ev.unreadable_homes) or "no home could be read"
    return (
        f"not every user's apps could be read ({why}): nothing was removed (the service needs "
        "ProtectHome=read-only, never yes)"
    )


def run_clean(
    place: Place,
    emit: Emit,
    *,
    settings: Settings | None = None,
    free_space: FreeSpace = statvfs_space,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Clean with the configured policy, then the free-space check; nothing is removed unless
    every user's apps could be read."""
    from core import clean, pins

    _check_root(place)
    settings = settings or load_settings(place.root) or Settings()
    run = _Runner("clean", place, emit)
    r = run.result
    policy = clean.Policy(older_than_days=settings.older_than_days, keep=settings.keep)
    try:
        with store_lock([place.store], wait=LOCK_WAIT_S["clean"], cancel=cancel):
            result = _survey(place, policy, cancel)
            problem = _homes_problem(result)
            if problem:
                r.message = problem
                run.say(WARNING, f"clean stopped: {problem}")
            else:
                chosen = [v for v in result.candidates if not v.doubt]
                r.checked = len(result.verdicts)
                _remove(run, result, chosen, None)
                _free_space_if_low(run, settings, free_space, cancel)
    except StoreBusy as exc:
        r.message = str(exc)
        run.say(NOTICE, f"clean skipped: {exc}")
    except pins.PinError as exc:
        r.message = str(exc)
        run.say(WARNING, f"clean stopped: {exc}")
    run.say(
        INFO,
        f"clean: {count_text(r.removed, 'entry')} removed or quarantined, "
        f"{size_text(r.freed)} freed"
        + (f", {r.failed} failed" if r.failed else "")
    )  # fmt: skip
    result_ = run.finish()
    _mail(place, settings, result_)
    return result_


def _free_space_if_low(
    run: _Runner, settings: Settings, free_space: FreeSpace, cancel: threading.Event | None
) -> None:
    """The free-space trigger, within a run that holds the lock."""
    try:
        free, total = free_space(run.place.store)
    except OSError as exc:
        run.say(WARNING, f"free space of {run.place.store} unknown: {exc.strerror or exc}")
        return
    low = space_limit(settings.min_free, total)
    if low is None or free >= low:
        return
    free_space_pass(run, settings, free_space, cancel)


def free_space_pass(
    run: _Runner, settings: Settings, free_space: FreeSpace, cancel: threading.Event | None
) -> None:
    """Below the lower limit: remove the least recently used entries that nothing uses, pins or
    selects and that were not used or added within the grace period, one at a time, until the
    upper limit is met. Nothing goes unless every user's apps could be read."""
    from core import clean

    store = run.place.store
    free, total = free_space(store)
    low = space_limit(settings.min_free, total)
    high = space_limit(settings.max_free, total)
    if low is None or high is None or free >= low:
        return
    run.say(WARNING, f"free space low on {display_path(store)}: {size_text(free)} of "
                     f"{size_text(total)} free (below {size_text(low)}): removing the least "
                     "recently used entries")  # fmt: skip
    policy = clean.Policy(older_than_days=settings.grace_days, keep=0)
    result = _survey(run.place, policy, cancel)
    problem = _homes_problem(result)
    if problem:
        run.result.message = problem
        run.say(WARNING, f"free-space clean-up stopped: {problem}")
        return
    chosen = [
        v for v in result.candidates
        if v.action == "remove" and not v.doubt and os.path.lexists(v.entry.path)
    ]  # fmt: skip
    chosen.sort(key=lambda v: v.last_used if v.last_used is not None else v.entry.added)

    def enough() -> bool:
        return free_space(store)[0] >= high

    if chosen:
        _remove(run, result, chosen, enough)
    free = free_space(store)[0]
    if free < high:
        run.result.message = (
            f"free space still below the upper limit ({size_text(free)}, not {size_text(high)}): "
            "nothing else "
            "may be removed (in use, pinned, selected by an app, or within the grace period)"
        )
        run.say(WARNING, run.result.message)
    else:
        run.say(NOTICE, f"free space back to {size_text(free)} (upper limit {size_text(high)})")


# --- the watch ------------------------------------------------------------------------------------


def _identity(path: str) -> list[int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_ctime_ns]


def _listing(store: str) -> dict[str, list[int]]:
    out = {}
    with os.scandir(store) as it:
        for de in it:
            if de.name.startswith("tmp-"):
                continue  # still being filled (or being removed): its rename is the event
            ident = _identity(de.path)
            if ident is not None:
                out[de.name] = ident
    return out


def _read_seen(path: str) -> dict[str, list[int]] | None:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    return {os.fsdecode(k.encode("utf-8", "surrogateescape")): v for k, v in raw.items()
            if isinstance(v, list)}  # fmt: skip


def _write_seen(path: str, seen: Mapping[str, list[int]]) -> None:
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


def run_watch(
    place: Place,
    emit: Emit,
    *,
    settings: Settings | None = None,
    free_space: FreeSpace = statvfs_space,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Verify the entries that appeared (or changed identity) since the last watch run, until no
    new one is left and no add is under way (a run started by a ``tmp-*`` directory's creation
    follows it to its rename; the lock is let go while it waits). A first run before any
    verification takes what was there before the last minutes as its baseline."""
    from core import cache

    _check_root(place)
    settings = settings or load_settings(place.root) or Settings()
    run = _Runner("watch", place, emit)
    r = run.result
    new_findings: list[Finding] = []
    checked_names: set[str] = set()
    cancel = cancel if cancel is not None else threading.Event()
    deadline = time.monotonic() + WATCH_FOLLOW_S

    def take_new() -> None:
        """Every round of new entries, holding the lock."""
        seen = _read_seen(place.seen_file)
        if seen is None:
            recent = time.time_ns() - int(WATCH_FIRST_RECENT_S * 1e9)
            seen = {n: i for n, i in _listing(place.store).items() if i[1] < recent}
            _write_seen(place.seen_file, seen)
            recorded = count_text(len(seen), "entry")
            run.say(INFO, f"watch: {recorded} recorded; new ones are verified as they appear")
        for _round in range(100):  # entries keep arriving: take them too, within reason
            now = _listing(place.store)
            fresh = [n for n, ident in now.items() if seen.get(n) != ident]
            if not fresh or cancel.is_set():
                return
            store = place.stores()[0]
            entries = [e for e in (cache.classify(store, n) for n in sorted(fresh)) if e]
            outcomes = verify_entries([e.path for e in entries], cancel=cancel)
            found = _findings_for(entries, outcomes)
            for finding in found:
                run.say(_priority(finding), finding.line())
            for e, o in zip(entries, outcomes, strict=True):
                if o is not None and o.status == "ok":
                    run.say(INFO, f"verified new entry {display_path(e.path)}: OK")
            r.checked += sum(1 for o in outcomes if o is not None)
            new_findings.extend(found)
            checked_names.update(e.name for e in entries)
            seen = dict(now)  # every entry there now is verified or was seen before
            _write_seen(place.seen_file, seen)

    try:
        while True:
            with store_lock([place.store], wait=LOCK_WAIT_S["watch"], cancel=cancel):
                take_new()
                busy = _in_flight(place.store)
                if not busy or time.monotonic() >= deadline or cancel.is_set():
                    _free_space_if_low(run, settings, free_space, cancel)
                    break
            cancel.wait(WATCH_POLL_S)  # an add under way: look again soon, unlocked
    except StoreBusy as exc:
        r.message = str(exc)
        run.say(NOTICE, f"watch deferred: {exc}")
        return run.finish()
    r.findings = new_findings

    def update(check: dict[str, Any]) -> None:
        old = [f for f in current_findings({"check": check}) if f.name not in checked_names]
        check["findings"] = [f.to_json() for f in (old + new_findings)[:MAX_FINDINGS]]
        check["updated"] = r.finished

    result = run.finish(update if checked_names else None)
    if new_findings:
        _mail(place, settings, result)
    return result


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
        run_watch(place, emit, settings=settings, cancel=stop)
        stop.wait(interval)


# --- mail -----------------------------------------------------------------------------------------


def mail_text(result: RunResult, host: str) -> str:
    n = len(result.findings)
    subject = f"zeroinstall-admin {result.job} on {host}: "
    subject += _count(n, "problem") if n else f"{result.removed} removed"
    if result.message:
        subject += " (stopped early)"
    body = "\n".join(result.lines)
    return f"To: root\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"


def _mail(place: Place, settings: Settings, result: RunResult) -> None:
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


# --- state of the installed maintenance ----------------------------------------------------------


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
    files, foreign = [], []
    paths = [rh.MAINTENANCE_CONFIG] + [f"{rh.UNIT_DIR}/{u}" for u in rh.MAINTENANCE_UNITS]
    for path in paths:
        mine = rh._marked(_under(root, path))
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
