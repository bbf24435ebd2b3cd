"""The ``zeroinstall-admin`` entry point.

A subcommand (``digest``, ``list``, ``verify``...) runs the command line in ``core`` without ever
loading Qt, so it starts fast and works with no display; anything else opens the window.
"""

from __future__ import annotations

import sys
from typing import Sequence

from core.cli import SUBCOMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] and (args[0] in SUBCOMMANDS or args[0] in ("-h", "--help")):
        from core.cli import main as cli_main

        return cli_main(args)
    from gui.app import main as gui_main

    return gui_main(args)


if __name__ == "__main__":
    sys.exit(main())
