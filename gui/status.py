"""The status of a cache entry as the window shows it: words, severity, colours, icons.

One vocabulary for the table, the summary strip, the overview chart and the filters. A verification
verdict ("ok", "corrupt"...) from :mod:`core.verify_entry` becomes a word here; an entry the cache
model classified as suspicious is shown as "suspicious" until verification finds it corrupt or
unreadable, and stays "suspicious" if its contents happen to verify (a symlink or a world-writable
directory is dangerous whatever it holds today).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

NOT_VERIFIED = "not verified"
VERIFYING = "verifying"
OK = "OK"
CORRUPT = "corrupt"
ERROR = "error"
SKIPPED = "skipped"
SUSPICIOUS = "suspicious"

STATUSES: tuple[str, ...] = (CORRUPT, SUSPICIOUS, ERROR, VERIFYING, NOT_VERIFIED, SKIPPED, OK)
"""Every status word, worst first (the order of the summary strip and the status filter)."""

SEVERITY: dict[str, int] = {word: len(STATUSES) - i for i, word in enumerate(STATUSES)}
"""Higher is worse; the raw value the Status column sorts by."""

PROBLEMS: frozenset[str] = frozenset({CORRUPT, ERROR, SUSPICIOUS})
"""What the "problems only" filter shows."""

NOT_A_DIRECTORY: frozenset[str] = frozenset({"planted", "not-a-directory"})
"""``core.cache.Entry.issue`` values of entries that are not directories at all: they stay
"suspicious" after verification (their contents can never match a digest)."""

VERDICT_WORDS: dict[str, str] = {"ok": OK, "corrupt": CORRUPT, "error": ERROR, "skipped": SKIPPED}
"""core.verify_entry.VerifyOutcome.status -> status word."""


def middle_elided(text: str, keep: int = 22) -> str:
    """A long label (a --store path) cut in the middle, "/tmp/stor…ementations": its start
    and its end tell stores apart; the tooltip has it whole."""
    if len(text) <= keep:
        return text
    head = keep // 2 - 1
    return f"{text[:head]}…{text[-(keep - head - 1) :]}"


def status_color(word: str) -> QColor:
    """The colour of a status, shared with the overview chart."""
    from gui.overview import STATUS_COLORS  # one palette for the chart and the table

    value = STATUS_COLORS.get(word, "#888888")
    return QColor(value)


def tint(word: str, alpha: int = 48) -> QColor:
    """A light wash of the status colour, for the background of a problem row."""
    color = QColor(status_color(word))
    color.setAlpha(alpha)
    return color


def status_icon(word: str, size: int = 16) -> QIcon:
    """A round badge in the status colour with a glyph, so the status reads without colour too.

    Not cached here: callers keep the few icons they need (a module-level cache would outlive the
    QApplication and free pixmaps after it).
    """
    icon = QIcon()
    for scale in (1, 2):
        icon.addPixmap(_badge(word, size * scale))
    return icon


def _badge(word: str, px: int) -> QPixmap:
    pixmap = QPixmap(px, px)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    color = status_color(word)
    r = QRectF(0.5, 0.5, px - 1.0, px - 1.0)
    hollow = word in (NOT_VERIFIED, SKIPPED)
    if hollow:
        p.setPen(QPen(color, max(1.0, px / 10)))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(r.adjusted(px / 12, px / 12, -px / 12, -px / 12))
    elif word == SUSPICIOUS:
        # A warning triangle: a different shape, not only a different colour.
        path = QPainterPath()
        path.moveTo(px / 2, 0.5)
        path.lineTo(px - 0.5, px - 1.0)
        path.lineTo(0.5, px - 1.0)
        path.closeSubpath()
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QBrush(color))
        p.drawPath(path)
    else:
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QBrush(color))
        p.drawEllipse(r)
    pen = QPen(
        QColor("white"),
        max(1.5, px / 8),
        Qt.PenStyle.SolidLine,
        Qt.PenCapStyle.RoundCap,
        Qt.PenJoinStyle.RoundJoin,
    )
    p.setPen(pen)
    s = px / 16
    if word == OK:
        p.drawPolyline(
            [QPointF(4.5 * s, 8.5 * s), QPointF(7 * s, 11 * s), QPointF(11.5 * s, 5.5 * s)]
        )
    elif word == CORRUPT:
        p.drawLine(QPointF(5.5 * s, 5.5 * s), QPointF(10.5 * s, 10.5 * s))
        p.drawLine(QPointF(10.5 * s, 5.5 * s), QPointF(5.5 * s, 10.5 * s))
    elif word in (ERROR, SUSPICIOUS):
        top = 4.0 if word == ERROR else 6.0
        p.drawLine(QPointF(8 * s, top * s), QPointF(8 * s, (top + 4.5) * s))
        p.drawPoint(QPointF(8 * s, (top + 7.2) * s))
    elif word == VERIFYING:
        p.drawArc(QRectF(4 * s, 4 * s, 8 * s, 8 * s), 90 * 16, -270 * 16)
    elif word == SKIPPED:
        p.setPen(QPen(color, max(1.5, px / 8), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        p.drawLine(QPointF(5 * s, 8 * s), QPointF(11 * s, 8 * s))
    p.end()
    return pixmap
