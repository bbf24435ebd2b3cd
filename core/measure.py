"""Measuring cache entries: size, disk use, file count and last use, never following a symlink.

The walk is :func:`core.treewalk.measure_walk`: by directory descriptors, one ``fstatat`` per
entry from ``scandir`` on an open directory, an explicit stack (no recursion limit). It runs on the
worker pool of :mod:`core.pool`, the same one verification uses: whole entries in chunks, and when
the queue runs dry the busy workers hand over half of the directories they have not started, so one
big entry does not finish alone (the parts of an entry are summed here, hard links counted once).
:mod:`core.cache` imports :func:`measure`, :func:`measure_all`, :func:`prepare_measuring` and
:func:`shutdown_helpers` from here, so they are found there too.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from core import pool
from core.pool_worker import Given, Results, Unit, UnitProgress
from core.treewalk import Measurement, measure_walk

if TYPE_CHECKING:
    from core.cache import Entry, Scan
    from core.stores import Store

_by_name = attrgetter("name")


@dataclass(slots=True)
class Usage:
    """What measuring an entry finds (an entry's ``usage``, :class:`core.cache.Entry`)."""

    size: int  # apparent bytes (sum of st_size, directories included; hard links counted once)
    disk: int  # bytes on disk (st_blocks * 512; hard links counted once), as ``du -s``
    files: int  # regular files + symlinks
    last_used: float | None  # newest atime of the regular files inside; None if none
    error: str | None = None  # e.g. "2 directories could not be read: Permission denied"


@dataclass(slots=True)
class Totals:
    """What :func:`measure_all` measured in all, with a file hard-linked from several entries
    counted once (each entry's own usage counts it, as ``du`` of that entry would)."""

    size: int = 0
    disk: int = 0
    files: int = 0


class _Cancelled(Exception):
    pass


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass(slots=True)
class _Tally:
    """One entry's measurement, summed over the units it was split into."""

    size: int = 0
    blocks: int = 0
    files: int = 0
    newest: float | None = None
    problems: Counter[tuple[str, str]] = field(default_factory=Counter)
    links: dict[tuple[int, int], tuple[int, int, bool]] = field(default_factory=dict)
    pending: int = 1  # units handed out and not finished yet
    top: tuple | None = None  # the entry's own stat fields, from the unit of the whole entry

    def add(self, result: Measurement) -> None:
        """Count the result of one of the entry's units."""
        size, blocks, files, newest, problems, links, top = result
        self.pending -= 1
        if top is not None:
            self.top = top
        self.size += size
        self.blocks += blocks
        self.files += files
        if newest is not None and (self.newest is None or newest > self.newest):
            self.newest = newest
        self.problems.update(problems)
        self.links.update(links)

    def usage(self) -> Usage:
        size, blocks, files = self.size, self.blocks, self.files
        for link_size, link_blocks, counted in self.links.values():
            size += link_size
            blocks += link_blocks
            files += counted
        return Usage(size, blocks * 512, files, self.newest, _error_text(self.problems))


def _error_text(problems: Counter[tuple[str, str]]) -> str | None:
    if not problems:
        return None
    parts = []
    for (what, why), n in sorted(problems.items()):
        if what == "top":
            parts.append(why)
        elif what == "dir":
            parts.append(f"{_plural(n, 'directory', 'directories')} could not be read: {why}")
        elif what == "gone":
            parts.append(f"{_plural(n, 'entry', 'entries')} disappeared while being measured")
        elif what == "mount":
            parts.append(
                f"{_plural(n, 'mount point', 'mount points')} inside "
                f"{'was' if n == 1 else 'were'} not measured (nothing is read through a mount "
                "point; unmount it to see the entry as it is)"
            )
        elif what == "swapped":
            parts.append(
                f"{_plural(n, 'directory', 'directories')} turned into something else (a "
                "symlink?) while being measured and "
                f"{'was' if n == 1 else 'were'} not followed"
            )
        else:
            parts.append(f"{_plural(n, 'entry', 'entries')} could not be examined: {why}")
    return "; ".join(parts)


def _measure_path(root: bytes, cancel: threading.Event | None = None) -> Usage:
    """Measure one entry in this thread; raises :class:`_Cancelled` when ``cancel`` is set."""
    tick = None if cancel is None else (lambda: 2 if cancel.is_set() else 0)
    result = measure_walk(root, tick=tick)
    if result is None:
        raise _Cancelled
    tally = _Tally()
    tally.add(result)
    return tally.usage()


def measure(entry: Entry) -> Usage:
    """Size, disk use, file count and last access of one entry. Never follows a symlink and never
    raises: what cannot be read is described in ``Usage.error`` and the rest is still counted."""
    try:
        return _measure_path(os.fsencode(entry.path))
    except Exception as exc:  # noqa: BLE001 - a bug must not stop a scan; say what happened
        return Usage(0, 0, 0, None, f"it could not be measured: {exc}")


def prepare_measuring(jobs: int | None = None, niceness: int = 0, work_here: bool = True) -> None:
    """Start the worker processes now (without waiting for them), so that a measure_all soon after
    runs at full speed from its first entry. Optional."""
    pool.prestart(jobs, niceness, "measure", work_here)


def shutdown_helpers() -> None:
    """Stop the idle worker processes (they also end by themselves with this process)."""
    pool.shutdown()


def measure_all(
    entries: Iterable[Entry],
    on_result: Callable[[Entry, Usage], None],
    cancel: threading.Event | None = None,
    jobs: int | None = None,
    niceness: int = 0,
    work_here: bool = True,
) -> Totals:
    """Measure every entry, calling ``on_result(entry, usage)`` as each one is done.

    ``on_result`` is called in the calling thread (run this in a worker thread of a GUI), and it
    should store the result (``entry.usage = usage``) itself. Setting ``cancel`` from another
    thread stops promptly (within a few directories' work) and the entries not reported by then
    stay unmeasured; nothing is reported after ``cancel`` is set.

    ``jobs`` (default: the usable CPUs) is this thread and ``jobs - 1`` worker processes of
    :mod:`core.pool` (all ``jobs`` workers with ``work_here=False``, for a window's process); with
    ``jobs=1`` everything is done in this thread. Returns the :class:`Totals` of what was reported.
    """
    todo = list(entries)
    return measure_paths(
        [e.path for e in todo],
        lambda index, usage: on_result(todo[index], usage),
        cancel,
        jobs,
        niceness,
        work_here,
    )


def measure_paths(
    paths: Sequence[str | bytes],
    on_result: Callable[..., None],
    cancel: threading.Event | None = None,
    jobs: int | None = None,
    niceness: int = 0,
    work_here: bool = True,
    stats: bool = False,
) -> Totals:
    """:func:`measure_all` for top-level entries given by path: ``on_result(index, usage)``. Lets a
    caller measure while the same entries are still being classified.

    ``stats``: ``on_result(index, usage, top)`` instead, where ``top`` is what classifying the entry
    needs of its own ``lstat`` and its ``.manifest``'s, seen by the walk (see
    :func:`core.treewalk.measure_walk`), or None when the entry could not be examined."""
    totals = Totals()
    if not paths:
        return totals
    cancel = cancel if cancel is not None else threading.Event()
    report = on_result if stats else (lambda index, usage, _top: on_result(index, usage))
    # A tally only for an entry measured in several parts (handed over) or with something odd in
    # it; the usual entry goes straight from its one result to its Usage.
    tallies: dict[int, _Tally] = {}
    roots = [p if type(p) is bytes else os.fsencode(p) for p in paths]
    links: dict[tuple[int, int], tuple[int, int, bool]] = {}

    def handle(message: Results | Given | UnitProgress) -> None:
        if isinstance(message, Given):  # a busy worker's directories, handed over: new units
            index, subtrees = message
            tallies.setdefault(index, _Tally()).pending += len(subtrees)
            units = [
                Unit(index, roots[index], s[0], s[1], s[2], 0, (), None).to_wire() for s in subtrees
            ]
            run.add(units, first=True)
            return
        if not isinstance(message, Results):
            return
        stopped = cancel.is_set
        # Each result is the wire form of a Measured, taken apart by its fields' order without
        # making one: this loop runs once per entry, where every object made shows.
        for index, _rel, wire in message.results:
            size, blocks, files, newest, problems, linked, top = wire
            tally = tallies.get(index)
            if tally is None and not problems and not linked:
                if not stopped():
                    totals.size += size
                    totals.disk += blocks * 512
                    totals.files += files
                    report(index, Usage(size, blocks * 512, files, newest, None), top)
                continue
            if tally is None:
                tally = tallies[index] = _Tally()
            tally.add(Measurement.from_wire(wire))
            if tally.pending == 0 and not stopped():
                totals.size += tally.size
                totals.disk += tally.blocks * 512
                totals.files += tally.files
                links.update(tally.links)
                report(index, tally.usage(), tally.top)

    run = pool.Run(
        "measure", handle, jobs=jobs, cancel=cancel, niceness=niceness, work_here=work_here
    )
    # Every unit is the wire form of Unit(index, root, b"", 0, 0, 0, (), stats?), made by zip
    # without a Python step.
    whole = (repeat(b""), repeat(0), repeat(0), repeat(0), repeat(()), repeat(1 if stats else None))
    run.add(zip(count(), roots, *whole))
    run.run()
    for size, blocks, counted in links.values():  # a file linked from several entries: once
        totals.size += size
        totals.disk += blocks * 512
        totals.files += counted
    return totals


def scan_and_measure(
    stores: Sequence[Store],
    on_entry: Callable[[Entry], None] | None = None,
    cancel: threading.Event | None = None,
    jobs: int | None = None,
    niceness: int = 0,
    work_here: bool = True,
    env: Mapping[str, str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    ordered: bool = True,
) -> tuple[Scan, Totals]:
    """List, classify and measure the entries of ``stores`` in one pass over each entry.

    The stores' names are read first (one ``listdir`` each) and measured on the worker pool
    (this thread being one of the ``jobs``, unless ``work_here`` is false). Each walk also sends
    back the entry's own ``lstat`` and its ``.manifest``'s, so every entry is classified as its
    measurement arrives, without being looked at again. The cached feeds and apps' selections that
    classifying needs are loaded on a helper thread once the first measurement is in;
    measurements that arrive before they are ready wait for them. ``on_entry(entry)`` is called
    on this thread for each entry, measured and classified, in no particular order. The scan's
    entries are sorted by name within each store, as :func:`core.cache.scan` sorts them (unless
    ``ordered`` is false: a caller that orders what it made of them itself skips the sort, and
    gets them in the order they were measured); entries gone before they were examined are left
    out. ``env``: as for :func:`core.cache.scan` (where
    feeds and apps are found).
    ``on_progress(done, total)``: every 256 entries measured."""
    names, numbers, roots, prefixes = _store_names(stores)
    decoding = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())  # as os.fsdecode
    listing = _Listing(stores, env)
    entries: list[Entry] = []
    contexts: list[Any] = []
    loading = True
    waiting: list[tuple[int, Usage, tuple | None]] = []
    keep = entries.append
    cache: Any = None  # core.cache, once loaded
    seen: Any = None
    classify_seen: Any = None

    def ready() -> None:
        nonlocal loading, cache, seen, classify_seen
        loading = False
        loaded = listing.wait()
        import core.cache  # loaded by now, by the listing's thread

        cache = core.cache
        seen, classify_seen = cache.top_stat, cache.classify_seen
        contexts.extend(loaded.context(store) for store in stores)
        for item in waiting:
            on_result(*item)
        waiting.clear()

    done = 0

    def on_result(index: int, usage: Usage, top: tuple | None) -> None:
        nonlocal done
        if loading:
            if listing.busy():
                waiting.append((index, usage, top))
                return
            ready()
        if on_progress is not None:
            done += 1
            if done % 256 == 0:
                on_progress(done, len(names))
        number = numbers[index]
        name = names[index].decode(*decoding)
        path = prefixes[number] + name
        if top is None:  # the walk could not look at it: look here
            entry = cache.classify_in(contexts[number], name, path)
            if entry is None:
                return
        else:
            st, manifest = top
            entry = classify_seen(
                contexts[number], name, path, seen(st), None if manifest is None else seen(manifest)
            )
        entry.usage = usage
        keep(entry)
        if on_entry is not None:
            on_entry(entry)

    # Thousands of objects are made here and every one is kept: a collection would free nothing,
    # and walking them all again and again took 6% of the run (15 ms for 10,000 entries).
    collecting = gc.isenabled()
    gc.disable()
    try:
        totals = measure_paths(roots, on_result, cancel, jobs, niceness, work_here, True)
        if loading:
            ready()
    finally:
        if collecting:
            gc.enable()
    if ordered:
        _in_store_order(entries, stores)
    loaded = listing.wait()
    return cache.Scan(loaded.stores, entries, loaded.problems), totals


def _store_names(
    stores: Sequence[Store],
) -> tuple[list[bytes], list[int], list[bytes], list[str]]:
    """The names in every store as the kernel gives them (decoded as each entry is classified),
    the store of each (by its place in ``stores``), their paths as bytes, and each store's path
    with a trailing slash (an entry's path is that and its name)."""
    names: list[bytes] = []
    numbers: list[int] = []
    roots: list[bytes] = []
    prefixes = [os.path.join(store.path, "") for store in stores]
    for number, store in enumerate(stores):
        if store.problem:
            continue
        prefix = os.fsencode(prefixes[number])
        try:
            found = os.listdir(prefix)
        except OSError:
            continue  # the store went away since it was chosen: nothing to list
        names += found
        numbers += [number] * len(found)
        roots += [prefix + name for name in found]
    return names, numbers, roots, prefixes


class _Listing:
    """What classifying needs (:func:`core.cache.prepare_listing`: the cached feeds, apps'
    selections), loaded on a helper thread. It starts when first asked about (once the first
    result is in, so the workers have their first chunks: starting a thread hands it the
    interpreter lock, and they would wait for it meanwhile)."""

    def __init__(self, stores: Sequence[Store], env: Mapping[str, str] | None) -> None:
        self._stores, self._env = stores, env
        self._loaded: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="listing", daemon=True)

    def _load(self) -> None:
        # core.cache (with the feeds' parser) is imported here too: nothing before the first
        # chunks needs it.
        try:
            from core import cache

            self._loaded = cache.prepare_listing(self._stores, self._env)
        except BaseException as exc:  # noqa: BLE001 - raised again on the calling thread
            self._error = exc

    def busy(self) -> bool:
        """True while it is loading (started now if it was not)."""
        if self._thread.ident is None:
            self._thread.start()
        return self._thread.is_alive()

    def wait(self) -> Any:
        """The listing (a ``core.cache`` listing), once loaded; raises what loading raised."""
        self.busy()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._loaded


def _in_store_order(entries: list[Entry], stores: Sequence[Store]) -> None:
    """Sort ``entries`` by name within each store, the stores in their order (as
    :func:`core.cache.scan` does)."""
    entries.sort(key=_by_name)
    if len(stores) > 1:
        order = {id(store): number for number, store in enumerate(stores)}
        entries.sort(key=lambda e: order[id(e.store)])  # stable: by name within each store
