"""The strip under the toolbar: how many entries, how big, and how many in each status.

Each count is a button that filters the table to that status; corrupt and suspicious counts are
painted in their status colour with white bold text so that nobody scrolls past them, and a
"problems only" button shows corrupt, suspicious and unreadable entries in one click.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from core.units import size_text
from gui import status as st
from gui.cache_model import CacheStats

_LOUD = (st.CORRUPT, st.SUSPICIOUS, st.ERROR)


class SummaryStrip(QWidget):
    statusClicked = Signal(str)  # a status word
    problemsClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(6)
        self._totals = QLabel("No entries yet", self)
        self._totals.setAccessibleName("Cache totals")
        font = self._totals.font()
        font.setBold(True)
        self._totals.setFont(font)
        # Its minimum is the usual text, not the longest: "(measuring 3 of 14)" during a scan
        # may be cut off rather than widen the window beyond a small screen (it never shrinks).
        self._totals.setMinimumWidth(
            self._totals.fontMetrics().horizontalAdvance("99,999 entries · 999.9 MB")
        )
        layout.addWidget(self._totals)
        layout.addSpacing(8)
        self._chips: dict[str, QToolButton] = {}
        for word in st.STATUSES:
            chip = QToolButton(self)
            chip.setCheckable(True)
            chip.setAutoRaise(word not in _LOUD)
            chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            chip.setIcon(st.status_icon(word))
            chip.setToolTip(f"Show only entries that are {word} (click again to show all)")
            chip.clicked.connect(lambda _checked=False, w=word: self.statusClicked.emit(w))
            chip.hide()
            self._chips[word] = chip
            layout.addWidget(chip)
            if word in _LOUD:
                color = st.status_color(word).name()
                chip.setStyleSheet(
                    f"QToolButton {{ background: {color}; color: white; font-weight: bold;"
                    f" border: 1px solid {color}; border-radius: 9px; padding: 1px 8px; }}"
                    f" QToolButton:checked {{ border: 2px solid palette(text); }}"
                )
        layout.addStretch(1)
        self._problems = QToolButton(self)
        self._problems.setCheckable(True)
        self._problems.setIcon(st.status_icon(st.SUSPICIOUS))
        self._problems.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self._problems.setToolTip("Show only corrupt, suspicious and unreadable entries")
        self._problems.clicked.connect(lambda _checked=False: self.problemsClicked.emit())
        layout.addWidget(self._problems)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        # Its own minimum, not the sum of every chip: during a rescan the kept verdicts' chips and
        # "not verified" show at once, and a window widened past a small screen never shrinks
        # back by itself. At usual widths everything fits; below, the last chips are cut off.
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 40)
        self._stats = CacheStats()
        self.set_stats(self._stats)

    def chip(self, word: str) -> QToolButton:
        return self._chips[word]

    @property
    def problems_button(self) -> QToolButton:
        return self._problems

    @property
    def totals_text(self) -> str:
        return self._totals.text()

    def set_stats(self, stats: CacheStats) -> None:
        self._stats = stats
        n = stats.entries
        if n == 0:
            self._totals.setText("No entries")
        else:
            size = size_text(stats.total_size)
            pending = "" if stats.measured >= n else f" (measuring {stats.measured:,} of {n:,})"
            self._totals.setText(f"{n:,} {'entry' if n == 1 else 'entries'} · {size}{pending}")
        for word, chip in self._chips.items():
            count = stats.by_status.get(word, 0)
            chip.setVisible(count > 0)
            chip.setText(f"{count:,} {word}")
        problems = sum(stats.by_status.get(w, 0) for w in st.PROBLEMS)
        self._problems.setText(f"Problems only ({problems:,})" if problems else "No problems found")
        self._problems.setEnabled(problems > 0 or self._problems.isChecked())

    def set_filter(self, statuses: Iterable[str] | None) -> None:
        """Reflect the table's status filter in the checked buttons."""
        wanted = None if statuses is None else frozenset(statuses)
        for word, chip in self._chips.items():
            chip.setChecked(wanted == frozenset({word}))
        self._problems.setChecked(wanted == st.PROBLEMS)
        self._problems.setEnabled(True if wanted == st.PROBLEMS else self._problems.isEnabled())
