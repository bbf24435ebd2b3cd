"""One pool of worker processes for walking and hashing cache entries: verification and measuring.

Why processes: walking and hashing small files is mostly Python work under the interpreter lock;
threads fight over it (two were slower than one on 10,000 small entries), processes do not.

* Workers are ``python -I -S core/pool_worker.py`` (never code in a string, never a ``fork`` of a
  process that may have threads), started once and kept for later runs of this process, at the
  niceness asked for (a window's work runs below the window). They are started with
  ``posix_spawn``: the subprocess module took longer to import than a worker takes to start.
* Work is handed out as chunks of whole units (an entry, or a directory of one), a couple of chunks
  queued per worker so none waits; chunks shrink as the queue empties, so the last ones end
  together. When the queue is empty and a worker is idle, busy workers are asked to hand over half
  of the directories they have not started (a big entry does not leave a core unused).
* Results come back in batches (one message per chunk or per 50 ms), and are handed to the caller's
  ``handle`` on the calling thread. Cancel is a shared flag the workers check between directories
  and between the chunks of a big file; a worker that does not answer soon after is killed.
* The calling thread is one of the ``jobs``: it takes chunks itself while the workers are busy,
  and answers them between directories (``work_here``; a window's process says no, to keep its
  interpreter lock free). So ``jobs=2`` is this process and one worker: no core waits for a second
  worker to start, and a loaded machine costs no more than ``jobs=1``. ``jobs=1``, or no worker can
  start: everything runs here. A worker that dies has its unanswered units done again elsewhere.
"""

from __future__ import annotations

import atexit
import contextlib
import marshal
import mmap
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.pool_worker import (
    Chunk,
    ChunkDone,
    Executor,
    Given,
    Ready,
    Results,
    Unit,
    UnitProgress,
    message_from_wire,
)

WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pool_worker.py")
PIPELINE = 2  # chunks given to a worker at once: the one it works on and the next
# (work given to a worker cannot go to another one that runs out: more would unbalance the end),
LONG_QUEUE = 1000  # ...and one more while this many units wait: plenty of work left to balance
MAX_CHUNK = {"verify": 64, "measure": 256}
"""Units per chunk at most: a few milliseconds of a worker's time (a small entry takes about 0.1 ms
to verify and 0.03 ms to measure), so that queueing costs little per unit and a coordinator kept
waiting a moment (by the interpreter lock, when it runs on a thread) does not leave workers idle."""
STOP_WAIT = 0.5  # seconds a cancelled worker has to answer before it is killed
MAX_JOBS = 64
"""More workers than this is refused by the command line; more than the CPUs never helps."""

Handle = Callable[[Results | Given | UnitProgress], None]


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


FLAGS_FD = 3
"""The worker's descriptor of its flags (its standard input and output are the pipes)."""


def _above_flags(fd: int) -> int:
    """``fd``, or a copy of it numbered above :data:`FLAGS_FD` (then the original is closed; if
    copying fails, it is left open): the descriptors a worker is given are then never the ones
    they are given as (0, 1, 3), which a process started with its standard streams closed could
    otherwise get from the kernel."""
    if fd > FLAGS_FD:
        return fd
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FLAGS_FD + 1)
    os.close(fd)
    return high


