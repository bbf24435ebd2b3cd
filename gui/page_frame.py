"""The frame every page is built in. The Cache and Clean up pages: a toolbar of their actions on
top, then notices and options, the work area that takes the spare room, and the activity bar at the
bottom. The pages that change this system (Sharing, Maintenance): a heading, an intro that names
the fake root a page shows, a notice for outcomes and root commands, and a scroll area that keeps
the page usable in a small window."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QLayout,
    QMenu,
    QScrollArea,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

# --- pages of work: toolbar, work area, activity bar ---------------------------------------------


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


# --- pages that change this system: heading, intro, notice, scrolling ---------------------------


def page_heading(text: str, parent: QWidget | None = None) -> QLabel:
    """A page's title, larger and bold."""
    heading = QLabel(text, parent)
    font = QFont(heading.font())
    font.setPointSizeF(font.pointSizeF() * 1.35)
    font.setBold(True)
    heading.setFont(font)
    return heading


def page_intro(text: str, root: str | None, parent: QWidget | None = None) -> QLabel:
    """What a page is for, wrapped; on a fake ``root`` it says which one it shows."""
    intro = QLabel(text + (f" Showing the fake root {root}." if root else ""), parent)
    intro.setWordWrap(True)
    return intro


def notice_label(parent: QWidget | None = None) -> QLabel:
    """A selectable, wrapping message box for outcomes (root commands must be copyable)."""
    label = QLabel(parent)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setStyleSheet(
        "QLabel { background: palette(base); border: 1px solid palette(mid); border-radius: 4px;"
        " padding: 8px; }"
    )
    label.hide()
    return label


def scrolling(content: QWidget, parent: QWidget | None = None) -> QScrollArea:
    """``content`` in a frameless scroll area that resizes it to the width it has."""
    scroll = QScrollArea(parent)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setWidget(content)
    return scroll
