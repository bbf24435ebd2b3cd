"""The command line's ``vm list|share|unshare`` and ``snippet``: sharing the cache with virtual machines (issue 11)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this group's subcommands to ``sub`` (argparse subparsers); each sets ``func``."""
