"""The frame a page is built in: a toolbar of its actions on top, then its notices and options,
the work area that takes the spare room, and the activity bar at the bottom."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QLayout, QMenu, QToolBar, QVBoxLayout, QWidget


def add_actions(target: QToolBar | QMenu, actions: Iterable[QAction | None]) -> None:
    """Put actions on a toolbar or in a menu, in order; None is a separator."""
    for action in actions:
        if action is None:
            target.addSeparator()
        else:
            target.addAction(action)


def page_toolbar(title: str, parent: QWidget, actions: Iterable[QAction | None]) -> QToolBar:
    """A page's fixed toolbar: its main actions, text beside the icons."""
    toolbar = QToolBar(title, parent)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.setMovable(False)
    add_actions(toolbar, actions)
    return toolbar


def stack_page(
    page: QWidget, top: Sequence[QWidget | QLayout], body: QWidget, bottom: QWidget
) -> QVBoxLayout:
    """Lay the page out edge to edge: ``top`` in order, ``body`` taking the room, ``bottom``."""
    layout = QVBoxLayout(page)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(4)
    for part in top:
        if isinstance(part, QLayout):
            layout.addLayout(part)
        else:
            layout.addWidget(part)
    layout.addWidget(body, 1)
    layout.addWidget(bottom)
    return layout
