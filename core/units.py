"""Sizes in the words people read, the same on the command line and in the window."""

from __future__ import annotations


def size_text(size: int | None) -> str:
    """ "51 bytes", "1 byte", "1.2 MB" (humanize's decimal units, without its "51 Bytes");
    "?" when the size is not known (not measured yet)."""
    if size is None:
        return "?"
    if size < 1000:
        return f"{size:,} byte{'' if size == 1 else 's'}"
    import humanize

    return str(humanize.naturalsize(size))
