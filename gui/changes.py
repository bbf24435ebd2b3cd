"""One path for "the cache changed": every page hears about every change the app (or the command
line, through the action log) makes, and brings itself up to date.

A page that changes the stores or what protects their entries (clean, delete, quarantine,
optimise, pin, sharing) emits its ``cacheChanged`` signal with a :class:`CacheChange`; the main
window relays it to every page's ``cache_changed(change)``, the page that made it included. The
Cache page drops removed rows in place (and rescans when it cannot tell what changed); Clean up
judges again; the action log is re-read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

REMOVED = "removed"
"""Entries are gone from their stores (deleted, cleaned, quarantined)."""
PINNED = "pinned"
"""Pins changed: what is kept changed, the stores did not."""
MODIFIED = "modified"
"""Entries changed in place (optimised: files hard-linked)."""
STORES = "stores"
"""Something about the stores themselves changed (sharing enabled or disabled): look again."""


@dataclass(frozen=True)
class CacheChange:
    """What changed: ``kind`` (one of the constants above) and the paths of the entries affected
    (empty when not known: look at everything again)."""

    kind: str
    paths: frozenset[str] = field(default_factory=frozenset)
    source: str = ""  # the page id that made the change ("" for the command line)

    @classmethod
    def of(cls, kind: str, paths: Iterable[str] = (), source: str = "") -> CacheChange:
        return cls(kind, frozenset(paths), source)
