"""Is there a display server (X11, Wayland) for the window? Asked before Qt is: Qt aborts the
process (exit 134, "could not load the Qt platform plugin") when there is no display, and says
nothing useful to an admin on a server. (Not :mod:`core.display`, which escapes names for
people.)"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

_HOW = (
    "Start it from a desktop session or under 'xvfb-run -a zeroinstall-admin', write a picture "
    "with --screenshot FILE.png, or use the command line (zeroinstall-admin --help)."
)


def _x_socket_listens(number: str) -> bool:
    """True when a local X server listens for display ``number`` (abstract or file socket)."""
    for address in (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect(address)
            return True
        except OSError:
            continue
        finally:
            s.close()
    return False


def display_problem(env: Mapping[str, str] | None = None) -> str | None:
    """None when the window can probably open; else one line saying why not and what to do.

    Only Linux desktops (X11, Wayland) are checked; any other ``QT_QPA_PLATFORM`` (offscreen,
    vnc, eglfs...) is left to Qt. A local X display (":0") must have a server listening.
    """
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].split(";", 1)[0]
    if platform not in ("", "xcb", "wayland", "wayland-egl"):
        return None
    display = env.get("DISPLAY", "")
    wayland = env.get("WAYLAND_DISPLAY", "")
    if wayland and platform != "xcb":
        return None
    if display and platform != "wayland":
        host, _, rest = display.rpartition(":")
        number = rest.split(".", 1)[0]
        if host in ("", "unix") and number.isdigit() and not _x_socket_listens(number):
            return f"zeroinstall-admin: no X server answers on display {display}. {_HOW}"
        return None
    missing = "DISPLAY and WAYLAND_DISPLAY are not set"
    if platform == "xcb":
        missing = "DISPLAY is not set"
    elif platform.startswith("wayland"):
        missing = "WAYLAND_DISPLAY is not set"
    return f"zeroinstall-admin: no display ({missing}), so the window cannot open. {_HOW}"
