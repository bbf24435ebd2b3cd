"""One worker of :mod:`core.pool`, and the code that runs a chunk of work, here or in-process.

Started as ``python -I -S /path/to/core/pool_worker.py FLAGS_FD NICENESS [KIND]``: isolated (no
``PYTHON*`` variables, no user site, no current directory on the path) and without site-packages;
the only path added is this project's own, found from this file. It imports the walking code it
needs on first use (or for ``KIND`` at once, while the parent gets ready), so it starts in
milliseconds.

Frames both ways are a 4-byte little-endian length and a :mod:`marshal` value: the wire form of
one message (below; :mod:`marshal` takes no tuple subclass, so each has ``to_wire`` and
``from_wire``). In: a :class:`Chunk` of :class:`Unit`. Out: :class:`Ready` once, then
:class:`Results` batches (at the end of a chunk and at most every :data:`FLUSH_S`),
:class:`Given` directories handed over to others, :class:`UnitProgress` inside a long unit, and
:class:`ChunkDone` when a chunk is over. Byte 0 of the shared flags file asks to stop (cancel),
byte 1 says others are idle (hand work over).
"""

from __future__ import annotations

import marshal
import os
import sys
import time
from collections import namedtuple

# Not typing's TYPE_CHECKING, and no typing.NamedTuple: importing typing (with re) takes 7.5 ms of
# CPU, most of a measuring worker's start-up (see core.lifetime).
TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only
    from collections.abc import Callable
    from typing import Any

FLUSH_S = 0.05
"""Results and progress go to the parent at most this often (and at the end of each chunk)."""


class Unit(namedtuple("Unit", "number root rel dev ino mtime skip extra")):
    """One piece of work: the entry ``root`` (bytes) when ``rel`` is empty, else its directory
    ``rel`` (``/a/b``), checked to be the one listed as ``dev``/``ino`` (and ``mtime``);
    ``skip``: the ``rel`` of subdirectories handed over already (counted, not entered);
    ``extra``: what the kind of work needs (verify: ``(algorithm, value[, keys digest, racy
    ns])``; measure: true to send back the entry's stat fields). ``number`` is the entry's
    place in the caller's list.

    On the wire it is the plain tuple of its fields (:mod:`marshal` takes no tuple subclass);
    callers that make many at once (:func:`core.measure.measure_paths`) make that tuple
    directly."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return tuple(self)

    @classmethod
    def from_wire(cls, data: tuple) -> Unit:
        return tuple.__new__(cls, data)  # as _make, less its check of the length: one per entry


class Chunk(namedtuple("Chunk", "number kind units")):
    """Work for a worker: ``units`` (wire forms of :class:`Unit`) of one ``kind`` ("verify",
    "measure"); ``number`` names the chunk in its :class:`ChunkDone`."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return tuple(self)

    @classmethod
    def from_wire(cls, data: tuple) -> Chunk:
        return cls._make(data)


# What a worker sends: on the wire, a tag and then the fields.


class Ready(namedtuple("Ready", "")):
    """The worker has started and reads chunks."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return ("ready",)

    @classmethod
    def from_wire(cls, data: tuple) -> Ready:
        return cls()


class Results(namedtuple("Results", "results")):
    """Answers to units, each in the wire form its kind of work defines
    (:data:`core.verify.UnitResult`, :class:`core.treewalk.Measured`)."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return ("r", self.results)

    @classmethod
    def from_wire(cls, data: tuple) -> Results:
        return cls(data[1])


class Given(namedtuple("Given", "number subtrees")):
    """Directories of entry ``number`` handed over by the unit being walked, each ``(rel, dev,
    ino)`` (verify: and ``mtime``), to become units of their own."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return ("g", self.number, self.subtrees)

    @classmethod
    def from_wire(cls, data: tuple) -> Given:
        return cls(data[1], data[2])


class UnitProgress(namedtuple("UnitProgress", "number rel listed hashed")):
    """Files listed and hashed so far in the unit ``number``/``rel`` being walked."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return ("p", *self)

    @classmethod
    def from_wire(cls, data: tuple) -> UnitProgress:
        return cls._make(data[1:])


