"""A guard against a reference-count bug of PySide6 6.12 on Python 3.11.

Measured on this project's machine (PySide6-Essentials 6.12.0, CPython 3.11.7): every call from
Python to a Qt method returning ``void`` drops one reference to ``None`` that it never took, every
``Signal.emit()`` drops one to ``True``, and ``QModelIndex.data()`` returning nothing drops one to
``None``. On Python 3.12+ these objects are immortal and nothing happens; on 3.11 their counts run
down with use until the interpreter aborts with "Fatal Python error: none_dealloc / bool_dealloc"
(within minutes in a busy window, and at exit after a benchmark).

:func:`guard_refcounts` detects the leak with a few probe calls and, only if it is there, raises
the counts of ``None``, ``True`` and ``False`` by 2**40 so they can never reach zero: what Python
3.12 does by making them immortal. It runs once, on import of this module, which every window
module imports; on a fixed PySide6 or a newer Python it changes nothing.
"""

from __future__ import annotations

import ctypes
import gc
import sys

from PySide6.QtCore import QObject, Signal

_HEADROOM = 1 << 40
_PROBES = 32
_guarded = False


class _Probe(QObject):
    ping = Signal()


def _drops(obj: object, action) -> int:
    gc.collect()
    before = sys.getrefcount(obj)
    for _ in range(_PROBES):
        action()
    gc.collect()
    return before - sys.getrefcount(obj)


def leaks_references() -> bool:
    """True when void Qt calls or signal emissions lose references (the PySide6 6.12 bug)."""
    probe = _Probe()
    void_leak = _drops(None, lambda: probe.setObjectName("probe"))
    emit_leak = _drops(True, probe.ping.emit)
    return void_leak >= _PROBES // 2 or emit_leak >= _PROBES // 2


def guard_refcounts() -> bool:
    """Make None/True/False un-freeable if this PySide6 leaks their references; True if it did."""
    global _guarded
    if _guarded:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False  # immortal there already
    if not leaks_references():
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every CPython object (3.11 layout, checked above).
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    _guarded = True
    return True


guard_refcounts()
