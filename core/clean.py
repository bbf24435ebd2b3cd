"""Clean-up: which entries nobody uses any more and why, what removing them gives back, and the
removal itself.

:func:`judge` turns entries (measured by :mod:`core.cache`) and :class:`core.evidence.Evidence`
into a :class:`Verdict` per entry: ``remove``, ``quarantine`` or ``keep``, always with the
reasons. :func:`footprint` and :func:`reclaimable` count the space that really comes back: a file
hard-linked from elsewhere (``store optimise``) counts only when every one of its links goes.
:func:`remove` re-checks the evidence right before acting, removes through
``core.root_helper`` (in this process for stores this user may change, through the privileged
helper for the shared system store), carries on past failures and records every action in the
action log.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core import actionlog
from core.cache import Entry
from core.display import display_path, display_text
from core.evidence import Evidence, atime_mode
from core.root_helper import REMOVAL_PREFIX, removal_origin
from core.units import ago_text, gap_text
from core.versions import version_key

Action = Literal["remove", "quarantine", "keep"]
DAY = 86400.0
DEFAULT_OLDER_THAN_DAYS = 30.0
TEMP_AGE_DAYS = 1.0
RECHECK_S = 2.0
"""During a removal the evidence is gathered again when it is older than this."""


@dataclass
class Policy:
    older_than_days: float = DEFAULT_OLDER_THAN_DAYS
    keep: int = 0  # the K newest cached versions of every program are kept whatever their age
    temp_days: float = TEMP_AGE_DAYS


@dataclass(eq=False)
class Verdict:
    entry: Entry
    action: Action
    reasons: list[str]
    last_used: float | None = None  # newest access time inside, None when unknown
    footprint: Footprint | None = None
    doubt: str = ""  # why a candidate should not be removed without a second look ("" if none)

    @property
    def candidate(self) -> bool:
        return self.action != "keep"


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def judge(
    entries: Sequence[Entry],
    evidence: Evidence,
    policy: Policy | None = None,
    now: float | None = None,
    atime_modes: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """A verdict for every entry, in the order given.

    Candidates: implementations not rooted, not in use, and not used for
    ``policy.older_than_days`` (and, with ``policy.keep``, not among the K newest cached versions
    of their program); temporary leftovers older than ``policy.temp_days`` that no process uses;
    suspicious entries, offered for quarantine. Unknown entries (not 0install's) are left alone.
    """
    policy = policy or Policy()
    now = time.time() if now is None else now
    modes = dict(atime_modes or {})
    newest = _newest_versions(entries, policy.keep)
    out: list[Verdict] = []
    for e in entries:
        in_use = evidence.in_use(e)
        last = e.usage.last_used if e.usage is not None else None
        if e.kind == "suspicious":
            out.append(_judge_suspicious(e, in_use, last))
        elif e.kind == "unknown":
            why = (
                f"not 0install's ({e.reason}); left alone: delete it by hand if you know what it is"
            )
            out.append(Verdict(e, "keep", [why], last))
        elif e.kind == "temporary":
            out.append(_judge_temporary(e, in_use, last, policy, now))
        else:
            rooted = evidence.rooted(e)
            if in_use or rooted:
                out.append(Verdict(e, "keep", in_use + rooted, last))
            else:
                out.append(_judge_unused(e, evidence, last, policy, now, newest, modes))
    return out


def _newest_versions(entries: Sequence[Entry], keep: int) -> dict[str, set[str]]:
    """{feed URL: its ``keep`` newest versions among the cached implementations}."""
    if keep <= 0:
        return {}
    by_feed: dict[str, list[Entry]] = {}
    for e in entries:
        if e.kind == "implementation" and e.feed is not None:
            by_feed.setdefault(e.feed.feed_url, []).append(e)
    newest: dict[str, set[str]] = {}
    for url, group in by_feed.items():
        versions = sorted({e.version for e in group}, key=version_key, reverse=True)
        newest[url] = set(versions[:keep])
    return newest


def _judge_suspicious(e: Entry, in_use: list[str], last: float | None) -> Verdict:
    reasons = [f"suspicious: {e.reason}"]
    if in_use:
        return Verdict(e, "keep", in_use + reasons, last)
    reasons.append("moved out of the store for inspection, not deleted")
    return Verdict(e, "quarantine", reasons, last)


def _judge_temporary(
    e: Entry, in_use: list[str], last: float | None, policy: Policy, now: float
) -> Verdict:
    """A tmp-* directory: the rest of this app's interrupted removal, a 0install download still
    being filled, or a leftover nobody will finish."""
    try:
        st = os.lstat(e.path)
        changed = max(st.st_mtime, last or 0.0)  # (ctime moves on any chmod)
    except OSError:
        changed = now
    age = now - changed
    if in_use:
        return Verdict(e, "keep", in_use, last)
    if e.name.startswith(REMOVAL_PREFIX):
        origin = removal_origin(e.name)
        of = f" of {display_text(origin)}" if origin else ""
        why = f"the rest of an interrupted removal{of} by this app (renamed before deletion)"
        return Verdict(e, "remove", [why], last)
    if age < policy.temp_days * DAY:
        why = f"a temporary directory changed {ago_text(age)}: a 0install may still fill it"
        return Verdict(e, "keep", [why], last)
    why = f"a leftover temporary directory, unchanged for {gap_text(age)}"
    return Verdict(e, "remove", [why, e.reason], last)


def _judge_unused(
    e: Entry,
    evidence: Evidence,
    last: float | None,
    policy: Policy,
    now: float,
    newest: Mapping[str, set[str]],
    modes: dict[str, str],
) -> Verdict:
    """An implementation nothing uses or roots: kept by the keep-newest setting or for its age,
    else a candidate (with a doubt when other users' apps could not all be read)."""
    feed = e.feed
    if feed is not None and e.version in newest.get(feed.feed_url, ()):
        why = (
            f"one of the {policy.keep} newest cached versions of {feed.feed_name} (kept by "
            "the keep-newest setting)"
        )
        return Verdict(e, "keep", [why], last)
    if policy.older_than_days > 0:
        if e.store.path not in modes:
            modes[e.store.path] = atime_mode(e.store.path)
        used = _unused_for(e, last, policy, now, modes[e.store.path])
        if isinstance(used, Verdict):
            return used
    else:
        used = "any age (the age limit is 0 days)"
    owner = (
        f"an older version of {feed.feed_name}"
        if feed is not None
        else "(unowned): no cached feed lists it"
    )
    verdict = Verdict(
        e, "remove", [used, "no app selection, pin or running process uses it", owner], last
    )
    if e.store.kind == "system" and not evidence.every_home_read:
        # 0install for Windows' `update-all --clean` deletes what other users still need.
        verdict.doubt = (
            "in a shared store, and other users' apps could not all be read: not chosen "
            "unless you choose it (run as root to read every user's apps)"
        )
        verdict.reasons.append(verdict.doubt)
    return verdict


def _unused_for(
    e: Entry, last: float | None, policy: Policy, now: float, mode: str
) -> Verdict | str:
    """How long the entry went unused, when that is older than the age limit; else the verdict
    that keeps it (used recently, or its last use cannot be known)."""
    if mode in ("noatime", "ro") or not e.atime_reliable:
        why = (
            f"last use unknown: its store's filesystem is mounted {mode}, so access times "
            "are not recorded (an age limit of 0 days cleans regardless of age)"
        )
        return Verdict(e, "keep", [why], None)
    if e.usage is None:
        return Verdict(e, "keep", ["not measured yet: last use unknown"], None)
    when = last if last is not None else e.added
    age = now - when
    if age < policy.older_than_days * DAY:
        why = f"used {ago_text(age)} (newer than {policy.older_than_days:g} days)"
        return Verdict(e, "keep", [why], last)
    precision = " (to the day: relatime)" if mode == "relatime" else ""
    if last is None:
        return f"no file inside was ever read; added {_day(when)}"
    return f"not used for {gap_text(age)}: last access {_day(when)}{precision}"


# --- space that comes back ------------------------------------------------------------------------


@dataclass
class Footprint:
    """What one entry holds on disk, with the files that have other links kept apart."""

    size: int = 0  # apparent bytes of directories and singly-linked files (and symlinks)
    disk: int = 0  # their st_blocks * 512
    # (dev, ino) -> [links in total, links inside this entry, size, disk]
    shared: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    error: str | None = None


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def footprint(path: str) -> Footprint:
    """Count an entry with :func:`core.treewalk.walk_tree` (by directory descriptors, never
    following a symlink, never into a mount point: those are named in ``error``)."""
    from core.treewalk import MountPoint, walk_tree

    fp = Footprint()
    try:
        st = os.lstat(path)
    except OSError as exc:
        fp.error = exc.strerror or str(exc)
        return fp

    def add(st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode) or st.st_nlink <= 1:
            fp.size += st.st_size
            fp.disk += st.st_blocks * 512
            return
        item = fp.shared.setdefault(
            (st.st_dev, st.st_ino), [st.st_nlink, 0, st.st_size, st.st_blocks * 512]
        )
        item[1] += 1

    add(st)
    if not stat.S_ISDIR(st.st_mode):
        return fp
    try:
        top = os.open(path, _DIR_FLAGS)
    except OSError as exc:
        fp.error = exc.strerror or str(exc)
        return fp
    problems = 0
    mounts: list[str] = []
    try:
        for event, rel, _fd, what in walk_tree(top):
            if event == "dir":
                for _name, child in what:
                    add(child)
            elif isinstance(what[1], MountPoint):
                mounts.append(os.fsdecode(rel))
            else:
                problems += 1  # gone, unreadable, or swapped for a symlink: never followed
    except OSError:
        problems += 1
    finally:
        os.close(top)
    notes = []
    if mounts:
        notes.append(
            f"{display_path(path + mounts[0])} is a mount point"
            + (f" (and {len(mounts) - 1} more)" if len(mounts) > 1 else "")
            + ": not counted, and the entry is not removed while it is mounted"
        )
    if problems:
        notes.append(f"{problems} items could not be read; the space shown may be too small")
    fp.error = "; ".join(notes) or None
    return fp


def reclaimable(footprints: Iterable[Footprint]) -> tuple[int, int]:
    """(apparent bytes, disk bytes) that removing all these entries together gives back: a file
    with hard links counts only when every link is among them."""
    size = disk = 0
    links: dict[tuple[int, int], list[int]] = {}
    for fp in footprints:
        size += fp.size
        disk += fp.disk
        for key, (total, here, fsize, fdisk) in fp.shared.items():
            seen = links.setdefault(key, [total, 0, fsize, fdisk])
            seen[1] += here
    for total, here, fsize, fdisk in links.values():
        if here >= total:
            size += fsize
            disk += fdisk
    return size, disk


# --- removal --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    verdict: Verdict
    ok: bool
    action: str  # "removed", "quarantined", "failed", "skipped"
    message: str
    size: int = 0  # disk bytes that came back (from the footprint): 0 for a quarantine
    moved: int = 0  # disk bytes moved to the quarantine directory: still on disk

    def describe(self) -> str:
        """One line for a person: the program and version (or "(unowned)"), the entry once, what
        happened and, for a failure, what to do."""
        e = self.verdict.entry
        what = f"{e.program} {e.version}".strip() or "(unowned)"
        detail = f": {self.message}" if self.message else ""
        return f"{what} ({display_text(e.name)}) {self.action}{detail}"


def totals(outcomes: Iterable[Outcome]) -> tuple[int, int]:
    """(disk bytes freed, disk bytes quarantined): what left the disk, and what was only moved."""
    done = [o for o in outcomes if o.ok]
    return sum(o.size for o in done), sum(o.moved for o in done)


def plan(verdicts: Sequence[Verdict]) -> tuple[int, int, int, int]:
    """(entries to remove, disk bytes that removing them gives back, entries to quarantine, their
    disk bytes, which stay on disk): what a confirmation states before acting."""
    removing = [v for v in verdicts if v.action != "quarantine"]
    moving = [v for v in verdicts if v.action == "quarantine"]
    _size, freed = reclaimable(v.footprint for v in removing if v.footprint is not None)
    _qsize, kept = reclaimable(v.footprint for v in moving if v.footprint is not None)
    return len(removing), freed, len(moving), kept


def plan_text(verdicts: Sequence[Verdict]) -> str:
    """What acting on these verdicts does, for a confirmation: "remove 3 entries, freeing 1.2 MB,
    and quarantine 1 suspicious entry (40 kB, moved aside: still on disk)"."""
    from core.units import size_text

    removing, freed, moving, kept = plan(verdicts)
    parts = []
    if removing:
        noun = "entry" if removing == 1 else "entries"
        parts.append(f"remove {removing:,} {noun}, freeing {size_text(freed)}")
    if moving:
        noun = "entry" if moving == 1 else "entries"
        space = f"{size_text(kept)}, moved aside: still on disk"
        parts.append(f"quarantine {moving:,} suspicious {noun} ({space})")
    return ", and ".join(parts) or "nothing"


def result_text(outcomes: Sequence[Outcome]) -> str:
    """What was done, in one line: "4 of 5 entries done, 1.2 MB freed, 40 kB quarantined (still
    on disk)"."""
    from core.units import size_text

    freed, moved = totals(outcomes)
    done = sum(1 for o in outcomes if o.ok)
    text = f"{done:,} of {len(outcomes):,} entries done, {size_text(freed)} freed"
    if moved:
        text += f", {size_text(moved)} quarantined (still on disk)"
    return text


class HelperUnavailable(Exception):
    """The privileged route cannot be used; the message says why and gives the root command."""


def can_change_here(entry: Entry) -> bool:
    """True when this process may remove the entry itself (root, or a store it may write whose
    entry it owns), else the privileged helper is needed."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return True
    try:
        st = os.lstat(entry.path)
    except OSError:
        return True  # gone or unreadable: trying here gives the clearest message
    return st.st_uid == os.geteuid() and os.access(entry.store.path, os.W_OK | os.X_OK)


PASSWORD_NOTE = (
    "Some of these are in a store this account cannot change (the shared system store): an "
    "administrator's password is asked for."
)
"""What a confirmation adds when :func:`needs_password`."""


def needs_password(verdicts: Iterable[Verdict]) -> bool:
    """True when acting on these verdicts needs the privileged helper (an administrator's
    password): one of them is in a store this account cannot change."""
    return any(not can_change_here(v.entry) for v in verdicts)


def _act_here(verdict: Verdict) -> str:
    from core import root_helper

    entry = verdict.entry
    store = os.path.realpath(entry.store.path)  # the helper refuses paths through symlinks
    if verdict.action == "quarantine":
        done = root_helper.quarantine_entry(
            store, entry.name, root_helper.quarantine_dir_for(store)
        )
        if not done.moved_to:
            return "it was gone already"
        writable = (
            " (it was read-only: made writable for its owner to move it, then put back)"
            if done.made_writable
            else ""
        )
        return f"moved to {display_text(done.moved_to)}{writable}"
    done = root_helper.remove_implementation(store, entry.name)
    return "" if done.existed else "it was gone already"


def act_privileged(verdict: Verdict, root: str | None = None) -> str:
    """Remove or quarantine one entry through the privileged helper's verb (pkexec, or in this
    process as root; ``root`` is a fake root for tests). A dismissed or refused authorisation,
    or a missing helper, raises :class:`HelperUnavailable` with the message and root command."""
    from core import elevate

    entry = verdict.entry
    verb = "quarantine" if verdict.action == "quarantine" else "remove-implementation"
    result = elevate.run_helper(verb, os.path.realpath(entry.store.path), entry.name, root=root)
    if not result.ok:
        raise HelperUnavailable(result.message)
    return result.message


Actor = Callable[[Verdict], str]
"""Removes or quarantines one entry, returns a detail for the log, raises on failure."""


def _failure(verdict: Verdict, exc: BaseException) -> str:
    """What went wrong and what to do, for an entry named elsewhere on the same line."""
    from core.root_helper import HelperError

    if isinstance(exc, HelperError):
        return str(exc)
    if not isinstance(exc, OSError):
        return str(exc) or type(exc).__name__
    entry = verdict.entry
    verb = "moved" if verdict.action == "quarantine" else "removed"
    why = exc.strerror or str(exc)
    inside = ""
    name = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else ""
    if name and name != entry.name and not name.startswith(("/proc/", REMOVAL_PREFIX)):
        inside = f" ({display_text(name)})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        advice = (
            "this user may not change it: run the same command as root (sudo "
            "zeroinstall-admin ...), or as the owner of the store and the entry"
        )
    elif exc.errno == errno.EROFS:
        advice = "its filesystem is mounted read-only: remount it read-write first"
    elif exc.errno == errno.EBUSY:
        advice = (
            "something is mounted in it or holds it: see what findmnt lists there and unmount "
            "it first"
        )
    else:
        advice = "check the entry, then clean up again (what is left is offered again)"
    return f"not {verb}: {why}{inside}; {advice}"


def _used_since(verdict: Verdict) -> float | None:
    """The newest access time in the entry if a file in it was read after it was judged (the
    last look before acting: a program started, or a file opened, while the prompt waited)."""
    from core.treewalk import measure_walk

    entry = verdict.entry
    if entry.kind != "implementation" or verdict.action != "remove" or not entry.atime_reliable:
        return None
    before = verdict.last_used
    if before is None and entry.usage is not None:
        before = entry.usage.last_used
    if before is None:
        return None  # never measured, or no file to read: nothing to compare with
    try:
        result = measure_walk(os.fsencode(entry.path))
    except OSError:
        return None
    newest = result[3] if result is not None else None
    if newest is not None and newest > before:
        return newest
    return None


def _intent(verdict: Verdict, origin: str | None, log_path: str) -> actionlog.Record:
    """The record of an entry about to be removed, written before anything changes, so that a
    removal interrupted (kill -9, power cut) is finished and logged under its real name."""
    entry = verdict.entry
    if origin is not None:  # finishing an interrupted removal: its intent is in the log
        earlier = actionlog.find(log_path, entry.store.path, origin, ("removing",))
        return actionlog.Record(
            action="removing",
            store=entry.store.path,
            entry=origin,
            program=earlier.program if earlier else "",
            version=earlier.version if earlier else "",
            reasons=(earlier.reasons if earlier else [])
            + [f"finishing an interrupted removal: it was renamed {entry.name}"],
            detail="about to delete the rest",
        )
    return actionlog.Record(
        action="quarantining" if verdict.action == "quarantine" else "removing",
        store=entry.store.path,
        entry=entry.name,
        program=entry.program,
        version=entry.version,
        reasons=list(verdict.reasons),
        detail=(
            "about to be moved to the quarantine"
            if verdict.action == "quarantine"
            else "about to be renamed tmp-remove-* and deleted"
        ),
    )


def _holding_store_locks(func: Callable[..., list[Outcome]]) -> Callable[..., list[Outcome]]:
    """Run ``func(verdicts, ...)`` holding the lock of every store concerned, the one scheduled
    maintenance holds (:func:`core.store_lock.store_lock`): two never work on a store at once."""

    @functools.wraps(func)
    def locked(verdicts: Sequence[Verdict], *args: Any, **kwargs: Any) -> list[Outcome]:
        from core.store_lock import StoreBusy, store_lock

        try:
            with store_lock([v.entry.store.path for v in verdicts], wait=2.0):
                return func(verdicts, *args, **kwargs)
        except StoreBusy as exc:
            return [Outcome(v, False, "skipped", str(exc)) for v in verdicts]

    return locked


@_holding_store_locks
def remove(
    verdicts: Sequence[Verdict],
    recheck: Callable[[], Evidence] | None,
    *,
    log_path: str | None = None,
    env: Mapping[str, str] | None = None,
    may_act_here: Callable[[Entry], bool] = can_change_here,
    here: Actor | None = None,
    privileged: Actor | None = None,
    on_progress: Callable[[int, int, Outcome], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Outcome]:
    """Remove (or quarantine) the entries of these verdicts, one at a time.

    The last look before acting: ``recheck()`` gathers fresh evidence (pins, apps, processes,
    VMs): an entry that is in use or rooted by now is skipped; so is one a file of which was read
    since it was judged (its newest access time is measured again). ``may_act_here(entry)``
    chooses between ``here`` (in this process, ``core.root_helper``'s functions) and
    ``privileged`` (its verbs through ``core.elevate``). The intent (entry, digest, program,
    reasons) goes to the action log before anything changes, the outcome after. A failure is
    reported and the rest carry on.
    """
    here = here or _act_here
    privileged = privileged or act_privileged
    path = log_path or actionlog.log_path(env)
    fresh = recheck() if recheck is not None else None
    checked_at = time.monotonic()
    outcomes: list[Outcome] = []
    problems: list[str] = []
    total = len(verdicts)
    for n, verdict in enumerate(verdicts, 1):
        entry = verdict.entry
        if cancel is not None and cancel.is_set():
            break
        if recheck is not None and time.monotonic() - checked_at > RECHECK_S:
            # A long run (authorising, big trees): look again, so "right before" stays true.
            fresh = recheck()
            checked_at = time.monotonic()
        origin = removal_origin(entry.name) if entry.kind == "temporary" else None
        intent = _intent(verdict, origin, path)
        outcome = _last_look(verdict, fresh)
        if outcome is None:
            fp = verdict.footprint or footprint(entry.path)
            problem = actionlog.record([intent], path)
            if problem:
                problems.append(problem)
            outcome = _act(verdict, fp, may_act_here, here, privileged)
        outcomes.append(outcome)
        problem = actionlog.record([_done(outcome, intent, origin)], path)
        if problem:
            problems.append(problem)
        if on_progress is not None:
            on_progress(n, total, outcome)
    if problems and outcomes:
        last = outcomes[-1]
        last.message = (last.message + "; " if last.message else "") + problems[-1]
    return outcomes


def _last_look(verdict: Verdict, fresh: Evidence | None) -> Outcome | None:
    """Why the entry is skipped after all (in use or rooted by now, read since it was judged, or
    gone), or None to go ahead."""
    entry = verdict.entry
    reasons: list[str] = []
    if fresh is not None:
        reasons = fresh.in_use(entry)
        if verdict.action == "remove" and entry.kind == "implementation":
            reasons += fresh.rooted(entry)
    if reasons:
        return Outcome(verdict, False, "skipped", "now in use: " + "; ".join(reasons))
    used = _used_since(verdict)
    if used is not None:
        when = time.strftime("%H:%M:%S", time.localtime(used))
        return Outcome(
            verdict,
            False,
            "skipped",
            f"used just now: a file in it was read at {when}, after it was chosen; it is kept",
        )
    if not os.path.lexists(entry.path):
        return Outcome(verdict, False, "skipped", "it is gone already")
    return None


def _act(
    verdict: Verdict,
    fp: Footprint,
    may_act_here: Callable[[Entry], bool],
    here: Actor,
    privileged: Actor,
) -> Outcome:
    """Remove or quarantine one entry (``here`` or ``privileged``, as :func:`remove` says); what
    happened, never raised."""
    try:
        act = here if may_act_here(verdict.entry) else privileged
        detail = act(verdict)
    except HelperUnavailable as exc:
        return Outcome(verdict, False, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - one entry failing must not stop the rest
        return Outcome(verdict, False, "failed", _failure(verdict, exc))
    if os.path.lexists(verdict.entry.path):
        return Outcome(
            verdict,
            False,
            "failed",
            "it is still there after removal; check it, then clean up again",
        )
    if verdict.action == "quarantine":
        return Outcome(verdict, True, "quarantined", detail, 0, fp.disk)
    return Outcome(verdict, True, "removed", detail, fp.disk)


def _done(outcome: Outcome, intent: actionlog.Record, origin: str | None) -> actionlog.Record:
    """The action log's record of what happened to an entry (named as in its intent)."""
    detail = outcome.message
    if origin is not None and outcome.ok:
        detail = f"finished an interrupted removal (it was renamed {outcome.verdict.entry.name})"
    return actionlog.Record(
        action=outcome.action,
        store=outcome.verdict.entry.store.path,
        entry=intent.entry,
        program=intent.program,
        version=intent.version,
        size=outcome.size,
        reasons=list(outcome.verdict.reasons) if origin is None else intent.reasons,
        detail=detail,
    )


# --- everything at once ---------------------------------------------------------------------------


@dataclass
class Survey:
    """One look at the stores for clean-up: entries, evidence, a verdict for each, caveats."""

    stores: list
    entries: list[Entry]
    evidence: Evidence
    verdicts: list[Verdict]
    problems: list[str]
    atime_modes: dict[str, str]

    @property
    def candidates(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.candidate]

    def caveats(self) -> list[str]:
        notes = list(self.problems) + self.evidence.caveats()
        relatime = 0
        for path, mode in sorted(self.atime_modes.items()):
            if mode in ("noatime", "ro"):
                notes.append(
                    f"{path} is on a filesystem mounted {mode}: access times say nothing about "
                    "use, so its entries are never old enough (an age limit of 0 days ignores age)."
                )
            elif mode == "relatime":
                relatime += 1
        if relatime:
            notes.append(
                "Last use comes from access times, accurate to about a day on relatime mounts; "
                "this app reads files without changing them; 0install's store verify and backup "
                "tools may not."
            )
        return notes


def survey(
    stores: Sequence | None = None,
    env: Mapping[str, str] | None = None,
    policy: Policy | None = None,
    *,
    homes: Sequence[str] | None = None,
    pins_file: str | None = None,
    processes: bool = True,
    cancel: threading.Event | None = None,
    on_progress: Callable[[str], None] | None = None,
    in_child: bool = False,
) -> Survey:
    """Scan the stores, measure every entry, gather the evidence and judge each entry; the
    candidates' footprints are counted too. Raises :class:`core.pins.PinError` when the pins
    cannot be read (cleaning without knowing them would remove what the admin pinned).

    ``in_child``: list and measure in a child process (:mod:`core.scan_process`), as a window
    wants (its GUI thread keeps the interpreter lock); in this process if that fails."""
    from core import cache
    from core import evidence as ev_mod
    from core import pins as pins_mod
    from core.measure import Usage, measure_all

    say = on_progress or (lambda _text: None)
    pins = pins_mod.load(pins_file or pins_mod.pins_path(env))
    say("Reading and measuring the stores…")
    scan = _scan_in_child(stores, env, cancel) if in_child else None
    if scan is None:
        scan = cache.scan(stores, env)

        def measured(entry: Entry, usage: Usage) -> None:
            entry.usage = usage

        measure_all(scan.entries, measured, cancel=cancel)
    say("Looking for what is in use…")
    evidence = ev_mod.collect(
        scan.stores, scan.entries, pins=pins, env=env, homes=homes, processes=processes
    )
    modes = {s.path: ev_mod.atime_mode(s.path) for s in scan.stores if s.problem is None}
    verdicts = judge(scan.entries, evidence, policy, atime_modes=modes)
    say("Counting the space to reclaim…")
    for v in verdicts:
        if cancel is not None and cancel.is_set():
            break
        if v.candidate:
            v.footprint = footprint(v.entry.path)
    return Survey(list(scan.stores), scan.entries, evidence, verdicts, list(scan.problems), modes)


def _scan_in_child(
    stores: Sequence | None, env: Mapping[str, str] | None, cancel: threading.Event | None
):
    from core.scan_process import ScanProcessError, scan_in_child

    def measured(pairs: list) -> None:
        for entry, usage in pairs:
            entry.usage = usage

    try:
        return scan_in_child(stores, env, on_measured=measured, cancel=cancel)
    except ScanProcessError:
        return None


def recheck_for(
    stores: Sequence,
    entries: Sequence[Entry],
    env: Mapping[str, str] | None = None,
    *,
    homes: Sequence[str] | None = None,
    pins_file: str | None = None,
) -> Callable[[], Evidence]:
    """A function gathering fresh evidence (pins, apps, processes, VMs) for :func:`remove`."""
    from core import evidence as ev_mod
    from core import pins as pins_mod

    def again() -> Evidence:
        pins = pins_mod.load(pins_file or pins_mod.pins_path(env))
        return ev_mod.collect(stores, entries, pins=pins, env=env, homes=homes)

    return again
