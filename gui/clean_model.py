"""The Clean up page's table: one row per verdict of :func:`core.clean.survey`, candidates checkable
and checked to start with (doubtful ones not), sizes and reasons in the columns, the full evidence
in the tooltips; and its filter, which hides the kept entries unless asked. No widgets: testable
with a bare model (tests/test_gui_clean_model.py)."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

from core import clean, units
from core.units import size_text
from gui.cache_rows import program_text
from gui.status import middle_elided

_ROOT = QModelIndex()
SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
ACTION_WORDS = {"remove": "Remove", "quarantine": "Quarantine", "keep": "Keep"}


class Col(IntEnum):
    PROGRAM = 0
    VERSION = 1
    STORE = 2
    SIZE = 3
    LAST_USED = 4
    ACTION = 5
    REASONS = 6


HEADERS = ["Program", "Version", "Store", units.DISK_WORD, "Last used", "Action", "Why"]
HEADER_TIPS = [
    "The program's name from its cached feed; for an entry no feed lists, the start of its name",
    "The implementation's version",
    "Which implementation store holds the entry (hover a cell for its path)",
    (
        "Disk use: the space removing the entry gives back (hard links shared with entries "
        "that stay do not count); the Cache page's Size is the apparent size of the files"
    ),
    "Newest access time of anything inside",
    "What Clean would do: remove, quarantine (suspicious entries are moved aside) or keep",
    "Why: the evidence for the action (hover for all of it, or see the pane below)",
]


def when_text(ts: float | None) -> str:
    """ "3 months ago": the same words as the Cache page and ``list``."""
    return units.age_text(ts)


class CleanModel(QAbstractTableModel):
    """One row per verdict; candidates are checkable and start checked."""

    checkedChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.verdicts: list[clean.Verdict] = []
        self.checked: set[int] = set()

    def set_verdicts(self, verdicts: Sequence[clean.Verdict]) -> None:
        self.beginResetModel()
        self.verdicts = list(verdicts)
        self.checked = {i for i, v in enumerate(self.verdicts) if v.candidate and not v.doubt}
        self.endResetModel()
        self.checkedChanged.emit()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.verdicts)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(Col)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS[section]
        return None

    def row_of(self, path: str) -> int:
        """The row of the entry at ``path``, -1 when it has none."""
        for i, v in enumerate(self.verdicts):
            if v.entry.path == path:
                return i
        return -1

    def remove_paths(self, paths: frozenset[str]) -> int:
        """Drop the verdicts of entries that are gone, in place; returns how many."""
        gone = [i for i, v in enumerate(self.verdicts) if v.entry.path in paths]
        for i in reversed(gone):
            self.beginRemoveRows(_ROOT, i, i)
            del self.verdicts[i]
            self.checked = {c - (c > i) for c in self.checked if c != i}
            self.endRemoveRows()
        if gone:
            self.checkedChanged.emit()
        return len(gone)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == Col.PROGRAM and self.verdicts[index.row()].candidate:
            base |= Qt.ItemFlag.ItemIsUserCheckable
        return base

    @staticmethod
    def space(v: clean.Verdict) -> int | None:
        if v.footprint is not None:
            return v.footprint.disk
        usage = v.entry.usage
        return usage.disk if usage is not None else None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        v = self.verdicts[row]
        e = v.entry
        if role == Qt.ItemDataRole.CheckStateRole and col == Col.PROGRAM and v.candidate:
            return Qt.CheckState.Checked if row in self.checked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DisplayRole:
            if col == Col.PROGRAM:
                return program_text(e)
            if col == Col.VERSION:
                return e.version
            if col == Col.STORE:
                return middle_elided(e.store.label)
            if col == Col.SIZE:
                return size_text(self.space(v))
            if col == Col.LAST_USED:
                return when_text(v.last_used)
            if col == Col.ACTION:
                return ACTION_WORDS[v.action]
            return "; ".join(v.reasons)
        if role == SORT_ROLE:
            if col == Col.SIZE:
                return self.space(v) or 0
            if col == Col.LAST_USED:
                return v.last_used or 0.0
            return self.data(index, Qt.ItemDataRole.DisplayRole)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == Col.STORE:
                return e.store.path
            if col == Col.SIZE:
                return space_detail(v)
            return f"{e.path}\n" + "\n".join(f"• {r}" for r in v.reasons)
        if role == Qt.ItemDataRole.ForegroundRole and not v.candidate:
            return QColor("#777777")
        if role == Qt.ItemDataRole.TextAlignmentRole and col == Col.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def setData(
        self,
        index: QModelIndex | QPersistentModelIndex,
        value: Any,
        role: int = Qt.ItemDataRole.EditRole,
    ) -> bool:
        if role != Qt.ItemDataRole.CheckStateRole or index.column() != Col.PROGRAM:
            return False
        if not self.verdicts[index.row()].candidate:
            return False
        on = Qt.CheckState(value) == Qt.CheckState.Checked if not isinstance(value, bool) else value
        self.set_checked([index.row()], on)
        return True

    def set_checked(self, rows: Sequence[int], on: bool) -> None:
        for row in rows:
            if not self.verdicts[row].candidate:
                continue
            if on:
                self.checked.add(row)
            else:
                self.checked.discard(row)
            idx = self.index(row, Col.PROGRAM)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.CheckStateRole])
        self.checkedChanged.emit()

    def chosen(self) -> list[clean.Verdict]:
        return [self.verdicts[i] for i in sorted(self.checked)]

    def refresh_sizes(self) -> None:
        if self.verdicts:
            self.dataChanged.emit(
                self.index(0, Col.SIZE), self.index(len(self.verdicts) - 1, Col.SIZE)
            )


def space_detail(v: clean.Verdict) -> str:
    """Both sizes of an entry, named, and what removing it gives back."""
    usage = v.entry.usage
    parts = []
    if usage is not None:
        parts.append(f"{units.SIZE_WORD}: {size_text(usage.size)} (apparent)")
        parts.append(f"{units.DISK_WORD}: {size_text(usage.disk)}")
    if v.footprint is not None:
        parts.append(f"removing it frees {size_text(v.footprint.disk)}")
    return "; ".join(parts) or "not measured yet"


class CleanFilter(QSortFilterProxyModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.show_kept = False
        self.setSortRole(SORT_ROLE)

    def set_show_kept(self, on: bool) -> None:
        # Qt >= 6.10 has begin/endFilterChange and deprecates invalidateRowsFilter.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            self.show_kept = on
            self.endFilterChange()
        else:
            self.show_kept = on
            self.invalidateRowsFilter()

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        assert isinstance(model, CleanModel)
        return self.show_kept or model.verdicts[source_row].candidate
