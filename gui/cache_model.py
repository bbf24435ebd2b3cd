"""The table of cache entries: a Qt model over the rows of :mod:`gui.cache_rows`, and its totals.

Rows appear all at once (one reset per scan); afterwards everything changes in place: sizes filling
in, statuses turning green or red, each batch announced with ``dataChanged`` over contiguous row
ranges and only the columns that changed.

Sorting is done here, in the source model, with Python's sort over the raw values of
:data:`SORT_ROLE` (bytes, timestamps, status severity), and the proxy (:mod:`gui.cache_filter`)
only filters. Letting ``QSortFilterProxyModel`` sort would call back into Python twice per
comparison: 2.7 s for 10,000 rows on the development machine, against 5 ms for ``list.sort`` plus
a layout change.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QIcon

from gui import status as st
from gui.cache_columns import HEADER_TIPS, HEADERS, Column
from gui.cache_rows import Row, cell_text, cell_tooltip, prepare_rows, sort_key, sort_value

if TYPE_CHECKING:
    from core.cache import Entry
    from core.measure import Usage
    from core.verify_entry import VerifyOutcome


SORT_ROLE = int(Qt.ItemDataRole.UserRole) + 1
"""Raw value a column sorts by: bytes, epoch seconds, status severity, case-folded text."""
ROW_ROLE = int(Qt.ItemDataRole.UserRole) + 2
"""The :class:`Row` behind an index."""
STATUS_ROLE = int(Qt.ItemDataRole.UserRole) + 3
"""The status word of the row (any column)."""

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_USAGE_COLUMNS = (Column.SIZE, Column.FILES, Column.LAST_USED)
_COLUMNS = len(Column)
_ROOT = QModelIndex()  # the invisible root: a table's rows have no other parent
MAX_RANGES = 256
"""A batch touching more separate row runs than this is announced as one span."""
_MUTED = QColor(128, 128, 128)


@dataclass
class CacheStats:
    """Totals for the summary strip and the overview chart."""

    entries: int = 0
    measured: int = 0
    total_size: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_store: dict[str, int] = field(default_factory=dict)  # store label -> bytes
    largest: list[tuple[str, int]] = field(default_factory=list)  # (program, bytes), biggest first


class CacheModel(QAbstractTableModel):
    """Cache entries as rows; columns are :class:`Column`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._by_entry: dict[int, Row] = {}
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._sort_dirty = False
        self.status_version = 0  # bumped whenever any row's status may have changed
        self._counts: dict[str, int] = {}
        self._measured = 0
        self._total = 0
        self._by_store: dict[str, int] = {}
        self._by_program: dict[str, int] = {}
        self._icons: dict[str, QIcon] = {}
        self._tints: dict[str, QColor] = {}
        self._bold = QFont()
        self._bold.setBold(True)
        self.now = time.time  # replaceable, so tests can pin "21 days ago"

    # --- Qt model interface ---------------------------------------------------------------------

    def index(
        self, row: int, column: int, parent: QModelIndex | QPersistentModelIndex = _ROOT
    ) -> QModelIndex:
        # The proxy maps every cell of every repaint through here; the inherited version calls
        # rowCount() and columnCount() back in Python each time.
        if 0 <= row < len(self._rows) and 0 <= column < _COLUMNS and not parent.isValid():
            return self.createIndex(row, column)
        return QModelIndex()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else _COLUMNS

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = _DISPLAY) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(Column):
            return None
        if role == _DISPLAY:
            return HEADERS[Column(section)]
        if role == _TOOLTIP:
            return HEADER_TIPS.get(Column(section))
        if role == _ALIGN and section in (Column.SIZE, Column.FILES):
            return _RIGHT
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        # Called for every visible cell and role on each repaint: cheapest cases first.
        row = self._rows[index.row()]
        col = index.column()
        if role == _DISPLAY:
            return cell_text(row, col, self.now())
        if role == _DECORATION:
            return self._icon(row.status) if col == Column.STATUS else None
        if role == _BACKGROUND:
            return self._tint(row.status)
        if role == _FOREGROUND:
            if col in _USAGE_COLUMNS and row.entry.usage is None:
                return _MUTED
            return None
        if role == _FONT:
            return self._bold if col == Column.STATUS and row.status in st.PROBLEMS else None
        if role == _ALIGN:
            return _RIGHT if col in (Column.SIZE, Column.FILES) else None
        if role == SORT_ROLE:
            return sort_value(row, col)
        if role == _TOOLTIP:
            return cell_tooltip(row, col, self.now())
        if role == ROW_ROLE:
            return row
        if role == STATUS_ROLE:
            return row.status
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a column's raw :data:`SORT_ROLE` values (ties by program, version, name)."""
        self._sort_column = column
        self._sort_order = order
        self._sort_dirty = False
        if not 0 <= column < len(Column) or len(self._rows) < 2:
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        old_rows = [(self._rows[i.row()], i.column()) for i in old]
        self._rows.sort(key=sort_key(column), reverse=order == Qt.SortOrder.DescendingOrder)
        for i, row in enumerate(self._rows):
            row.pos = i
        self.changePersistentIndexList(old, [self.index(r.pos, c) for r, c in old_rows])
        self.layoutChanged.emit()

    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    def resort(self) -> bool:
        """Sort again if values in the sort column changed since the last sort; True if it did."""
        if not self._sort_dirty:
            return False
        self.sort(self._sort_column, self._sort_order)
        return True

    # --- content --------------------------------------------------------------------------------

    def set_entries(self, entries: Sequence[Entry]) -> None:
        """Replace every row (one reset per scan), keeping the current sort."""
        self.set_rows(prepare_rows(entries))

    def set_rows(self, rows: list[Row], sorted_by: tuple[int, Qt.SortOrder] | None = None) -> None:
        """Adopt rows made by :func:`prepare_rows` (one model reset), sorted as the table is.

        ``sorted_by`` is the (column, order) they were prepared with; they are only sorted again
        when that is not the table's current sort.
        """
        if 0 <= self._sort_column < _COLUMNS and sorted_by != (self._sort_column, self._sort_order):
            rows.sort(
                key=sort_key(self._sort_column),
                reverse=self._sort_order == Qt.SortOrder.DescendingOrder,
            )
        self._sort_dirty = False
        self.beginResetModel()
        self._rows = rows
        self._by_entry = {id(r.entry): r for r in rows}
        for i, row in enumerate(rows):
            row.pos = i
        self._recount()
        self.endResetModel()

    def remove_paths(self, paths: Iterable[str]) -> list[Row]:
        """Drop the rows of entries that are gone (deleted, cleaned, quarantined) in place, with
        the totals; the others keep their verdicts, sizes and places. Returns the rows dropped."""
        wanted = set(paths)
        gone = [r for r in self._rows if r.entry.path in wanted]
        for start, end in reversed(contiguous_ranges(r.pos for r in gone)):
            self.beginRemoveRows(_ROOT, start, end)
            del self._rows[start : end + 1]
            for pos in range(start, len(self._rows)):
                self._rows[pos].pos = pos
            self.endRemoveRows()
        for row in gone:
            self._by_entry.pop(id(row.entry), None)
        if gone:
            self._recount()
            self.status_version += 1
        return gone

    @property
    def rows(self) -> Sequence[Row]:
        return self._rows

    def row_at(self, pos: int) -> Row:
        return self._rows[pos]

    def row_for(self, entry: Entry) -> Row | None:
        return self._by_entry.get(id(entry))

    def apply_usages(self, pairs: Iterable[tuple[Entry, Usage]]) -> list[Row]:
        """Store measured sizes and announce them (Size to Last used only). Returns the rows."""
        changed = []
        for entry, usage in pairs:
            row = self._by_entry.get(id(entry))
            if row is None:
                continue  # not ours (a stale scan's entry): ignore
            self._count_usage(entry, -1)
            entry.usage = usage
            self._count_usage(entry, +1)
            changed.append(row)
        self._announce(changed, Column.SIZE, Column.LAST_USED)
        return changed

    def set_verifying(self, rows: Iterable[Row], verifying: bool) -> list[Row]:
        """Mark rows as being verified (or no longer, e.g. after a cancel)."""
        changed = [r for r in rows if r.verifying != verifying and self._owns(r)]
        counts = self._counts
        for row in changed:
            old = row.status
            row.verifying = verifying
            new = row.update_status()
            counts[old] -= 1
            counts[new] = counts.get(new, 0) + 1
        self._announce(changed, 0, len(Column) - 1, Column.STATUS)
        return changed

    def apply_outcomes(self, pairs: Iterable[tuple[Row, VerifyOutcome]]) -> list[Row]:
        """Store verification verdicts; rows change colour, so whole rows are announced."""
        changed = []
        counts = self._counts
        for row, outcome in pairs:
            if not self._owns(row):
                continue
            old = row.status
            row.outcome = outcome
            row.verified_at = self.now()
            row.verifying = False
            new = row.update_status()
            counts[old] -= 1
            counts[new] = counts.get(new, 0) + 1
            changed.append(row)
        self._announce(changed, 0, len(Column) - 1, Column.STATUS)
        return changed

    def stamp(self, rows: Iterable[Row], when: float | None = None) -> None:
        """Record when these rows' verdicts were found (now by default)."""
        when = self.now() if when is None else when
        for row in rows:
            row.verified_at = when

    def _owns(self, row: Row) -> bool:
        return self._by_entry.get(id(row.entry)) is row

    def _announce(
        self, rows: list[Row], first: int, last: int, sort_col: int | None = None
    ) -> None:
        if not rows:
            return
        if first <= Column.STATUS <= last:
            self.status_version += 1
        if self._sort_column >= 0 and (
            first <= self._sort_column <= last
            if sort_col is None
            else self._sort_column == sort_col
        ):
            self._sort_dirty = True
        ranges = contiguous_ranges(r.pos for r in rows)
        if len(ranges) > MAX_RANGES:
            # Results scattered over the sorted table: one span costs the views far less than
            # thousands of one-row signals, and repaints the same visible cells.
            ranges = [(ranges[0][0], ranges[-1][1])]
        for start, end in ranges:
            self.dataChanged.emit(self.index(start, first), self.index(end, last))

    # --- totals (kept up to date as rows change, so asking is cheap) ------------------------------

    def _recount(self) -> None:
        self._measured = self._total = 0
        self._by_store = {}
        self._by_program = {}
        self._counts = dict(Counter(row.status for row in self._rows))
        for entry in [row.entry for row in self._rows if row.entry.usage is not None]:
            self._count_usage(entry, +1)

    def _count_usage(self, entry: Entry, sign: int) -> None:
        usage = entry.usage
        if usage is None:
            return
        size = sign * usage.size
        self._measured += sign
        self._total += size
        label = entry.store.label
        self._by_store[label] = self._by_store.get(label, 0) + size
        program = entry.program
        self._by_program[program] = self._by_program.get(program, 0) + size

    def stats(self, largest: int = 8) -> CacheStats:
        """Counts by status, total and per-store bytes, biggest programs (no pass over the rows)."""
        counts = self._counts
        return CacheStats(
            entries=len(self._rows),
            measured=self._measured,
            total_size=self._total,
            by_status={w: counts[w] for w in st.STATUSES if counts.get(w)},
            by_store={k: v for k, v in self._by_store.items()},
            largest=heapq.nsmallest(
                largest,
                ((p, n) for p, n in self._by_program.items() if n),
                key=lambda kv: (-kv[1], kv[0]),
            ),
        )

    # --- cells ----------------------------------------------------------------------------------

    def _tint(self, word: str) -> QColor | None:
        if word not in st.PROBLEMS:
            return None
        tint = self._tints.get(word)
        if tint is None:
            tint = self._tints[word] = st.tint(word)
        return tint

    def cell(
        self, row: Row, col: int
    ) -> tuple[str, QIcon | None, int | None, QColor | None, QFont | None, QColor | None]:
        """Everything a cell shows at once: text, icon, alignment, background, font, text colour.

        The table's delegate asks this once per cell instead of asking ``data()`` once per role;
        it is built from the same pieces as ``data()``.
        """
        word = row.status
        problem = word in st.PROBLEMS
        return (
            cell_text(row, col, self.now()),
            self._icon(word) if col == Column.STATUS else None,
            _RIGHT if col in (Column.SIZE, Column.FILES) else None,
            self._tint(word) if problem else None,
            self._bold if problem and col == Column.STATUS else None,
            _MUTED if col in _USAGE_COLUMNS and row.entry.usage is None else None,
        )

    def _icon(self, word: str) -> QIcon:
        icon = self._icons.get(word)
        if icon is None:
            icon = self._icons[word] = st.status_icon(word)
        return icon


def contiguous_ranges(positions: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, de-duplicated positions grouped into inclusive (first, last) runs."""
    ordered = sorted(set(positions))
    ranges: list[tuple[int, int]] = []
    for p in ordered:
        if ranges and ranges[-1][1] == p - 1:
            ranges[-1] = (ranges[-1][0], p)
        else:
            ranges.append((p, p))
    return ranges
