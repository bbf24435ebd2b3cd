"""Parallel verification of implementation directories, with ``0install store verify``'s verdicts.

:func:`verify_paths` checks many cache entries at once on a pool of threads. Each entry goes through
the same steps as :func:`core.manifest.verify_directory` (walk with
:func:`~core.manifest.plan_tree`, hash every regular file, :meth:`~core.manifest.TreePlan.assemble`,
:func:`~core.manifest.compare` with the stored ``.manifest``), so its verdict is the same; only the
work is spread out.

How the work is shared, and why (measured with ``benchmarks/bench_verify.py --profile``):

* Balancing by entry is not enough: one large implementation would keep one thread busy to the end.
  The unit of work is the FILE, across all entries: files of at least :data:`BIG_FILE` bytes are
  tasks of their own, taken largest first (no big file starts late and makes a long tail); the
  smaller files of an entry go in batches of up to :data:`BATCH_BYTES` / :data:`BATCH_FILES` (about
  a millisecond of work, so queueing costs nothing per file and the last batches end together),
  taken in entry order, so verdicts keep arriving during the run instead of all at the end.
* Walks run on the workers, ONE at a time: a walk is nearly all Python work under the GIL (about
  8 us a file), so two at once only fight over the GIL (measured slower than one), while one walk
  overlaps well with the hashing of the entries walked before it. Walks go before batches (up to
  :data:`WALK_AHEAD_FILES` files waiting), so the byte total in :class:`Progress` is known early.
* Per-file Python work under the GIL is what limits threads (hashlib and system calls release it;
  handing the GIL back and forth between threads after every short system call is costly). A small
  file therefore costs one ``open``, ONE ``read`` of its size plus a byte (no second read to see
  EOF: getting exactly the size the walk saw ends it; anything else reads on to the real end, as
  0install does), one ``close`` and a hash object built from the data; a file of :data:`CHUNK`
  bytes or more is read in chunks into a reused buffer, checking for cancellation between chunks.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from heapq import heappop, heappush

from core.digests import Digest, DigestError, parse_digest, value_problem
from core.manifest import (
    OPEN_FLAGS,
    FileToHash,
    ManifestError,
    TreePlan,
    VerifyOutcome,
    WalkCancelled,
    compare,
    display_path,
    hash_file,
    open_flags_for,
    outcome_for_error,
    plan_tree,
    read_stored_manifest,
)

__all__ = [
    "BATCH_BYTES",
    "BATCH_FILES",
    "BIG_FILE",
    "CHUNK",
    "WALK_AHEAD_FILES",
    "Progress",
    "verify_paths",
]

CHUNK = 1 << 20
"""Files this big or bigger are read in chunks of this size, checking for cancellation between."""

BIG_FILE = 1 << 20
"""Files this big or bigger are tasks of their own, largest first; smaller ones go in batches."""

BATCH_BYTES = 1 << 20
BATCH_FILES = 128
"""A batch of small files stops growing at this many bytes or files: big enough that queueing costs
nothing per file, small enough (about a millisecond of hashing) that the last batches end
together."""

WALK_AHEAD_FILES = 50_000
"""Walks go before hashing only while fewer files than this wait to be hashed: enough to walk a
usual cache completely first (so the byte total is known early), while the plans of a huge one are
not all held in memory at once."""

_WAIT = 0.02  # seconds between checks of the caller's cancel Event while waiting

# The constructors themselves: hashlib.new(name) looks the name up on every call.
_HASHERS: dict[str, Callable[..., hashlib._Hash]] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}


@dataclass(slots=True)
class Progress:
    """How far a :func:`verify_paths` run is.

    ``bytes_total`` grows while entries are still being walked (walks run first, so it is complete
    early); ``entries_done`` counts every entry with a verdict, skipped ones included.
    """

    entries_done: int
    entries_total: int
    bytes_done: int
    bytes_total: int
    elapsed: float

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


class _Cancelled(Exception):
    """Raised inside a worker to abandon the current task when the run is cancelled."""


class _Entry:
    """The state of one path being verified."""

    __slots__ = (
        "bytes_left",
        "digest",
        "done",
        "flags",
        "hashes",
        "index",
        "plan",
        "problem",
        "remaining",
        "root",
        "skipped",
    )

    def __init__(self, index: int, root: bytes, digest: Digest | None, skipped: str = ""):
        self.index = index
        self.root = root
        self.digest = digest  # None when the name is not a digest
        # The verdict for a name that is not a digest, delivered by a worker like the others.
        self.skipped = VerifyOutcome("skipped", skipped) if digest is None else None
        # Why the digest value is malformed (a valid prefix, a value no hash can have), or None.
        self.problem = value_problem(digest) if digest is not None else None
        self.plan: TreePlan | None = None
        self.hashes: list[str | None] = []
        self.remaining = 0  # files still to hash
        self.bytes_left = 0  # planned bytes not yet credited to the progress
        self.done = False
        self.flags = (
            OPEN_FLAGS  # for os.open; O_NOATIME added when the entry is ours (or we're root)
        )

    @property
    def expected(self) -> str | None:
        return self.digest.name if self.digest is not None else None


def _hash_small(
    path: bytes, size: int, new: Callable[..., hashlib._Hash], hash_name: str, flags: int
) -> str:
    """Hash a file smaller than CHUNK with one read of ``size + 1`` bytes.

    Getting exactly ``size`` bytes (the size the walk saw) is taken as the whole file; anything else
    (it grew or shrank since, or a short read) falls back to reading until EOF, as 0install does.
    """
    try:
        fd = os.open(path, flags)
    except OSError:
        # core.manifest retries without O_NOATIME (a file of another owner) and words any error
        # exactly as verify_directory does.
        return hash_file(path, hash_name)
    try:
        data = os.read(fd, size + 1)
        if len(data) != size:
            chunks = [data]
            while chunk := os.read(fd, CHUNK):
                chunks.append(chunk)
            data = b"".join(chunks)
    except OSError:
        return hash_file(path, hash_name)
    finally:
        os.close(fd)
    return new(data).hexdigest()


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


class _Run:
    """One verify_paths call: the task queues, the shared counters and the workers' loop."""

    def __init__(
        self,
        entries_total: int,
        on_result: Callable[[int, VerifyOutcome], None] | None,
        cancel: threading.Event,
    ):
        self.results: list[VerifyOutcome | None] = [None] * entries_total
        self.on_result = on_result
        self.cancel = cancel
        self.lock = threading.Lock()  # guards everything below and each _Entry's counters
        self.wakeup = threading.Condition(self.lock)
        self.deliver_lock = threading.Lock()  # on_result calls one at a time, never after close
        self.finished = threading.Event()  # every entry has a verdict, or the run must stop
        self.closed = False
        self.failure: BaseException | None = None  # an exception from a callback or a bug
        self.big: list[tuple[int, int, _Entry, int]] = []  # heap of (-size, seq, entry, file index)
        self.walks: deque[_Entry] = deque()
        self.batches: deque[tuple[_Entry, list[int]]] = deque()
        self.seq = 0
        self.walking = False  # a worker is walking an entry
        self.queued_files = 0  # files walked but not hashed yet
        self.pending = entries_total  # entries without a verdict
        self.entries_done = 0
        self.bytes_done = 0
        self.bytes_total = 0

    # -- shared state ----------------------------------------------------------------------------

    def snapshot(self, started: float) -> Progress:
        with self.lock:
            return Progress(
                self.entries_done,
                len(self.results),
                self.bytes_done,
                self.bytes_total,
                time.perf_counter() - started,
            )

    def credit(self, entry: _Entry, nbytes: int) -> None:
        """Count hashed bytes of ``entry`` as done (never more than its walk planned)."""
        with self.lock:
            nbytes = min(nbytes, entry.bytes_left)
            entry.bytes_left -= nbytes
            self.bytes_done += nbytes

    def deliver(self, entry: _Entry, outcome: VerifyOutcome) -> None:
        """Record an entry's verdict once and tell the caller."""
        with self.deliver_lock:
            with self.lock:
                if entry.done or self.closed:
                    return
                entry.done = True
                # The bytes and files of an entry that failed part way are finished with too.
                self.bytes_done += entry.bytes_left
                entry.bytes_left = 0
                self.queued_files -= entry.remaining
                entry.remaining = 0
                self.results[entry.index] = outcome
                self.entries_done += 1
                self.pending -= 1
                if self.pending == 0:
                    self.finished.set()
                    self.wakeup.notify_all()
            if self.on_result is not None:
                try:
                    self.on_result(entry.index, outcome)
                except BaseException as exc:  # noqa: BLE001 - re-raised by verify_paths
                    self.fail(exc)  # the caller's bug: stop, and re-raise it from verify_paths
                    raise _Cancelled from None

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = exc
            self.finished.set()
            self.wakeup.notify_all()

    def close(self) -> list[VerifyOutcome | None]:
        """Stop all deliveries (a straggling worker may still be walking) and return the results."""
        with self.deliver_lock, self.lock:
            self.closed = True
            self.wakeup.notify_all()
            return list(self.results)

    # -- the workers -----------------------------------------------------------------------------

    def next_task(self) -> tuple[str, _Entry, object] | None:
        with self.lock:
            while True:
                if self.pending == 0 or self.failure is not None or self.closed:
                    return None
                if self.cancel.is_set():
                    self.finished.set()
                    return None
                if self.big:
                    _, _, entry, index = heappop(self.big)
                    return "big", entry, index
                # One walk at a time: walks are nearly all GIL-bound Python work, so two at once
                # only fight over the GIL (measured: slower than one); overlapping ONE walk with the
                # hashing of what earlier walks found is what pays.
                can_walk = self.walks and not self.walking
                if can_walk and self.queued_files < WALK_AHEAD_FILES:
                    self.walking = True
                    return "walk", self.walks.popleft(), None
                if self.batches:
                    entry, indices = self.batches.popleft()
                    return "batch", entry, indices
                if can_walk:
                    self.walking = True
                    return "walk", self.walks.popleft(), None
                # Other workers are still busy; their walks may add work, their last files may
                # finish the run. The timeout lets the caller's cancel Event be noticed.
                self.wakeup.wait(_WAIT)

    def worker(self) -> None:
        buffer = bytearray(CHUNK)  # reused for every big file this worker reads
        try:
            while (task := self.next_task()) is not None:
                kind, entry, payload = task
                try:
                    if kind == "walk":
                        try:
                            self.walk(entry)
                        finally:
                            with self.lock:
                                self.walking = False
                                self.wakeup.notify()
                    elif entry.done:
                        continue  # it already failed on another file
                    elif kind == "batch":
                        self.hash_batch(entry, payload)  # type: ignore[arg-type]
                    else:
                        self.hash_big(entry, payload, buffer)  # type: ignore[arg-type]
                except _Cancelled:
                    return
                except ManifestError as exc:
                    self.deliver(entry, self._error_outcome(entry, exc))
                except Exception as exc:  # noqa: BLE001 - a bug must not stop the other entries
                    self.deliver(
                        entry,
                        VerifyOutcome(
                            "error",
                            f"Internal error while verifying '{display_path(entry.root)}': "
                            f"{type(exc).__name__}: {exc} (please report this)",
                            expected=entry.expected,
                        ),
                    )
        except _Cancelled:
            return
        except BaseException as exc:  # noqa: BLE001 - e.g. MemoryError: stop all, re-raise later
            self.fail(exc)

    def _error_outcome(self, entry: _Entry, exc: ManifestError) -> VerifyOutcome:
        outcome = outcome_for_error(exc)
        outcome.expected = entry.expected
        return outcome

    def walk(self, entry: _Entry) -> None:
        if entry.skipped is not None:
            self.deliver(entry, entry.skipped)
            return
        root = entry.root
        assert entry.digest is not None
        try:
            st = os.lstat(root)
        except OSError:
            st = None  # plan_tree words the error as verify_directory does
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self.deliver(
                entry,
                VerifyOutcome("corrupt", _top_level_problem(root, st), expected=entry.expected),
            )
            return
        try:
            plan = plan_tree(root, entry.digest.algorithm, cancelled=self.cancel.is_set)
        except WalkCancelled:
            raise _Cancelled from None
        if st is not None:
            entry.flags = open_flags_for(st.st_uid)
        if self.cancel.is_set():
            raise _Cancelled
        files = plan.files
        entry.plan = plan
        entry.hashes = [None] * len(files)
        if not files:
            self.finish(entry)
            return
        big: list[tuple[int, int]] = []
        batches: list[list[int]] = []
        batch: list[int] = []
        batch_bytes = 0
        total = 0
        for i, f in enumerate(files):
            size = f.size
            total += size
            if size >= BIG_FILE:
                big.append((size, i))
                continue
            batch.append(i)
            batch_bytes += size
            if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                batches.append(batch)
                batch = []
                batch_bytes = 0
        if batch:
            batches.append(batch)
        with self.lock:
            entry.remaining = len(files)
            entry.bytes_left = total
            self.queued_files += len(files)
            self.bytes_total += total
            for size, i in big:
                self.seq += 1
                heappush(self.big, (-size, self.seq, entry, i))
            self.batches.extend((entry, b) for b in batches)
            self.wakeup.notify(len(big) + len(batches))

    def hash_batch(self, entry: _Entry, indices: list[int]) -> None:
        plan = entry.plan
        assert plan is not None
        files = plan.files
        hashes = entry.hashes
        hash_name = plan.hash_name
        new = _HASHERS[hash_name]
        flags = entry.flags
        is_cancelled = self.cancel.is_set
        nbytes = 0
        for i in indices:
            if is_cancelled():
                raise _Cancelled
            f = files[i]
            hashes[i] = _hash_small(f.path, f.size, new, hash_name, flags)
            nbytes += f.size
        self.files_hashed(entry, len(indices), nbytes)

    def hash_big(self, entry: _Entry, index: int, buffer: bytearray) -> None:
        plan = entry.plan
        assert plan is not None
        f: FileToHash = plan.files[index]
        entry.hashes[index], credited = self._hash_chunked(entry, f, plan.hash_name, buffer)
        self.files_hashed(entry, 1, f.size - credited)

    def _hash_chunked(
        self, entry: _Entry, f: FileToHash, hash_name: str, buffer: bytearray
    ) -> tuple[str, int]:
        """Hash a big file in chunks, crediting progress and checking for cancellation as it goes.

        Returns the hex hash and how many bytes were credited to the progress already.
        """
        path = f.path
        credited = 0
        try:
            fd = os.open(path, entry.flags)
        except OSError:
            return hash_file(path, hash_name), credited
        view = memoryview(buffer)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                # Swapped for a FIFO or a device since the walk: reading could block or never end.
                raise ManifestError(
                    f"'{display_path(path)}' stopped being a regular file while it was being read",
                    path,
                    "io",
                )
            h = hashlib.new(hash_name)
            is_cancelled = self.cancel.is_set
            while True:
                if is_cancelled():
                    raise _Cancelled
                n = os.readv(fd, [buffer])
                if not n:
                    return h.hexdigest(), credited
                h.update(view[:n])
                step = min(n, f.size - credited)
                if step > 0:
                    credited += step
                    self.credit(entry, step)
        except OSError:
            return hash_file(path, hash_name), credited
        finally:
            view.release()
            os.close(fd)

    def files_hashed(self, entry: _Entry, count: int, nbytes: int) -> None:
        with self.lock:
            if entry.done:
                return  # it failed on another file meanwhile; deliver() wrote its files off
            nbytes = min(nbytes, entry.bytes_left)
            entry.bytes_left -= nbytes
            self.bytes_done += nbytes
            entry.remaining -= count
            self.queued_files -= count
            last = entry.remaining == 0
        if last:
            self.finish(entry)

    def finish(self, entry: _Entry) -> None:
        """All files hashed: assemble the manifest, compare, deliver."""
        plan = entry.plan
        assert plan is not None
        try:
            manifest = plan.assemble(entry.hashes)  # type: ignore[arg-type]
            stored = read_stored_manifest(entry.root)
        except ManifestError as exc:
            self.deliver(entry, self._error_outcome(entry, exc))
            return
        assert entry.digest is not None
        outcome = compare(entry.digest, manifest, stored)
        if entry.problem:
            outcome.status = "corrupt"
            outcome.detail = (
                f"Not a valid implementation name: {entry.problem}, so no contents can match it. "
                + outcome.detail
            )
        self.deliver(entry, outcome)


