"""How a short-lived process of ours ends: a command, or a child doing one job for the window.

Such a process keeps what it makes until it ends, so two things the interpreter does for long-lived
programs are only cost here: the cyclic garbage collector's passes over everything made so far
(they free nothing; in a list of 10,000 entries they took 6% of the time), and freeing every object
one by one at exit (after listing 10,000 entries, longer than measuring a tenth of them).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


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
