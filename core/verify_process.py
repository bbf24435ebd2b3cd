"""Verification in a child process, behind the same interface as :func:`core.verify.verify_paths`
(see :mod:`core.child` for why a window wants that).

Messages from the child: ``{"rs": [verdict, ...]}``, verdicts in batches (at most one message per
:data:`BATCH_S`: ten thousand one-line messages would keep the parent's reading thread busy), each
a :class:`Verdict` (the usual one as four plain values); ``{"p": progress}`` (a
:class:`core.verify.Progress`); ``{"w": [note, ...]}`` at the end. The child and its workers
(:mod:`core.pool`) run :data:`NICENESS` below the window. Names travel as text with surrogate
escapes, which JSON between our own processes carries losslessly (``ensure_ascii``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from core import child
from core.child import ChildError, Message, run_in_child, serve
from core.verify import Progress, verify_remembering
from core.verify_entry import VerifyOutcome

VerifyProcessError = ChildError

BATCH_S = 0.05
"""Verdicts are sent at most this often."""
NICENESS = 10
"""How much lower the workers' CPU priority is than the window's."""


class Verdict(NamedTuple):
    """One verdict as the child sends it: the entry's place in the request, and its outcome."""

    number: int  # the entry's place in the caller's list
    outcome: VerifyOutcome

    def to_wire(self) -> list[Any]:
        """The usual verdict (OK, nothing changed, the digest of the contents and of the
        ``.manifest``, if any, the one in the name) goes as four plain values, ``[index, detail,
        digest, has a .manifest]`` (and the time of the record, when judged unchanged by its
        change keys); any other as ``[index, outcome.to_wire()]``. Sending every verdict whole
        took 96 ms of the two processes' time for 10,000 entries (JSON of 3.3 MB), while both
        cores were busy verifying; this way, 17 ms."""
        index, outcome = self
        expected = outcome.expected
        if (
            outcome.status == "ok"
            and not outcome.changes
            and outcome.actual == expected
            and (outcome.recorded is None or outcome.recorded == expected)
        ):
            item = [index, outcome.detail, expected, outcome.recorded is not None]
            if outcome.unchanged_since is not None:
                item.append(outcome.unchanged_since)
            return item
        return [index, outcome.to_wire()]

    @classmethod
    def from_wire(cls, item: Sequence[Any]) -> Verdict:
        if len(item) >= 4:
            index, detail, digest, recorded, *since = item
            return cls(
                index,
                VerifyOutcome(
                    "ok", detail, digest, digest, digest if recorded else None, [], *since
                ),
            )
        index, data = item
        return cls(index, VerifyOutcome.from_wire(data))


def verify_paths_in_child(
    paths: Sequence[str | bytes],
    *,
    jobs: int | None = None,
    on_result: Callable[[int, VerifyOutcome], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_interval: float = 0.1,
    sizes: Sequence[int | None] | None = None,
    notes: list[str] | None = None,
) -> list[VerifyOutcome | None]:
    """:func:`core.verify.verify_remembering` run by a child Python process; same arguments and
    results (``notes`` receives what the user should be told, as the child sends it).

    Callbacks run on the calling thread. Raises :class:`VerifyProcessError` if the child cannot be
    started or dies; the caller may then fall back to the in-process engine.
    """
    results: list[VerifyOutcome | None] = [None] * len(paths)

    def on_message(message: Message) -> None:
        if "rs" in message:
            for item in message["rs"]:
                index, outcome = Verdict.from_wire(item)
                results[index] = outcome
                if on_result is not None:
                    on_result(index, outcome)
        elif "p" in message and on_progress is not None:
            on_progress(Progress.from_wire(message["p"]))
        elif "w" in message and notes is not None:
            notes.extend(str(note) for note in message["w"])

    request = {
        "paths": [os.fsdecode(p) for p in paths],
        "jobs": jobs,
        "interval": progress_interval,
        "sizes": None if sizes is None else list(sizes),
    }
    run_in_child(__name__, request, on_message, cancel or threading.Event())
    return results


def prestart() -> None:
    """Start the next verification's child process now, with its workers (see
    :func:`core.child.prestart`): "Verify all" then starts hashing at once."""
    child.prestart(__name__)


def _job(request: Message, send: Callable[[Message], None], cancel: threading.Event) -> None:
    pending: list[list[Any]] = []
    last_sent = time.monotonic()

    def flush() -> None:
        nonlocal last_sent
        if pending:
            send({"rs": pending[:]})
            pending.clear()
        last_sent = time.monotonic()

    def on_result(index: int, outcome: VerifyOutcome) -> None:
        pending.append(Verdict(index, outcome).to_wire())
        if time.monotonic() - last_sent >= BATCH_S:
            flush()

    def on_progress(p: Progress) -> None:
        flush()  # the verdicts so far first, so the progress never runs ahead of them
        send({"p": p.to_wire()})

    # With the verification records (core.records), as the command line's verify: entries whose
    # change keys all match are judged unchanged by a stat walk.
    notes: list[str] = []
    verify_remembering(
        request["paths"],
        notes=notes,
        jobs=request["jobs"],
        on_result=on_result,
        on_progress=on_progress,
        cancel=cancel,
        progress_interval=request["interval"],
        sizes=request.get("sizes"),
    )
    if not cancel.is_set():
        flush()
        if notes:
            send({"w": notes})


if __name__ == "__main__":
    from core import pool
    from core.lifetime import exit_now, without_collector

    # Background work: this process walks and hashes too, below the window's priority, and so
    # do its workers (they inherit it); they start while the request is awaited.
    with contextlib.suppress(AttributeError, OSError):
        os.nice(NICENESS)
    pool.prestart(kind="verify")
    without_collector()  # one job, then the process ends: see core.lifetime
    exit_now(serve(_job))
