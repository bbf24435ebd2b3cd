"""Verification of many implementation directories, with ``0install store verify``'s verdicts.

:func:`verify_paths` checks top-level cache entries on the worker pool of :mod:`core.pool`. Each
entry goes through the same steps as :func:`core.verify_entry.verify_directory` (one walk by
directory descriptors that hashes as it goes, the stored ``.manifest`` read with a bound, then
:func:`~core.verify_entry.compare`), so its verdict is the same; only where the work runs differs.

How the work is shared, and why (``benchmarks/bench_verify.py`` prints the figures):

* Per-file Python work under the interpreter lock is what limits threads, so the workers are
  processes (:mod:`core.pool`), each running whole entries in chunks: one pass per entry (file types
  from ``scandir``, ``openat`` with ``O_NOFOLLOW|O_NOATIME``, ``fstat``, one read of the listed size
  plus a byte), one message per chunk of verdicts. The ``.manifest`` comparison is done in the
  worker, so only a verdict crosses the pipe (the diff is only made on a mismatch).
* One big entry does not leave a core idle: when the queue is empty and a worker idles, the busy
  ones hand over half of the directories they have not started; the text of each such subtree
  comes back and is spliced in where it belongs (:func:`core.manifest.splice`), here.
* ``jobs=1`` runs in the calling thread, with no process at all.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from core.digests import Digest, DigestError, parse_digest, value_problem
from core.display import display_path
from core.manifest import (
    CHUNK,
    ManifestError,
    ManifestWalk,
    WalkCancelled,
    open_entry,
    open_subtree,
    read_stored_manifest,
    splice,
)
from core.pool_worker import Given, Results, Unit, UnitProgress
from core.records import (
    RACY_NS,
    Record,
    StoreRecords,
    inode_stability,
    key_of,
    keys_digest,
    load,
    racy,
    save,
    since_text,
    stat_keys,
)
from core.treewalk import file_flags_for
from core.verify_entry import VerifyOutcome, compare, outcome_for_error

__all__ = ["CHUNK", "Progress", "verify_paths"]

PREPARE_BATCH = 500
"""Entries prepared at a time before the workers are given what is ready (about a millisecond)."""

NICENESS_BACKGROUND = 10
"""How much lower a window's verification runs than the window (see core.verify_process)."""


