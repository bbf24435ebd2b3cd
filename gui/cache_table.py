"""The view of the cache table: columns sized by the font, uniform rows, and calm repaints.

``QAbstractItemView`` repaints its whole viewport for any ``dataChanged`` that spans more than one
cell, i.e. for every batch of results: twenty full repaints a second while a scan or a
verification streams in, each one a few hundred calls into Python. Here a change repaints nothing
when its rows are off screen, and the visible rows at most every :data:`REPAINT_MS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFontMetrics, QMouseEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from gui.cache_columns import HEADERS, Column
from gui.cache_delegate import CacheDelegate
from gui.cache_filter import CacheFilter

REPAINT_MS = 100

# Default column widths: the width of a typical value, so they follow the font size.
_SAMPLES = {
    Column.PROGRAM: "(unowned) UTZDCXFY…",
    Column.VERSION: "1.10.2",
    Column.STORE: "system X",
    Column.SIZE: "999.9 MB",
    Column.FILES: "12,345",
    Column.LAST_USED: "11 months ago",
    Column.ADDED: "2026-12-31",
    Column.USED_BY: "hello-editor",
    Column.STATUS: "not verified",  # in bold, as problems are
    Column.DIGEST: "sha256new_RZ3AB4XW…",
}

PRIORITY = (
    Column.PROGRAM,
    Column.STATUS,
    Column.VERSION,
    Column.SIZE,
    Column.LAST_USED,
    Column.STORE,
    Column.ADDED,
    Column.USED_BY,
    Column.FILES,
    Column.DIGEST,
)
"""Which columns a narrow window shows first (the others are one right-click away)."""


class CacheTable(QTableView):
    emptyClicked = Signal()
    """A click below the last row (or anywhere without a row): the page clears the details."""

    def __init__(self, proxy: CacheFilter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(proxy)
        self.setItemDelegate(CacheDelegate(proxy, self))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setCornerButtonEnabled(False)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setAccessibleName("Cache entries")
        vertical = self.verticalHeader()
        vertical.hide()
        # Uniform, fixed row heights: the view never measures 10,000 rows.
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        header.setSectionsMovable(True)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.column_toggles: list[QAction] = []
        for col in Column:
            toggle = QAction(HEADERS[col], header)
            toggle.setCheckable(True)
            toggle.setChecked(True)
            toggle.setEnabled(col != Column.PROGRAM)  # something must stay to click on
            toggle.setToolTip(f"Show or hide the {HEADERS[col]} column")
            toggle.toggled.connect(lambda on, c=col: self.setColumnHidden(c, not on))
            header.addAction(toggle)
            self.column_toggles.append(toggle)
        # Status right after the name and version: the column that matters must never scroll away.
        header.moveSection(header.visualIndex(Column.STATUS), 2)
        self.apply_font_metrics(resize_columns=True)
        self.setSortingEnabled(True)
        self.sortByColumn(Column.PROGRAM, Qt.SortOrder.AscendingOrder)
        self._repaint = QTimer(self)
        self._repaint.setSingleShot(True)
        self._repaint.setInterval(REPAINT_MS)
        self._repaint.timeout.connect(self.viewport().update)

    def apply_font_metrics(self, resize_columns: bool = False) -> None:
        """Row height (and default column widths) from the current font: large fonts stay usable."""
        fm = self.fontMetrics()
        self.verticalHeader().setDefaultSectionSize(max(fm.height() + 8, 22))
        if not resize_columns:
            return
        header = self.horizontalHeader()
        for col in _SAMPLES:
            header.resizeSection(col, self.default_width(col))

    def default_width(self, col: Column) -> int:
        """A column's width for a typical value in the current font (``_SAMPLES``)."""
        fm = self.fontMetrics()
        icon_room = self.iconSize().width() + 8 if self.iconSize().isValid() else 24
        # The program's sample ends in "…" itself: room for the cell's margins too.
        extra = icon_room if col == Column.STATUS else 4 if col == Column.PROGRAM else 0
        if col == Column.STATUS:  # problems are in bold
            bold_font = self.font()
            bold_font.setBold(True)
            fm = QFontMetrics(bold_font)
        return fm.horizontalAdvance(_SAMPLES[col]) + 14 + extra

    def program_width(self, width: int) -> int:
        """The Program column's width in a table ``width`` pixels wide: its default, but at most
        half of a narrow table (150 % on a small screen), so that the Status fits beside it."""
        return min(self.default_width(Column.PROGRAM), width // 2)

    def default_columns(self, width: int) -> list[Column]:
        """Show the columns that fit side by side in ``width`` pixels at their default widths,
        the most useful first, and hide the rest (the header's context menu brings them back).
        Returns the columns shown. Only for a first start: a saved layout is left alone."""
        self.apply_font_metrics(resize_columns=True)
        used = 0
        shown = []
        full = False
        for col in PRIORITY:
            # Not the header's size: the last section's is stretched over whatever is left.
            need = self.default_width(col)
            if col == Column.PROGRAM and need > self.program_width(width):
                need = self.program_width(width)
                self.horizontalHeader().resizeSection(col, need)
            # In order: once one does not fit, the less useful ones after it stay hidden too.
            full = full or (col != Column.PROGRAM and used + need > width)
            self.setColumnHidden(col, full)
            if not full:
                used += need
                shown.append(col)
        self.sync_column_toggles()
        return shown

    def fit_columns(self, width: int) -> bool:
        """Make the shown columns fit ``width`` pixels if they can: each one at most 40 % of it,
        then, while they still overflow, the widest ones cut back towards their default width.
        Returns True when something changed. Whatever cannot fit stays reachable by scrolling."""
        if width <= 0:
            return False
        header = self.horizontalHeader()
        shown = [c for c in Column if not self.isColumnHidden(c)]
        if not shown:
            return False
        last = max(shown, key=header.visualIndex)  # stretched over what is left: not counted
        sizes = {c: header.sectionSize(c) for c in shown if c != last}
        before = dict(sizes)
        cap = max(60, width * 2 // 5)
        for c, size in sizes.items():
            program = self.program_width(width) if c == Column.PROGRAM else 0
            sizes[c] = min(size, max(cap, program))
        room = width - self.default_width(last)
        excess = sum(sizes.values()) - room
        if excess > 0:
            spare = {c: max(0, sizes[c] - self.default_width(c)) for c in sizes}
            total_spare = sum(spare.values())
            if total_spare:
                cut = min(excess, total_spare)
                for c in sizes:
                    sizes[c] -= spare[c] * cut // total_spare
        changed = False
        for c, size in sizes.items():
            if size != before[c]:
                header.resizeSection(c, size)
                changed = True
        return changed

    def sync_column_toggles(self) -> None:
        """After restoring a saved header: the header menu's check marks follow hidden columns."""
        for col, toggle in zip(Column, self.column_toggles, strict=True):
            toggle.blockSignals(True)
            toggle.setChecked(not self.isColumnHidden(col))
            toggle.blockSignals(False)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if not self.indexAt(event.position().toPoint()).isValid():
            self.emptyClicked.emit()
            event.accept()
            return
        super().mousePressEvent(event)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.FontChange:
            self.apply_font_metrics()

    def dataChanged(
        self,
        top_left: QModelIndex | QPersistentModelIndex,
        bottom_right: QModelIndex | QPersistentModelIndex,
        roles: Sequence[int] = (),
    ) -> None:
        first = self.rowAt(0)
        if first < 0:
            return  # nothing on screen
        last = self.rowAt(self.viewport().height() - 1)
        if last < 0:
            last = self.model().rowCount() - 1
        if bottom_right.row() < first or top_left.row() > last:
            return  # off screen: nothing to repaint
        if not self._repaint.isActive():
            self._repaint.start()

    def flush_repaint(self) -> None:
        """Repaint now what is pending (at the end of a run, so the last results show at once)."""
        if self._repaint.isActive():
            self._repaint.stop()
            self.viewport().update()
