"""The progress line at the bottom of a page: what runs, how far, how fast, and a Cancel button."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QStyleOptionProgressBar,
    QToolButton,
    QWidget,
)

_STEPS = 1000


class ProgressBar(QWidget):
    """A progress bar drawn by the style, that repaints later rather than at once.

    ``QProgressBar.setValue`` repaints synchronously whenever the bar moves visibly; with a big
    window that cost 50 ms per call here, on the GUI thread, many times a second. This one only
    schedules an update. ``maximum == 0`` shows the style's busy animation.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._minimum = 0
        self._maximum = _STEPS
        self._value = 0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def setRange(self, minimum: int, maximum: int) -> None:
        self._minimum, self._maximum = minimum, maximum
        self._value = max(minimum, min(self._value, maximum))
        self.update()

    def setValue(self, value: int) -> None:
        value = max(self._minimum, min(value, self._maximum))
        if value != self._value:
            self._value = value
            self.update()

    def value(self) -> int:
        return self._value

    def maximum(self) -> int:
        return self._maximum

    def _option(self) -> QStyleOptionProgressBar:
        option = QStyleOptionProgressBar()
        option.initFrom(self)
        option.minimum = self._minimum
        option.maximum = self._maximum
        option.progress = self._value
        option.textVisible = False
        option.state |= QStyle.StateFlag.State_Horizontal
        option.styleObject = self  # the busy animation updates this widget
        return option

    def sizeHint(self) -> QSize:
        height = self.fontMetrics().height() + 4
        return self.style().sizeFromContents(
            QStyle.ContentsType.CT_ProgressBar, self._option(), QSize(160, height), self
        )

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        self.style().drawControl(
            QStyle.ControlElement.CE_ProgressBar, self._option(), painter, self
        )
        painter.end()


def duration_text(seconds: float) -> str:
    """ "2.5 s", "45 s", "3 min 20 s", "2 h 05 min": short enough for a status line."""
    if seconds < 1:
        return f"{max(0.0, seconds):.2f} s"
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class ActivityBar(QWidget):
    """A busy or determinate progress bar with a line of text and a Cancel button.

    Its height stays reserved when idle (only its contents hide): showing it when a run starts
    would otherwise re-lay out the whole page, table included, at the moment the workers start.
    """

    def __init__(self, cancel: QAction, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self._bar = ProgressBar(self)
        self._bar.setMaximumWidth(260)
        self._bar.setMinimumWidth(120)
        self._bar.setAccessibleName("Progress")
        self._label = QLabel(self)
        self._label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._cancel = QToolButton(self)
        self._cancel.setDefaultAction(cancel)
        self._cancel.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        layout.addWidget(self._bar)
        layout.addWidget(self._label, 1)
        layout.addWidget(self._cancel)
        # The Cancel button keeps its place when hidden, so the line's height never changes.
        policy = self._cancel.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self._cancel.setSizePolicy(policy)
        self._active = False
        self._show_parts(False)

    def _show_parts(self, on: bool) -> None:
        self._active = on
        self._bar.setVisible(on)
        self._cancel.setVisible(on)

    @property
    def active(self) -> bool:
        """Whether a run is being shown (the widget itself always keeps its place)."""
        return self._active

    @property
    def text(self) -> str:
        return self._label.text()

    @property
    def fraction(self) -> float | None:
        """Progress shown, 0..1, or None while busy without a known end."""
        if self._bar.maximum() == 0:
            return None
        return self._bar.value() / self._bar.maximum()

    def busy(self, text: str) -> None:
        self._bar.setRange(0, 0)
        self._label.setText(text)
        self._show_parts(True)

    def progress(self, fraction: float, text: str) -> None:
        self._bar.setRange(0, _STEPS)
        self._bar.setValue(max(0, min(_STEPS, int(fraction * _STEPS))))
        self._label.setText(text)
        if not self._active:
            self._show_parts(True)

    def message(self, text: str) -> None:
        self._label.setText(text)

    def idle(self, text: str = "") -> None:
        """No run: the bar and Cancel hide, ``text`` (how the last run ended) stays, in the
        ordinary text colour (a disabled-looking grey was hard to read)."""
        self._show_parts(False)
        self._bar.setRange(0, _STEPS)
        self._bar.setValue(0)
        self._label.setText(text)
