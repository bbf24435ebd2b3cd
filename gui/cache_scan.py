"""Scanning on the Cache page (F5): list the stores, measure every entry, carry the verdicts of
unchanged entries into the new list and have the kept OK verdicts checked again; a newer scan
drops an older one's results, and a scan asked for during a verification waits for it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from core.units import count_text
from gui.cache_columns import Column
from gui.cache_jobs import ScanJob
from gui.cache_rows import Row, carry_verdicts
from gui.workers import Starter

if TYPE_CHECKING:
    from gui.cache_page import CachePage


class CacheScanner(QObject):
    """Runs the page's scans and puts what they find into the model and on screen."""

    def __init__(
        self,
        page: CachePage,
        stores: Sequence | None,
        env: Mapping[str, str] | None,
        *,
        jobs: int | None = None,
        starter: Starter | None = None,
    ) -> None:
        super().__init__(page)
        self.page = page
        self._stores = None if stores is None else list(stores)
        self._env = None if env is None else dict(env)
        self._jobs = jobs
        self._starter = starter
        self.generation = 0
        self.job: ScanJob | None = None
        self.pending = False  # F5 during a verification: rescan once it ends
        self.restore_path: str | None = None  # the entry to select again once listed
        self._removed_meanwhile: set[str] = set()  # removed while a scan was listing
        self._kept_verdicts = (0, 0)  # (kept, dropped) by the last rescan

    def rescan(self) -> None:
        """List the stores again (F5); results of a scan still running are dropped.

        During a verification the rescan waits for it to end (Escape cancels both): cancelling
        it silently would throw away work the admin asked for, and a new list made meanwhile
        would not receive the verdicts still on their way. Its verdicts are carried into the
        new list like any other.
        """
        page = self.page
        if page.verifier.job is not None:
            if not self.pending:
                self.pending = True
                page.activity.message("Rescanning once the verification ends (Escape cancels both)")
            return
        self.pending = False
        page.verifier.forget_recheck()
        if self.job is not None:
            self.job.cancel()
        current = page.current_row()
        self.restore_path = current.entry.path if current else self.restore_path
        self.generation += 1
        gen = self.generation
        job = ScanJob(
            gen,
            self._stores,
            self._env,
            jobs=self._jobs,
            starter=self._starter,
            sort=(page.model.sort_column, page.model.sort_order),
            parent=page,
        )
        job.listed.connect(lambda scan, rows, g=gen, j=job: self._on_listed(g, scan, rows, j.sort))
        job.measured.connect(lambda items, g=gen: self._on_measured(g, items))
        job.finished.connect(lambda error, g=gen, j=job: self._on_finished(g, j, error))
        old, self.job = self.job, job
        if old is not None and old.done:
            old.deleteLater()  # else once its threads end (it must receive their signals)
        page.activity.busy("Reading the stores…")
        page.show_busy()
        job.start()

    def removed_elsewhere(self, paths: Iterable[str]) -> None:
        """Entries removed by another page or the command line: a scan running now listed the
        stores before, and drops them from its list too."""
        if self.job is not None:
            self._removed_meanwhile.update(paths)

    def _on_listed(self, gen: int, scan, rows: list[Row], sorted_by: tuple | None) -> None:
        if gen != self.generation:
            return
        page = self.page
        model = page.model
        # Verdicts survive a rescan for entries that did not change since they were verified.
        self._kept_verdicts = carry_verdicts(model.rows, rows)
        if self._kept_verdicts[0] and model.sort_column == Column.STATUS:
            sorted_by = None  # the carried verdicts moved rows
        model.set_rows(rows, sorted_by)
        if self._removed_meanwhile:
            gone = [p for p in self._removed_meanwhile if not os.path.lexists(p)]
            self._removed_meanwhile = set()
            model.remove_paths(gone)
        page.set_store_choices([s.label for s in scan.stores if s.problem is None])
        messages = list(scan.problems)
        if not scan.entries:
            usable = [s for s in scan.stores if s.problem is None]
            where = ", ".join(s.path for s in usable) if usable else "no readable store"
            messages.append(
                f"No implementations found ({where}). Run with --demo to try the app "
                "on a demo cache."
            )
        page.banner.set_messages(messages, "warning")
        self._reselect()
        # Never the previous scan's row (and its stale verdict) in the pane.
        current = page.current_row()
        if page.details.row is not current:
            page.details.show_row(current)
        n = len(scan.entries)
        if n:
            page.activity.progress(0.0, f"Measuring sizes: 0 of {n:,} entries")
        page.refresh_now()
        page.update_actions()

    def _on_measured(self, gen: int, items: list) -> None:
        if gen != self.generation:
            return
        page = self.page
        page.rows_changed(page.model.apply_usages(items))
        job = self.job
        if job is not None and page.verifier.job is None and job.entries_total:
            done, total = job.entries_measured, job.entries_total
            page.activity.progress(done / total, f"Measuring sizes: {done:,} of {total:,} entries")

    def _on_finished(self, gen: int, job: ScanJob, error: object) -> None:
        job.deleteLater()  # its threads ended
        if gen != self.generation:
            return
        page = self.page
        self.job = None
        if isinstance(error, BaseException):
            page.show_failure("Scanning the stores", error)
        elif job.cancelled:
            page.last_report = "Scan cancelled: some sizes were not measured (F5 to scan again)"
        else:
            page.last_report = self._report(job)
            # A kept "OK" is checked again by its change keys (core.records): a stat walk when
            # nothing in the entry changed, a hash when anything did. The scan is over then.
            kept_ok = [
                r for r in page.model.rows if r.outcome is not None and r.outcome.status == "ok"
            ]
            if page.verifier.recheck(kept_ok, page.last_report):
                return  # (a verification still ending first: the re-check follows it)
        page.refresh_now()
        page.show_busy()
        page.scanFinished.emit()

    def _report(self, job: ScanJob) -> str:
        """ "Scanned 14 entries in 2 stores; kept 9 verification results, …"."""
        entries = count_text(job.entries_total, "entry")
        report = f"Scanned {entries} in {count_text(len(self.page.store_labels), 'store')}"
        kept, dropped = self._kept_verdicts
        if kept or dropped:
            report += f"; kept {kept:,} verification {'result' if kept == 1 else 'results'}"
            if dropped:
                report += (
                    f", {dropped:,} {'entry' if dropped == 1 else 'entries'} changed since "
                    "and must be verified again"
                )
        return report

    def _reselect(self) -> None:
        """After a (re)scan, select the entry that was current before, else the first row."""
        page = self.page
        target = 0
        if self.restore_path is not None:
            for row in page.model.rows:
                if row.entry.path == self.restore_path:
                    mapped = page.proxy.mapFromSource(page.model.index(row.pos, 0))
                    target = mapped.row() if mapped.isValid() else 0
                    break
        page.select_proxy_row(target)
