"""Running core work off the GUI thread, and bringing its results back to the GUI thread.

Three small pieces, and nothing else in ``gui`` starts threads by hand:

* :class:`Worker` runs one callable somewhere else (a new daemon thread by default; tests inject an
  inline starter) and delivers ``done(result, error)`` on the GUI thread, always through the event
  loop, and always: an exception in the callable arrives as ``error``, it is never lost.
* :class:`WorkerGroup` keeps the workers of one page: it starts each, tells the page when it is
  busy, and hands a result to its callback or an exception to the page's error handler.
* :class:`Batcher` collects items pushed from any thread and hands them to the GUI thread as one
  list at most every ``interval_ms``: 10,000 results make a few dozen deliveries, not 10,000
  repaints.

Workers never touch widgets or models; they only call :meth:`Batcher.put` and return a value.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

log = logging.getLogger(__name__)

Starter = Callable[[Callable[[], None]], None]
"""Something that runs a no-argument callable, usually on another thread."""


def thread_starter(name: str) -> Starter:
    """A starter that runs each callable on a new daemon thread called ``name``.

    Daemon, so that a stuck filesystem call can never keep the process alive once the window closed.
    """

    def start(fn: Callable[[], None]) -> None:
        threading.Thread(target=fn, name=name, daemon=True).start()

    return start


def inline_starter(fn: Callable[[], None]) -> None:
    """Runs the callable at once on the calling thread (for tests; results still arrive queued)."""
    fn()


class Worker(QObject):
    """Runs ``fn()`` off the GUI thread; ``done(result, error)`` arrives later on the GUI thread.

    Only one of ``result``/``error`` counts: ``error`` is the exception ``fn`` raised, or None.
    """

    done = Signal(object, object)
    _finished = Signal(object, object)

    def __init__(
        self,
        fn: Callable[[], Any],
        *,
        starter: Starter | None = None,
        name: str = "worker",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._fn = fn
        self._starter = starter or thread_starter(name)
        self._name = name
        self._ended = threading.Event()
        self._started = False
        # Queued even when the starter is inline, so `done` never fires inside start().
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @property
    def running(self) -> bool:
        return self._started and not self._ended.is_set()

    def start(self) -> None:
        if self._started:
            raise RuntimeError(f"{self._name} was already started")
        self._started = True
        self._starter(self._run)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the callable returned (True) or ``timeout`` seconds passed (False)."""
        return self._ended.wait(timeout) if self._started else True

    def _run(self) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = self._fn()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the UI
            error = exc
        finally:
            self._ended.set()
        self._finished.emit(result, error)

    def _deliver(self, result: object, error: object) -> None:
        if isinstance(error, BaseException):
            log.error("%s failed", self._name, exc_info=error)
        self.done.emit(result, error)


class WorkerGroup:
    """The workers one page runs. :meth:`run` starts one; when it ends, ``on_change`` is called
    (the page updates its buttons from :attr:`busy`), then its result goes to ``on_done``, or its
    exception to ``on_error(name, error)``. A finished worker is let go on a later run, never
    inside its own signal (a deleteLater there crashed PySide 6 under pytest-qt's event
    processing)."""

    def __init__(
        self,
        starter: Starter | None,
        on_change: Callable[[], None],
        on_error: Callable[[str, BaseException], None],
    ) -> None:
        self._starter = starter
        self._on_change = on_change
        self._on_error = on_error
        self._running: set[Worker] = set()
        self._finished: list[Worker] = []

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def run(self, name: str, fn: Callable[[], Any], on_done: Callable[[Any], None]) -> Worker:
        self._finished = self._finished[-2:]
        worker = Worker(fn, starter=self._starter, name=name)
        self._running.add(worker)

        def finished(result: object, error: object) -> None:
            self._running.discard(worker)
            self._finished.append(worker)
            self._on_change()
            if isinstance(error, BaseException):
                self._on_error(name, error)
                return
            on_done(result)

        worker.done.connect(finished)
        self._on_change()
        worker.start()
        return worker

    def wait(self, timeout: float) -> None:
        """Wait for every running worker, each at most ``timeout`` seconds (at shutdown)."""
        for worker in list(self._running):
            worker.wait(timeout)


class Batcher(QObject):
    """Collects items from any thread; ``delivered(list)`` hands them to the GUI thread in batches.

    The first item after a delivery wakes a single-shot timer on the GUI thread (one queued signal);
    the items that arrive before it fires ride along. :meth:`flush` delivers at once, e.g. when a
    run ends and its last results must be applied before reporting the end.
    """

    delivered = Signal(object)
    _wake = Signal()

    def __init__(self, interval_ms: int = 50, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)
        self._wake.connect(self._on_wake, Qt.ConnectionType.QueuedConnection)

    def put(self, item: Any) -> None:
        """Queue one item; safe from any thread, cheap (no signal unless the queue was empty)."""
        with self._lock:
            self._items.append(item)
            first = len(self._items) == 1
        if first:
            self._wake.emit()

    def put_many(self, items: list[Any]) -> None:
        """Queue several items at once (one lock, at most one signal)."""
        if not items:
            return
        with self._lock:
            first = not self._items
            self._items.extend(items)
        if first:
            self._wake.emit()

    def pending(self) -> int:
        with self._lock:
            return len(self._items)

    def _on_wake(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Deliver everything queued so far, now (GUI thread only)."""
        self._timer.stop()
        with self._lock:
            items, self._items = self._items, []
        if items:
            self.delivered.emit(items)
