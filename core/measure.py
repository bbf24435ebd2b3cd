"""Measuring cache entries: size, disk use, file count and last use, never following a symlink.

Moved out of :mod:`core.cache` (which re-exports :func:`measure`, :func:`measure_all`,
:func:`prepare_measuring` and :func:`shutdown_helpers`, so existing imports keep working).
"""

from __future__ import annotations

import ast
import atexit
import errno
import mmap
import os
import select
import subprocess
import sys
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.cache import Entry, Usage

# The walker is kept as source text so that the helper processes run exactly the same code without
# importing this module (dataclasses, re, expat...): a helper that needs nothing but ``os`` starts
# in a few milliseconds, which matters when ``du`` itself takes a tenth of a second.
_WALKER_SOURCE = r'''
import errno
import os

_NOENT = errno.ENOENT
_DIR_FLAGS = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_CLOEXEC", 0))
# Listing an open directory makes each lstat relative to it (fstatat: about 10% faster than full
# paths) and O_NOFOLLOW refuses a directory swapped for a symlink after it was listed.
_BY_FD = os.scandir in os.supports_fd and hasattr(os, "O_NOFOLLOW")


def _walk(top, is_root, on_dir, give, skip=None):
    """Measure one unit of work: a whole entry (is_root) or the contents of one directory in it.

    Returns [size, blocks, files, newest, problems, links], or None when on_dir() said stop.
    Files with several hard links go in links {(dev, ino): (size, blocks, counted)} instead of the
    sums, so that the caller counts each once per entry even when the entry was measured in
    several units. problems maps (what, why) to a count. top and the paths are bytes.

    on_dir() is called before each directory is read: 0 means go on; 1 means others are idle, so
    the oldest half of the stack (the biggest subtrees left) is handed to give() -- those
    directories' own sizes are already counted here; 2 means stop. Directories in skip are
    counted but not entered. Never follows a symlink: lstat and d_type only.
    """
    size = blocks = files = 0
    newest = float("-inf")
    problems = {}
    links = {}
    if is_root:
        try:
            st = os.lstat(top)
        except OSError as exc:
            why = "it disappeared before it could be measured" if exc.errno == _NOENT else (
                "it cannot be examined: " + (exc.strerror or str(exc)))
            return [0, 0, 0, None, {("top", why): 1}, links]
        size = st.st_size
        blocks = st.st_blocks
        kind = st.st_mode & 0o170000
        if kind != 0o040000:
            # A top-level symlink or file: the thing itself, never its target.
            counted = kind == 0o100000 or kind == 0o120000
            # Last use comes from regular files only: reading a symlink (as verifying does) moves
            # its atime, and there is no O_NOATIME for readlink.
            atime = st.st_atime if kind == 0o100000 else None
            return [size, blocks, int(counted), atime, problems, links]
    stack = [top]
    scandir = os.scandir
    fsencode = os.fsencode
    while stack:
        signal = on_dir()
        if signal:
            if signal == 2:
                return None
            if len(stack) > 1:
                half = len(stack) // 2
                give(stack[:half])
                del stack[:half]
        folder = stack.pop()
        fd = -1
        try:
            if _BY_FD:
                fd = os.open(folder, _DIR_FLAGS)
                it = scandir(fd)
            else:
                it = scandir(folder)
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            if exc.errno == _NOENT:
                key = ("gone", "")
            elif exc.errno in (errno.ELOOP, errno.ENOTDIR):  # now a symlink or a file
                key = ("swapped", "")
            else:
                key = ("dir", exc.strerror or str(exc))
            problems[key] = problems.get(key, 0) + 1
            continue
        prefix = folder + b"/"
        try:
            with it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError as exc:
                        key = ("gone", "") if exc.errno == _NOENT else (
                            "entry", exc.strerror or str(exc))
                        problems[key] = problems.get(key, 0) + 1
                        continue
                    kind = st.st_mode & 0o170000
                    if kind == 0o040000:  # a directory (from lstat: a symlink never is one)
                        size += st.st_size
                        blocks += st.st_blocks
                        sub = prefix + fsencode(e.name) if _BY_FD else e.path
                        if skip is None or sub not in skip:
                            stack.append(sub)
                        continue
                    counted = kind == 0o100000 or kind == 0o120000  # regular file or symlink
                    if kind == 0o100000:  # last use from regular files only, as at the top
                        atime = st.st_atime
                        if atime > newest:
                            newest = atime
                    if st.st_nlink > 1:
                        links[st.st_dev, st.st_ino] = (st.st_size, st.st_blocks, counted)
                        continue
                    size += st.st_size
                    blocks += st.st_blocks
                    if counted:
                        files += 1
        except OSError as exc:  # reading the directory failed part-way
            key = ("dir", exc.strerror or str(exc))
            problems[key] = problems.get(key, 0) + 1
        finally:
            if fd >= 0:
                os.close(fd)
    return [size, blocks, files, newest if newest != float("-inf") else None, problems, links]


def _encode_result(result):
    """One line for a result: "r size blocks files atime" in the common case, else "R <repr>"."""
    size, blocks, files, newest, problems, links = result
    if problems or links:
        return b"R " + repr(result).encode() + b"\n"
    return b"r %d %d %d %r\n" % (size, blocks, files, newest)


def _helper_main(flags_fd):
    """A helper process. Units arrive on stdin as b"R" (a whole entry) or b"D" (a directory's
    contents) + path + NUL; each gets one answer line on stdout, after "G <repr of paths>" lines
    for any work it hands back. Byte 0 of the shared file flags_fd is 1 while others are idle."""
    import mmap
    import sys

    flags = mmap.mmap(flags_fd, 1)
    out = sys.stdout.buffer

    def on_dir():
        return flags[0]

    def give(paths):
        out.write(b"G " + repr(paths).encode() + b"\n")
        out.flush()
        flags[0] = 0  # once is enough: the parent raises the flag again if still short of work

    out.write(b"ready\n")
    out.flush()
    pending = b""
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return
        *units, pending = (pending + chunk).split(b"\0")
        for unit in units:
            out.write(_encode_result(_walk(unit[1:], unit[:1] == b"R", on_dir, give)))
            out.flush()
'''