def verify_paths(
    paths: Sequence[str | bytes],
    *,
    jobs: int | None = None,
    on_result: Callable[[int, VerifyOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.1,
) -> list[VerifyOutcome | None]:
    """Verify top-level cache entries in parallel; one outcome per path, in order.

    The digest of each entry comes from its basename. ``on_result(index, outcome)`` is called once
    per entry as soon as its verdict is known, from a worker thread (calls never overlap, and none
    happens after this function returns). ``on_progress`` is called on the calling thread at most
    every ``progress_interval`` seconds and once at the end. Setting ``cancel`` (from any thread,
    callbacks included) makes this return promptly with None for the entries not finished.

    Never raises for a bad entry: names that are not digests are "skipped"; a symlink or regular
    file named like a digest, a malformed digest value or a FIFO inside are "corrupt"; unreadable or
    vanishing entries are "error". Exceptions raised by the callbacks are re-raised here.
    """
    started = time.perf_counter()
    cancel = cancel if cancel is not None else threading.Event()
    jobs = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
    run = _Run(len(paths), on_result, cancel)

    entries: list[_Entry] = []
    for index, path in enumerate(paths):
        root = os.fsencode(path)
        root = root.rstrip(b"/") or root  # a trailing slash would make lstat follow a symlink
        name = os.path.basename(root).decode("utf-8", "replace")
        try:
            digest = parse_digest(name)
        except DigestError as exc:
            entries.append(_Entry(index, root, None, f"not an implementation: {exc}"))
        else:
            entries.append(_Entry(index, root, digest))
    run.walks.extend(entries)

    if not paths:
        run.finished.set()
    threads = [
        threading.Thread(target=run.worker, name=f"verify-worker-{n}", daemon=True)
        for n in range(jobs if entries else 0)
    ]
    try:
        for thread in threads:
            thread.start()
        last_report = 0.0  # elapsed time of the last report
        while not run.finished.is_set() and not cancel.is_set():
            wait = _WAIT
            if on_progress is not None:
                due = last_report + progress_interval - (time.perf_counter() - started)
                wait = min(wait, max(due, 0.001))
            if run.finished.wait(wait) or on_progress is None:
                continue
            progress = run.snapshot(started)
            if progress.elapsed - last_report >= progress_interval:
                last_report = progress.elapsed
                on_progress(progress)
    except BaseException as exc:
        run.fail(exc)
        raise
    finally:
        _stop(run, threads)
    if run.failure is not None:
        raise run.failure
    results = run.close()
    if on_progress is not None:
        on_progress(run.snapshot(started))
    return results


def _stop(run: _Run, threads: list[threading.Thread]) -> None:
    """Wait for the workers. Walks stop at the next directory after a cancel; the short deadline
    only matters for one stuck in a single huge directory listing or a hung filesystem."""
    with run.lock:
        run.wakeup.notify_all()
    deadline = time.perf_counter() + (0.3 if run.cancel.is_set() or run.failure else 1e9)
    for thread in threads:
        if thread.is_alive():
            thread.join(max(deadline - time.perf_counter(), 0))
    run.close()
