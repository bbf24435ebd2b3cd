"""Where the window remembers its size, columns, sort order and last page.

Everything goes through :func:`open_settings`, so tests can redirect it: they call
``QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp_dir)`` first (or pass
their own ``QSettings`` to the window), and the real user's configuration is never touched.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANIZATION = "Zero Install"
APPLICATION = "Zero Install Admin"


def open_settings() -> QSettings:
    """The user's settings for this application, as an INI file in the user's config directory."""
    return QSettings(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
    )


def read_int(settings: QSettings, key: str, default: int) -> int:
    """An integer setting; the default when absent or not a number (a hand-edited file)."""
    value = settings.value(key, default)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def read_bytes(settings: QSettings, key: str) -> bytes | None:
    """A saved Qt state blob (geometry, header, splitter), or None."""
    value = settings.value(key)
    if value is None:
        return None
    try:
        return bytes(value)  # QByteArray or bytes
    except TypeError:
        return None
