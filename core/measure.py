"""Measuring cache entries: size, disk use, file count and last use, never following a symlink.

The walk is :func:`core.treewalk.measure_walk`: by directory descriptors, one ``fstatat`` per
entry from ``scandir`` on an open directory, an explicit stack (no recursion limit). It runs on the
worker pool of :mod:`core.pool`, the same one verification uses: whole entries in chunks, and when
the queue runs dry the busy workers hand over half of the directories they have not started, so one
big entry does not finish alone (the parts of an entry are summed here, hard links counted once).
:mod:`core.cache` re-exports :func:`measure`, :func:`measure_all`, :func:`prepare_measuring` and
:func:`shutdown_helpers`, so existing imports keep working.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from core import pool
from core.cache import Entry, Usage
from core.treewalk import measure_walk

_walk = measure_walk  # the name tests and older callers know


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

    def add(self, result: list) -> None:
        size, blocks, files, newest, problems, links = result
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
    on_result: Callable[[int, Usage], None],
    cancel: threading.Event | None = None,
    jobs: int | None = None,
    niceness: int = 0,
    work_here: bool = True,
) -> Totals:
    """:func:`measure_all` for top-level entries given by path: ``on_result(index, usage)``. Lets a
    caller measure while the same entries are still being classified."""
    totals = Totals()
    if not paths:
        return totals
    cancel = cancel if cancel is not None else threading.Event()
    # A tally only for an entry measured in several parts (handed over) or with something odd in
    # it; the usual entry goes straight from its one result to its Usage.
    tallies: dict[int, _Tally] = {}
    roots = [os.fsencode(p) for p in paths]
    links: dict[tuple[int, int], tuple[int, int, bool]] = {}

    def handle(message: tuple) -> None:
        tag = message[0]
        if tag == "g":
            _, index, subtrees = message
            tallies.setdefault(index, _Tally()).pending += len(subtrees)
            run.add(
                [(index, roots[index], rel, dev, ino, 0, (), None) for rel, dev, ino in subtrees],
                first=True,
            )
            return
        if tag != "r":
            return
        stopped = cancel.is_set
        for index, _rel, result in message[1]:
            tally = tallies.get(index)
            if tally is None and not result[4] and not result[5]:
                if not stopped():
                    size, blocks, files, newest = result[:4]
                    totals.size += size
                    totals.disk += blocks * 512
                    totals.files += files
                    on_result(index, Usage(size, blocks * 512, files, newest, None))
                continue
            if tally is None:
                tally = tallies[index] = _Tally()
            tally.add(result)
            tally.pending -= 1
            if tally.pending == 0 and not stopped():
                totals.size += tally.size
                totals.disk += tally.blocks * 512
                totals.files += tally.files
                links.update(tally.links)
                on_result(index, tally.usage())

    run = pool.Run(
        "measure", handle, jobs=jobs, cancel=cancel, niceness=niceness, work_here=work_here
    )
    run.add((i, root, b"", 0, 0, 0, (), None) for i, root in enumerate(roots))
    run.run()
    for size, blocks, counted in links.values():
        totals.size += size
        totals.disk += blocks * 512
        totals.files += counted
    return totals
