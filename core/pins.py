"""Pins: entries, or every version of a program, that clean-up keeps forever.

Kept in ``pins.json`` in this app's state directory (:func:`core.actionlog.state_dir`): a user's
pins are their own; root's (``/var/lib/zeroinstall-admin``) are the admin's. A pin is either an
entry's digest directory name, or a program: a feed URL (or a local feed path) matching the
feed that lists an entry, or a program name matching the feed's ``<name>`` (case-insensitive).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.actionlog import state_dir
from core.digests import DigestError, parse_user_digest

PINS_NAME = "pins.json"


def pins_path(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(state_dir(env), PINS_NAME)


class PinError(Exception):
    """The pins file cannot be read or written, or a pin is not understood; one line."""


@dataclass
class Pins:
    path: str
    entries: list[str] = field(default_factory=list)  # digest directory names
    programs: list[str] = field(default_factory=list)  # feed URLs or program names

    def reason(self, name: str, feed_url: str | None, program: str | None) -> str | None:
        """Why this entry is pinned, or None."""
        if name in self.entries:
            return "pinned (this entry)"
        for pin in self.programs:
            if feed_url is not None and pin == feed_url:
                return f"pinned (every version of {pin})"
            if program is not None and pin.casefold() == program.casefold():
                return f"pinned (every version of {program})"
        return None

    def save(self) -> None:
        """Write atomically (a temporary file renamed over the old one)."""
        folder = os.path.dirname(self.path)
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".pins-", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"entries": self.entries, "programs": self.programs}, f, indent=2)
                f.write("\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            why = exc.strerror or exc
            raise PinError(f"cannot write the pins file {self.path}: {why}") from None


def load(path: str | None = None) -> Pins:
    """The pins in ``path`` (default :func:`pins_path`); none when the file does not exist."""
    path = path or pins_path()
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return Pins(path)
    except (OSError, ValueError) as exc:
        raise PinError(
            f"cannot read the pins file {path}: {getattr(exc, 'strerror', None) or exc}; "
            "fix or remove it (nothing is cleaned while pins are unknown)"
        ) from None
    if not isinstance(raw, dict):
        raise PinError(f"the pins file {path} is not a JSON object; fix or remove it")
    entries = [str(x) for x in raw.get("entries", []) if isinstance(x, str)]
    programs = [str(x) for x in raw.get("programs", []) if isinstance(x, str)]
    return Pins(path, entries, programs)


def classify(target: str, known_programs: Iterable[tuple[str, str]]) -> tuple[str, str]:
    """("entry", digest name) or ("program", feed URL or name) for what a user typed.

    ``known_programs``: (feed URL, program name) of the cached feeds. A name that is neither a
    digest, a URL or path, nor a known program is refused (a typo would otherwise pin nothing).
    """
    text = target.strip()
    if not text:
        raise PinError("give an entry's digest or a program's name or feed URL")
    if text.startswith(("sha1=", "sha1new=", "sha256=", "sha256new_", "sha256new=")):
        try:
            return "entry", parse_user_digest(text).name
        except DigestError as exc:
            raise PinError(str(exc)) from None
    if "://" in text or text.startswith("/"):
        return "program", text
    known = list(known_programs)
    for _url, name in known:
        if name.casefold() == text.casefold():
            return "program", name
    names = sorted({name for _url, name in known})
    hint = f" (cached programs: {', '.join(names[:10])})" if names else ""
    raise PinError(
        f"'{text}' is neither a digest, a feed URL nor the name of a cached program{hint}"
    )


def add(pins: Pins, kind: str, value: str) -> bool:
    """Pin; False when it was already pinned."""
    target = pins.entries if kind == "entry" else pins.programs
    folded = [t.casefold() for t in target] if kind == "program" else target
    if (value.casefold() if kind == "program" else value) in folded:
        return False
    target.append(value)
    return True


def remove(pins: Pins, kind: str, value: str) -> bool:
    """Unpin; False when it was not pinned."""
    target = pins.entries if kind == "entry" else pins.programs
    for i, existing in enumerate(target):
        same = existing.casefold() == value.casefold() if kind == "program" else existing == value
        if same:
            del target[i]
            return True
    return False


def set_pinned(
    targets: Iterable[tuple[str, str]], on: bool, env: Mapping[str, str] | None = None
) -> tuple[Pins, list[tuple[str, str]]]:
    """Pin (``on``) or unpin each ``(kind, value)`` ("entry" and a digest name, or "program" and
    a feed) in the pins file, saved when anything changed: the one way the window's Pin and Unpin
    and the ``pin`` and ``unpin`` commands change pins. Returns the pins as saved and the targets
    that changed; raises :class:`PinError` when the file cannot be read or written."""
    current = load(pins_path(env))
    change = add if on else remove
    changed = [(kind, value) for kind, value in targets if change(current, kind, value)]
    if changed:
        current.save()
    return current, changed