@dataclass(slots=True)
class Progress:
    """How far a :func:`verify_paths` run is.

    ``bytes_total`` is the bytes of the regular files listed so far plus, for entries not walked
    yet, the sizes the caller knew (``sizes``); ``entries_done`` counts every entry with a verdict,
    skipped ones included.
    """

    entries_done: int
    entries_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float

    def to_wire(self) -> list[float]:
        """As another of our processes receives it (:mod:`core.verify_process`): the fields in
        order."""
        return [
            self.entries_done,
            self.entries_total,
            self.bytes_done,
            self.bytes_total,
            self.elapsed,
        ]

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> Progress:
        return cls(*data)

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current speed; None until something has been hashed."""
        if self.entries_done >= self.entries_total:
            return 0.0
        rate = self.bytes_per_second
        if rate <= 0:
            return None
        return max(self.bytes_total - self.bytes_done, 0) / rate


# --- the worker's side --------------------------------------------------------------------------


def _top_level_problem(root: bytes, st: os.stat_result) -> str:
    """Why a top-level entry with a digest name that is not a directory is dangerous."""
    shown = display_path(root)
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target = display_path(os.readlink(root))
        except OSError as exc:
            target = f"(target unreadable: {exc.strerror})"
        return (
            f"Planted symlink: '{shown}' is a symlink to '{target}', not an implementation "
            "directory. 0install would run whatever it points to as this digest. It was not "
            "followed; remove it."
        )
    if stat.S_ISREG(mode):
        return (
            f"Planted file: '{shown}' is a regular file ({st.st_size} bytes), not an "
            "implementation directory; remove it."
        )
    kinds = {
        stat.S_IFIFO: "a FIFO",
        stat.S_IFSOCK: "a socket",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
    }
    kind = kinds.get(stat.S_IFMT(mode), f"file type {stat.S_IFMT(mode):o}")
    return f"Planted {kind}: '{shown}' is not an implementation directory; remove it."


def verdict_on_contents(digest: Digest, manifest: bytes, stored: bytes | None) -> VerifyOutcome:
    """The verdict on an entry from its contents (``manifest``, the one its walk made) and its
    stored ``.manifest``: :func:`core.verify_entry.compare`, plus a clearer verdict for a malformed
    digest value. (Not to be confused with :func:`core.clean.judge`, which decides what to
    clean.)"""
    outcome = compare(digest, manifest, stored)
    problem = value_problem(digest)
    if problem:
        outcome.status = "corrupt"
        outcome.detail = (
            f"Not a valid implementation name: {problem}, so no contents can match it. "
            + outcome.detail
        )
    return outcome


_OK_DETAILS = (
    "contents match the digest and the .manifest file",
    "contents match the digest (no .manifest file)",
)


_UNCHANGED = "u"  # the tag of an Unchanged on the wire, read first in _Verification.result

# What a worker answers for a unit (an entry, or a subtree of one handed over), one message each.
# On the wire (core.pool_worker, through marshal) each is a plain tuple: its tag, then its fields.
# ``listed, hashed, touched``: files listed and hashed, and whether an access time was moved.


class Unchanged(NamedTuple):
    """A whole entry whose change keys match the digest of its record: no byte was read."""

    number: int  # the entry's place in the caller's list
    rel: bytes

    def to_wire(self) -> tuple:
        return (_UNCHANGED, *self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> Unchanged:
        return cls._make(data[1:])


class UsualOk(NamedTuple):
    """The usual verdict on a whole entry, in a few bytes: OK, with the detail
    ``_OK_DETAILS[detail]``; ``taken``: the digest of its change keys (None: not asked, or racy)."""

    number: int  # the entry's place in the caller's list
    rel: bytes
    detail: int
    taken: str | None
    listed: int
    hashed: int
    touched: bool

    def to_wire(self) -> tuple:
        return ("k", *self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> UsualOk:
        return cls._make(data[1:])


class Judged(NamedTuple):
    """Any other verdict on a whole entry (``outcome``: :meth:`VerifyOutcome.to_wire`)."""

    number: int  # the entry's place in the caller's list
    rel: bytes
    outcome: list[Any]
    taken: str | None
    listed: int
    hashed: int
    touched: bool

    def to_wire(self) -> tuple:
        return ("o", *self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> Judged:
        return cls._make(data[1:])


class Part(NamedTuple):
    """A part of an entry walked in pieces: its manifest ``segments`` to splice, the stored
    ``.manifest`` (of the whole entry's unit only), its change ``keys`` (or None) and whether
    they are racy."""

    number: int  # the entry's place in the caller's list
    rel: bytes
    segments: list[Any]
    stored: bytes | None
    keys: list[Any] | None
    racy: bool
    listed: int
    hashed: int
    touched: bool

    def to_wire(self) -> tuple:
        return ("s", *self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> Part:
        return cls._make(data[1:])


class Unreadable(NamedTuple):
    """The unit could not be read: ``message`` and ``kind`` of the :class:`ManifestError`."""

    number: int  # the entry's place in the caller's list
    rel: bytes
    message: str
    kind: str
    listed: int
    hashed: int
    touched: bool

    def to_wire(self) -> tuple:
        return ("e", *self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> Unreadable:
        return cls._make(data[1:])


UnitResult = Unchanged | UsualOk | Judged | Part | Unreadable
_RESULTS: dict[str, Any] = {
    _UNCHANGED: Unchanged,
    "k": UsualOk,
    "o": Judged,
    "s": Part,
    "e": Unreadable,
}


def unit_result_from_wire(data: Sequence[Any]) -> UnitResult:
    """The :data:`UnitResult` a worker sent (its tag says which)."""
    result: UnitResult = _RESULTS[data[0]].from_wire(data)
    return result


def verify_unit(unit: tuple, ex: Any) -> tuple | None:
    """Run one unit (the wire form of a :class:`core.pool_worker.Unit`) in a worker: a whole
    entry (``rel`` empty) or a subtree handed over.

    Returns the wire form of a :data:`UnitResult`: :class:`Unchanged` for an entry whose change
    keys match the digest ``expect`` of its record (``extra[2]``), :class:`UsualOk` or
    :class:`Judged` for an entry finished here, :class:`Part` for a part to splice,
    :class:`Unreadable`; or None when cancelled. ``ex`` is the
    :class:`core.pool_worker.Executor` (tick, give, progress).
    """
    index, root, rel, dev, ino, mtime, skip, extra = unit
    algorithm, value = extra[0], extra[1]
    # Change keys (core.records): None: not wanted; "": take them while hashing; else the digest
    # of the keys recorded, to compare with a stat walk first.
    expect, racy_ns = extra[2:4] if len(extra) > 2 else (None, 0)
    walk: ManifestWalk | None = None
    started = time.time_ns()
    try:
        if not rel:
            try:
                fd, st = open_entry(root)
                if expect and _unchanged(fd, st, expect, ex):
                    os.close(fd)
                    return Unchanged(index, rel).to_wire()
            except ManifestError:
                # Not a directory (a planted symlink or file), or not there: say which.
                try:
                    top = os.lstat(root)
                except OSError:
                    top = None
                if top is not None and not stat.S_ISDIR(top.st_mode):
                    problem = _top_level_problem(root, top)
                    verdict = VerifyOutcome(
                        "corrupt", problem, expected=Digest(algorithm, value).name
                    )
                    return Judged(index, rel, verdict.to_wire(), None, 0, 0, False).to_wire()
                raise
        else:
            fd = open_subtree(root, (rel, dev, ino, mtime))
            st = os.fstat(fd)
        try:
            walk = ManifestWalk(root, algorithm, file_flags_for(st.st_uid), ex.tick, ex.give)
            if expect is not None:
                parent, _, name = rel.rpartition(b"/")
                walk.keys = [key_of(parent, os.fsdecode(name), st)]
            walk.given.update((sub, (sub, 0, 0, 0)) for sub in skip)
            ex.walk = walk
            segments = walk.run(fd, rel, mtime)
            stored = read_stored_manifest(root, fd) if not rel else None
        finally:
            os.close(fd)
    except WalkCancelled:
        return None
    except ManifestError as exc:
        counts = (walk.listed, walk.hashed, walk.touched_atime) if walk else (0, 0, False)
        return Unreadable(index, rel, str(exc), exc.kind, *counts).to_wire()
    except Exception as exc:  # noqa: BLE001 - a bug must not stop the other entries
        message = (
            f"Internal error while verifying '{display_path(root)}': "
            f"{type(exc).__name__}: {exc} (please report this)"
        )
        return Unreadable(index, rel, message, "io", 0, 0, False).to_wire()
    counts = (walk.listed, walk.hashed, walk.touched_atime)
    keys = walk.keys
    is_racy = keys is not None and racy(keys, started, racy_ns)
    if not rel and not walk.given:
        verdict = verdict_on_contents(Digest(algorithm, value), splice(segments, {}), stored)
        # The keys of an entry found OK: their digest, or None when they are racy or not wanted.
        taken = (
            keys_digest(keys)
            if keys is not None and not is_racy and verdict.status == "ok"
            else None
        )
        if verdict.status == "ok" and verdict.detail in _OK_DETAILS:
            # The usual verdict, in a few bytes: the caller makes the same VerifyOutcome.
            detail = _OK_DETAILS.index(verdict.detail)
            return UsualOk(index, rel, detail, taken, *counts).to_wire()
        return Judged(index, rel, verdict.to_wire(), taken, *counts).to_wire()
    return Part(index, rel, segments, stored, keys, is_racy, *counts).to_wire()


def _unchanged(fd: int, st: os.stat_result, expect: str, ex: Any) -> bool:
    """Whether a stat walk of the open entry finds the keys recorded (see core.records)."""
    try:
        return keys_digest(stat_keys(fd, st, ex.tick)) == expect
    except (OSError, RecursionError):
        return False  # hashing it says what is wrong
    except Exception:  # noqa: BLE001 - a cancelled walk, or a bug: hash it (hashing checks cancel)
        return False


# --- the caller's side --------------------------------------------------------------------------


class _Entry:
    __slots__ = (
        "digest",
        "done",
        "error",
        "keys",
        "listed",
        "parts",
        "pending",
        "racy",
        "root",
        "since",
        "stored",
    )

    def __init__(self, root: bytes, digest: Digest):
        self.keys: list = []  # change keys of the parts walked elsewhere
        self.racy = False
        self.since: tuple[float, bool] | None = None  # the record's time, and its .manifest
        self.root = root
        self.digest = digest
        self.pending = 1  # units not answered yet
        self.parts: dict[bytes, list] = {}  # rel -> segments
        self.stored: bytes | None = None
        self.error: tuple[str, str] | None = None
        self.done = False
        self.listed = 0


class _Verification:
    def __init__(
        self,
        paths: Sequence[str | bytes],
        on_result: Callable[[int, VerifyOutcome], None] | None,
        on_progress: Callable[[Progress], None] | None,
        progress_interval: float,
        sizes: Sequence[int | None] | None,
        known: Callable[[int, bytes], tuple[float, str, bool] | None] | None = None,
        on_keys: Callable[[int, str], None] | None = None,
        racy_ns: int = RACY_NS,
    ):
        self.started = time.perf_counter()
        self.on_keys = on_keys
        self.racy_ns = racy_ns
        self.said: dict[float, str] = {}  # "unchanged since ..." by the time of the record
        self.results: list[VerifyOutcome | None] = [None] * len(paths)
        self.on_result = on_result
        self.on_progress = on_progress
        self.interval = progress_interval
        self.last_report = float("-inf")
        self.entries: dict[int, _Entry] = {}
        self.done = 0
        self.hashed = 0
        self.listed = 0
        self.hints = 0  # sizes known for entries not walked yet
        self.hint_of: dict[int, int] = {}
        self.cancel = threading.Event()
        self.run: Any = None  # the core.pool.Run
        self.unit_counts: dict[tuple[int, bytes], tuple[int, int]] = {}
        self.touched_atime = False
        self.paths = paths
        self.known = known
        if sizes is not None:
            for index, hint in enumerate(sizes[: len(paths)]):
                if hint:
                    self.hints += hint
                    self.hint_of[index] = hint

    def prepare(self, start: int, stop: int) -> list[tuple]:
        """The units of the entries ``paths[start:stop]`` (names that are no digests are
        answered at once)."""
        units = []
        paths, known, on_keys = self.paths, self.known, self.on_keys
        for index in range(start, min(stop, len(paths))):
            root = os.fsencode(paths[index])
            if root.endswith(b"/"):  # it would make lstat follow a symlink
                root = root.rstrip(b"/") or root
            name = root.rpartition(b"/")[2].decode("utf-8", "replace")
            try:
                digest = parse_digest(name)
            except DigestError as exc:
                self.drop_hint(index)
                self.deliver(index, VerifyOutcome("skipped", f"not an implementation: {exc}"))
                continue
            entry = self.entries[index] = _Entry(root, digest)
            extra: tuple = (digest.algorithm, digest.value)  # marshal takes no NamedTuple
            if on_keys is not None:
                record = known(index, root) if known is not None else None
                if record is not None:
                    entry.since = (record[0], record[2])
                extra += (record[1] if record is not None else "", self.racy_ns)
            # A Unit's wire form, made directly: one per entry (see core.pool_worker.Unit).
            units.append((index, root, b"", 0, 0, 0, (), extra))
        return units

    def progress(self) -> Progress:
        return Progress(
            self.done,
            len(self.results),
            self.hashed,
            max(self.listed + self.hints, self.hashed),
            time.perf_counter() - self.started,
        )

    def report(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.perf_counter()
        if force or now - self.last_report >= self.interval:
            self.last_report = now
            self.on_progress(self.progress())

    def deliver(self, index: int, outcome: VerifyOutcome) -> None:
        if self.cancel.is_set():
            return  # nothing is reported once cancelled
        self.results[index] = outcome
        self.done += 1
        if self.on_result is not None:
            self.on_result(index, outcome)

    def count(self, index: int, rel: bytes, listed: int, hashed: int, final: bool) -> None:
        old_listed, old_hashed = self.unit_counts.pop((index, rel), (0, 0))
        if not final:
            self.unit_counts[index, rel] = (listed, hashed)
        self.listed += listed - old_listed
        self.hashed += hashed - old_hashed
        if rel == b"" and listed:
            self.drop_hint(index)

    def drop_hint(self, index: int) -> None:
        if self.hint_of:
            self.hints -= self.hint_of.pop(index, 0)

    def handle(self, message: Results | Given | UnitProgress) -> None:
        if isinstance(message, Results):
            for result in message.results:
                self.result(result)
        elif isinstance(message, UnitProgress):
            self.count(message.number, message.rel, message.listed, message.hashed, final=False)
        else:
            index, subtrees = message
            entry = self.entries[index]
            entry.pending += len(subtrees)
            assert self.run is not None
            extra: tuple = (entry.digest.algorithm, entry.digest.value)
            if self.on_keys is not None:
                extra += ("", self.racy_ns)
            self.run.add(
                [
                    Unit(index, entry.root, s[0], s[1], s[2], s[3], (), extra).to_wire()
                    for s in subtrees
                ],
                first=True,
            )
        self.report()

    def result(self, data: tuple) -> None:
        if data[0] == _UNCHANGED:  # most answers of a re-check: read without making a tuple
            self.unchanged(data[1])
            return
        result = unit_result_from_wire(data)
        assert not isinstance(result, Unchanged)  # answered above
        index, rel = result.number, result.rel
        # What was listed is done with, read or not (the .manifest, files after an error).
        self.count(index, rel, result.listed, max(result.listed, result.hashed), final=True)
        self.touched_atime |= result.touched
        entry = self.entries[index]
        if rel == b"":
            self.drop_hint(index)
        if entry.done:
            return
        entry.pending -= 1
        if isinstance(result, UsualOk):
            entry.done = True
            name = entry.digest.name
            with_manifest = result.detail == 0
            outcome = VerifyOutcome(
                "ok", _OK_DETAILS[result.detail], name, name, name if with_manifest else None
            )
            self.took_keys(index, result.taken)
            self.deliver(index, outcome)
            return
        if isinstance(result, Judged):
            entry.done = True
            self.took_keys(index, result.taken)
            self.deliver(index, VerifyOutcome.from_wire(result.outcome))
            return
        if isinstance(result, Unreadable):
            # The first error in walk order is what verify_directory would say; a subtree's comes
            # before the rest of its parent's only when the parent had none.
            if entry.error is None or rel == b"":
                entry.error = (result.message, result.kind)
        else:
            entry.parts[rel] = result.segments
            if rel == b"":
                entry.stored = result.stored
            if result.keys is not None:
                entry.keys += result.keys
                entry.racy |= result.racy
        if entry.pending == 0:
            entry.done = True
            outcome = self.assemble(entry)
            if self.on_keys is not None and entry.error is None and not entry.racy:
                self.took_keys(index, keys_digest(entry.keys) if outcome.status == "ok" else None)
            self.deliver(index, outcome)

    def unchanged(self, index: int) -> None:
        """An entry whose change keys all match its record (a whole entry: never split)."""
        entry = self.entries[index]
        if self.hint_of:
            self.drop_hint(index)
        if entry.done:
            return
        entry.done = True
        entry.pending = 0
        name = entry.digest.name
        assert entry.since is not None
        since, with_manifest = entry.since
        detail = self.said.get(since)
        if detail is None:
            detail = self.said[since] = (
                "Not hashed again: no file, directory or symlink in it changed since it was "
                f"last hashed ({since_text(since)})."
            )
        self.deliver(
            index,
            VerifyOutcome("ok", detail, name, name, name if with_manifest else None, [], since),
        )

    def took_keys(self, index: int, taken: str | None) -> None:
        """Tell the caller the change keys of an entry just hashed (None: none to record)."""
        if self.on_keys is not None and taken is not None and not self.cancel.is_set():
            self.on_keys(index, taken)

    def assemble(self, entry: _Entry) -> VerifyOutcome:
        if entry.error is not None:
            message, kind = entry.error
            error = ManifestError(message, entry.root, kind)  # type: ignore[arg-type]
            outcome = outcome_for_error(error)
            outcome.expected = entry.digest.name
            return outcome
        manifest = splice(entry.parts.pop(b""), entry.parts)
        return verdict_on_contents(entry.digest, manifest, entry.stored)


def atime_notice(entries: Sequence[Any]) -> str | None:
    """What to tell the user before verifying ``entries`` (:class:`core.cache.Entry`), or None:
    reading a file without changing its access time (the only "last used" record) is allowed only
    to its owner and root, so verifying other users' entries on a filesystem that records access
    times moves their last use to now."""
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return None
    import pwd

    try:
        me = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        me = str(os.geteuid())
    others = sum(1 for e in entries if e.atime_reliable and e.owner not in (me, str(os.geteuid())))
    if not others:
        return None
    return (
        f"{others:,} of these entries belong to other users, and the kernel lets only their owner "
        "or root read without updating access times: verifying them makes their 'last used' "
        "show now (verify as root or as the store's owner to keep it)"
    )


def verify_paths(
    paths: Sequence[str | bytes],
    *,
    jobs: int | None = None,
    on_result: Callable[[int, VerifyOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.1,
    sizes: Sequence[int | None] | None = None,
    niceness: int = 0,
    report_atime: Callable[[], None] | None = None,
    work_here: bool = True,
    known: Callable[[int, bytes], tuple[float, str, bool] | None] | None = None,
    on_keys: Callable[[int, str], None] | None = None,
    racy_ns: int = RACY_NS,
) -> list[VerifyOutcome | None]:
    """Verify top-level cache entries on the worker pool; one outcome per path, in order.

    The digest of each entry comes from its basename. ``on_result(index, outcome)`` is called once
    per entry as soon as its verdict is known, and ``on_progress`` at most every
    ``progress_interval`` seconds and once at the end, both on the calling thread. Setting
    ``cancel`` (from any thread, callbacks included) makes this return promptly with None for the
    entries not finished. ``sizes`` (bytes per path, e.g. measured earlier) make the byte total of
    the progress right from the start. ``niceness`` lowers the workers' priority; ``work_here``
    False keeps the calling process free of walking and hashing (a window's process).
    ``report_atime()`` is called once when files were read whose access times the kernel would not
    leave alone (not ours, and we are not root).

    Change keys (:mod:`core.records`): with ``on_keys``, every entry hashed and found OK has its
    keys taken by the same walk, and ``on_keys(index, digest)`` is called before its verdict (not
    for racy ones: see :data:`core.records.RACY_NS`, ``racy_ns``). ``known(index, path)`` (asked
    once per entry, as it is prepared; its path as bytes) gives the entry's record ``(time
    hashed, keys digest, had a .manifest)`` or None: a stat walk compares the keys first, and
    only an entry whose keys changed is hashed; an unchanged one is "ok" with ``unchanged_since``
    set.

    Never raises for a bad entry: names that are not digests are "skipped"; a symlink or regular
    file named like a digest, a malformed digest value or a FIFO inside are "corrupt"; unreadable or
    vanishing entries are "error". Exceptions raised by the callbacks are re-raised here.
    """
    from core import pool  # not in the workers, which only need verify_unit

    cancel = cancel if cancel is not None else threading.Event()
    state = _Verification(
        paths, on_result, on_progress, progress_interval, sizes, known, on_keys, racy_ns
    )
    state.cancel = cancel
    run = pool.Run(
        "verify",
        state.handle,
        jobs=jobs,
        cancel=cancel,
        niceness=niceness,
        idle=state.report,
        work_here=work_here,
    )
    state.run = run
    # The workers begin on the first entries while the others are prepared here (a re-check of
    # unchanged entries takes little longer than preparing them).
    try:
        for start in range(0, len(paths), PREPARE_BATCH):
            run.add(state.prepare(start, start + PREPARE_BATCH))
            if cancel.is_set():
                break
            run.start()
    except BaseException:
        run.close()
        raise
    run.run()
    if state.touched_atime and report_atime is not None:
        report_atime()
    state.report(force=True)
    return state.results


# --- with records: unchanged entries by a stat walk ---------------------------------------------


class _Books:
    """The verification records of the stores the entries being verified are in: a store's are
    read when its first entry is prepared, kept up to date with the verdicts, and written at the
    end where this process may write them. ``notes`` gets what the user should be told."""

    def __init__(
        self, *, full: bool, max_age_days: float | None, notes: list[str], env: Any
    ) -> None:
        self.full = full
        self.now = time.time()
        self.oldest = self.now - max_age_days * 86400 if max_age_days is not None else None
        self.notes = notes
        self.env = env
        self.by_store: dict[bytes, StoreRecords | None] = {}
        self.of: dict[int, tuple[StoreRecords, str]] = {}  # index -> its store's, its name
        self.taken: dict[int, str] = {}  # the change keys of entries just hashed

    def known(self, index: int, raw: bytes) -> tuple[float, str, bool] | None:
        """The record of the entry ``raw`` (its path, as :func:`verify_paths` prepared it) to
        check its keys against (hashed_at, keys digest, had a .manifest), or None: hash it."""
        store, _, name_b = raw.rpartition(b"/")
        if not store or b"/." in raw or not raw.startswith(b"/"):  # relative, or with . or ..
            store, name_b = os.path.split(os.path.abspath(raw))
        book = self.by_store[store] if store in self.by_store else self._read(store)
        if book is None:
            return None
        name = name_b.decode("utf-8", "surrogateescape")
        self.of[index] = (book, name)
        record = book.get(name) if not self.full else None
        if record is not None and self.oldest is not None and record[0] < self.oldest:
            return None
        return record

    def _read(self, store: bytes) -> StoreRecords | None:
        shown = os.fsdecode(store)
        stable, why = inode_stability(shown)
        book = None
        if not stable:
            self.notes.append(
                f"store {display_path(shown)}: {why}, so every entry was hashed in full and "
                "nothing was recorded"
            )
        else:
            book = load(shown, self.env)
            self.notes.extend(book.warnings)
            if book.note:
                self.notes.append(book.note)
        self.by_store[store] = book
        return book

    def took_keys(self, index: int, digest: str) -> None:
        self.taken[index] = digest

    def judged(self, index: int, outcome: VerifyOutcome) -> None:
        """An entry hashed and OK gets a new record (unless racy); a bad one loses its own."""
        found = self.of.get(index)  # none for a name that is no digest, or an unstable store
        if found is None:
            return
        book, name = found
        if outcome.status == "ok" and outcome.unchanged_since is None:
            digest = self.taken.pop(index, None)
            if digest is not None:
                book.remember(name, Record(self.now, digest, outcome.recorded is not None))
            else:
                book.forget(name)  # racy: hashed again next time
        elif outcome.status in ("corrupt", "error"):
            book.forget(name)

    def save(self) -> None:
        """Write the records that changed (those of entries no longer in the store left out)."""
        for store, book in self.by_store.items():
            if book is None or not book.changed:
                continue
            try:
                present = set(os.listdir(os.fsdecode(store)))
            except OSError:
                present = None
            if present is not None:
                for gone in [n for n in book.entries if n not in present]:
                    book.forget(gone)
            problem = save(book)
            if problem:
                self.notes.append(problem)


def verify_remembering(
    paths: Sequence[str | bytes],
    *,
    full: bool = False,
    max_age_days: float | None = None,
    notes: list[str] | None = None,
    on_result: Callable[[int, VerifyOutcome], None] | None = None,
    env: Any = None,
    racy_ns: int = RACY_NS,
    **options: Any,
) -> list[VerifyOutcome | None]:
    """:func:`verify_paths` with the verification records of :mod:`core.records`: entries whose
    change keys still match their record are judged unchanged by a stat walk, the others hashed
    (all of them with ``full``, and those last hashed more than ``max_age_days`` ago); entries
    hashed and found OK get a new record, corrupt ones lose theirs, and each store's records are
    written at the end where this process may write them. ``notes`` receives what the user should
    be told once (records ignored or not written, stores where inode numbers are not stable and
    everything was hashed). Other options are :func:`verify_paths`'s."""
    notes = notes if notes is not None else []
    books = _Books(full=full, max_age_days=max_age_days, notes=notes, env=env)

    def judged(index: int, outcome: VerifyOutcome) -> None:
        books.judged(index, outcome)
        if on_result is not None:
            on_result(index, outcome)

    results = verify_paths(
        paths,
        on_result=judged,
        known=books.known,
        on_keys=books.took_keys,
        racy_ns=racy_ns,
        **options,
    )
    books.save()
    return results
