"""A message strip above a page's content: problems worth knowing, never a modal dialog.

Missing stores, unparseable feeds, a worker that failed: the admin reads them when they like and
closes the strip; the window keeps working meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QStyle, QToolButton, QWidget

Level = Literal["info", "warning", "error"]

_STYLES: dict[Level, tuple[str, str]] = {
    # (background, border): light tints with dark text read on light and dark themes alike.
    "info": ("#e3eefb", "#7aa7dd"),
    "warning": ("#fff4d6", "#e0b54a"),
    "error": ("#fde4e2", "#d9645b"),
}
_ICONS: dict[Level, QStyle.StandardPixmap] = {
    "info": QStyle.StandardPixmap.SP_MessageBoxInformation,
    "warning": QStyle.StandardPixmap.SP_MessageBoxWarning,
    "error": QStyle.StandardPixmap.SP_MessageBoxCritical,
}

MAX_LINES = 4
"""Lines shown at once; the rest are counted, and listed in the tooltip."""


class Banner(QFrame):
    """Shows a titled list of messages with a close button; hidden while it has nothing to say."""

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._icon = QLabel(self)
        self._text = QLabel(self)
        self._text.setWordWrap(True)
        self._text.setTextFormat(Qt.TextFormat.PlainText)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._close = QToolButton(self)
        self._close.setAutoRaise(True)
        self._close.setText("✕")
        self._close.setToolTip("Hide this message")
        self._close.setAccessibleName("Close message")
        self._close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.setSpacing(10)
        layout.addWidget(self._icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._text, 1)
        layout.addWidget(self._close, 0, Qt.AlignmentFlag.AlignTop)
        self._messages: list[tuple[Level, str]] = []
        self.hide()

    @property
    def messages(self) -> list[str]:
        return [text for _level, text in self._messages]

    @property
    def text(self) -> str:
        return self._text.text()

    def set_messages(self, messages: Sequence[str], level: Level = "warning") -> None:
        """Replace what the banner says (an empty list hides it)."""
        self._messages = [(level, m) for m in messages]
        self._update()

    def add_message(self, message: str, level: Level = "error") -> None:
        self._messages.append((level, message))
        self._update()

    def dismiss(self) -> None:
        self._messages = []
        self._update()
        self.closed.emit()

    def _update(self) -> None:
        if not self._messages:
            self.hide()
            return
        order: tuple[Level, ...] = ("info", "warning", "error")
        level = max((lvl for lvl, _ in self._messages), key=order.index)
        lines = [text for _lvl, text in self._messages]
        shown = lines[:MAX_LINES]
        if len(lines) > MAX_LINES:
            shown.append(f"… and {len(lines) - MAX_LINES} more (hover to see them all)")
        self._text.setText("\n".join(shown))
        self.setToolTip("\n".join(lines) if len(lines) > MAX_LINES else "")
        background, border = _STYLES[level]
        self.setStyleSheet(
            f"QFrame#banner {{ background: {background}; border: 1px solid {border};"
            " border-radius: 4px; }"
            " QFrame#banner QLabel { color: #1f1f1f; background: transparent; }"
            " QFrame#banner QToolButton { color: #1f1f1f; }"
        )
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        self._icon.setPixmap(self.style().standardIcon(_ICONS[level]).pixmap(size, size))
        self.show()
