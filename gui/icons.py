"""Icons drawn for this project, loaded from ``resources/icons``."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ICON_DIRS = (
    RESOURCES / "icons",  # a source checkout
    Path(__file__).resolve().parent / "resources" / "icons",  # an installed wheel, if packaged so
)
APP_ID = "net.zeroinstall.Admin"
"""Reverse-DNS application id: the .desktop file, the AppStream metainfo and the icon share it."""


def icon(name: str) -> QIcon:
    """``resources/icons/<name>.svg``; an empty icon (never an error) if it is missing."""
    for folder in ICON_DIRS:
        path = folder / f"{name}.svg"
        if path.is_file():
            return QIcon(str(path))
    return QIcon()


def app_icon() -> QIcon:
    """The window icon: the installed theme icon if any, else the one in ``resources``."""
    return QIcon.fromTheme(APP_ID, icon(APP_ID))