class _Process:
    """One worker process; kept for later runs once started."""

    def __init__(self, niceness: int, preload: str = "") -> None:
        self.niceness = niceness
        self.key = _key_for(niceness)
        self.returncode: int | None = None
        opened: list[int] = []  # closed again if the worker cannot be started
        try:
            opened.append(_flags_file())
            opened += os.pipe()
            opened += os.pipe()
            for i, fd in enumerate(opened):
                opened[i] = _above_flags(fd)
            self._flags_fd, child_in, self.stdin, self.stdout, child_out = opened
            self.flags = mmap.mmap(self._flags_fd, 2)
            argv = [
                sys.executable,
                "-I",
                "-S",
                WORKER_SCRIPT,
                str(FLAGS_FD),
                str(niceness),
                preload,
            ]
            self.pid = os.posix_spawn(
                sys.executable,
                argv,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, child_in, 0),
                    (os.POSIX_SPAWN_DUP2, child_out, 1),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, self._flags_fd, FLAGS_FD),
                ],
            )
        except BaseException:
            if hasattr(self, "flags"):
                self.flags.close()
            for fd in opened:
                os.close(fd)
            raise
        os.close(child_in)
        os.close(child_out)
        self.closed = False
        # Room for every chunk queued and every answer pending, so neither side ever waits for
        # the other to read while the other waits too (the default 64 kB could be filled by three
        # chunks of long paths, or by a subtree's manifest).
        try:
            import fcntl

            for fd in (self.stdin, self.stdout):
                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        except (ImportError, OSError):
            pass  # the default size: chunks stay small enough
        self.buffer = b""
        self.ready = False

    def send(self, message: tuple) -> None:
        data = marshal.dumps(message)
        view = memoryview(len(data).to_bytes(4, "little") + data)
        while view:
            view = view[os.write(self.stdin, view) :]

    def receive(self) -> list[Any] | None:
        """The whole messages that arrived (reading once), as :mod:`core.pool_worker` messages;
        None when the worker has gone."""
        try:
            data = os.read(self.stdout, 1 << 18)
        except OSError:
            return None
        if not data:
            return None
        buffer = self.buffer + data if self.buffer else data
        view = memoryview(buffer)  # messages are decoded in place, not copied out first
        messages = []
        pos = 0
        end = len(buffer)
        while end - pos >= 4:
            size = int.from_bytes(view[pos : pos + 4], "little")
            if end - pos - 4 < size:
                break
            messages.append(message_from_wire(marshal.loads(view[pos + 4 : pos + 4 + size])))
            pos += 4 + size
        self.buffer = bytes(view[pos:])
        view.release()
        return messages

    def _reap(self, timeout: float) -> bool:
        """Collect the worker's exit, waiting up to ``timeout`` seconds for it; True once it has
        ended."""
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # collected by someone else
                self.returncode = -1
                break
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(2 * delay, 0.05)
        return True

    def alive(self) -> bool:
        return not self._reap(0)

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def stopped(self) -> bool:
        """Stopped by a signal (SIGSTOP, a debugger): it would not answer a later run."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                return f.read().rpartition(b")")[2].split()[0] in (b"T", b"t")
        except (OSError, IndexError):
            return False

    def close(self, kill: bool = False) -> None:
        if kill:
            self.kill()
        if self.closed:
            return
        self.closed = True
        for fd in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                os.close(fd)  # the worker ends when its input does
        if not self._reap(2):
            self.kill()
            self._reap(60)
        self.flags.close()
        os.close(self._flags_fd)


def _flags_file() -> int:
    """A descriptor of two zero bytes shared with a worker (its flags): an anonymous memory file
    where the kernel has them (no tempfile module to import, nothing on disk), else a temporary
    file."""
    try:
        fd = os.memfd_create("zeroinstall-admin-flags", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        import tempfile

        fd, name = tempfile.mkstemp()
        os.unlink(name)
    try:
        os.write(fd, b"\0\0")
    except OSError:
        os.close(fd)
        raise
    return fd


def _key_for(niceness: int) -> tuple[int, int, int]:
    """Workers are reused only by runs at the same niceness and with the same privileges."""
    return niceness, os.geteuid(), os.getegid()


_idle: list[_Process] = []
_idle_lock = threading.Lock()


def can_use_processes() -> bool:
    return (
        os.name == "posix"
        and bool(sys.executable)
        and not getattr(sys, "frozen", False)
        and hasattr(select, "poll")
    )


def _borrow(niceness: int) -> _Process | None:
    key = _key_for(niceness)
    with _idle_lock:
        for i, worker in enumerate(_idle):
            if worker.key == key:
                del _idle[i]
                if worker.alive():
                    return worker
                worker.close()
                break
    try:
        return _Process(niceness)
    except (OSError, ValueError):
        return None


def prestart(
    jobs: int | None = None, niceness: int = 0, kind: str = "", work_here: bool = True
) -> None:
    """Start the workers of the next run now (without waiting for them), and have them load the
    code for ``kind`` ("verify" or "measure") meanwhile. Optional."""
    if not can_use_processes():
        return
    wanted = (default_jobs() if jobs is None else max(1, jobs)) - (1 if work_here else 0)
    if wanted < 1:
        return
    with _idle_lock:
        missing = wanted - sum(1 for w in _idle if w.key == _key_for(niceness))
    for _ in range(missing):
        try:
            worker = _Process(niceness, kind)
        except (OSError, ValueError):
            return
        with _idle_lock:
            _idle.append(worker)


def shutdown(kill: bool = False) -> None:
    """Stop the idle workers (they also end by themselves with this process). ``kill``: at once,
    without waiting for each to wind down (they hold nothing)."""
    with _idle_lock:
        workers = list(_idle)
        _idle.clear()
    for worker in workers:
        worker.close(kill=kill)


def idle_workers() -> list[int]:
    """The process ids of the idle workers that are still alive (for tests and benchmarks)."""
    with _idle_lock:
        gone = [w for w in _idle if not w.alive()]
        for worker in gone:
            _idle.remove(worker)
        alive = [w.pid for w in _idle]
    for worker in gone:
        worker.close()
    return alive


# At exit the idle workers are killed, not asked to end: waiting for each interpreter to wind
# down would add milliseconds to every command.
atexit.register(shutdown, kill=True)


class _LocalFlags:
    """The flags of the work done in this process: byte 0 is the cancel Event (or a failed
    callback), byte 1 says a worker is idle."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def __getitem__(self, i: int) -> int:
        if i == 0:
            return int(self.run.cancelled() or self.run.failure is not None)
        return int(self.run.local_hungry)

    def __setitem__(self, i: int, value: int) -> None:
        if i == 1:
            self.run.local_hungry = bool(value)


