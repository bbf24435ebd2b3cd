"""The command line's ``clean``, ``pin``, ``unpin``, ``delete``, ``optimise``: cleaning the caches (issue 10)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this group's subcommands to ``sub`` (argparse subparsers); each sets ``func``."""
