"""Names and messages as people see them, and names in JSON: never a terminal command, never lossy.

A cache is written by others: an entry or file name can hold ESC sequences, carriage returns,
bidirectional overrides or bytes that are not UTF-8. :func:`display_text` and :func:`display_path`
escape all of those (so a name cannot move the cursor or hide text, and two different names never
look the same); :func:`json_name` gives a name in JSON losslessly. Kept apart from the manifest
engine (which re-exports them), so that listing a cache loads only this.
"""

from __future__ import annotations

import os

PathLike = str | bytes | os.PathLike

# Characters that change what a terminal shows: C0/C1 controls, DEL, line and paragraph
# separators, and the bidirectional overrides that reorder text.
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F))


def _escape_char(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, from surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if ch in _NAMED:
        return _NAMED[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _needs_escape(ch: str) -> bool:
    if ch == "\\" or ch in _BIDI:
        return True
    if ch.isprintable():
        return False
    import unicodedata  # only for the rare character that is not printable

    return unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")


def display_text(text: str) -> str:
    """Text safe to show on a terminal or in a window: control characters (ESC, CR, newline...),
    line separators and bidirectional overrides as ``\\xNN`` / ``\\n`` / ``\\uNNNN``, bytes that
    are not UTF-8 (surrogate escapes) as ``\\xNN``, and a backslash as ``\\\\``, so that two
    different names never look the same."""
    if text.isprintable() and "\\" not in text and _BIDI.isdisjoint(text):
        return text
    return "".join(_escape_char(ch) if _needs_escape(ch) else ch for ch in text)


def safe_text(text: str) -> str:
    """A message (whose names are escaped already) safe to show: as :func:`display_text` but
    leaving backslashes alone, so escaping twice changes nothing."""
    if text.isprintable() and _BIDI.isdisjoint(text):
        return text
    return "".join(_escape_char(ch) if ch != "\\" and _needs_escape(ch) else ch for ch in text)


def _bytes(value: PathLike) -> bytes:
    """A name's bytes: as ``os.fsencode`` gives them, and as UTF-8 for text the filesystem
    encoding cannot hold (under an ISO-8859-1 locale, a name that came from UTF-8 text)."""
    try:
        return os.fsencode(value)
    except UnicodeEncodeError:
        return os.fspath(value).encode("utf-8", "surrogateescape")  # type: ignore[union-attr]


def display_path(path: PathLike) -> str:
    """A path (or name) as text for people: see :func:`display_text`."""
    raw = _bytes(path)
    return display_text(raw.decode("utf-8", errors="surrogateescape"))


def json_name(value: str | bytes | None) -> str | dict[str, str] | None:
    """A file name or path in JSON, lossless and unambiguous, for output that is strict UTF-8.

    A name that is valid UTF-8 is a JSON string. Any other name is an object
    ``{"base64": <its bytes in standard base64>, "text": <display_path of it>}``: decode
    ``base64`` for the exact bytes; ``text`` is only for showing. A string is never an object,
    so the two forms cannot be confused. ``str`` values are taken as ``os.fsdecode`` made them.
    """
    if value is None:
        return None
    raw = _bytes(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        import base64  # only for names that are not UTF-8

        return {"base64": base64.b64encode(raw).decode("ascii"), "text": display_path(raw)}