class _HereExecutor(Executor):
    """Runs chunks in this process while workers run theirs: between directories it answers them
    (every couple of milliseconds), so they never wait for this thread's walk to end."""

    SERVICE_S = 0.002

    def __init__(self, run: Run) -> None:
        super().__init__(run._local_out, _LocalFlags(run))
        self.run = run
        self.next_service = 0.0

    def tick(self) -> int:
        run = self.run
        now = time.monotonic()
        if now >= self.next_service and run.failure is None:
            self.next_service = now + self.SERVICE_S
            try:
                run._service(0)
                run._dispatch()
            except BaseException as exc:  # noqa: BLE001 - raised again once the chunk is over
                run.failure = exc
        return super().tick()


@dataclass(slots=True, eq=False)
class _Slot:
    """A worker in a run, with the chunks it was given and has not answered yet."""

    worker: _Process
    chunks: dict[int, dict[tuple[int, bytes], tuple]] = field(default_factory=dict)
    dead: bool = False


def _key(unit: tuple) -> tuple[int, bytes]:
    return unit[0], unit[2]  # a Unit's wire form: its number and rel


class Run:
    """One run over the pool: ``add`` units (each the wire form of a
    :class:`core.pool_worker.Unit`), then :meth:`run`. ``handle(message)`` gets every
    :class:`~core.pool_worker.Results` batch, :class:`~core.pool_worker.Given` hand-over and
    :class:`~core.pool_worker.UnitProgress` on the calling thread; it may call :meth:`add`
    (hand-overs become units) and
    :meth:`answered` is told by the caller which unit a result answers, so a dead worker's
    unanswered units are redone. ``idle()`` is called about every 50 ms."""

    def __init__(
        self,
        kind: str,
        handle: Handle,
        *,
        jobs: int | None = None,
        cancel: threading.Event | None = None,
        niceness: int = 0,
        idle: Callable[[], None] | None = None,
        work_here: bool = True,
    ) -> None:
        self.kind = kind
        self.work_here = work_here
        self.local_hungry = False  # a worker is idle: the walk here should hand work over
        self.local_busy = False
        self.poller: Any = None
        self.last_idle = 0.0
        self.handle = handle
        self.jobs = default_jobs() if jobs is None else max(1, jobs)
        self.cancel = cancel if cancel is not None else threading.Event()
        self.niceness = niceness
        self.idle = idle
        self.queue: deque[tuple] = deque()
        self.slots: dict[int, _Slot] = {}
        self.next_chunk = 0
        self.given: dict[tuple[int, bytes], list[bytes]] = {}  # handed over during a unit
        self.failure: BaseException | None = None  # raised by handle() while running here

    def add(self, units: Iterable[tuple], first: bool = False) -> None:
        if first:
            self.queue.extendleft(reversed(list(units)))
        else:
            self.queue.extend(units)

    def cancelled(self) -> bool:
        return self.cancel.is_set()

    # -- in this process -------------------------------------------------------------------------

    def _local_out(self, message: Any) -> None:
        # Called from inside a walk: an exception from the caller's code must not be taken for
        # the walk's own failure. It stops the walk (the flags say cancel) and is raised once the
        # chunk is over.
        if isinstance(message, ChunkDone) or self.failure is not None:
            return
        try:
            self.handle(message)
        except BaseException as exc:  # noqa: BLE001 - re-raised by _work_here
            self.failure = exc

    def _work_here(self, executor: Executor, workers: int) -> None:
        """One chunk in this thread."""
        self.local_busy = True
        try:
            executor.run_chunk(0, self.kind, self._take(workers))
        finally:
            self.local_busy = False
            self.local_hungry = False
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _run_here(self) -> None:
        executor = Executor(self._local_out, _LocalFlags(self))
        while self.queue and not self.cancelled():
            self._work_here(executor, 1)
            if self.idle is not None:
                self.idle()

    # -- in worker processes ---------------------------------------------------------------------

    def _wanted(self) -> int:
        """How many workers this run borrows (even for fewer units than workers: an idle worker
        takes subtrees of a busy one); 0: it runs in this thread only."""
        wanted = self.jobs - 1 if self.work_here else self.jobs
        return wanted if wanted >= 1 and can_use_processes() else 0

    def _borrow_workers(self) -> None:
        poller = self.poller = select.poll()
        for _ in range(self._wanted()):
            worker = _borrow(self.niceness)
            if worker is None:
                break
            self.slots[worker.stdout] = _Slot(worker)
            poller.register(worker.stdout, select.POLLIN)

    def start(self) -> None:
        """Optional, before :meth:`run`: borrow the workers and hand them the units added so far,
        so that they begin while the caller prepares and adds the rest. Call it again after each
        batch; :meth:`run` must follow (it gives the workers back)."""
        if self.poller is None:
            self._borrow_workers()
        if not self.slots:
            return
        try:
            self._service(0)
            self._dispatch()
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """Give back the workers :meth:`start` borrowed when :meth:`run` will not follow (the
        caller failed while preparing)."""
        self._release()

    def run(self) -> None:
        """Work until every unit (and every unit handed over) is answered, or ``cancel`` is set."""
        if self.poller is None and not self._wanted():
            self._run_here()
            return
        try:
            if self.poller is None:
                self._borrow_workers()
            if not self.slots:
                self._run_here()
                return
            self._loop(self.poller)
        finally:
            self._release()
        if not self.cancelled() and self.queue:
            self._run_here()  # every worker died: finish here

    def _live(self) -> list[_Slot]:
        return [s for s in self.slots.values() if not s.dead]

    def _take(self, workers: int) -> list[tuple]:
        size = max(1, min(MAX_CHUNK.get(self.kind, 64), len(self.queue) // (8 * workers)))
        units = []
        for _ in range(min(size, len(self.queue))):
            unit = self.queue.popleft()
            skip = self.given.get(_key(unit))
            if skip:
                named = Unit.from_wire(unit)
                unit = named._replace(skip=tuple(set(named.skip) | set(skip))).to_wire()
            units.append(unit)
        return units

    def _dispatch(self) -> None:
        live = self._live()
        for slot in live:
            if not slot.worker.ready:
                continue
            while self.queue and len(slot.chunks) < (
                PIPELINE + 1 if len(self.queue) > LONG_QUEUE else PIPELINE
            ):
                units = self._take(len(live))
                self.next_chunk += 1
                slot.chunks[self.next_chunk] = {_key(u): u for u in units}
                try:
                    slot.worker.send(Chunk(self.next_chunk, self.kind, units).to_wire())
                except OSError:
                    self._died(slot)
                    break
        # Idle workers (or this thread) and nothing queued: ask the busy ones to hand over part of
        # their work.
        idle_here = self.work_here and not self.local_busy
        hungry = not self.queue and (
            idle_here or any(s.worker.ready and not s.chunks for s in self._live())
        )
        for slot in self._live():
            if slot.chunks and hungry:
                slot.worker.flags[1] = 1
        if self.local_busy and hungry:
            self.local_hungry = True

    def _loop(self, poller: select.poll) -> None:
        here = _HereExecutor(self) if self.work_here else None
        self.last_idle = time.monotonic()
        while True:
            if self.cancelled():
                return
            self._dispatch()
            live = self._live()
            if not live:
                return
            if not self.queue and not any(s.chunks for s in live):
                return
            if here is not None and self.queue:
                # The workers have all they can take: this thread takes the next chunk, then
                # looks at what they sent without waiting (a worker that was still starting says
                # Ready; unread, it would get no work until this thread had emptied the queue).
                self._work_here(here, len(live) + 1)
                self._service(0)
                self._tick_idle()
                continue
            self._service(0.05)
            self._tick_idle()

    def _tick_idle(self) -> None:
        now = time.monotonic()
        if self.idle is not None and now - self.last_idle >= 0.05:
            self.last_idle = now
            self.idle()

    def _service(self, timeout: float) -> None:
        """Take in what the workers sent (waiting up to ``timeout`` seconds for something)."""
        for fd, _event in self.poller.poll(int(timeout * 1000)):
            slot = self.slots.get(fd)
            if slot is None or slot.dead:
                continue
            messages = slot.worker.receive()
            if messages is None:
                self.poller.unregister(fd)
                self._died(slot)
                continue
            for message in messages:
                self._message(slot, message)
                if self.cancelled():
                    return

    def _message(self, slot: _Slot, message: Any) -> None:
        if isinstance(message, ChunkDone):
            slot.chunks.pop(message.chunk, None)
            return
        if isinstance(message, Ready):
            slot.worker.ready = True
            return
        if isinstance(message, Results):
            # Which unit each result answers: its entry's number and rel (after a verify
            # result's tag: see core.verify.UnitResult and core.treewalk.Measured).
            at = 1 if self.kind == "verify" else 0
            for result in message.results:
                key = (result[at], result[at + 1])
                for units in slot.chunks.values():
                    if units.pop(key, None) is not None:
                        break
                self.given.pop(key, None)
        elif isinstance(message, Given):
            for units in slot.chunks.values():
                started = next(iter(units), None)  # the unit being walked is the first unanswered
                if started is not None:
                    self.given.setdefault(started, []).extend(s[0] for s in message.subtrees)
                    break
        self.handle(message)

    def _died(self, slot: _Slot) -> None:
        """A worker stopped answering: its unanswered units go back to the front of the queue
        (with the directories they had handed over left out)."""
        if slot.dead:
            return
        slot.dead = True
        for units in slot.chunks.values():
            self.add(units.values(), first=True)
        slot.chunks.clear()

    def _release(self) -> None:
        """Give workers back for later runs; stop the ones that do not answer a cancel soon."""
        waiting = [s for s in self.slots.values() if not s.dead and s.chunks]
        for slot in waiting:
            slot.worker.flags[0] = 1
        deadline = time.monotonic() + STOP_WAIT
        while waiting and time.monotonic() < deadline:
            fds = {s.worker.stdout: s for s in waiting}
            ready, _, _ = select.select(list(fds), [], [], max(0.0, deadline - time.monotonic()))
            for fd in ready:
                slot = fds[fd]
                messages = slot.worker.receive()
                if messages is None:
                    slot.dead = True
                    continue
                for message in messages:
                    if isinstance(message, ChunkDone):
                        slot.chunks.pop(message.chunk, None)
                    elif isinstance(message, Ready):
                        slot.worker.ready = True
            waiting = [s for s in waiting if not s.dead and s.chunks]
        for slot in self.slots.values():
            worker = slot.worker
            cancelled = self.cancelled() or self.failure is not None
            if (
                slot.dead
                or slot.chunks
                or not worker.alive()
                or worker.buffer
                or (cancelled and (not worker.ready or worker.stopped()))
            ):
                worker.close(kill=True)
                continue
            worker.flags[0] = 0
            worker.flags[1] = 0
            with _idle_lock:
                _idle.append(worker)
        self.slots.clear()
