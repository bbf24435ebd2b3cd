"""A message strip above a page's content: problems worth knowing, never a modal dialog.

Missing stores, unparseable feeds, a worker that failed: the admin reads them when they like and
closes the strip; the window keeps working meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStyle,
    QToolButton,
    QWidget,
)

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

_ZWSP = "\u200b"
_LONG_RUN = re.compile(r"[^\s/\u200b]{24}(?=[^\s/\u200b])")


def _breakable(text: str) -> str:
    """Let a long path wrap after its slashes, and any long run of letters every 24 (zero-width
    spaces: invisible, and a word-wrapped label may break there)."""
    text = text.replace("/", "/" + _ZWSP)
    return _LONG_RUN.sub(lambda m: m.group(0) + _ZWSP, text)


MAX_LINES = 4
"""Lines shown at once; the rest are counted, and listed in the tooltip."""


class Banner(QFrame):
    """Shows a titled list of messages with a close button; hidden while it has nothing to say.

    Closed with its button, it keeps its place (blank) until the pointer leaves it: what is below
    never slides up under the pointer, where the next click would land on it."""

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
        # Never wider than the page: long paths and digests break (see _breakable) instead of
        # widening the window past the screen.
        policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self._text.setSizePolicy(policy)
        self._text.setMinimumWidth(self.fontMetrics().averageCharWidth() * 20)
        self._close = QToolButton(self)
        self._close.setAutoRaise(True)
        self._close.setText("✕")
        self._close.setToolTip("Hide this message")
        self._close.setAccessibleName("Close message")
        self._close.clicked.connect(self.dismiss)
        self._button = QPushButton(self)
        self._button.hide()
        self._button_slot: Callable[[], object] | None = None
        self._button.clicked.connect(self._button_clicked)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.setSpacing(10)
        layout.addWidget(self._icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._text, 1)
        layout.addWidget(self._button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self._close, 0, Qt.AlignmentFlag.AlignTop)
        self._messages: list[tuple[Level, str]] = []
        self._holding = False  # closed under the pointer: blank until it leaves
        self.hide()

    @property
    def messages(self) -> list[str]:
        return [text for _level, text in self._messages]

    @property
    def text(self) -> str:
        return self._text.text().replace(_ZWSP, "")

    def set_messages(self, messages: Sequence[str], level: Level = "warning") -> None:
        """Replace what the banner says (an empty list hides it)."""
        self._messages = [(level, m) for m in messages]
        self._update()

    def add_message(self, message: str, level: Level = "error") -> None:
        self._messages.append((level, message))
        self._update()

    def set_action(self, text: str, slot: Callable[[], object] | None, tip: str = "") -> None:
        """A button beside the messages ("Copy path"), until the banner is closed or emptied;
        ``slot`` None removes it."""
        self._button_slot = slot
        self._button.setText(text)
        self._button.setToolTip(tip)
        self._button.setVisible(slot is not None and bool(self._messages))

    @property
    def action_button(self) -> QPushButton:
        return self._button

    def _button_clicked(self) -> None:
        if self._button_slot is not None:
            self._button_slot()

    def dismiss(self) -> None:
        self._messages = []
        self._button_slot = None
        if self.isVisible() and self.underMouse():
            # Blank, same height, until the pointer leaves (leaveEvent).
            self._holding = True
            self.setMinimumHeight(self.height())
            for child in (self._icon, self._text, self._button, self._close):
                child.hide()
            self.setStyleSheet("QFrame#banner { background: transparent; border: none; }")
        else:
            self._update()
        self.closed.emit()

    def leaveEvent(self, event: QEvent) -> None:
        super().leaveEvent(event)
        if self._holding:
            self._release()

    def _release(self) -> None:
        self._holding = False
        self.setMinimumHeight(0)
        for child in (self._icon, self._text, self._close):
            child.show()
        self._update()

    def _update(self) -> None:
        if self._holding:
            self._release()
            return
        if not self._messages:
            self._button_slot = None
            self._button.hide()
            self.hide()
            return
        order: tuple[Level, ...] = ("info", "warning", "error")
        level = max((lvl for lvl, _ in self._messages), key=order.index)
        lines = [text for _lvl, text in self._messages]
        shown = lines[:MAX_LINES]
        if len(lines) > MAX_LINES:
            shown.append(f"… and {len(lines) - MAX_LINES} more (hover to see them all)")
        self._text.setText(_breakable("\n".join(shown)))
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
        self._button.setVisible(self._button_slot is not None)
        self.show()
