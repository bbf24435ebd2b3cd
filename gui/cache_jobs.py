"""The Cache page's two long runs, off the GUI thread: scanning (list, then measure) and verifying.

Each job wraps a core function that knows nothing about threads, gives it a cancel ``Event`` and
callbacks that only push into a :class:`~gui.workers.Batcher`, and re-emits what comes back on the
GUI thread. Every job carries the ``generation`` it was started for, so the page can drop the
late results of a run it has already replaced (F5 during a scan, a rescan during verification).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal

from core import cache as core_cache
from core import measure as core_measure
from core import verify as core_verify
from core.child import ChildError
from core.scan_process import scan_in_child
from core.verify_process import verify_paths_in_child
from gui.cache_rows import new_rows, prepare_rows
from gui.workers import Batcher, Starter, Worker

if TYPE_CHECKING:
    from core.stores import Store

log = logging.getLogger(__name__)


class _Job(QObject):
    def __init__(
        self,
        generation: int,
        jobs: int | None,
        out_of_process: bool,
        starter: Starter | None,
        parent: QObject | None,
    ) -> None:
        super().__init__(parent)
        self.generation = generation
        self._jobs = jobs
        self.out_of_process = out_of_process
        self._starter = starter
        self._cancel = threading.Event()
        self._workers: list[Worker] = []
        self.batcher = Batcher(50, self)
        self.batcher.delivered.connect(self._on_batch)
        self.done = False

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the run to stop; ``finished`` follows once the core function has returned."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every thread of the job has ended (True) or ``timeout`` passed (False)."""
        return all(w.wait(timeout) for w in list(self._workers))

    def _run(self, fn: Any, name: str, on_done: Any) -> None:
        worker = Worker(fn, starter=self._starter, name=name, parent=self)
        worker.done.connect(on_done)
        self._workers.append(worker)
        worker.start()

    def _in_child_or_here(
        self,
        in_child: Callable[[], Any],
        here: Callable[[], Any],
        delivered: Callable[[], bool],
        what: str,
    ) -> Any:
        """``in_child()``, or ``here()`` in this process when no child process can be started.

        The core engines are mostly Python code: in threads of this process they would hold the
        interpreter lock the GUI thread needs for every repaint (stalls of 100-200 ms); in a child
        process they don't. Once something was ``delivered()`` (or the run was cancelled) a
        failing child is an error, not a reason to start again here.
        """
        if self.out_of_process:
            try:
                return in_child()
            except ChildError:
                if delivered() or self.cancelled:
                    raise
                log.warning("%s in this process: no child process", what, exc_info=True)
        return here()

    def _on_batch(self, items: list) -> None:
        raise NotImplementedError


