"""Painting the cache table's cells with one call into Python per cell.

``QStyledItemDelegate`` asks the model for each role separately (text, icon, font, colours,
alignment...), and through the filter proxy every one of those calls re-enters Python several
times: about 35 calls per cell, 6,000 per repaint. While verification threads run Python code,
every one of those re-entries waits for the interpreter lock, and a repaint took hundreds of
milliseconds. Here the style option is filled from :meth:`CacheModel.cell` in one go; the style
still draws the cell, so it looks exactly like the default.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QFontMetrics, QPalette
from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

from gui.cache_columns import Column
from gui.cache_filter import CacheFilter
from gui.cache_model import CacheModel

_HAS_DISPLAY = QStyleOptionViewItem.ViewItemFeature.HasDisplay
_HAS_DECORATION = QStyleOptionViewItem.ViewItemFeature.HasDecoration
_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_MIDDLE = Qt.TextElideMode.ElideMiddle


class CacheDelegate(QStyledItemDelegate):
    def __init__(self, proxy: CacheFilter, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._proxy = proxy

    def initStyleOption(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        model: CacheModel = self._proxy.cache_model()
        source = self._proxy.mapToSource(index)
        if not source.isValid():
            super().initStyleOption(option, index)
            return
        text, icon, align, background, font, foreground = model.cell(
            model.row_at(source.row()), source.column()
        )
        option.index = index
        if source.column() == Column.STORE:
            option.textElideMode = _MIDDLE  # a store's path label: both ends tell stores apart
        option.features |= _HAS_DISPLAY
        option.text = text
        option.displayAlignment = Qt.AlignmentFlag(align) if align is not None else _LEFT
        if icon is not None:
            option.features |= _HAS_DECORATION
            option.icon = icon
        if background is not None:
            option.backgroundBrush = QBrush(background)
        if font is not None:
            option.font = font
            option.fontMetrics = QFontMetrics(font)
        if foreground is not None:
            palette = QPalette(option.palette)
            palette.setColor(QPalette.ColorRole.Text, foreground)
            option.palette = palette
