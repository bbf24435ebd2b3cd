"""Making a page's actions: text, tooltip with the shortcut, status tip, icon, slot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget

from gui.icons import icon


def make_action(
    parent: QWidget,
    text: str,
    tip: str,
    slot: Callable[..., Any],
    shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
    icon_name: str | None = None,
) -> QAction:
    """An action whose tooltip ends with its shortcut as this platform writes it ("(Ctrl+R)").

    Pages use it as a method (``_action = make_action``), so ``parent`` is the page."""
    action = QAction(text, parent)
    if icon_name:
        action.setIcon(icon(icon_name))
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
        tip = f"{tip} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.triggered.connect(slot)
    return action
