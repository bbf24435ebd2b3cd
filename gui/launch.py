"""The ``zeroinstall-admin`` entry point.

A subcommand (``digest``, ``list``, ``verify``...) runs the command line in ``core`` without ever
loading Qt, so it starts fast and works with no display; anything else opens the window.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def _is_command(args: Sequence[str]) -> bool:
    from core.cli import COMMANDS

    return bool(args) and (args[0] in COMMANDS or args[0] in ("-h", "--help"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if _is_command(args):
        from core.cli import main as cli_main

        return cli_main(args)
    from gui.app import main as gui_main

    return gui_main(args)


def run() -> None:
    """The installed command: :func:`main`, then the process ends. A subcommand ends at once
    (:mod:`core.lifetime` says what each of its tricks saves); the window ends the usual way,
    after Qt has cleaned up."""
    from core import lifetime

    lifetime.import_dataclasses()  # before anything imports it the usual way
    args = sys.argv[1:]
    if args[:1] in (["list"], ["verify"]):
        # Both work on the worker pool: its worker starts now, while the command line is
        # imported, rather than after (it takes as long to start as that import takes).
        from core import pool

        pool.prestart(kind="measure" if args[0] == "list" else "verify")
    if not _is_command(args):
        sys.exit(main(args))
    lifetime.without_collector()
    lifetime.exit_now(main(args))


if __name__ == "__main__":
    run()
