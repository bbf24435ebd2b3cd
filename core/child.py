"""Running a long core job in a child Python process, reporting back one JSON line at a time.

Why: the engines' threads spend much of their time in Python code, so in a window's process they
compete with the GUI thread for the interpreter lock and the window stalls for a tenth of a second
at a time. In a child process they compete with nothing; the parent only reads short JSON lines in
a thread that is blocked in ``read`` the rest of the time.

The protocol, one JSON value per line:

* parent -> child: the request (any JSON object), then ``cancel`` lines; the end of the child's
  input also cancels (the parent is gone);
* child -> parent: the job's own messages, then ``{"end": true}``, or ``{"fail": "message"}`` when
  the job raised.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)

Message = dict[str, Any]


class ChildError(RuntimeError):
    """The child process failed: it could not start, died, or its job raised."""


def run_in_child(
    module: str,
    request: Message,
    on_message: Callable[[Message], None],
    cancel: threading.Event,
) -> None:
    """Run ``python -m module`` (whose main calls :func:`serve`), send it ``request`` and pass each
    message it sends to ``on_message`` on this thread. Setting ``cancel`` asks the child to stop.
    Raises :class:`ChildError` if the child cannot start, dies, or reports a failure."""
    child = _take_prestarted(module) or _spawn(module)
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    to_child = child.stdin
    lock = threading.Lock()
    finished = threading.Event()

    def tell_cancel() -> None:
        # Wakes on cancel or when the run is over; only the former is passed on.
        while not finished.is_set():
            if cancel.wait(0.05):
                with lock:
                    if not finished.is_set():
                        _send(to_child, b"cancel\n")
                return

    ended = False
    try:
        _send(to_child, json.dumps(request).encode() + b"\n")
        threading.Thread(target=tell_cancel, name=f"{module}-cancel", daemon=True).start()
        for line in child.stdout:
            message = json.loads(line)
            if message.get("end") is True:
                ended = True
                break
            if "fail" in message:
                raise ChildError(message["fail"])
            on_message(message)
    finally:
        with lock:
            finished.set()
            with contextlib.suppress(OSError):
                to_child.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        errors = child.stderr.read().decode("utf-8", "replace").strip()
        child.stdout.close()
        child.stderr.close()
    if not ended:
        last = errors.splitlines()[-1] if errors else f"exit code {child.returncode}"
        raise ChildError(f"the {module} process ended early: {last}")


def _spawn(module: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise ChildError(f"could not start the {module} process: {exc}") from exc


_prestarted: dict[str, subprocess.Popen[bytes]] = {}
_prestarted_lock = threading.Lock()


def prestart(module: str) -> None:
    """Start a child for ``module`` now, so that the next :func:`run_in_child` for it does not wait
    for Python to start and import the job's modules (a few tenths of a second). The child waits
    for its request; it ends by itself when this process does. Optional; failures are ignored
    (run_in_child then tries again and reports)."""
    with _prestarted_lock:
        if module in _prestarted and _prestarted[module].poll() is None:
            return
        with contextlib.suppress(ChildError):
            _prestarted[module] = _spawn(module)


def _stop_prestarted() -> None:
    with _prestarted_lock:
        children = list(_prestarted.values())
        _prestarted.clear()
    for child in children:
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()  # no request: the child ends
        try:
            child.wait(timeout=2)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


atexit.register(_stop_prestarted)


def _take_prestarted(module: str) -> subprocess.Popen[bytes] | None:
    with _prestarted_lock:
        child = _prestarted.pop(module, None)
    if child is not None and child.poll() is None:
        return child
    return None


def _send(stream: IO[bytes], data: bytes) -> None:
    try:
        stream.write(data)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass  # the child has gone (or we closed it): the read loop says why


def _read_line(fd: int, pending: bytes) -> tuple[bytes, bool, bytes]:
    """(line without its newline, whether one was found before the end of input, what follows)."""
    while b"\n" not in pending:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            return pending, False, b""
        pending += chunk
    line, _, rest = pending.partition(b"\n")
    return line, True, rest


def serve(job: Callable[[Message, Callable[[Message], None], threading.Event], None]) -> int:
    """The child's side: read the request, run ``job(request, send, cancel)``, report the end.

    ``send`` may be called from any thread. Returns the process exit code.
    """
    # Input is read from the file descriptor, never through sys.stdin: a daemon thread blocked in
    # sys.stdin's buffer holds its lock, and closing it at exit then aborts the interpreter after a
    # second ("could not acquire lock ... at interpreter shutdown").
    stdout = sys.stdout.buffer
    first, _, rest = _read_line(0, b"")
    request = json.loads(first or b"null")
    if request is None:
        return 0
    cancel = threading.Event()
    out_lock = threading.Lock()

    def listen() -> None:
        pending = rest
        while True:
            line, found, pending = _read_line(0, pending)
            if not found or line.strip() == b"cancel":
                break
        cancel.set()  # asked to, or the parent closed our input (it may be gone)

    threading.Thread(target=listen, name="child-listen", daemon=True).start()

    def send(message: Message) -> None:
        data = json.dumps(message).encode() + b"\n"
        with out_lock:
            stdout.write(data)
            stdout.flush()

    try:
        job(request, send, cancel)
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        send({"fail": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"end": True})
    return 0
