"""How a short-lived process of ours starts and ends: a command, or a child doing one job for the
window.

Such a process keeps what it makes until it ends, so two things the interpreter does for long-lived
programs are only cost here: the cyclic garbage collector's passes over everything made so far
(they free nothing; in a list of 10,000 entries they took 6% of the time), and freeing every object
one by one at exit (after listing 10,000 entries, longer than measuring a tenth of them). And its
start-up is a good part of a short command's time: see :func:`import_dataclasses`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # (not typing's: this runs before a command's imports)
if TYPE_CHECKING:
    from typing import NoReturn


def import_dataclasses() -> None:
    """Import :mod:`dataclasses` without the :mod:`inspect` it imports, which is most of its cost
    (ast, dis, tokenize...: 5 ms, a tenth of ``list``'s start-up before measuring begins).

    dataclasses uses inspect in one place: the signature it writes into the docstring of a class
    that has none (ours all have one). So it is imported with a stand-in for inspect, which
    imports the real one the first time anything is asked of it: nothing changes but when inspect
    is loaded. The stand-in is in ``sys.modules`` only during this import; everyone else gets the
    real module."""
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return
    import types

    class _Inspect(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            import importlib

            return getattr(importlib.import_module("inspect"), name)

    stand_in = _Inspect("inspect")
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401 - imported for what follows
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]


def without_collector() -> None:
    """Turn the cyclic garbage collector off for the rest of this process. Reference counting
    still frees everything as usual; only reference cycles wait for the process to end."""
    import gc

    gc.disable()


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` without the interpreter's tear-down.

    The exit handlers run (idle workers are stopped, a VBoxManage still running is killed) and
    both standard streams are flushed, as at a normal exit; only freeing each object is skipped.
    Call it only from the main thread, with every other thread a daemon, as in ours."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            code = code or 1  # a reader that went away: as a broken pipe during the command
    os._exit(code)
