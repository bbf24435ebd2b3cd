"""The start-up and exit tricks of our short-lived processes, gathered here, each with what it
saves, measured (a command, or a child doing one job for the window; the window itself only
uses :func:`import_dataclasses`).

Measured on 2026-12-07, Python 3.11, CPU time (process and children, median of 30 interleaved
runs) of ``zeroinstall-admin list --json``, with and without each trick:

* :func:`import_dataclasses`: 5.5 ms per start (``import dataclasses`` alone: 22.4 ms CPU with
  its :mod:`inspect`, 16.9 ms without); ``list --json`` on an empty store 67 -> 72 ms without it.
* :func:`exit_now`: 27 ms on a ``list --json`` of 10,000 entries (339 -> 365 ms without it),
  5 ms on an empty store: the interpreter frees every object one by one at exit.
* :func:`without_collector`: the cyclic collector's passes over everything made so far free
  nothing in such a process; in a list of 10,000 entries they took 6% of the time.

Kept in the command groups (``core/cli_*.py``, each imported only for its own commands and for
``--help``): a command imports the modules of its own work inside its function, so that one command
does not load the rest of its group's (importing a group's modules at once costs 27-42 ms of CPU:
29 ms for ``vm``, 41 ms for the clean-up commands, 30 ms for ``sharing``, 27 ms for
``maintenance``). What every command has loaded anyway (``core.cli_common``, ``core.display``,
the standard library) is imported at the top of the module.

Tricks measured and dropped for saving under 5 ms: argparse's own width lookup (it imports
:mod:`shutil`: 2-3 ms), a private ``TYPE_CHECKING`` in modules that import :mod:`typing` anyway
by the time they run. Kept elsewhere, for the worker pool only: :mod:`core.pool_worker` and
:mod:`core.treewalk` never import :mod:`typing` (7.5 ms, most of a measuring worker's start-up).
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn


def import_dataclasses() -> None:
    """Import :mod:`dataclasses` without the :mod:`inspect` it imports, which is most of its cost
    (ast, dis, tokenize...). Call it first thing, before anything imports dataclasses.

    dataclasses uses inspect in one place: the signature it writes into the docstring of a class
    that has none. So it is imported with a stand-in for inspect, which imports the real one the
    first time anything is asked of it: nothing changes but when inspect is loaded. The stand-in
    is in ``sys.modules`` only during this import; everyone else gets the real module."""
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
    ``atexit._run_exitfuncs`` is CPython's own (what a normal exit calls; private, but there since
    Python 3.0): :func:`os._exit` alone would skip the handlers. Call it only from the main
    thread, with every other thread a daemon, as in ours."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            code = code or 1  # a reader that went away: as a broken pipe during the command
    os._exit(code)
