"""The cache table's filter: rows by text, store and status, over :class:`CacheModel`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
)

from gui.cache_columns import Column
from gui.cache_model import SORT_ROLE, CacheModel
from gui.cache_rows import Row


class CacheFilter(QSortFilterProxyModel):
    """Filters rows by text, store and status; sorting is forwarded to :class:`CacheModel`.

    Text matches program, version, digest and feed URL; several words must all match. Only the
    status filter depends on changing data, so instead of re-checking every changed row on every
    batch (dynamic filtering), a status filter is re-applied at most every
    :data:`REFILTER_MS` while statuses change.
    """

    REFILTER_MS = 200

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._terms: list[str] = []
        self._store: str | None = None
        self._statuses: frozenset[str] | None = None
        self._source = CacheModel(self)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(False)
        self._refilter_timer = QTimer(self)
        self._refilter_timer.setSingleShot(True)
        self._refilter_timer.setInterval(self.REFILTER_MS)
        self._refilter_timer.timeout.connect(self.refilter)

    def setSourceModel(self, model: QAbstractItemModel) -> None:
        if not isinstance(model, CacheModel):
            raise TypeError("CacheFilter filters a CacheModel")
        self._source = model
        super().setSourceModel(model)
        model.dataChanged.connect(self._source_changed)

    def _source_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles=()) -> None:
        touches_status = top_left.column() <= Column.STATUS <= bottom_right.column()
        if self._statuses is not None and touches_status and not self._refilter_timer.isActive():
            self._refilter_timer.start()

    def refilter(self) -> None:
        """Apply the filters again to every row now (statuses changed)."""
        self._refilter_timer.stop()
        self._refilter(lambda: None)

    def cache_model(self) -> CacheModel:
        return self._source

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.cache_model().sort(column, order)

    @property
    def text(self) -> str:
        return " ".join(self._terms)

    @property
    def store(self) -> str | None:
        return self._store

    @property
    def statuses(self) -> frozenset[str] | None:
        return self._statuses

    def set_text(self, text: str) -> None:
        terms = text.casefold().split()
        if terms != self._terms:
            self._refilter(lambda: setattr(self, "_terms", terms))

    def set_store(self, label: str | None) -> None:
        """Show only the store with this label (None: every store)."""
        if label != self._store:
            self._refilter(lambda: setattr(self, "_store", label))

    def set_statuses(self, statuses: Iterable[str] | None) -> None:
        """Show only rows whose status is one of these (None: every status)."""
        wanted = None if statuses is None else frozenset(statuses)
        if wanted != self._statuses:
            self._refilter(lambda: setattr(self, "_statuses", wanted))

    def _refilter(self, change: Callable[[], None]) -> None:
        # Qt >= 6.10 has begin/endFilterChange and deprecates invalidateRowsFilter.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateRowsFilter()

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        # Straight to the Row object: 10,000 data() round trips would cost far more.
        if self._terms == [] and self._store is None and self._statuses is None:
            return True
        row = self._source.rows[source_row]
        if self._store is not None and row.entry.store.label != self._store:
            return False
        if self._statuses is not None and row.status not in self._statuses:
            return False
        haystack = row.haystack
        return all(term in haystack for term in self._terms)

    def row_at(self, proxy_row: int) -> Row:
        return self.cache_model().row_at(self.mapToSource(self.index(proxy_row, 0)).row())
