"""The chart beside the Cache page's table (integrity, stores, the largest programs): it follows
the totals at most once a second while a run streams results, and lists fewer programs rather
than be cut off in the room the page gives it."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QWidget

from gui.overview import OverviewWidget

OVERVIEW_MS = 1000
"""The chart, at most this often while a run is going (always at its end)."""
LARGEST = 6
"""Programs listed in the chart's "largest" block: enough to spot the hogs, short enough to fit."""


class CacheChart(OverviewWidget):
    """The integrity chart, remembering its height for each width until its data or font changes.

    Qt's layouts ask a height-for-width widget for its height several times per change; the chart
    computes its whole layout each time, which under a busy verification took ~100 ms per change.
    """

    shown = Signal()  # new figures are on screen: the page may give the chart another height

    def __init__(self, parent: QWidget | None = None) -> None:
        self._heights: dict[int, int] = {}
        self.figures: tuple = ()  # (by_status, by_store, largest): the newest taken
        self._time = 0.0  # when they were taken
        self._trimmed = False  # fewer programs shown than the figures hold, to fit the room
        super().__init__(parent)

    def follow_later(self) -> None:
        """A run starts: the chart follows a little later, not at the busiest moment of the start
        (and an update still pending from the previous run is dropped)."""
        self._time = time.monotonic() - OVERVIEW_MS / 2000
        self.figures = ()

    def offer(self, figures: tuple, *, busy: bool, at_once: bool = False) -> None:
        """New totals: shown in the next turn of the event loop (``at_once``: now). The chart
        relays itself out on every change: while work streams in, every OVERVIEW_MS at most."""
        now = time.monotonic()
        if figures == self.figures or (busy and now - self._time < OVERVIEW_MS / 1000):
            return
        self.figures = figures
        self._time = now
        if at_once:
            self._show(figures)
        else:
            QTimer.singleShot(0, self, lambda: self._show(figures))

    def _show(self, figures: tuple) -> None:
        if figures is not self.figures:
            return  # newer figures were taken meanwhile
        self.set_data(*figures)
        self.shown.emit()

    def height_within(self, width: int, room: int) -> int:
        """The height the chart wants at ``width``, with fewer of the largest programs when
        all of them would take more than ``room`` (all of them again when they fit)."""
        figures = self.figures
        if figures and self._trimmed:
            self.set_data(*figures)  # all of them again: there may be room now
            self._trimmed = False
        want = self.heightForWidth(width)
        if figures and want > room:
            # Fewer of the largest programs rather than a chart cut off in the middle.
            by_status, by_store, largest = figures
            n = len(largest)
            while n > 1 and want > room:
                n -= 1
                self.set_data(by_status, by_store, largest[:n])
                self._trimmed = True
                want = self.heightForWidth(width)
        return want

    def set_data(
        self, by_status: dict[str, int], by_store: dict[str, int], largest: list[tuple[str, int]]
    ) -> None:
        self._heights = {}
        super().set_data(by_status, by_store, largest)

    def heightForWidth(self, width: int) -> int:
        height = self._heights.get(width)
        if height is None:
            height = self._heights[width] = super().heightForWidth(width)
        return height

    def changeEvent(self, event) -> None:
        self._heights = {}
        super().changeEvent(event)

    def minimumSizeHint(self):
        # The page gives the chart the height it wants (height_within); "Show details" may take
        # most of it for the details pane, leaving the chart's top (the integrity bar) in view.
        hint = super().minimumSizeHint()
        hint.setHeight(self.fontMetrics().height() * 4)
        return hint
