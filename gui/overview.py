"""The integrity overview: a chart people glance at instead of reading the table.

Three parts, painted with QPainter (no QtCharts):

* a stacked bar of the cache entries by status, worst first, with a legend that gives the counts;
  clicking a segment or a legend item emits :attr:`OverviewWidget.statusClicked` so the page can
  filter the table by that status (keyboard: Tab to the chart, Left/Right, Enter);
* one bar per store with its size;
* the largest programs (up to 8), ranked.

Every length comes from the font metrics, so a large font gives a larger chart rather than clipped
text; colours of text and tracks come from the palette, so the chart reads in dark themes too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import humanize
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QHelpEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from core.units import size_text

STATUS_COLORS: dict[str, str] = {
    "corrupt": "#d62728",
    "suspicious": "#a23fb8",
    "error": "#f0891a",
    "verifying": "#2f7fd1",
    "not verified": "#cfcfcf",
    "skipped": "#8a8a8a",
    "OK": "#2ca048",
}
"""Colour of each status word (``#rrggbb``), shared with the table: the hues people expect (green
fine, red broken), mid-tones that read on light and dark windows. Colour is never the only cue: the
legend names each status and gives its count."""

STATUS_ORDER: tuple[str, ...] = tuple(STATUS_COLORS)
"""Order of the segments and legend: worst first, so problems sit where the eye starts."""

_FALLBACK_COLOR = "#9e9e9e"  # a status word this module does not know yet
_MAX_PROGRAMS = 8
_NO_STORES = "No store found"
_NO_SIZES = "Sizes appear as entries are measured"


def _display(status: str) -> str:
    return status if status == "OK" else status[:1].upper() + status[1:]


def _entries(count: int) -> str:
    return f"{humanize.intcomma(count)} {'entry' if count == 1 else 'entries'}"


@dataclass(slots=True)
class _Row:
    """One labelled bar of the store or program lists."""

    kind: str  # "store" or "program"
    label: str
    value: int
    label_rect: QRect
    track: QRect  # the full-length background of the bar
    bar: QRect
    value_rect: QRect


@dataclass(slots=True)
class _Layout:
    width: int
    height: int = 0
    title: QRect = field(default_factory=QRect)
    bar: QRect = field(default_factory=QRect)
    segments: list[tuple[str, QRect]] = field(default_factory=list)
    legend: list[tuple[str, QRect]] = field(default_factory=list)  # whole clickable item
    headings: list[tuple[str, str, QRect]] = field(default_factory=list)  # text, right text, rect
    rows: list[_Row] = field(default_factory=list)
    notes: list[tuple[str, QRect]] = field(default_factory=list)  # "nothing yet" texts


@dataclass(slots=True)
class _Ink:
    """The colours and bold font every part of the chart paints with (from the palette)."""

    text: QColor
    dim: QColor  # secondary text
    track: QColor  # the empty part of a bar
    bold: QFont


class OverviewWidget(QWidget):
    """Entries by status, size per store and the largest programs, at a glance."""

    statusClicked = Signal(str)
    storeClicked = Signal(str)  # a store's label
    programClicked = Signal(str)  # a program's name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._by_status: dict[str, int] = {}
        self._by_store: dict[str, int] = {}
        self._largest: list[tuple[str, int]] = []
        self._layout_cache: _Layout | None = None
        self._pressed: tuple[str, str] | None = None
        self._focused: str | None = None  # legend item chosen with the keyboard
        self.setMouseTracking(True)  # for the hand cursor over clickable parts
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        self.setAccessibleName("Integrity overview")
        self._update_accessible_description()

    # --- data ------------------------------------------------------------------------------------

    def set_data(
        self, by_status: dict[str, int], by_store: dict[str, int], largest: list[tuple[str, int]]
    ) -> None:
        """Show new figures.

        ``by_status``: status word -> number of entries; ``by_store``: store label -> bytes;
        ``largest``: (program label, bytes), biggest first (only the first 8 are shown).
        """
        known = [s for s in STATUS_ORDER if s in by_status]
        extra = sorted(s for s in by_status if s not in STATUS_COLORS)  # future words, at the end
        self._by_status = {s: max(0, int(by_status[s])) for s in known + extra}
        self._by_store = {label: max(0, int(size)) for label, size in by_store.items()}
        self._largest = [(label, max(0, int(size))) for label, size in largest[:_MAX_PROGRAMS]]
        if self._focused not in self._shown_statuses():
            self._focused = None
        self._layout_cache = None
        self._update_accessible_description()
        self.updateGeometry()
        self.update()

    def _shown_statuses(self) -> list[str]:
        return [s for s, n in self._by_status.items() if n > 0]

    # --- public geometry helpers (also what the tests click on) ----------------------------------

    def segment_rect(self, status: str) -> QRect:
        """Where the status's segment of the stacked bar is drawn; empty if it has no entries."""
        for word, rect in self._current_layout().segments:
            if word == status:
                return QRect(rect)
        return QRect()

    def legend_rect(self, status: str) -> QRect:
        """Where the status's legend item is drawn; empty if it has no entries."""
        for word, rect in self._current_layout().legend:
            if word == status:
                return QRect(rect)
        return QRect()

    def bar_rect(self, kind: str, label: str) -> QRect:
        """Where a store's or program's row (label, bar and size) is drawn; empty if not shown."""
        for row in self._current_layout().rows:
            if row.kind == kind and row.label == label:
                return row.label_rect.united(row.value_rect)
        return QRect()

    def bar_at(self, pos: QPoint) -> tuple[str, str] | None:
        """("store" or "program", label) of the row at ``pos``, if any."""
        for row in self._current_layout().rows:
            if row.label_rect.united(row.value_rect).contains(pos):
                return row.kind, row.label
        return None

    def status_at(self, pos: QPoint) -> str | None:
        """The status whose segment or legend item is at ``pos`` (widget coordinates), if any."""
        layout = self._current_layout()
        for word, rect in layout.segments + layout.legend:
            if rect.contains(pos):
                return word
        return None

    # --- size ------------------------------------------------------------------------------------

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt naming)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802
        return self._compute_layout(width).height

    def sizeHint(self) -> QSize:  # noqa: N802
        width = self.fontMetrics().averageCharWidth() * 96
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        width = self.fontMetrics().averageCharWidth() * 34
        # Height of the roomy two-column layout; narrower widths ask for more via heightForWidth.
        return QSize(width, self.heightForWidth(self.sizeHint().width()))

    # --- layout ----------------------------------------------------------------------------------

    def _current_layout(self) -> _Layout:
        if self._layout_cache is None or self._layout_cache.width != self.width():
            self._layout_cache = self._compute_layout(self.width())
        return self._layout_cache

    def _bold_metrics(self) -> QFontMetrics:
        font = QFont(self.font())
        font.setBold(True)
        return QFontMetrics(font)

    def _compute_layout(self, width: int) -> _Layout:
        fm = self.fontMetrics()
        line = fm.height()
        margin = max(4, line // 2)
        gap = max(3, line // 3)
        inner = max(1, width - 2 * margin)
        lay = _Layout(width)
        y = margin

        # Title line, then the stacked bar.
        lay.title = QRect(margin, y, inner, line)
        y += line + gap
        lay.bar = QRect(margin, y, inner, round(line * 1.8))
        lay.segments = self._segments(lay.bar, max(4, fm.averageCharWidth()))
        y = lay.bar.bottom() + 1 + gap + gap // 2

        # Legend items flow left to right and wrap.
        swatch = fm.ascent()
        x = margin
        row_h = line + gap // 2
        shown = self._shown_statuses()
        for status in shown:
            text = f"{_display(status)}  {humanize.intcomma(self._by_status[status])}"
            item_w = swatch + gap + fm.horizontalAdvance(text) + gap
            if x > margin and x + item_w > margin + inner:
                x = margin
                y += row_h
            lay.legend.append((status, QRect(x, y, item_w, row_h)))
            x += item_w + 2 * gap
        y += (row_h if shown else 0) + line // 2

        # Stores and largest programs: side by side when there is room, else one under the other.
        col_min = fm.averageCharWidth() * 40
        two_columns = inner >= 2 * col_min + 2 * margin
        if two_columns:
            col_w = (inner - 2 * margin) // 2
            left = self._list_block(
                lay,
                "Stores",
                self._store_rows(),
                margin,
                y,
                col_w,
                _NO_STORES,
                show_total=True,
                kind="store",
            )
            right = self._list_block(
                lay,
                "Largest programs",
                self._largest,
                margin + col_w + 2 * margin,
                y,
                col_w,
                _NO_SIZES,
                kind="program",
            )
            y = max(left, right)
        else:
            y = self._list_block(
                lay,
                "Stores",
                self._store_rows(),
                margin,
                y,
                inner,
                _NO_STORES,
                show_total=True,
                kind="store",
            )
            y += line // 2
            y = self._list_block(
                lay, "Largest programs", self._largest, margin, y, inner, _NO_SIZES, kind="program"
            )
        lay.height = y + margin
        return lay

    def _store_rows(self) -> list[tuple[str, int]]:
        return list(self._by_store.items())

    def _segments(self, bar: QRect, min_width: int) -> list[tuple[str, QRect]]:
        """Split the bar among the statuses in proportion, each at least ``min_width`` wide so a
        single corrupt entry among thousands is still seen and can be clicked."""
        counts = [(s, n) for s, n in self._by_status.items() if n > 0]
        if not counts or bar.width() <= 0:
            return []
        width = bar.width()
        min_width = min(min_width, width // len(counts))
        widths = {s: 0.0 for s, _ in counts}
        small: set[str] = set()
        while True:
            big = [(s, n) for s, n in counts if s not in small]
            room = width - min_width * len(small)
            total = sum(n for _, n in big)
            for s, n in big:
                widths[s] = room * n / total if total else 0.0
            newly = {s for s, _ in big if widths[s] < min_width}
            if not newly or len(small | newly) == len(counts):
                break
            small |= newly
        for s in small:
            widths[s] = float(min_width)
        # Integer edges from the running sum, so the segments tile the bar exactly.
        result = []
        acc = 0.0
        left = bar.left()
        for s, _ in counts:
            acc += widths[s]
            right = bar.left() + round(acc) if s != counts[-1][0] else bar.left() + width
            result.append((s, QRect(left, bar.top(), max(1, right - left), bar.height())))
            left = right
        return result

    def _list_block(
        self,
        lay: _Layout,
        title: str,
        items: list[tuple[str, int]],
        x: int,
        y: int,
        width: int,
        empty_note: str,
        show_total: bool = False,
        kind: str = "store",
    ) -> int:
        """Lay out a heading and one labelled bar per item; return the y below the block."""
        fm = self.fontMetrics()
        line = fm.height()
        gap = max(3, line // 3)
        # Only the stores have a meaningful total: the programs list is the top few, not all.
        total = sum(v for _, v in items)
        right_text = f"{size_text(total)} in total" if items and show_total else ""
        lay.headings.append((title, right_text, QRect(x, y, width, line)))
        y += line + gap
        if not items:
            lay.notes.append((empty_note, QRect(x, y, width, line)))
            return y + line
        label_w = min(
            max(fm.horizontalAdvance(label) for label, _ in items) + gap,
            max(fm.averageCharWidth() * 8, width * 2 // 5),
        )
        value_w = max(fm.horizontalAdvance(size_text(v)) for _, v in items) + gap
        bar_x = x + label_w + gap
        bar_w = max(1, width - label_w - value_w - 2 * gap)
        biggest = max(v for _, v in items) or 1
        row_h = line + gap
        bar_h = max(4, round(line * 0.7))
        for label, value in items:
            track = QRect(bar_x, y + (line - bar_h) // 2, bar_w, bar_h)
            filled = round(bar_w * value / biggest)
            lay.rows.append(
                _Row(
                    kind,
                    label,
                    value,
                    QRect(x, y, label_w, line),
                    track,
                    QRect(track.left(), track.top(), filled, bar_h),
                    QRect(bar_x + bar_w + gap, y, value_w, line),
                )
            )
            y += row_h
        return y

    # --- painting --------------------------------------------------------------------------------

    def resizeEvent(self, event) -> None:  # noqa: N802
        self._layout_cache = None
        super().resizeEvent(event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.PaletteChange):
            self._layout_cache = None
            self.updateGeometry()
            self.update()
        super().changeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        lay = self._current_layout()
        text = self.palette().color(QPalette.ColorRole.WindowText)
        dim = QColor(text)
        dim.setAlphaF(0.65)  # secondary text: the text colour, faded, works on light and dark
        track = QColor(text)
        track.setAlphaF(0.10)
        bold = QFont(self.font())
        bold.setBold(True)
        ink = _Ink(text, dim, track, bold)

        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        self._paint_title(p, lay, ink)
        self._paint_bar(p, lay, ink)
        self._paint_legend(p, lay, ink)
        self._paint_lists(p, lay, ink)
        p.end()

    def _paint_title(self, p: QPainter, lay: _Layout, ink: _Ink) -> None:
        """ "Integrity" at the left; at the right, how many entries and how many need attention."""
        total = sum(self._by_status.values())
        problems = sum(self._by_status.get(s, 0) for s in ("corrupt", "suspicious", "error"))
        p.setFont(ink.bold)
        p.setPen(ink.text)
        p.drawText(
            lay.title, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "Integrity"
        )
        summary = _entries(total)
        if problems:
            verb = "needs" if problems == 1 else "need"
            summary += f", {humanize.intcomma(problems)} {verb} attention"
        p.setFont(self.font())
        p.setPen(ink.dim)
        p.drawText(
            lay.title,
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            self.fontMetrics().elidedText(
                summary,
                Qt.TextElideMode.ElideRight,
                lay.title.width() - self._bold_metrics().horizontalAdvance("Integrity  "),
            ),
        )

    def _paint_bar(self, p: QPainter, lay: _Layout, ink: _Ink) -> None:
        """The stacked bar of statuses, clipped to a rounded rectangle, counts where they fit."""
        fm = self.fontMetrics()
        radius = lay.bar.height() / 4
        outline = QPainterPath()
        outline.addRoundedRect(lay.bar, radius, radius)
        p.save()
        p.setClipPath(outline)
        p.fillRect(lay.bar, ink.track)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)  # crisp, exact segment edges
        for status, rect in lay.segments:
            color = QColor(STATUS_COLORS.get(status, _FALLBACK_COLOR))
            p.fillRect(rect, color)
            count = humanize.intcomma(self._by_status[status])
            if fm.horizontalAdvance(count) + fm.averageCharWidth() <= rect.width():
                p.setPen(_ink_on(color))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, count)
        # Thin separators in the window colour so neighbouring segments stay distinct.
        p.setPen(QPen(self.palette().color(QPalette.ColorRole.Window), 1))
        for _, rect in lay.segments[1:]:
            p.drawLine(rect.left(), rect.top(), rect.left(), rect.bottom())
        p.restore()
        if not lay.segments:
            p.setPen(ink.dim)
            p.drawText(lay.bar, Qt.AlignmentFlag.AlignCenter, "No entries yet")

    def _paint_legend(self, p: QPainter, lay: _Layout, ink: _Ink) -> None:
        """A swatch, the status and its count per item; a dotted frame on the keyboard's choice."""
        fm = self.fontMetrics()
        swatch = fm.ascent()
        gap = max(3, fm.height() // 3)
        for status, rect in lay.legend:
            color = QColor(STATUS_COLORS.get(status, _FALLBACK_COLOR))
            box = QRect(rect.left(), rect.top() + (fm.height() - swatch) // 2, swatch, swatch)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawRoundedRect(box, swatch / 5, swatch / 5)
            p.setPen(ink.text)
            label_rect = QRect(box.right() + 1 + gap, rect.top(), rect.width(), fm.height())
            name = _display(status)
            p.drawText(label_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
            p.setFont(ink.bold)
            p.drawText(
                label_rect.adjusted(fm.horizontalAdvance(name + "  "), 0, 0, 0),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                humanize.intcomma(self._by_status[status]),
            )
            p.setFont(self.font())
            if status == self._focused and self.hasFocus():
                highlight = self.palette().color(QPalette.ColorRole.Highlight)
                p.setPen(QPen(highlight, 1, Qt.PenStyle.DotLine))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRect(rect.adjusted(-2, 0, 1, -1))

    def _paint_lists(self, p: QPainter, lay: _Layout, ink: _Ink) -> None:
        """The store and program lists: headings, one labelled bar per row, notes when empty."""
        fm = self.fontMetrics()
        accent = self.palette().color(QPalette.ColorRole.Highlight)
        for title, right_text, rect in lay.headings:
            p.setFont(ink.bold)
            p.setPen(ink.text)
            p.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)
            p.setFont(self.font())
            p.setPen(ink.dim)
            p.drawText(
                rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, right_text
            )
        for row in lay.rows:
            p.setPen(ink.text)
            p.drawText(
                row.label_rect,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                fm.elidedText(row.label, Qt.TextElideMode.ElideMiddle, row.label_rect.width()),
            )
            p.setPen(Qt.PenStyle.NoPen)
            r = row.track.height() / 2
            p.setBrush(ink.track)
            p.drawRoundedRect(row.track, r, r)
            if row.bar.width() > 0:
                p.setBrush(accent)
                p.drawRoundedRect(row.bar, r, r)
            p.setPen(ink.dim)
            p.drawText(
                row.value_rect,
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                size_text(row.value),
            )
        for note, rect in lay.notes:
            p.setPen(ink.dim)
            p.drawText(
                rect,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                fm.elidedText(note, Qt.TextElideMode.ElideRight, rect.width()),
            )

    # --- interaction -----------------------------------------------------------------------------

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            tip, rect = self._tooltip_at(event.pos())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self, rect)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    def tooltip_at(self, pos: QPoint) -> str:
        """The tooltip text shown at ``pos`` ("" where there is none)."""
        return self._tooltip_at(pos)[0]

    def _tooltip_at(self, pos: QPoint) -> tuple[str, QRect]:
        lay = self._current_layout()
        total = sum(self._by_status.values())
        for status, rect in lay.segments + lay.legend:
            if rect.contains(pos):
                count = self._by_status[status]
                share = f"{count * 100 / total:.0f}%" if total else ""
                return (
                    f"{_display(status)}: {_entries(count)} ({share})\n"
                    f"Click to show only these entries",
                    rect,
                )
        for row in lay.rows:
            if row.label_rect.united(row.value_rect).contains(pos):
                what = "this store" if row.kind == "store" else "this program"
                return (
                    f"{row.label}: {size_text(row.value)} ({row.value:,} bytes)\n"
                    f"Click to show only {what}"
                ), row.label_rect.united(row.value_rect)
        return "", QRect()

    def _clickable_at(self, pos: QPoint) -> tuple[str, str] | None:
        status = self.status_at(pos)
        return ("status", status) if status else self.bar_at(pos)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._clickable_at(event.position().toPoint()):
            self.setCursor(Qt.CursorShape.PointingHandCursor)
        else:
            self.unsetCursor()
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._pressed = self._clickable_at(event.position().toPoint())
            if self._pressed:
                event.accept()
                return
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pressed, self._pressed = self._pressed, None
        if event.button() == Qt.MouseButton.LeftButton and pressed:
            # A click is press and release on the same part: dragging off cancels, as buttons do.
            if self._clickable_at(event.position().toPoint()) == pressed:
                kind, label = pressed
                signal = {
                    "status": self.statusClicked,
                    "store": self.storeClicked,
                    "program": self.programClicked,
                }[kind]
                signal.emit(label)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        shown = self._shown_statuses()
        key = event.key()
        if shown and key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            i = shown.index(self._focused) if self._focused in shown else -1
            step = 1 if key == Qt.Key.Key_Right else -1
            self._focused = shown[(i + step) % len(shown)] if i >= 0 else shown[0]
            self.update()
            return
        if self._focused and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.statusClicked.emit(self._focused)
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event) -> None:  # noqa: N802
        if self._focused is None and self._shown_statuses():
            self._focused = self._shown_statuses()[0]
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802
        self.update()
        super().focusOutEvent(event)

    def _update_accessible_description(self) -> None:
        parts = [f"{_display(s)} {n}" for s, n in self._by_status.items() if n]
        stores = [f"{label} {size_text(v)}" for label, v in self._by_store.items()]
        text = (
            "Entries by status: "
            + (", ".join(parts) or "none")
            + ". Stores: "
            + (", ".join(stores) or "none")
            + "."
        )
        self.setAccessibleDescription(text)


def _ink_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on ``background`` (perceived luminance)."""
    luminance = 0.299 * background.red() + 0.587 * background.green() + 0.114 * background.blue()
    return QColor("#000000") if luminance > 150 else QColor("#ffffff")