_walker: dict[str, object] = {}
exec(compile(_WALKER_SOURCE, "<core.cache walker>", "exec"), _walker)  # noqa: S102 - our own code
_walk: Callable[..., list | None] = _walker["_walk"]  # type: ignore[assignment]


def _go_on() -> int:
    return 0


def _decode_result(line: bytes) -> list:
    if line.startswith(b"r "):
        _, size, blocks, files, newest = line.split()
        return [
            int(size),
            int(blocks),
            int(files),
            None if newest == b"None" else float(newest),
            {},
            {},
        ]
    return ast.literal_eval(line[2:].decode())


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
    on_dir = _go_on if cancel is None else (lambda: 2 if cancel.is_set() else 0)
    result = _walk(root, True, on_dir, None)
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


def _default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- helper processes ---


class _HelperProcess:
    """One ``python -I -S`` process running the walker; kept for later calls once started."""

    def __init__(self) -> None:
        self._flags_file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the helper
        self._flags_file.write(b"\0")
        self._flags_file.flush()
        fd = self._flags_file.fileno()
        self.flags = mmap.mmap(fd, 1)
        code = _WALKER_SOURCE + f"\n_helper_main({fd})\n"
        # -I: ignore PYTHON* variables, the user site and the current directory; -S: no
        # site-packages. The walker needs nothing but os, so the helper starts in milliseconds.
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            pass_fds=(fd,),
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are PIPEs
        self.stdin_pipe, self.stdout_pipe = self.proc.stdin, self.proc.stdout
        self.stdin = self.stdin_pipe.fileno()
        self.stdout = self.stdout_pipe.fileno()
        self.ready = False
        self.buffer = b""  # output read but not yet a whole line

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.stdin, view) :]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, kill: bool = False) -> None:
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.stdin_pipe.close()  # the helper ends when its input does
        except OSError:
            pass
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stdout_pipe.close()
        self.flags.close()
        self._flags_file.close()


_idle_helpers: list[_HelperProcess] = []
_helpers_lock = threading.Lock()


def _can_use_helpers() -> bool:
    return (
        os.name == "posix"
        and bool(sys.executable)
        and not getattr(sys, "frozen", False)
        and hasattr(select, "poll")
    )


def _borrow_helper() -> _HelperProcess | None:
    with _helpers_lock:
        while _idle_helpers:
            helper = _idle_helpers.pop()
            if helper.alive():
                return helper
            helper.close()
    try:
        return _HelperProcess()
    except (OSError, ValueError):
        return None


