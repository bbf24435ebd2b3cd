"""Verification on the Cache page: one run at a time over chosen rows, verdicts streamed into the
model, a progress line, and a report when it ends; also the re-check, by their change keys, of
the OK verdicts a rescan kept."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from core import verify as core_verify
from core import verify_process
from core.units import count_text, size_text
from gui import status as st
from gui.activity import duration_text
from gui.cache_jobs import VerifyJob
from gui.cache_rows import Row
from gui.workers import Starter

if TYPE_CHECKING:
    from gui.cache_page import CachePage


class CacheVerifier(QObject):
    """Starts the page's verifications and turns what they report into rows, lines and notices."""

    def __init__(
        self, page: CachePage, *, jobs: int | None = None, starter: Starter | None = None
    ) -> None:
        super().__init__(page)
        self.page = page
        self._jobs = jobs
        self._starter = starter
        self._generation = 0
        self.job: VerifyJob | None = None
        self._rows: list[Row] = []
        self._started = 0.0
        self._count = 0  # verdicts received by the running verification
        # A rescan's kept OK verdicts are checked again by their change keys (core.records)
        # before the scan is over: the rows waiting for it, the job doing it, the scan's report.
        self.recheck_rows: list[Row] = []
        self.recheck_job: VerifyJob | None = None
        self.recheck_report = ""

    def verify(self, rows: Iterable[Row]) -> None:
        page = self.page
        rows = list(rows)
        if not rows or self.job is not None:
            return
        self._generation += 1
        gen = self._generation
        job = VerifyJob(
            gen, [r.entry.path for r in rows], jobs=self._jobs, starter=self._starter, parent=page
        )
        job.results.connect(lambda items, g=gen: self._on_verdicts(g, items))
        job.progress.connect(lambda p, g=gen: self._on_progress(g, p))
        job.finished.connect(lambda error, g=gen, j=job: self._on_finished(g, j, error))
        self.job = job
        self._rows = rows
        self._count = 0
        self._started = time.monotonic()
        page.model.set_verifying(rows, True)
        page.overview.follow_later()
        page.schedule_refresh()
        page.activity.progress(0.0, f"Verifying {len(rows):,} entries…")
        notice = core_verify.atime_notice([r.entry for r in rows])  # said before reading
        if notice:
            page.banner.add_message(notice, "warning")
        page.show_busy()
        job.start()

    def recheck(self, rows: list[Row], report: str) -> bool:
        """After a rescan: check the kept OK ``rows`` again, now or once the running
        verification ends. False when there is nothing to check."""
        self.recheck_rows, self.recheck_report = rows, report
        return bool(rows) and (self.job is not None or self._start_recheck())

    def forget_recheck(self) -> None:
        """A new scan: an earlier scan's re-check ends (its verdicts are dropped with its rows)."""
        self.recheck_rows, self.recheck_job = [], None

    def _start_recheck(self) -> bool:
        rows, self.recheck_rows = self.recheck_rows, []
        self.verify(rows)
        self.recheck_job = self.job
        return self.job is not None

    def _on_verdicts(self, gen: int, items: list) -> None:
        if gen != self._generation:
            return
        rows = self._rows
        self._count += len(items)
        changed = self.page.model.apply_outcomes((rows[i], outcome) for i, outcome in items)
        self.page.rows_changed(changed)

    def _on_progress(self, gen: int, progress: object) -> None:
        if gen != self._generation or self.job is None or self.job.cancelled:
            return
        self.page.activity.progress(*verify_progress_text(progress))

    def _on_finished(self, gen: int, job: VerifyJob, error: object) -> None:
        job.deleteLater()  # its threads ended
        if gen != self._generation:
            return
        page = self.page
        self.job = None
        rows = self._rows
        self._rows = []
        left = page.model.set_verifying(rows, False)  # not reached: back to their previous status
        rechecked = job is self.recheck_job
        if left and rechecked:
            # A rescan's kept OK that was not checked again (cancelled) is not kept.
            page.model.apply_outcomes((row, None) for row in left)  # type: ignore[misc]
        page.rows_changed(left)
        for note in dict.fromkeys(job.notes):  # records ignored or read-only, unstable inodes
            text = note[:1].upper() + note[1:]
            if text not in page.banner.messages:
                page.banner.add_message(text, "warning")
        rescan = page.scanner.pending
        if isinstance(error, BaseException):
            page.show_failure("Verification", error)
        elif job.cancelled:
            done = min(self._count, len(rows))
            page.last_report = (
                f"Verification cancelled after {done:,} of {len(rows):,} entries; "
                f"{len(rows) - done:,} not verified"
            )
            rescan = False  # Escape cancels the rescan that was waiting too
        else:
            page.last_report = self._report(rows, rechecked)
        if rechecked:
            self.recheck_job = None
        page.scanner.pending = False
        page.refresh_now()
        page.show_busy()
        verify_process.prestart()  # for the next verification
        page.verifyFinished.emit()
        if rescan:
            page.rescan()  # F5 waited for this verification: the new scan ends with its own signal
        elif rechecked or (self.recheck_rows and not self._start_recheck()):
            page.scanFinished.emit()

    def _report(self, rows: list[Row], rechecked: bool) -> str:
        """ "Verified 12 entries in 3 s: 11 ok, 1 corrupt", of the rows still listed."""
        model = self.page.model
        owned = [r for r in rows if model.row_for(r.entry) is r]
        counts: dict[str, int] = {}
        for row in owned:
            counts[row.status] = counts.get(row.status, 0) + 1
        parts = ", ".join(f"{counts[w]:,} {w}" for w in st.STATUSES if w in counts)
        if rechecked:
            return f"{self.recheck_report}; checked again by their change keys: {parts}"
        elapsed = time.monotonic() - self._started
        report = f"Verified {count_text(len(owned), 'entry')} in {duration_text(elapsed)}: {parts}"
        gone = len(rows) - len(owned)
        if gone:
            report += f" ({count_text(gone, 'entry')} removed meanwhile)"
        return report


def verify_progress_text(p) -> tuple[float, str]:
    """Bar fraction and the line under it: entries, bytes, speed, time left.

    The engine learns the bytes to hash only as it walks ahead, so its byte total keeps growing
    and time left by bytes comes out too short; time left by entries is wrong the other way
    when one entry is huge. The longer of the two is shown; the bar follows the entries (what
    the line counts), or the bytes while the first entry is still being hashed.
    """
    entries = p.entries_done / p.entries_total if p.entries_total else 1.0
    fraction = entries if p.entries_done or not p.bytes_total else p.bytes_done / p.bytes_total
    rate = p.bytes_per_second
    parts = [
        f"Verifying: {p.entries_done:,} of {p.entries_total:,} entries",
        f"{size_text(p.bytes_done)} read",
    ]
    if rate > 0:
        parts.append(f"{size_text(rate)}/s")
    estimates = []
    if entries > 0:
        estimates.append(p.elapsed * (1 - entries) / entries)
    if rate > 0 and p.bytes_total:
        estimates.append(max(p.bytes_total - p.bytes_done, 0) / rate)
    if estimates and p.entries_done < p.entries_total:
        parts.append(f"about {duration_text(max(1.0, round(max(estimates))))} left")
    return min(1.0, fraction), " · ".join(parts)
