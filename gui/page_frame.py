"""The frame of the pages that change this system (Sharing, Maintenance): a heading, an intro that
names the fake root a page shows, a notice for outcomes and root commands, and the scroll area
that keeps a page usable in a small window.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QWidget


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