def prepare_measuring(jobs: int | None = None) -> None:
    """Start measure_all's helper processes now (without waiting for them), so that a
    measure_all soon after runs at full speed from its first entry. Optional."""
    if not _can_use_helpers():
        return
    wanted = (_default_jobs() if jobs is None else max(1, jobs)) - 1
    with _helpers_lock:
        missing = wanted - len(_idle_helpers)
    for _ in range(missing):
        try:
            helper = _HelperProcess()
        except (OSError, ValueError):
            return
        with _helpers_lock:
            _idle_helpers.append(helper)


def shutdown_helpers() -> None:
    """Stop the idle measuring helper processes (they also end by themselves with this process)."""
    with _helpers_lock:
        helpers = list(_idle_helpers)
        _idle_helpers.clear()
    for helper in helpers:
        helper.close()


atexit.register(shutdown_helpers)


_Unit = tuple[int, bytes, bool]  # entry index, path, whole entry (else a directory's contents)


@dataclass(slots=True, eq=False)
class _Slot:
    """A helper process as one measure_all call uses it."""

    helper: _HelperProcess
    sent: deque[_Unit] = field(default_factory=deque)  # in the order the answers will come
    given: set[bytes] = field(default_factory=set)  # handed back during the current unit
    dead: bool = False


class _Run:
    """One measure_all call: the calling thread walks entries itself and, between directories,
    feeds helper processes from the same queue and collects their answers. A single thread, so
    no lock and no fight for the GIL; each helper always has a unit queued behind the one it is
    walking, so it never waits for this thread. When the queue runs dry the idle side asks the
    busy ones to hand over half of what they have left, so one big entry does not finish alone."""

    PIPELINE = 2  # units sent ahead to each helper
    SERVICE_EVERY = 16  # directories walked here between two looks at the helpers

    def __init__(
        self,
        entries: list[Entry],
        on_result: Callable[[Entry, Usage], None],
        cancel: threading.Event | None,
        walk_here: bool = True,
    ):
        self.entries = entries
        self.tallies = [_Tally() for _ in entries]
        self.units: deque[_Unit] = deque(
            (i, os.fsencode(e.path), True) for i, e in enumerate(entries)
        )
        # Units only this thread may walk: the rest of a unit a dead helper had started.
        self.local: deque[tuple[_Unit, set[bytes]]] = deque()
        self.on_result = on_result
        self.cancel = cancel
        self.walk_here = walk_here
        self.slots: dict[int, _Slot] = {}  # by the helper's stdout fd
        self.poller = select.poll()
        self.hungry = False
        self.walking = False
        self.countdown = self.SERVICE_EVERY

    # --- helpers

    def start_helpers(self, count: int) -> None:
        for _ in range(count):
            helper = _borrow_helper()
            if helper is None:
                break
            self.slots[helper.stdout] = _Slot(helper)
            self.poller.register(helper.stdout, select.POLLIN)

    def _busy_helpers(self) -> bool:
        return any(slot.sent for slot in self.slots.values() if not slot.dead)

    def _update_hungry(self) -> None:
        idle_helper = any(s.helper.ready and not s.sent and not s.dead for s in self.slots.values())
        hungry = not self.units and not self.local and (idle_helper or not self.walking)
        if hungry or hungry != self.hungry:  # helpers lower their flag after handing work over
            self.hungry = hungry
            for slot in self.slots.values():
                if not slot.dead:
                    slot.helper.flags[0] = hungry

    def _dispatch(self) -> None:
        for slot in self.slots.values():
            if slot.dead or not slot.helper.ready:
                continue
            while self.units and len(slot.sent) < self.PIPELINE:
                unit = self.units.popleft()
                slot.sent.append(unit)
                try:
                    slot.helper.send((b"R" if unit[2] else b"D") + unit[1] + b"\0")
                except OSError:
                    self._died(slot)
                    break
        self._update_hungry()

    def service(self, timeout: float) -> None:
        """Send work to ready helpers, then take in what they answered (waiting up to timeout)."""
        self._dispatch()
        if not self.slots:
            return
        for fd, _event in self.poller.poll(int(timeout * 1000)):
            slot = self.slots[fd]
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self._died(slot)
                continue
            lines = (slot.helper.buffer + data).split(b"\n")
            slot.helper.buffer = lines.pop()
            for line in lines:
                if not self._answer(slot, line):
                    self._died(slot)
                    break
        self._dispatch()

    def _answer(self, slot: _Slot, line: bytes) -> bool:
        try:
            if line == b"ready":
                slot.helper.ready = True
            elif line.startswith(b"G ") and slot.sent:
                paths = ast.literal_eval(line[2:].decode())
                slot.given.update(paths)
                self._give(slot.sent[0][0], paths)
            elif line[:2] in (b"r ", b"R ") and slot.sent:
                result = _decode_result(line)
                unit = slot.sent.popleft()
                slot.given.clear()
                self._finish(unit[0], result)
            else:
                return False
        except (ValueError, SyntaxError):
            return False
        return True

    def _died(self, slot: _Slot) -> None:
        """A helper stopped answering: its units go back to the queue, the one it had started to
        this thread minus the directories it had already handed back."""
        if slot.dead:
            return
        slot.dead = True
        self.poller.unregister(slot.helper.stdout)
        if slot.sent:
            self.local.append((slot.sent.popleft(), set(slot.given)))
            self.units.extendleft(reversed(slot.sent))
            slot.sent.clear()

    # --- bookkeeping

    def _give(self, index: int, paths: list[bytes]) -> None:
        self.tallies[index].pending += len(paths)
        self.units.extend((index, path, False) for path in paths)

    def _finish(self, index: int, result: list) -> None:
        tally = self.tallies[index]
        tally.add(result)
        tally.pending -= 1
        if tally.pending == 0 and not self.cancelled():
            self.on_result(self.entries[index], tally.usage())

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    # --- this thread's share

    def _on_dir(self) -> int:
        self.countdown -= 1
        if self.countdown <= 0:
            self.countdown = self.SERVICE_EVERY
            if self.cancelled():
                return 2
            if self.slots:
                self.service(0)
        # Split when a helper waits for work (it gets the handed-over half at the next service).
        return 1 if self.hungry and not self.units else 0

    def run(self) -> None:
        while not self.cancelled():
            self.service(0)
            live_helpers = any(not s.dead for s in self.slots.values())
            if self.local:
                (index, path, is_root), skip = self.local.popleft()
            elif self.units and (self.walk_here or not live_helpers):
                index, path, is_root = self.units.popleft()
                skip = None
            elif self._busy_helpers() or (self.units and live_helpers):
                self.walking = False
                self._update_hungry()
                self.service(0.05)  # the timeout keeps a cancel noticed
                continue
            else:
                return  # everything measured
            self.walking = True
            self._update_hungry()
            try:
                result = _walk(
                    path, is_root, self._on_dir, lambda p, i=index: self._give(i, p), skip
                )
            except Exception as exc:  # noqa: BLE001 - a bug must not stop a scan; say what happened
                result = [0, 0, 0, None, {("top", f"it could not be measured: {exc}"): 1}, {}]
            if result is None:
                return  # cancelled
            self._finish(index, result)

    def close(self) -> None:
        """Give idle helpers back for later calls; stop those still busy (cancel or error)."""
        for slot in self.slots.values():
            helper = slot.helper
            if slot.dead or slot.sent or not helper.alive():
                helper.close(kill=True)
                continue
            helper.flags[0] = 0
            with _helpers_lock:
                _idle_helpers.append(helper)
        self.slots.clear()


def measure_all(
    entries: Iterable[Entry],
    on_result: Callable[[Entry, Usage], None],
    cancel: threading.Event | None = None,
    jobs: int | None = None,
) -> None:
    """Measure every entry, calling ``on_result(entry, usage)`` as each one is done.

    ``on_result`` is called in the calling thread (run this in a worker thread of a GUI), and it
    should store the result (``entry.usage = usage``) itself. Setting ``cancel`` from another
    thread stops promptly (within a few directories' work) and the entries not reported by then
    stay unmeasured; nothing is reported after ``cancel`` is set.

    ``jobs`` (default: the usable CPUs) counts this thread plus ``jobs - 1`` helper processes.
    Helpers start while this thread already measures, and are kept for later calls.
    """
    todo = list(entries)
    if not todo:
        return
    jobs = _default_jobs() if jobs is None else max(1, jobs)
    run = _Run(todo, on_result, cancel)
    try:
        if jobs > 1 and _can_use_helpers():
            run.start_helpers(jobs - 1)
        run.run()
    finally:
        run.close()
