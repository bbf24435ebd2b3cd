"""Sizes and ages in the words people read, the same on the command line and in the window.

Two sizes are told apart everywhere: the **size** (apparent: the bytes of the files, what ``du
--apparent-size`` counts) and the **disk use** (the blocks they occupy, what removing them gives
back). Ages are humanize's natural deltas ("3 months ago"), so a 90-day-old entry reads the same
on every page and in ``list``.
"""

from __future__ import annotations

import time

SIZE_WORD = "Size"
"""The apparent size: the bytes of the files inside."""
DISK_WORD = "Disk use"
"""The blocks on disk the entry occupies: what removing it gives back."""


def size_text(size: int | None) -> str:
    """ "51 bytes", "1 byte", "1.2 MB" (humanize's decimal units, without its "51 Bytes");
    "?" when the size is not known (not measured yet)."""
    if size is None:
        return "?"
    if size < 1000:
        return f"{size:,} byte{'' if size == 1 else 's'}"
    import humanize

    return str(humanize.naturalsize(size))


def sizes_text(size: int | None, disk: int | None) -> str:
    """Both sizes, named: "499.6 kB (561.2 kB disk use)"."""
    if disk is None:
        return size_text(size)
    return f"{size_text(size)} ({size_text(disk)} {DISK_WORD.lower()})"


def gap_text(seconds: float) -> str:
    """A length of time as people say it: "44 seconds", "3 days", "1 year, 7 months"."""
    import humanize

    return str(humanize.naturaldelta(abs(seconds)))


def ago_text(seconds: float) -> str:
    """How long ago, from the seconds elapsed: "just now", "3 months ago", "1 year, 1 month
    ago" (humanize's natural delta; a time in the future counts as now)."""
    if seconds < 60:
        return "just now"
    return f"{gap_text(seconds)} ago"


def age_text(ts: float | None, now: float | None = None, *, unknown: str = "unknown") -> str:
    """How long ago a timestamp (epoch seconds) was; ``unknown`` when there is none."""
    if ts is None:
        return unknown
    return ago_text((time.time() if now is None else now) - ts)


def count_text(n: int, singular: str, plural: str | None = None) -> str:
    """ "1 entry", "2 entries", "1,234 entries": a count with its noun agreeing."""
    if plural is None:
        plural = singular[:-1] + "ies" if singular.endswith("y") else singular + "s"
    return f"{n:,} {singular if n == 1 else plural}"