class ChunkDone(namedtuple("ChunkDone", "chunk cancelled")):
    """Chunk number ``chunk`` is over (``cancelled``: stopped before its end)."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return ("d", *self)

    @classmethod
    def from_wire(cls, data: tuple) -> ChunkDone:
        return cls._make(data[1:])


if TYPE_CHECKING:
    Message = Ready | Results | Given | UnitProgress | ChunkDone
    Out = Callable[[Message], None]

_SENT: dict[str, Any] = {
    "ready": Ready,
    "r": Results,
    "g": Given,
    "p": UnitProgress,
    "d": ChunkDone,
}


def message_from_wire(data: tuple) -> Message:
    """The message a worker sent (its tag says which)."""
    message: Message = _SENT[data[0]].from_wire(data)
    return message


class Executor:
    """Runs chunks of units of one kind, reporting through ``out``; checks ``flags`` (byte 0:
    cancel, byte 1: others idle) between directories."""

    def __init__(self, out: Out, flags: Any):
        self.out = out
        self.flags = flags
        self.results: list[tuple] = []
        self.next_flush = 0.0
        self.walk: Any = None  # the walk of the current unit, for progress
        self.unit: tuple | None = None  # the wire form of the Unit being run
        self.reported = (0, 0)
        self.runners: dict[str, Callable[[tuple, Executor], tuple]] = {}

    def tick(self) -> int:
        flags = self.flags
        if flags[0]:
            return 2
        now = time.monotonic()
        if now >= self.next_flush:
            self.flush(now)
        return 1 if flags[1] else 0

    def flush(self, now: float) -> None:
        self.next_flush = now + FLUSH_S
        if self.results:
            self.out(Results(self.results))
            self.results = []
        walk, unit = self.walk, self.unit
        if walk is not None and unit is not None:
            done = (walk.listed, walk.hashed)
            if done != self.reported:
                self.reported = done
                named = Unit.from_wire(unit)
                self.out(UnitProgress(named.number, named.rel, done[0], done[1]))

    def give(self, subtrees: list) -> None:
        assert self.unit is not None
        self.flags[1] = 0  # once is enough: the parent raises it again while still short of work
        self.out(Given(Unit.from_wire(self.unit).number, subtrees))

    def run_chunk(self, chunk_id: int, kind: str, units: list[tuple]) -> None:
        """Run ``units`` (wire forms of :class:`Unit`) of one ``kind``, reporting as it goes.
        They stay in their wire form (their runners take them apart): making a Unit of each took
        5% of measuring an entry."""
        run_unit = self.runners.get(kind) or self.runners.setdefault(kind, _unit_runner(kind))
        cancelled = False
        for unit in units:
            if self.flags[0]:
                cancelled = True
                break
            self.unit, self.walk, self.reported = unit, None, (0, 0)
            try:
                result = run_unit(unit, self)
            except _Cancelled:
                cancelled = True
                break
            finally:
                self.unit = self.walk = None
            self.results.append(result)
        if self.results and not cancelled:
            self.out(Results(self.results))
        self.results = []
        self.next_flush = time.monotonic() + FLUSH_S
        self.out(ChunkDone(chunk_id, cancelled))


class _Cancelled(Exception):
    pass


def _unit_runner(kind: str) -> Callable[[tuple, Executor], tuple]:
    if kind == "verify":
        from core.verify import verify_unit

        def run_verify(unit: tuple, ex: Executor) -> tuple:
            result = verify_unit(unit, ex)
            if result is None:
                raise _Cancelled
            return result

        return run_verify
    if kind == "measure":
        from core.treewalk import Measurement, measure_walk

        def run_measure(unit: tuple, ex: Executor) -> tuple:
            index, root, rel, dev, ino, _mtime, skip, stats = unit
            try:
                result = measure_walk(
                    root, rel, dev, ino, ex.tick, ex.give, frozenset(skip), bool(stats)
                )
            except Exception as exc:  # noqa: BLE001 - a bug must not stop a scan; say what happened
                problem = {("top", f"it could not be measured: {exc}"): 1}
                result = Measurement(0, 0, 0, None, problem, {}, None)
            if result is None:
                raise _Cancelled
            # Measured(index, rel, result).to_wire(), without making a Measured: one per entry.
            return (index, rel, tuple(result))

        return run_measure
    raise ValueError(f"unknown kind of work {kind!r}")


# --- the process ----------------------------------------------------------------------------------


def _read_exact(fd: int, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _write(fd: int, message: tuple) -> None:
    """Send ``message`` (a wire form) as one frame."""
    data = marshal.dumps(message)
    view = memoryview(len(data).to_bytes(4, "little") + data)
    while view:
        view = view[os.write(fd, view) :]


def main(argv: list[str]) -> int:
    import mmap
    import signal

    # The parent decides when to stop: a Ctrl-C on the terminal reaches the whole process group,
    # and the parent answers it; a worker just ends when its input does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    flags_fd, niceness = int(argv[1]), int(argv[2])
    # Nothing but the pipes and the flags is ours: descriptors the parent's own parent left open
    # are not kept open here as well (posix_spawn passes on every one not marked close-on-exec).
    os.closerange(flags_fd + 1, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    if niceness:
        # A worker never imports contextlib (2 ms at every start) for suppress().
        try:  # noqa: SIM105
            os.nice(niceness)
        except OSError:
            pass
    flags = mmap.mmap(flags_fd, 2)
    executor = Executor(lambda message: _write(1, message.to_wire()), flags)
    _write(1, Ready().to_wire())
    if len(argv) > 3 and argv[3]:
        # Started ahead of a run of this kind: load its code while the parent gets ready.
        executor.runners[argv[3]] = _unit_runner(argv[3])
    while True:
        header = _read_exact(0, 4)
        if header is None:
            return 0
        body = _read_exact(0, int.from_bytes(header, "little"))
        if body is None:
            return 0
        chunk = Chunk.from_wire(marshal.loads(body))
        executor.run_chunk(chunk.number, chunk.kind, chunk.units)


if __name__ == "__main__":
    # Only this project's directory is added to the path: -I left out the current directory.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        sys.exit(main(sys.argv))
    except BrokenPipeError:
        sys.exit(0)  # the parent has gone
