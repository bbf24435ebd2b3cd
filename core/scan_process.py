"""Listing and measuring the stores in a child process (see :mod:`core.child` for why a window
wants that): :func:`core.cache.scan`, then :func:`core.measure.measure_all`, with the results handed
back as the same ``Scan``, ``Entry`` and ``Usage`` objects the in-process functions make.

The child measures at a lower CPU priority: that is background work, and on a machine with few
cores the window must win the CPU whenever it has something to draw.

Messages from the child:

* ``{"stores": [store, ...], "problems": [...]}`` once (each a :class:`StoreMessage`; the request
  names its stores the same way), then ``{"e": [entry, ...]}`` in chunks (each an
  :class:`EntryMessage`), then ``{"listed": true}``;
* ``{"u": [measured, ...]}`` (each a :class:`MeasuredMessage`), a batch of measured entries
  every :data:`BATCH_S` at most (one line per entry would keep the parent's reading thread busy
  with ten thousand tiny messages a second).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from core import child
from core.cache import Entry, EntryKind, Issue, Scan, scan
from core.child import ChildError, Message, run_in_child, serve
from core.digests import Digest
from core.feeds import FeedImpl
from core.measure import Usage, measure_all
from core.stores import Store, StoreKind, StoreRole

BATCH_S = 0.05
"""Measured entries are sent at most this often."""
CHUNK = 1000
"""Listed entries per message."""
NICENESS = 10
"""How much lower the child's CPU priority is than the window's."""

ScanProcessError = ChildError


class StoreMessage(NamedTuple):
    """A :class:`~core.stores.Store` as it travels, both ways. On the wire: the list of these
    fields."""

    path: str
    kind: StoreKind
    source: str
    problem: str | None
    role: StoreRole | Literal[""]
    name: str

    @classmethod
    def of(cls, store: Store) -> StoreMessage:
        return cls(store.path, store.kind, store.source, store.problem, store.role, store.name)

    def store(self) -> Store:
        return Store(*self)

    def to_wire(self) -> list[Any]:
        return list(self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> StoreMessage:
        return cls._make(data)


class EntryMessage(NamedTuple):
    """An :class:`~core.cache.Entry` as the child sends it (its path is made again from its
    store's and its name, as the listing made it). On the wire: the list of these fields."""

    store: int  # its store's place in the "stores" message
    name: str
    kind: EntryKind
    reason: str
    digest: list[str] | None  # [algorithm, value]
    owner: str
    mode: int
    added: float
    feed: list[str] | None  # [feed_url, feed_name, version]
    used_by: list[str]
    atime_reliable: bool
    added_from: Literal["manifest", "directory", ""]
    issue: Issue
    fingerprint: list[int]

    @classmethod
    def of(cls, entry: Entry, store_index: dict[int, int]) -> EntryMessage:
        feed = entry.feed
        return cls(
            store_index[id(entry.store)],
            entry.name,
            entry.kind,
            entry.reason,
            list(entry.digest) if entry.digest is not None else None,
            entry.owner,
            entry.mode,
            entry.added,
            [feed.feed_url, feed.feed_name, feed.version] if feed is not None else None,
            entry.used_by,
            entry.atime_reliable,
            entry.added_from,
            entry.issue,
            list(entry.fingerprint),
        )

    def entry(self, stores: list[Store]) -> Entry:
        where = stores[self.store]
        return Entry(
            where,
            self.name,
            os.path.join(where.path, self.name),
            self.kind,
            self.reason,
            Digest(*self.digest) if self.digest is not None else None,
            self.owner,
            self.mode,
            self.added,
            FeedImpl(*self.feed) if self.feed is not None else None,
            self.used_by,
            atime_reliable=self.atime_reliable,
            added_from=self.added_from,
            issue=self.issue,
            fingerprint=tuple(self.fingerprint),
        )

    def to_wire(self) -> list[Any]:
        return list(self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> EntryMessage:
        return cls._make(data)


class MeasuredMessage(NamedTuple):
    """One measured entry as the child sends it: its place in the listing and its
    :class:`~core.measure.Usage`. On the wire: the list of these fields."""

    number: int  # the entry's place in the caller's list
    size: int
    disk: int
    files: int
    last_used: float | None
    error: str | None

    def usage(self) -> Usage:
        return Usage(self.size, self.disk, self.files, self.last_used, self.error)

    def to_wire(self) -> list[Any]:
        return list(self)

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> MeasuredMessage:
        return cls._make(data)


def prestart() -> None:
    """Start the next scan's child process now (see :func:`core.child.prestart`)."""
    child.prestart(__name__)


def scan_in_child(
    stores: Sequence[Store] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    on_entries: Callable[[list[Entry]], None] | None = None,
    on_listed: Callable[[Scan], None] | None = None,
    on_measured: Callable[[list[tuple[Entry, Usage]]], None] | None = None,
    measure: bool = True,
    cancel: threading.Event | None = None,
    jobs: int | None = None,
    chunk: int = CHUNK,
) -> Scan:
    """:func:`core.cache.scan` then (if ``measure``) :func:`core.measure.measure_all`, run by a
    child Python process. Same arguments and results; callbacks run on the calling thread.

    ``on_entries(entries)`` gets the listed entries in chunks as they arrive, in their final
    order. ``on_listed(scan)`` comes once, before any measuring. ``on_measured(pairs)`` then gets
    (entry, usage) pairs in batches and, as with ``measure_all``, stores them itself
    (``entry.usage = usage``): a window does that on its GUI thread. After ``cancel`` is set
    the child stops within a few directories; a batch it had already sent may still arrive.
    Raises :class:`ScanProcessError` if the child cannot be started or dies, or if the scan
    itself failed.
    """
    found: list[Store] = []
    entries: list[Entry] = []
    problems: list[str] = []
    result = Scan(found, entries, problems)

    def on_message(message: Message) -> None:
        if "u" in message:
            if on_measured is not None:
                measured = map(MeasuredMessage.from_wire, message["u"])
                on_measured([(entries[m.number], m.usage()) for m in measured])
        elif "e" in message:
            chunk = [EntryMessage.from_wire(data).entry(found) for data in message["e"]]
            entries.extend(chunk)
            if on_entries is not None:
                on_entries(chunk)
        elif "stores" in message:
            found.extend(StoreMessage.from_wire(data).store() for data in message["stores"])
            problems.extend(message["problems"])
        elif message.get("listed") and on_listed is not None:
            on_listed(result)

    request = {
        "stores": None if stores is None else [StoreMessage.of(s).to_wire() for s in stores],
        "env": None if env is None else dict(env),
        "measure": measure,
        "jobs": jobs,
        "chunk": chunk,
    }
    run_in_child(__name__, request, on_message, cancel or threading.Event())
    return result


def _job(request: Message, send: Callable[[Message], None], cancel: threading.Event) -> None:
    asked = request["stores"]
    chosen = None if asked is None else [StoreMessage.from_wire(s).store() for s in asked]
    found = scan(chosen, request["env"])
    store_index = {id(s): i for i, s in enumerate(found.stores)}
    send(
        {"stores": [StoreMessage.of(s).to_wire() for s in found.stores], "problems": found.problems}
    )
    size = max(1, request["chunk"])
    for start in range(0, len(found.entries), size):
        part = found.entries[start : start + size]
        send({"e": [EntryMessage.of(e, store_index).to_wire() for e in part]})
    send({"listed": True})
    if not request["measure"] or cancel.is_set():
        return
    # Listing is what the user waits for; measuring is background work (its helper processes,
    # started from here, inherit the lower priority).
    # Without nice() here, measuring runs at the window's priority.
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICENESS)
    index = {id(e): i for i, e in enumerate(found.entries)}
    pending: list[list[Any]] = []
    last_sent = time.monotonic()

    def on_result(entry: Entry, usage: Usage) -> None:
        nonlocal last_sent
        u = usage
        measured = MeasuredMessage(index[id(entry)], u.size, u.disk, u.files, u.last_used, u.error)
        pending.append(measured.to_wire())
        now = time.monotonic()
        if now - last_sent >= BATCH_S:
            send({"u": pending[:]})
            pending.clear()
            last_sent = now

    measure_all(found.entries, on_result, cancel, request["jobs"])
    if pending and not cancel.is_set():
        send({"u": pending})


if __name__ == "__main__":
    from core.lifetime import exit_now, without_collector

    without_collector()  # one job, then the process ends: see core.lifetime
    exit_now(serve(_job))
