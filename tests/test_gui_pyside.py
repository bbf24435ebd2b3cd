"""The installed PySide6 must not leak references to None and True (PySide6 6.12.0 on Python 3.11
does, and the interpreter aborts once they run out: pyproject.toml keeps it below 6.12 there)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QTimer, Signal


class _Probe(QObject):
    ping = Signal()


def test_signals_and_void_calls_keep_reference_counts() -> None:
    probe, timer = _Probe(), QTimer()
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(2000):
        probe.ping.emit()
        timer.setInterval(5)
    # A little slack for unrelated objects created meanwhile; the leak loses 2,000 of each.
    assert abs(sys.getrefcount(None) - none_before) < 100
    assert abs(sys.getrefcount(True) - true_before) < 100
