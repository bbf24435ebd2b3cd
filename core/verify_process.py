"""Verification in a child process, behind the same interface as :func:`core.verify.verify_paths`
(see :mod:`core.child` for why a window wants that).

Messages from the child: ``{"r": index, "o": outcome}`` per verdict, ``{"p": [5 numbers]}`` for
progress.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from core.child import ChildError, Message, run_in_child, serve
from core.manifest import Change, VerifyOutcome
from core.verify import Progress, verify_paths

VerifyProcessError = ChildError


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
    results: list[VerifyOutcome | None] = [None] * len(paths)

    def on_message(message: Message) -> None:
        if "r" in message:
            outcome = outcome_from_json(message["o"])
            results[message["r"]] = outcome
            if on_result is not None:
                on_result(message["r"], outcome)
        elif "p" in message and on_progress is not None:
            on_progress(Progress(*message["p"]))

    request = {
        "paths": [os.fsdecode(p) for p in paths],
        "jobs": jobs,
        "interval": progress_interval,
    }
    run_in_child(__name__, request, on_message, cancel or threading.Event())
    return results


def _job(request: Message, send: Callable[[Message], None], cancel: threading.Event) -> None:
    def on_progress(p: Progress) -> None:
        send({"p": [p.entries_done, p.entries_total, p.bytes_done, p.bytes_total, p.elapsed]})

    verify_paths(
        request["paths"],
        jobs=request["jobs"],
        on_result=lambda i, o: send({"r": i, "o": outcome_to_json(o)}),
        on_progress=on_progress,
        cancel=cancel,
        progress_interval=request["interval"],
    )


if __name__ == "__main__":
    sys.exit(serve(_job))
