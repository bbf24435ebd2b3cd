"""0install's version order, for "the K newest versions of a program".

A version is dotted lists of numbers joined by modifiers: ``1.2-pre3`` < ``1.2-rc1`` < ``1.2`` <
``1.2-1`` < ``1.2-post`` (0install's ``Versions.parse_version``). Text that is not a version sorts
before every version, so it is never taken for the newest.
"""

from __future__ import annotations

import functools
import re

_DOTTED = re.compile(r"\d+(\.\d+)*")
_MODIFIERS = (("pre", 0), ("rc", 1), ("post", 3))


def _numbers(text: str) -> tuple[int, ...] | None:
    if text == "":
        return ()
    if not _DOTTED.fullmatch(text):
        return None
    return tuple(int(n) for n in text.split("."))


@functools.cache
def version_key(version: str) -> tuple:
    """A key that sorts versions as 0install does; malformed versions sort first."""
    parts = version.split("-")
    first = _numbers(parts[0])
    if first is None or not parts[0]:
        return (0, version)
    key: list[tuple] = [first]
    for part in parts[1:]:
        rank = 2
        for word, r in _MODIFIERS:
            if part.startswith(word):
                part, rank = part[len(word) :], r
                break
        numbers = _numbers(part)
        if numbers is None:
            return (0, version)
        key.append((rank, numbers))
    key.append((2, ()))
    return (1, tuple(key))
