"""Verification in a child process, behind the same interface as :func:`core.verify.verify_paths`.

Why: the engine's threads spend much of their time in Python code (a few microseconds per small
file), so in a window's process they compete with the GUI thread for the interpreter lock, and the
window stalls for a tenth of a second at a time. In a child process they compete with nothing; this
process only reads one short JSON line per verdict, in a thread that is blocked in ``read`` the
rest of the time.

The protocol (private to this module, one JSON object per line):

* parent -> child: the request ``{"paths": [...], "jobs": N|null, "interval": s}``, then ``cancel``
  lines; the end of the child's input also cancels (the parent is gone).
* child -> parent: ``{"r": index, "o": outcome}`` per verdict, ``{"p": [5 numbers]}`` for progress,
  ``{"end": true}`` last, or ``{"fail": "message"}`` when the engine raised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from core.manifest import Change, VerifyOutcome
from core.verify import Progress, verify_paths

_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def outcome_to_json(outcome: VerifyOutcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "detail": outcome.detail,
        "expected": outcome.expected,
        "actual": outcome.actual,
        "recorded": outcome.recorded,
        "changes": [[c.path, c.change, list(c.what)] for c in outcome.changes],
    }


def outcome_from_json(data: dict[str, Any]) -> VerifyOutcome:
    return VerifyOutcome(
        data["status"],
        data["detail"],
        data["expected"],
        data["actual"],
        data["recorded"],
        [Change(path, change, tuple(what)) for path, change, what in data["changes"]],
    )


class VerifyProcessError(RuntimeError):
    """The child process failed: it could not start, died, or its engine raised."""


def verify_paths_in_child(
    paths: Sequence[str | bytes],
    *,
    jobs: int | None = None,
    on_result: Callable[[int, VerifyOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.1,
) -> list[VerifyOutcome | None]:
    """:func:`core.verify.verify_paths` run by a child Python process; same arguments and results.

    Callbacks run on the calling thread. Raises :class:`VerifyProcessError` if the child cannot be
    started or dies; the caller may then fall back to the in-process engine.
    """
    cancel = cancel if cancel is not None else threading.Event()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_PARENT, env.get("PYTHONPATH")]))
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "core.verify_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise VerifyProcessError(f"could not start the verifying process: {exc}") from exc
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    to_child = child.stdin
    request = {
        "paths": [os.fsdecode(p) for p in paths],
        "jobs": jobs,
        "interval": progress_interval,
    }
    results: list[VerifyOutcome | None] = [None] * len(paths)
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

    try:
        _send(to_child, json.dumps(request).encode() + b"\n")
        watcher = threading.Thread(target=tell_cancel, name="verify-child-cancel", daemon=True)
        watcher.start()
        ended = False
        for line in child.stdout:
            message = json.loads(line)
            if "r" in message:
                outcome = outcome_from_json(message["o"])
                results[message["r"]] = outcome
                if on_result is not None:
                    on_result(message["r"], outcome)
            elif "p" in message:
                if on_progress is not None:
                    on_progress(Progress(*message["p"]))
            elif "fail" in message:
                raise VerifyProcessError(message["fail"])
            elif message.get("end"):
                ended = True
                break
    finally:
        with lock:
            finished.set()
            try:
                to_child.close()
            except OSError:
                pass
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
        raise VerifyProcessError(f"the verifying process ended early: {last}")
    return results


def _send(stream: IO[bytes], data: bytes) -> None:
    try:
        stream.write(data)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass  # the child has gone (or we closed it): the read loop says why


def _child_main() -> int:
    """Runs in the child: one request in, verdicts out."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    request = json.loads(stdin.readline() or b"null")
    if request is None:
        return 0
    cancel = threading.Event()
    out_lock = threading.Lock()

    def listen() -> None:
        for line in stdin:
            if line.strip() == b"cancel":
                break
        cancel.set()  # asked to, or the parent closed our input (it may be gone)

    threading.Thread(target=listen, name="verify-child-listen", daemon=True).start()

    def write(message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with out_lock:
            stdout.write(data)
            stdout.flush()

    def on_progress(p: Progress) -> None:
        write({"p": [p.entries_done, p.entries_total, p.bytes_done, p.bytes_total, p.elapsed]})

    try:
        verify_paths(
            request["paths"],
            jobs=request["jobs"],
            on_result=lambda i, o: write({"r": i, "o": outcome_to_json(o)}),
            on_progress=on_progress,
            cancel=cancel,
            progress_interval=request["interval"],
        )
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        write({"fail": f"{type(exc).__name__}: {exc}"})
        return 1
    write({"end": True})
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
