"""Pin and Unpin on the Cache page: two entries of the page's menus, each enabled when a selected
entry can be pinned (or unpinned), and the change written to the pins file (:mod:`core.pins`),
which the Clean up page's Pin writes the same way. Every page hears of it through the page's
``cacheChanged``."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from core import pins
from core.units import count_text
from gui.actions import make_action
from gui.changes import PINNED, CacheChange

if TYPE_CHECKING:
    from gui.cache_page import CachePage


class PinActions(QObject):
    """The Cache page's Pin and Unpin, for the selected entries that have a digest."""

    def __init__(self, page: CachePage, env: Mapping[str, str] | None = None) -> None:
        super().__init__(page)
        self.page = page
        self._env = None if env is None else dict(env)
        self.pin = make_action(
            page,
            "&Pin",
            "Keep the selected entries forever: Clean up and Delete never remove them",
            lambda: self.pin_selected(True),
        )
        self.unpin = make_action(
            page,
            "U&npin",
            "Let Clean up judge the selected entries again",
            lambda: self.pin_selected(False),
        )

    def _rows(self) -> list:
        return [r for r in self.page.selected_rows() if r.entry.digest is not None]

    def pin_selected(self, on: bool) -> None:
        """Pin (or unpin) the selected entries by digest; every page hears of it."""
        page = self.page
        rows = self._rows()
        if not rows:
            return
        try:
            targets = [("entry", r.entry.name) for r in rows]
            current, changed = pins.set_pinned(targets, on, self._env)
        except pins.PinError as exc:
            page.banner.add_message(str(exc), "error")
            return
        word = "Pinned" if on else "Unpinned"
        page.activity.message(f"{word} {count_text(len(changed), 'entry')} ({current.path})")
        if changed:
            page.cacheChanged.emit(
                CacheChange.of(PINNED, [r.entry.path for r in rows], source=page.page_id)
            )
        self.update()

    def update(self) -> None:
        """Pin for entries not pinned yet, Unpin for pinned ones (by digest)."""
        rows = self._rows()
        pinned: set[str] = set()
        if rows:
            # An unreadable pins file is said when pinning; meanwhile nothing counts as pinned.
            with contextlib.suppress(pins.PinError):
                pinned = set(pins.load(pins.pins_path(self._env)).entries)
        self.pin.setEnabled(any(r.entry.name not in pinned for r in rows))
        self.unpin.setEnabled(any(r.entry.name in pinned for r in rows))