class ScanJob(_Job):
    """Lists the stores (``core.cache.scan``), then measures each (``core.measure.measure_all``),
    both in a child process by default (:mod:`core.scan_process`; in this process if none can be
    started).

    ``listed(Scan, rows)`` comes first, with the table rows already made and sorted (by
    ``sort``) off the GUI thread by :func:`gui.cache_rows.prepare_rows`, then
    ``measured(list[(Entry, Usage)])`` in batches, then
    ``finished(error)`` with None on success (also after a cancel).
    """

    listed = Signal(object, object)
    measured = Signal(object)
    finished = Signal(object)
    _listed_elsewhere = Signal(object, object)

    def __init__(
        self,
        generation: int,
        stores: Sequence[Store] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        sort: tuple[int, Qt.SortOrder] = (-1, Qt.SortOrder.AscendingOrder),
        jobs: int | None = None,
        out_of_process: bool = True,
        starter: Starter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(generation, jobs, out_of_process, starter, parent)
        self.sort = sort  # how the table was sorted when the scan started: rows come sorted so
        self._stores = None if stores is None else list(stores)
        self._env = None if env is None else dict(env)
        self.entries_total = 0
        self.entries_measured = 0
        # Queued even with an inline starter, so the rows arrive through the event loop.
        self._listed_elsewhere.connect(self._on_listed, Qt.ConnectionType.QueuedConnection)

    def start(self) -> None:
        stores, env, jobs, cancel = self._stores, self._env, self._jobs, self._cancel
        column, order = self.sort
        put, put_many = self.batcher.put, self.batcher.put_many
        listed = False
        made: list = []  # rows made while the rest of the entries are still on their way

        def on_listed(scan: core_cache.Scan) -> None:
            nonlocal listed
            listed = True
            self._listed_elsewhere.emit(scan, prepare_rows(scan.entries, column, order, made))

        def in_child() -> None:
            scan_in_child(
                stores,
                env,
                on_entries=lambda chunk: made.extend(new_rows(chunk)),
                on_listed=on_listed,
                on_measured=put_many,
                cancel=cancel,
                jobs=jobs,
            )

        def here() -> None:
            made.clear()
            scan = core_cache.scan(stores, env=env)
            on_listed(scan)
            if not cancel.is_set():
                # Here, the walking stays in the workers: this process draws the window.
                core_measure.measure_all(
                    scan.entries, lambda e, u: put((e, u)), cancel, jobs, work_here=False
                )

        def run() -> None:
            self._in_child_or_here(in_child, here, lambda: listed, "scanning")

        self._run(run, "cache-scan", lambda _result, error: self._finish(error))

    def _on_listed(self, scan: core_cache.Scan, rows: list) -> None:
        self.entries_total = len(scan.entries)
        self.listed.emit(scan, rows)

    def _on_batch(self, items: list) -> None:
        self.entries_measured += len(items)
        self.measured.emit(items)

    def _finish(self, error: object) -> None:
        self.batcher.flush()  # the last results before the end is announced
        self.done = True
        self.finished.emit(error)


class VerifyJob(_Job):
    """Verifies paths with ``core.verify.verify_paths``, in a child process by default
    (:mod:`core.verify_process`; in this process if none can be started).

    ``results(list[(index, VerifyOutcome)])`` in batches as verdicts arrive, ``progress(Progress)``
    at most once per batch (the newest), then ``finished(error)``. ``sizes`` (bytes per path,
    e.g. the measured sizes) make the progress's byte total, and so the time left, right from the
    start.
    """

    results = Signal(object)
    progress = Signal(object)
    finished = Signal(object)

    def __init__(
        self,
        generation: int,
        paths: Sequence[str],
        *,
        jobs: int | None = None,
        sizes: Sequence[int | None] | None = None,
        out_of_process: bool = True,
        starter: Starter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(generation, jobs, out_of_process, starter, parent)
        self.paths = list(paths)
        self.sizes = None if sizes is None else list(sizes)
        self.last_progress: core_verify.Progress | None = None
        self.notes: list[str] = []  # what the verification says once (records not written...)

    def start(self) -> None:
        paths, jobs, cancel, put = self.paths, self._jobs, self._cancel, self.batcher.put
        delivered = False

        def on_result(index: int, outcome: object) -> None:
            nonlocal delivered
            delivered = True
            put((index, outcome))

        def run() -> object:
            kwargs: dict[str, Any] = {
                "jobs": jobs,
                "on_result": on_result,
                "on_progress": lambda p: put((-1, p)),
                "cancel": cancel,
                "sizes": self.sizes,
                "notes": self.notes,
            }
            from core.store_lock import store_lock  # shared with scheduled maintenance

            stores = {os.path.dirname(p) for p in paths}
            with store_lock(list(stores), shared=True, wait=2.0):
                return self._in_child_or_here(
                    lambda: verify_paths_in_child(paths, **kwargs),
                    # Here, the walking stays in the workers: this process draws the window.
                    lambda: core_verify.verify_remembering(paths, work_here=False, **kwargs),
                    lambda: delivered,
                    "verifying",
                )

        self._run(run, "verify", self._on_done)

    def _on_batch(self, items: list) -> None:
        verdicts = []
        progress = None
        for index, value in items:
            if index < 0:
                progress = value
            else:
                verdicts.append((index, value))
        if verdicts:
            self.results.emit(verdicts)
        if progress is not None:
            self.last_progress = progress
            self.progress.emit(progress)

    def _on_done(self, _result: object, error: object) -> None:
        self.batcher.flush()
        self.done = True
        self.finished.emit(error)
