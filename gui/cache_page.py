"""The Cache page: every entry of every store in one table, verified without the window freezing.

The page lays out its widgets and actions and connects them to what does the work: scanning
(:mod:`gui.cache_scan`), verification (:mod:`gui.cache_verify`), the chart beside the table
(:mod:`gui.cache_chart`), Pin, Delete and Repair (``gui.*_action``); the main window only hosts
it. Updates from the jobs arrive in batches: the table gets ``dataChanged`` for the rows that
changed, while totals, the chart and the re-sort follow on a throttle timer, a few times a
second at most.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from PySide6.QtCore import (
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QSettings,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from core import scan_process, verify_process
from core.display import display_path
from core.units import size_text
from gui import status as st
from gui.actions import make_action
from gui.activity import ActivityBar
from gui.banner import Banner
from gui.cache_chart import LARGEST, CacheChart
from gui.cache_columns import Column
from gui.cache_filter import CacheFilter
from gui.cache_jobs import ScanJob, VerifyJob
from gui.cache_model import ROW_ROLE, CacheModel
from gui.cache_rows import Row
from gui.cache_scan import CacheScanner
from gui.cache_table import CacheTable
from gui.cache_verify import CacheVerifier
from gui.details import DetailsPane
from gui.icons import icon
from gui.maintenance_strip import MaintenanceStrip
from gui.page_frame import add_actions, page_toolbar, stack_page
from gui.pin_action import PinActions
from gui.settings import read_bytes, read_int
from gui.summary import SummaryStrip
from gui.workers import Starter

REFRESH_MS = 250
"""Totals and re-sort follow the table at most this often while results stream in."""


class CachePage(QWidget):
    """Lists the stores' entries, measures them, verifies them on demand."""

    page_id = "cache"
    title = "Cache"
    icon_name = "cache"

    scanFinished = Signal()
    verifyFinished = Signal()
    busyChanged = Signal(bool)
    cacheChanged = Signal(object)  # a gui.changes.CacheChange this page made (delete, pin)
    statusMessage = Signal(str)

    def __init__(
        self,
        stores: Sequence | None = None,
        env: Mapping[str, str] | None = None,
        *,
        jobs: int | None = None,
        starter: Starter | None = None,
        homes: Sequence[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        # The first scan's child process starts while the widgets are built, and the first
        # verification's (below the window's priority) while that scan runs.
        scan_process.prestart()
        verify_process.prestart()
        self.store_labels: list[str] = []  # the stores the last scan could read
        self.last_report = ""  # how the last run ended, shown on the idle progress line
        self._fit_pending = False  # restored column widths to fit once shown

        self.model = CacheModel(self)
        self.proxy = CacheFilter(self)
        self.proxy.setSourceModel(self.model)

        self.scanner = CacheScanner(self, stores, env, jobs=jobs, starter=starter)
        self.verifier = CacheVerifier(self, jobs=jobs, starter=starter)
        self._build_actions()
        self.pinner = PinActions(self, env)
        self.pin_action, self.unpin_action = self.pinner.pin, self.pinner.unpin
        from gui.delete_action import DeleteAction

        self.deleter = DeleteAction(self, env, starter=starter, homes=homes)
        self.delete_action = self.deleter.action
        self._build_widgets()
        self.deleter.install()
        from gui.repair_action import RepairAction

        self.repairer = RepairAction(self, env, starter=starter)
        self.repair_action = self.repairer.action
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self.refresh_now)
        self.update_actions()

    # --- construction ----------------------------------------------------------------------------

    _action = make_action

    def _build_actions(self) -> None:
        self.rescan_action = self._action(
            "&Rescan",
            "Scan the stores again and measure every entry",
            self.rescan,
            QKeySequence.StandardKey.Refresh,
            "rescan",
        )
        self.verify_selected_action = self._action(
            "Verify &selected",
            "Check the selected entries against their digests",
            self.verify_selected,
            "Ctrl+Shift+V",
            "verify",
        )
        self.verify_all_action = self._action(
            "Verify &all",
            "Check every entry in every store against its digest",
            self.verify_all,
            None,
            "verify-all",
        )
        self.cancel_action = self._action(
            "&Cancel", "Stop the running scan or verification", self.cancel, "Escape", "cancel"
        )
        self.find_action = self._action(
            "&Find…",
            "Filter the table by program, version, digest or feed",
            self.focus_filter,
            QKeySequence.StandardKey.Find,
            "filter",
        )
        self.select_all_action = self._action(
            "Select &all entries",
            "Select every entry shown in the table",
            self.select_all,
            QKeySequence.StandardKey.SelectAll,
        )
        self.details_action = self._action(
            "Show &details",
            "Show the details of the current entry",
            self.show_details,
            "Return",
            "details",
        )
        # Return only where it means "this row": in the table, not in the filter box or buttons.
        self.details_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.problems_action = self._action(
            "Show &problems only",
            "Show only corrupt, suspicious and unreadable entries",
            self.toggle_problems,
            "Ctrl+Shift+P",
            "problems",
        )
        self.problems_action.setCheckable(True)
        self.clear_filters_action = self._action(
            "Show &everything", "Clear the text, store and status filters", self.clear_filters
        )
        self.open_action = self._action(
            "&Open folder",
            "Show the current entry in the file manager",
            self.open_folder,
            "Ctrl+O",
            "folder-open",
        )
        self.copy_path_action = self._action(
            "Copy &path", "Copy the current entry's whole path", lambda: self._copy("Path")
        )
        self.copy_digest_action = self._action(
            "Copy di&gest", "Copy the current entry's whole digest", lambda: self._copy("Digest")
        )
        self.show_in_clean_action = self._action(
            "Show in &Clean up",
            "Show the current entry on the Clean up page, with why it is kept or removable",
            self.show_in_clean,
        )

    def menu_actions(self) -> list[QAction | None]:
        """What the window puts in this page's menu (None is a separator)."""
        return [
            self.rescan_action,
            None,
            self.verify_selected_action,
            self.verify_all_action,
            self.cancel_action,
            None,
            self.find_action,
            self.select_all_action,
            self.problems_action,
            self.clear_filters_action,
            None,
            self.details_action,
            *self._entry_actions(),
            self.repair_action,
            self.delete_action,
        ]

    def context_actions(self) -> list[QAction | None]:
        """The row's context menu: what can be done to the entries under the pointer."""
        return [
            self.details_action,
            self.verify_selected_action,
            *self._entry_actions(),
            None,
            self.repair_action,
            self.delete_action,
        ]

    def _entry_actions(self) -> list[QAction | None]:
        """What both menus offer for the current and selected entries, in the same order."""
        return [
            self.open_action,
            self.copy_path_action,
            self.copy_digest_action,
            None,
            self.pin_action,
            self.unpin_action,
            self.show_in_clean_action,
        ]

    def _context_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if index.isValid() and not self.table.selectionModel().isSelected(index):
            self.select_proxy_row(index.row())
        self.update_actions()
        menu = QMenu(self.table)
        menu.setToolTipsVisible(True)
        add_actions(menu, self.context_actions())
        self._context = menu  # kept for tests; replaced by the next one
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _build_widgets(self) -> None:
        self.toolbar = page_toolbar(
            "Cache",
            self,
            [
                self.rescan_action,
                None,
                self.verify_selected_action,
                self.verify_all_action,
                self.cancel_action,
            ],
        )
        self.banner = Banner(self)
        self.maintenance = MaintenanceStrip(parent=self)  # the last scheduled check (issue 23)
        self.summary = SummaryStrip(self)
        self.summary.statusClicked.connect(self.toggle_status)
        self.summary.problemsClicked.connect(self.toggle_problems)
        filters = self._build_filters()
        self.table = CacheTable(self.proxy, self)
        self._setup_table()
        self._build_side()
        self._build_no_match()
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setCollapsible(0, False)
        self.activity = ActivityBar(self.cancel_action, self)
        stack_page(
            self,
            [self.toolbar, self.banner, self.maintenance, self.summary, filters],
            self.splitter,
            self.activity,
        )

    def _build_filters(self) -> QHBoxLayout:
        """The line above the table: text, store and status filters, and what is shown."""
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by program, version, digest or feed URL")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.addAction(icon("filter"), QLineEdit.ActionPosition.LeadingPosition)
        self.filter_edit.setToolTip("Show only entries matching every word typed here (Ctrl+F)")
        self.filter_edit.setAccessibleName("Filter")
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.filter_edit.installEventFilter(self)
        self.store_combo = QComboBox(self)
        self.store_combo.setToolTip("Show one store only")
        self.store_combo.setAccessibleName("Store filter")
        self.store_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.store_combo.setMinimumContentsLength(14)
        self.store_combo.addItem("All stores", None)
        self.store_combo.currentIndexChanged.connect(self._store_chosen)
        self.status_combo = QComboBox(self)
        self.status_combo.setToolTip("Show one status only")
        self.status_combo.setAccessibleName("Status filter")
        self.status_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.status_combo.addItem("All statuses", None)
        self.status_combo.addItem(st.status_icon(st.SUSPICIOUS), "Problems only", st.PROBLEMS)
        for word in st.STATUSES:
            self.status_combo.addItem(
                st.status_icon(word), word[:1].upper() + word[1:], frozenset({word})
            )
        self.status_combo.currentIndexChanged.connect(self._status_chosen)
        filters = QHBoxLayout()
        filters.setContentsMargins(4, 0, 4, 0)
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.store_combo)
        filters.addWidget(self.status_combo)
        # "3 of 14 shown · 2 selected, 1.2 MB": what the table holds, what an action would touch.
        self.count_label = QLabel(self)
        self.count_label.setAccessibleName("Shown and selected entries")
        self.count_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        filters.addWidget(self.count_label)
        return filters

    def _build_side(self) -> None:
        """The column beside the table: the chart above the current entry's details."""
        self.details = DetailsPane(self)
        self.details.openFailed.connect(self._open_failed)
        self.details.copied.connect(self._copied)
        self.overview = CacheChart(self)
        self.overview.shown.connect(self._chart_shown)
        self.overview.statusClicked.connect(self.toggle_status)
        self.overview.storeClicked.connect(self.toggle_store)
        self.overview.programClicked.connect(self.toggle_program)
        self.side = QSplitter(Qt.Orientation.Vertical, self)
        self.side.addWidget(self.overview)
        self.side.addWidget(self.details)
        self.side.setStretchFactor(0, 0)
        self.side.setStretchFactor(1, 1)
        self.side.setChildrenCollapsible(False)
        self._side_user_sized = False
        self.side.splitterMoved.connect(self._side_moved)
        self.side.installEventFilter(self)

    def _setup_table(self) -> None:
        table = self.table
        table.addAction(self.details_action)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        table.customContextMenuRequested.connect(self._context_menu)
        table.activated.connect(lambda _index: self.show_details())
        table.selectionModel().currentRowChanged.connect(self._current_changed)
        table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        table.emptyClicked.connect(self.clear_selection)
        for signal in (
            self.proxy.modelReset,
            self.proxy.layoutChanged,
            self.proxy.rowsInserted,
            self.proxy.rowsRemoved,
        ):
            signal.connect(self._schedule_counts)
        self._counts_timer = QTimer(self)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(0)
        self._counts_timer.timeout.connect(self.update_counts)

    def _build_no_match(self) -> None:
        """What an empty filtered table says instead of nothing: "No entries match"."""
        box = QWidget(self.table.viewport())
        layout = QVBoxLayout(box)
        label = QLabel("No entries match the filters.", box)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        button = QPushButton("Show everything", box)
        button.setToolTip("Clear the text, store and status filters")
        button.clicked.connect(self.clear_filters)
        layout.addWidget(label)
        layout.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        box.hide()
        self.no_match = box
        self.no_match_button = button
        self.table.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.filter_edit and event.type() in (
            QEvent.Type.ShortcutOverride,
            QEvent.Type.KeyPress,
        ):
            # Escape in the filter box clears it (and takes precedence over Cancel, the window's
            # Escape) while there is something to clear.
            assert isinstance(event, QKeyEvent)
            if event.key() == Qt.Key.Key_Escape and self.filter_edit.text():
                event.accept()
                if event.type() == QEvent.Type.KeyPress:
                    self.filter_edit.clear()
                return True
        elif watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self._place_no_match()
        elif watched is self.side and event.type() == QEvent.Type.Resize:
            # A banner opened or closed, or the window was resized: the chart's room changed.
            QTimer.singleShot(0, self, self._fit_overview)
        return super().eventFilter(watched, event)

    def _place_no_match(self) -> None:
        box = self.no_match
        box.adjustSize()
        viewport = self.table.viewport()
        box.move(
            max(0, (viewport.width() - box.width()) // 2),
            max(0, (viewport.height() - box.height()) // 3),
        )

    def _schedule_counts(self, *_args) -> None:
        if not self._counts_timer.isActive():
            self._counts_timer.start()

    def update_counts(self) -> None:
        """The "3 of 14 shown · 2 selected, 1.2 MB" line, and the "No entries match" notice."""
        self._counts_timer.stop()
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        noun = "entry" if total == 1 else "entries"
        parts = [f"{shown:,} of {total:,} {noun} shown"] if shown != total else []
        selected = self.selected_rows()
        if len(selected) > 1:
            size = sum(r.entry.usage.size for r in selected if r.entry.usage is not None)
            pending = any(r.entry.usage is None for r in selected)
            parts.append(
                f"{len(selected):,} selected, {size_text(size)}{' so far' if pending else ''}"
            )
        self.count_label.setText(" · ".join(parts))
        self._sync_details()
        empty = total > 0 and shown == 0
        if empty != self.no_match.isVisible():
            self.no_match.setVisible(empty)
            if empty:
                self._place_no_match()

    def _selection_changed(self) -> None:
        self._sync_details()
        self._schedule_counts()

    def clear_selection(self) -> None:
        """A click on empty space: nothing selected, the details pane says so."""
        self.table.selectionModel().clearSelection()
        self.table.selectionModel().setCurrentIndex(
            QModelIndex(), QItemSelectionModel.SelectionFlag.NoUpdate
        )
        self.details.show_row(None)
        self.update_actions()

    # --- running: scans and verifications (gui.cache_scan, gui.cache_verify) ---------------------

    @property
    def scanning(self) -> bool:
        return self.scanner.job is not None

    @property
    def verifying(self) -> bool:
        return self.verifier.job is not None

    @property
    def busy(self) -> bool:
        return self.scanning or self.verifying

    def rescan(self) -> None:
        """List the stores again (F5); during a verification, once it ends."""
        self.scanner.rescan()

    def start(self) -> None:
        """The first scan, when the window opens."""
        if self.scanner.generation == 0:
            self.rescan()

    def verify_selected(self) -> None:
        self.verify(self.selected_rows())

    def verify_all(self) -> None:
        """Verify every entry of every store, whatever the filters show."""
        self.verify(list(self.model.rows))

    def verify(self, rows: Iterable[Row]) -> None:
        self.verifier.verify(rows)

    def cancel(self) -> None:
        """Stop what is running (Escape); the rows not reached keep their previous status."""
        if self.verifier.job is not None:
            self.verifier.job.cancel()
            self.scanner.pending = False
            self.activity.message("Cancelling the verification…")
        if self.scanner.job is not None:
            self.scanner.job.cancel()
            if self.verifier.job is None:
                self.activity.message("Cancelling the scan…")
        self.cancel_action.setEnabled(False)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every run and wait (bounded) for its threads, before the window goes away."""
        jobs = [j for j in self.findChildren(ScanJob) + self.findChildren(VerifyJob)]
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout
        for job in jobs:
            job.wait(max(0.0, deadline - time.monotonic()))

    def show_failure(self, what: str, error: BaseException) -> None:
        """ "Scanning the stores failed: OSError: …" on the banner."""
        text = str(error)
        name = type(error).__name__
        self.banner.add_message(f"{what} failed: {f'{name}: {text}' if text else name}", "error")

    def set_store_choices(self, labels: list[str]) -> None:
        """The store filter offers the stores a scan could read (keeping the choice if it can)."""
        if labels == self.store_labels:
            return
        self.store_labels = labels
        current = self.proxy.store
        self.store_combo.blockSignals(True)
        self.store_combo.clear()
        self.store_combo.addItem("All stores", None)
        for label in labels:
            self.store_combo.addItem(label, label)
        index = self.store_combo.findData(current) if current in labels else 0
        self.store_combo.setCurrentIndex(max(0, index))
        self.store_combo.blockSignals(False)
        if current not in labels:
            self.proxy.set_store(None)

    def select_proxy_row(self, proxy_row: int) -> None:
        if not 0 <= proxy_row < self.proxy.rowCount():
            return
        index = self.proxy.index(proxy_row, 0)
        self.table.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.table.scrollTo(index)

    def selected_rows(self) -> list[Row]:
        rows = [self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()]
        return [self.model.row_at(r) for r in sorted(set(rows)) if r >= 0]

    def current_row(self) -> Row | None:
        index = self.table.currentIndex()
        return index.data(ROW_ROLE) if index.isValid() else None

    # --- changes made elsewhere (gui.changes) ----------------------------------------------------

    def cache_changed(self, change) -> None:
        """Another page, this page's Delete or the command line changed the stores: removed
        entries leave the table at once (verdicts, sizes and the selection of the others stay);
        anything else is looked at again (after a running verification)."""
        from gui import changes

        if change.kind == changes.PINNED:
            self.pinner.update()
            return
        if change.kind == changes.REMOVED and change.paths:
            self.scanner.removed_elsewhere(change.paths)
            current = self.current_row()
            gone = self.model.remove_paths(change.paths)
            if not gone:
                return
            if current is not None and any(r is current for r in gone):
                self.details.show_row(None)
                self.scanner.restore_path = None
            self._sync_details()
            self.refresh_now()
            self.update_actions()
            return
        self.rescan()

    def show_in_clean(self) -> None:
        """The current entry on the Clean up page: why it is kept or removable."""
        row = self.current_row()
        window = self.window()
        if row is None or not hasattr(window, "show_page"):
            return
        page = window.show_page("clean")
        if page is not None and hasattr(page, "select_path"):
            page.select_path(row.entry.path)

    def _copy(self, field: str) -> None:
        if self.details.row is not None:
            self.details.value_widget(field).copy()

    # --- updates ---------------------------------------------------------------------------------

    def rows_changed(self, rows: list[Row]) -> None:
        """Rows got sizes or verdicts: the details pane if it shows one, the totals soon."""
        if not rows:
            return
        current = self.details.row
        if current is not None and any(r is current for r in rows):
            self.details.refresh()
        self.schedule_refresh()

    def schedule_refresh(self) -> None:
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def refresh_now(self, *, at_once: bool = False) -> None:
        """Bring totals, chart and sort order up to date with the rows (throttled while busy).

        The totals change at once; the chart and the re-sort, each a few tens of milliseconds
        for 10,000 rows, follow in later turns of the event loop so that input and repaints get
        their turn in between (``at_once``: all now, e.g. before a screenshot).
        """
        self._refresh_timer.stop()
        if not self.busy:
            self.table.flush_repaint()
        stats = self.model.stats(largest=LARGEST)
        self.summary.set_stats(stats)
        self._schedule_counts()  # the selection's size grows as sizes are measured
        figures = (stats.by_status, stats.by_store, stats.largest)
        self.overview.offer(figures, busy=self.busy, at_once=at_once)
        # Rows keep their place while a run streams results (re-sorting would move them under the
        # reader's eyes, and relayout 10,000 rows each time); they move to their sorted place once,
        # when the run ends.
        if not self.busy:
            if at_once:
                self._resort()
            else:
                QTimer.singleShot(0, self, self._resort)

    def _chart_shown(self) -> None:
        if not self.busy:
            self._fit_overview()  # asks the chart to lay itself out: not while work streams

    def _resort(self) -> None:
        if not self.busy and self.model.resort():
            current = self.table.currentIndex()
            if current.isValid():
                self.table.scrollTo(current)

    def _side_moved(self, _pos: int, _index: int) -> None:
        self._side_user_sized = True

    def show_busy(self) -> None:
        """The actions, the idle line and the window follow a run starting or ending."""
        busy = self.busy
        if not busy:
            self.activity.idle(self.last_report)
        self.update_actions()
        self.busyChanged.emit(busy)

    def update_actions(self) -> None:
        has_rows = self.model.rowCount() > 0
        has_selection = self.table.selectionModel().hasSelection()
        verify, scan = self.verifier.job, self.scanner.job
        self.verify_selected_action.setEnabled(has_selection and verify is None)
        self.verify_all_action.setEnabled(has_rows and verify is None)
        cancelling = (verify is not None and verify.cancelled) or (
            verify is None and scan is not None and scan.cancelled
        )
        self.cancel_action.setEnabled(self.busy and not cancelling)
        shown = self.details.row is not None if hasattr(self, "details") else False
        for action in (
            self.open_action,
            self.copy_path_action,
            self.copy_digest_action,
            self.show_in_clean_action,
        ):
            action.setEnabled(shown)
        self.details_action.setEnabled(shown)
        self.pinner.update()

    # --- filters, details ------------------------------------------------------------------------

    def focus_filter(self) -> None:
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    def select_all(self) -> None:
        self.table.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.table.selectAll()

    def set_status_filter(self, statuses: Iterable[str] | None) -> None:
        """The one place the status filter changes: proxy, combo box, summary chips, action."""
        wanted = None if statuses is None else frozenset(statuses)
        self.proxy.set_statuses(wanted)
        # findData() cannot compare Python sets: look for the item by hand.
        combo = self.status_combo
        index = next((i for i in range(combo.count()) if combo.itemData(i) == wanted), 0)
        combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)
        self.summary.set_filter(wanted)
        self.problems_action.setChecked(wanted == st.PROBLEMS)

    def toggle_status(self, word: str) -> None:
        """A click on a status count or chart segment: filter by it, or clear that filter."""
        wanted = frozenset({word})
        self.set_status_filter(None if self.proxy.statuses == wanted else wanted)

    def toggle_problems(self) -> None:
        self.set_status_filter(None if self.proxy.statuses == st.PROBLEMS else st.PROBLEMS)

    def clear_filters(self) -> None:
        self.filter_edit.clear()
        self.store_combo.setCurrentIndex(0)
        self.set_status_filter(None)

    def _status_chosen(self, index: int) -> None:
        self.set_status_filter(self.status_combo.itemData(index))

    def _store_chosen(self, index: int) -> None:
        self.proxy.set_store(self.store_combo.itemData(index))

    def toggle_store(self, label: str) -> None:
        """A click on a store's bar in the chart: show only that store, or all again."""
        index = self.store_combo.findData(label)
        if index < 0 or self.store_combo.currentIndex() == index:
            index = 0
        self.store_combo.setCurrentIndex(index)

    def toggle_program(self, program: str) -> None:
        """A click on a program's bar in the chart: filter by its name, or clear that filter."""
        self.filter_edit.setText("" if self.filter_edit.text() == program else program)

    def _open_failed(self, folder: str, why: str = "") -> None:
        shown = display_path(folder)
        reason = why or "nothing on this machine opens folders (no file manager)"
        self.banner.add_message(
            f"Could not open {shown}: {reason}. Open it in a terminal or a file manager.",
            "warning",
        )
        self.banner.set_action(
            "Copy path", lambda: self._copy_text(folder, "the path"), f"Copy {shown}"
        )

    def _copy_text(self, text: str, what: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self._copied(what)

    def _copied(self, what: str) -> None:
        self.activity.message(f"Copied {what} to the clipboard")

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._sync_details()

    def _sync_details(self) -> None:
        """The details pane shows the current entry while it is selected, else the first
        selected one, else nothing (a filter that hid the selection leaves no stale entry)."""
        selection = self.table.selectionModel()
        current = self.table.currentIndex()
        if current.isValid() and selection.isRowSelected(current.row(), current.parent()):
            row = current.data(ROW_ROLE)
        else:
            selected = selection.selectedRows()
            row = selected[0].data(ROW_ROLE) if selected else None
        if row is not self.details.row:
            self.details.show_row(row)
        self.update_actions()

    def show_details(self) -> None:
        """Enter on a row (or Show details): open the details pane wide enough to read, give it
        the room the chart had, scroll it to the top and move the focus to it."""
        if self.details.row is None:
            return
        sizes = self.splitter.sizes()
        total = sum(sizes)
        if len(sizes) == 2 and sizes[1] < min(280, total // 3):
            self.splitter.setSizes([total - max(280, total // 3), max(280, total // 3)])
        side = self.side.sizes()
        room = sum(side)
        if len(side) == 2 and side[1] < room * 2 // 3:
            self.side.setSizes([room - room * 2 // 3, room * 2 // 3])
            self._side_user_sized = True
        self.details.verticalScrollBar().setValue(0)
        self.details.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.details.flash()

    def open_folder(self) -> None:
        if self.details.row is not None:
            self.details.open_button.click()

    # --- settings --------------------------------------------------------------------------------

    def save_state(self, settings: QSettings) -> None:
        settings.beginGroup("cache")
        settings.setValue("header", self.table.horizontalHeader().saveState())
        settings.setValue("sortColumn", self.model.sort_column)
        settings.setValue("sortOrder", int(self.model.sort_order.value))
        settings.setValue("splitter", self.splitter.saveState())
        settings.setValue("side", self.side.saveState())
        settings.endGroup()

    def fit_columns(self) -> None:
        """Once shown at its real size (the window calls it): restored column widths saved on a
        bigger screen, or at another scale, must not push columns out of reach."""
        if self._fit_pending:
            self._fit_pending = False
            self.table.fit_columns(self.table.viewport().width())

    def restore_state(self, settings: QSettings) -> None:
        settings.beginGroup("cache")
        try:
            header = read_bytes(settings, "header")
            if header:
                self.table.horizontalHeader().restoreState(header)
                self.table.sync_column_toggles()
                self._fit_pending = True
            for key, splitter in (("splitter", self.splitter), ("side", self.side)):
                state = read_bytes(settings, key)
                if state:
                    splitter.restoreState(state)
                    if splitter is self.side:
                        self._side_user_sized = True
            column = read_int(settings, "sortColumn", Column.PROGRAM)
            order = read_int(settings, "sortOrder", 0)
            if 0 <= column < len(Column):
                self.table.sortByColumn(
                    column,
                    Qt.SortOrder.DescendingOrder if order == 1 else Qt.SortOrder.AscendingOrder,
                )
        finally:
            settings.endGroup()

    def set_default_sizes(self, width: int) -> None:
        """Split the page's width between the table and the side column (no saved layout)."""
        # 2/7 of a wide page, 280 px at the least; never more than 2/5 of a narrow one (150 % on a
        # small screen), where the table needs the room to show Status beside Program.
        side = min(max(280, min(440, width * 2 // 7)), width * 2 // 5)
        table = max(300, width - side)
        self.splitter.setSizes([table, side])
        # Room for the vertical scroll bar and the frame, so that no column ends cut off.
        spare = self.table.style().pixelMetric(self.table.style().PixelMetric.PM_ScrollBarExtent)
        self.table.default_columns(self.splitter.sizes()[0] - spare - 2 * self.table.frameWidth())
        self._fit_overview()

    def _fit_overview(self) -> None:
        """Give the chart the height its content needs, until the user drags the divider."""
        if self._side_user_sized or not self.overview.hasHeightForWidth():
            return
        sizes = self.side.sizes()
        total = sum(sizes)
        width = self.overview.width() or self.side.width()
        if total <= 0:
            return
        # The details pane keeps room for a verdict and whole digests: two fifths at least.
        room = total - max(total * 2 // 5, min(total // 3, 220))
        want = self.overview.height_within(width, room)
        if want <= 0:
            return
        want = min(want, room)
        if want != sizes[0]:
            self.side.setSizes([want, total - want])
