"""The Cache page's two long runs, off the GUI thread: scanning (list, then measure) and verifying.

Each job wraps a core function that knows nothing about threads, gives it a cancel ``Event`` and
callbacks that only push into a :class:`~gui.workers.Batcher`, and re-emits what comes back on the
GUI thread. Every job carries the ``generation`` it was started for, so the page can drop the
late results of a run it has already replaced (F5 during a scan, a rescan during verification).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from core import cache as core_cache
from core import verify as core_verify
from core.child import ChildError
from core.verify_process import verify_paths_in_child
from gui.cache_model import prepare_rows
from gui.workers import Batcher, Starter, Worker

if TYPE_CHECKING:
    from core.stores import Store

log = logging.getLogger(__name__)

MEASURE_DELAY_MS = 150
"""Between the rows appearing and the measuring starting."""


class _Job(QObject):
    def __init__(self, generation: int, starter: Starter | None, parent: QObject | None) -> None:
        super().__init__(parent)
        self.generation = generation
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

    def _on_batch(self, items: list) -> None:
        raise NotImplementedError


class ScanJob(_Job):
    """Lists the stores (``core.cache.scan``), then measures each (``core.cache.measure_all``).

    ``listed(Scan, rows)`` comes first, with the table rows already made and sorted (by
    ``sort``) off the GUI thread by :func:`gui.cache_model.prepare_rows`, then
    ``measured(list[(Entry, Usage)])`` in batches, then
    ``finished(error)`` with None on success (also after a cancel).
    """

    listed = Signal(object, list)
    measured = Signal(list)
    finished = Signal(object)

    def __init__(
        self,
        generation: int,
        stores: Sequence[Store] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        sort: tuple[int, Qt.SortOrder] = (-1, Qt.SortOrder.AscendingOrder),
        jobs: int | None = None,
        starter: Starter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(generation, starter, parent)
        self.sort = sort  # how the table was sorted when the scan started: rows come sorted so
        self._stores = None if stores is None else list(stores)
        self._env = None if env is None else dict(env)
        self._jobs = jobs
        self.entries_total = 0
        self.entries_measured = 0

    def start(self) -> None:
        stores, env = self._stores, self._env
        column, order = self.sort

        def listing() -> tuple[Any, list]:
            scan = core_cache.scan(stores, env=env)
            return scan, prepare_rows(scan.entries, column, order)

        self._run(listing, "cache-scan", self._on_listed)

    def _on_listed(self, result: Any, error: object) -> None:
        if error is not None:
            self._finish(error)
            return
        scan, rows = result
        self.entries_total = len(scan.entries)
        self.listed.emit(scan, rows)
        if self.cancelled or not scan.entries:
            self._finish(None)
            return
        entries = list(scan.entries)
        # Let the window lay out and paint the new rows before the measuring threads and helper
        # processes start competing with it for the interpreter and the CPUs.
        QTimer.singleShot(MEASURE_DELAY_MS, self, lambda: self._measure(entries))

    def _measure(self, entries: list) -> None:
        if self.cancelled:
            self._finish(None)
            return
        put = self.batcher.put
        cancel = self._cancel
        jobs = self._jobs
        self._run(
            lambda: core_cache.measure_all(entries, lambda e, u: put((e, u)), cancel, jobs),
            "cache-measure",
            lambda _result, err: self._finish(err),
        )

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
    at most once per batch (the newest), then ``finished(error)``.
    """

    results = Signal(list)
    progress = Signal(object)
    finished = Signal(object)

    def __init__(
        self,
        generation: int,
        paths: Sequence[str],
        *,
        jobs: int | None = None,
        out_of_process: bool = True,
        starter: Starter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(generation, starter, parent)
        self.paths = list(paths)
        self._jobs = jobs
        self.out_of_process = out_of_process
        self.last_progress: core_verify.Progress | None = None

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
            }
            if self.out_of_process:
                # The engine's threads would fight the GUI thread for the interpreter lock here
                # (stalls of 150 ms and more); in a child process they don't.
                try:
                    return verify_paths_in_child(paths, **kwargs)
                except ChildError:
                    if delivered or cancel.is_set():
                        raise
                    log.warning("verifying in this process: no child process", exc_info=True)
            return core_verify.verify_paths(paths, **kwargs)

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
