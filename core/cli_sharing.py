"""The command line's ``sharing status|enable|disable|self-test|script``: enabling the shared system cache (issue 9)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this group's subcommands to ``sub`` (argparse subparsers); each sets ``func``."""
