"""The Clean up page: what nobody uses any more, why, how much space it holds, and one Clean.

The page runs :func:`core.clean.survey` off the GUI thread, lists every candidate pre-checked
with its reasons and the space that removing it gives back, keeps the total exact as boxes are
(un)checked (hard links shared with entries that stay do not count), and removes the checked
entries after one confirmation through :func:`core.clean.remove`, which checks again right before
acting and writes the action log shown at the bottom. Optimise links identical files after a
dry run that shows what it would save.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import (
    QModelIndex,
    QSettings,
    Qt,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from core import actionlog, clean, pins, units
from core.units import size_text
from gui.actions import make_action
from gui.activity import ActivityBar
from gui.banner import Banner
from gui.cache_rows import program_text
from gui.changes import MODIFIED, PINNED, REMOVED, CacheChange
from gui.clean_model import ACTION_WORDS, CleanFilter, CleanModel, Col, space_detail, when_text
from gui.page_frame import page_toolbar, stack_page
from gui.settings import read_bytes
from gui.workers import Starter, Worker


def _record_key(record: actionlog.Record) -> tuple:
    return (record.time, record.store, record.entry, record.action, record.user)


class CleanPage(QWidget):
    """Finds the candidates, shows why, cleans the checked ones, optimises the stores."""

    page_id = "clean"
    title = "Clean up"
    icon_name = "clean"

    statusMessage = Signal(str)
    cacheChanged = Signal(object)  # a gui.changes.CacheChange this page made
    _removalProgress = Signal(int, int, str)  # emitted from the worker; queued to the GUI
    surveyFinished = Signal()
    cleanFinished = Signal()
    optimiseFinished = Signal()

    def __init__(
        self,
        stores: Sequence | None = None,
        env: Mapping[str, str] | None = None,
        *,
        starter: Starter | None = None,
        homes: Sequence[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._stores = None if stores is None else list(stores)
        self._env = None if env is None else dict(env)
        self._starter = starter
        self._homes = homes
        self._survey: clean.Survey | None = None
        self._busy = ""
        self._generation = 0
        self._cancel: Any = None
        self._started = False
        # The panes keep their proportions whatever the window's size (a window fitted to a
        # small screen must not take the space from the list), until the user sizes them:
        # dragged now, or restored from the settings.
        self._split_by_hand = False
        self._look_again = False  # the stores changed while busy: survey again after
        self._select_after: str | None = None  # Show in Clean up before the survey ended
        self._log_last: tuple | None = None  # the newest record of the log when last read
        self.confirm: Callable[[str, str], bool] = self._ask
        self.model = CleanModel(self)
        self.proxy = CleanFilter(self)
        self.proxy.setSourceModel(self.model)
        self._build_actions()
        self._build_widgets()
        self.model.checkedChanged.connect(self._update_total)
        self._removalProgress.connect(self._show_removal_progress)
        self._update_actions()
        self._watch_log()
        self.show_log()

    # --- construction ------------------------------------------------------------------------

    _action = make_action

    def _build_actions(self) -> None:
        self.find_action = self._action(
            "&Find unused",
            "Look again for entries nobody uses",
            self.rescan,
            QKeySequence.StandardKey.Refresh,
            "rescan",
        )
        self.clean_action = self._action(
            "&Clean…",
            "Remove the checked entries (asks first)",
            self.clean_checked,
            "Ctrl+Shift+Delete",
            "clean",
        )
        self.optimise_action = self._action(
            "&Optimise…",
            "Hard-link identical files across implementations (shows the saving first)",
            self.optimise,
            None,
            "optimise",
        )
        self.cancel_action = self._action(
            "C&ancel",
            "Stop looking, or removing (what is removed stays removed)",
            self.cancel,
            "Escape",
            "cancel",
        )
        self.check_all_action = self._action(
            "Check all &candidates", "Check every candidate", lambda: self._check_all(True)
        )
        self.uncheck_all_action = self._action(
            "&Uncheck all", "Uncheck every candidate", lambda: self._check_all(False)
        )

        self.pin_action = self._action(
            "&Pin",
            "Keep the selected entries forever (clean-up never offers them)",
            lambda: self.pin_selected(True),
            "Ctrl+P",
        )
        self.unpin_action = self._action(
            "U&npin",
            "Let clean-up judge the selected entries again",
            lambda: self.pin_selected(False),
        )

    def menu_actions(self) -> list[QAction | None]:
        return [
            self.find_action,
            None,
            self.clean_action,
            self.optimise_action,
            self.cancel_action,
            None,
            self.check_all_action,
            self.uncheck_all_action,
            None,
            self.pin_action,
            self.unpin_action,
        ]

    def _build_widgets(self) -> None:
        self.toolbar = page_toolbar(
            "Clean up", self, [self.find_action, None, self.clean_action, self.optimise_action]
        )
        self.banner = Banner(self)
        self.notes = Banner(self)
        options = self._build_options()
        self._build_table()
        self._build_panes()
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(self.details)
        self.splitter.addWidget(self.log_box)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setCollapsible(0, False)
        self.splitter.splitterMoved.connect(self._split_moved)
        self.activity = ActivityBar(self.cancel_action, self)
        stack_page(
            self, [self.toolbar, self.banner, self.notes, options], self.splitter, self.activity
        )

    def _build_options(self) -> QVBoxLayout:
        """Above the list: the policy (age, versions kept) and kept entries on one line, the
        total on the next (its own line, so that it wraps at full width in a narrow window)."""
        self.days = QSpinBox(self)
        self.days.setRange(0, 3650)
        self.days.setValue(int(clean.DEFAULT_OLDER_THAN_DAYS))
        self.days.setSuffix(" days")
        self.days.setToolTip("Only entries nobody read for this long (0: any age)")
        self.days.setAccessibleName("Not used for")
        self.keep = QSpinBox(self)
        self.keep.setRange(0, 99)
        self.keep.setSpecialValueText("none")
        self.keep.setToolTip(
            "Keep this many of the newest cached versions of every program, whatever their age"
        )
        self.keep.setAccessibleName("Keep newest versions")
        self.days.valueChanged.connect(self._policy_changed)
        self.keep.valueChanged.connect(self._policy_changed)
        self.show_kept = QCheckBox("Show kept entries and why", self)
        self.show_kept.toggled.connect(self.proxy.set_show_kept)
        self.total = QLabel(self)
        self.total.setObjectName("cleanTotal")
        font = self.total.font()
        font.setBold(True)
        self.total.setFont(font)
        # Wraps rather than widening the window past a small (or 150 %) screen.
        self.total.setWordWrap(True)
        self.total.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy = QHBoxLayout()
        for text, widget in (("Not used for", self.days), ("Keep newest", self.keep)):
            label = QLabel(text, self)
            label.setBuddy(widget)
            policy.addWidget(label)
            policy.addWidget(widget)
            policy.addSpacing(8)
        policy.addWidget(self.show_kept)
        policy.addStretch(1)
        options = QVBoxLayout()
        options.setContentsMargins(4, 0, 4, 0)
        options.addLayout(policy)
        options.addWidget(self.total)
        return options

    def _build_table(self) -> None:
        """The candidates, biggest first; Space checks, the context menu pins."""
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(Col.SIZE, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.setAccessibleName("Clean-up candidates")
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        fm = self.fontMetrics()
        for col, sample in (
            (Col.PROGRAM, "☐ (temporary) tmp-k3v9qz"),
            (Col.VERSION, "10.2-rc1"),
            (Col.STORE, "system X"),
            (Col.SIZE, "999.9 MB"),
            (Col.LAST_USED, "11 months ago"),
            (Col.ACTION, "Quarantine"),
        ):
            header.resizeSection(col, fm.horizontalAdvance(sample) + 28)
        self.table.selectionModel().currentRowChanged.connect(self._show_details)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self.refresh_details())
        toggle = QAction("Check or uncheck", self.table)
        toggle.setShortcut(QKeySequence(Qt.Key.Key_Space))
        toggle.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        toggle.triggered.connect(self._toggle_selected)
        self.table.addAction(toggle)
        self.table.addAction(self.pin_action)
        self.table.addAction(self.unpin_action)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

    def _build_panes(self) -> None:
        """Below the list: why the current entry goes or stays, and the action log."""
        self.details = QPlainTextEdit(self)
        self.details.setReadOnly(True)
        self.details.setPlaceholderText(
            "Select an entry to see why it would be removed or kept: the evidence (apps, pins, "
            "running programs, age), its sizes and where it is."
        )
        self.details.setAccessibleName("Why")
        self.details.setFrameShape(QPlainTextEdit.Shape.NoFrame)
        # Two lines at the least (a text box asks for far more), so that a short window keeps
        # its room for the list.
        self.details.setMinimumHeight(self.fontMetrics().lineSpacing() * 2 + 8)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setReadOnly(True)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log_view.setAccessibleName("Action log")
        self.log_label = QLabel(self)
        self.log_box = QWidget(self)
        log_layout = QVBoxLayout(self.log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(self.log_label)
        log_layout.addWidget(self.log_view)

    # --- the page protocol -------------------------------------------------------------------

    def start(self) -> None:
        """Nothing at once: the first look happens when the page is first shown, so opening the
        window does not scan the stores twice."""
        self._started = True
        if self.isVisible() and self._generation == 0:
            self.rescan()

    def _split(self) -> None:
        """The list 11/20 of the height, why 5/20, the action log 4/20; in a window too short for
        five rows of the list that way (150 % on a small screen), the action log is left closed
        (a drag of the handle at the bottom opens it)."""
        total = sum(self.splitter.sizes()) or self.height()
        rows = self.table.horizontalHeader().height()
        rows += 5 * self.table.verticalHeader().defaultSectionSize()
        if total * 11 // 20 >= rows:
            self.splitter.setSizes([total * 11 // 20, total * 5 // 20, total * 4 // 20])
        else:
            self.splitter.setSizes([total * 15 // 20, total * 5 // 20, 0])

    def _split_moved(self, _pos: int, _index: int) -> None:
        self._split_by_hand = True

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if not self._split_by_hand:
            self._split()

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._split_by_hand:
            self._split()
        if self._started and self._generation == 0:
            self.rescan()

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._cancel is not None:
            self._cancel.set()
        deadline = time.monotonic() + timeout
        for worker in self.findChildren(Worker):
            worker.wait(max(0.0, deadline - time.monotonic()))

    def save_state(self, settings: QSettings) -> None:
        settings.beginGroup("clean")
        settings.setValue("header", self.table.horizontalHeader().saveState())
        settings.setValue("splitter", self.splitter.saveState())
        settings.setValue("days", self.days.value())
        settings.setValue("keep", self.keep.value())
        settings.endGroup()

    def restore_state(self, settings: QSettings) -> None:
        settings.beginGroup("clean")
        try:
            for key, target in (
                ("header", self.table.horizontalHeader()),
                ("splitter", self.splitter),
            ):
                state = read_bytes(settings, key)
                if state:
                    target.restoreState(state)
                    self._split_by_hand = self._split_by_hand or target is self.splitter
            for key, spin in (("days", self.days), ("keep", self.keep)):
                try:
                    value = int(str(settings.value(key, spin.value())))
                except ValueError:
                    continue
                spin.blockSignals(True)
                spin.setValue(value)
                spin.blockSignals(False)
        finally:
            settings.endGroup()

    @property
    def busy(self) -> bool:
        return bool(self._busy)

    # --- background work -----------------------------------------------------------------------

    def _run(self, what: str, fn: Callable[[], Any], done: Callable[[Any, Any], None]) -> None:
        self._busy = what
        self.activity.busy(what)
        self._update_actions()
        worker = Worker(fn, starter=self._starter, name="clean", parent=self)

        def finished(result: Any, error: Any, w: Worker = worker) -> None:
            self._busy = ""
            self.activity.idle()
            try:
                done(result, error)
            finally:
                self._update_actions()
                w.deleteLater()

        worker.done.connect(finished)
        worker.start()

    def policy(self) -> clean.Policy:
        return clean.Policy(older_than_days=float(self.days.value()), keep=self.keep.value())

    def rescan(self) -> None:
        """Scan, measure, gather the evidence and judge every entry (F5)."""
        if self._busy:
            return
        import threading

        self._generation += 1
        gen = self._generation
        cancel = threading.Event()
        self._cancel = cancel
        stores, env, homes, policy = self._stores, self._env, self._homes, self.policy()

        def work() -> clean.Survey:
            return clean.survey(stores, env, policy, homes=homes, cancel=cancel, in_child=True)

        self._run(
            "Looking for entries nobody uses…",
            work,
            lambda result, error: self._surveyed(gen, cancel, result, error),
        )

    def _surveyed(self, gen: int, cancel: Any, result: Any, error: Any) -> None:
        if gen != self._generation:
            return
        if isinstance(error, BaseException):
            self.banner.set_messages([f"Looking for unused entries failed: {error}"], "error")
            self.model.set_verdicts([])
        elif cancel.is_set():
            self.activity.idle("Stopped: the list is incomplete (F5 to look again)")
        else:
            self._survey = result
            self._keep_selection(lambda: self.model.set_verdicts(result.verdicts))
            self.notes.set_messages(result.caveats(), "info")
            self._update_total()
        self.surveyFinished.emit()
        if self._look_again:
            self._look_again = False
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, self, self.rescan)
        elif self._select_after is not None:
            self.select_path(self._select_after)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def pin_selected(self, on: bool) -> None:
        """Pin (or unpin) the selected entries by digest, then judge again."""
        rows = sorted(
            {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        )
        names = [
            self.model.verdicts[r].entry.name
            for r in rows
            if self.model.verdicts[r].entry.digest is not None
        ]
        survey = self._survey
        if not names or survey is None or self._busy:
            return
        try:
            current, changed = pins.set_pinned([("entry", n) for n in names], on, self._env)
        except pins.PinError as exc:
            self.banner.set_messages([str(exc)], "error")
            return
        survey.evidence.pins = current
        word = "Pinned" if on else "Unpinned"
        self.statusMessage.emit(
            f"{word} {units.count_text(len(changed), 'entry')} ({current.path})"
        )
        self._policy_changed()
        if changed:
            paths = [self.model.verdicts[r].entry.path for r in rows]
            self._announce(CacheChange.of(PINNED, paths, source=self.page_id))

    def _policy_changed(self) -> None:
        """New limits: judge again at once with the evidence in hand; new candidates are
        measured in the background."""
        survey = self._survey
        if survey is None or self._busy:
            return
        known = {id(v.entry): v.footprint for v in survey.verdicts if v.footprint is not None}
        verdicts = clean.judge(
            survey.entries, survey.evidence, self.policy(), atime_modes=survey.atime_modes
        )
        missing = []
        for v in verdicts:
            v.footprint = known.get(id(v.entry))
            if v.candidate and v.footprint is None:
                missing.append(v)
        survey.verdicts = verdicts
        self._keep_selection(lambda: self.model.set_verdicts(verdicts))
        if missing:

            def work() -> None:
                for v in missing:
                    v.footprint = clean.footprint(v.entry.path)

            def done(_result: Any, _error: Any) -> None:
                self.model.refresh_sizes()
                self._update_total()
                self.refresh_details()

            self._run("Counting the space to reclaim…", work, done)

    # --- totals, details ---------------------------------------------------------------------

    def _update_total(self) -> None:
        chosen = self.model.chosen()
        _removing, disk, moving, kept = clean.plan(chosen)
        candidates = sum(1 for v in self.model.verdicts if v.candidate)
        # Quarantined entries stay on disk (a planted symlink takes no blocks: say no size then).
        stays = f"{size_text(kept)} stays on disk" if kept else "kept on disk"
        moved = f", {moving:,} to quarantine ({stays})" if moving else ""
        self.total.setText(
            f"{len(chosen):,} of {units.count_text(candidates, 'candidate')} checked: "
            f"{size_text(disk)} to reclaim{moved}"
        )
        if not self._busy and self._survey is not None:
            # The footer counts the same list as the header.
            self.activity.idle(
                f"{units.count_text(candidates, 'candidate')} among "
                f"{units.count_text(len(self.model.verdicts), 'entry')}"
            )
        self._update_actions()

    def _update_actions(self) -> None:
        idle = not self._busy
        self.clean_action.setEnabled(idle and bool(self.model.checked))
        self.find_action.setEnabled(idle)
        self.optimise_action.setEnabled(idle)
        self.cancel_action.setEnabled(not idle)
        self.days.setEnabled(idle)
        self.keep.setEnabled(idle)

    def _check_all(self, on: bool) -> None:
        self.model.set_checked(range(len(self.model.verdicts)), on)  # type: ignore[arg-type]

    def _toggle_selected(self) -> None:
        rows = sorted(
            {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        )
        rows = [r for r in rows if self.model.verdicts[r].candidate]
        if rows:
            self.model.set_checked(rows, not all(r in self.model.checked for r in rows))

    def _show_details(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.refresh_details()

    def current_verdict(self) -> clean.Verdict | None:
        current = self.table.currentIndex()
        if not current.isValid():
            return None
        selection = self.table.selectionModel()
        if not selection.isRowSelected(current.row(), current.parent()):
            return None
        row = self.proxy.mapToSource(current).row()
        return self.model.verdicts[row] if 0 <= row < len(self.model.verdicts) else None

    def refresh_details(self) -> None:
        """The evidence pane, for the current entry as judged now (after Pin, Unpin, new
        limits...); empty, with its placeholder, when nothing is selected."""
        v = self.current_verdict()
        if v is None:
            self.details.clear()
            return
        e = v.entry
        head = f"{program_text(e)} {e.version}".strip()
        lines = [f"{head}: {ACTION_WORDS[v.action]}", e.path]
        lines += [f"• {r}" for r in v.reasons]
        if v.doubt:
            lines.append(f"Look twice: {v.doubt}")
        if e.feed is not None:
            lines.append(f"Feed: {e.feed.feed_url}")
        elif e.kind == "implementation":
            lines.append("Feed: none: no cached feed lists it (unowned)")
        mode = self._survey.atime_modes.get(e.store.path) if self._survey else None
        used = when_text(v.last_used)
        lines.append(f"Last used: {used}" + (f" (access times: {mode} mount)" if mode else ""))
        lines.append(space_detail(v))
        lines.append(f"Store: {e.store.label} ({e.store.path})")
        self.details.setPlainText("\n".join(lines))

    def select_path(self, path: str) -> bool:
        """Make the entry at ``path`` current (Show in Clean up), showing kept entries if it is
        one; after the survey if it has not finished yet. False when it is not listed."""
        if self._survey is None or self._busy:
            self._select_after = path
            return False
        self._select_after = None
        row = self.model.row_of(path)
        if row < 0:
            self.statusMessage.emit("That entry is not in the last look at the stores (F5)")
            return False
        if not self.model.verdicts[row].candidate and not self.show_kept.isChecked():
            self.show_kept.setChecked(True)
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.selectRow(index.row())
        self.table.scrollTo(index)
        self.refresh_details()
        return True

    def _keep_selection(self, change: Callable[[], None]) -> None:
        """Run ``change`` (which resets the table) and select the same entry afterwards."""
        v = self.current_verdict()
        path = v.entry.path if v is not None else None
        change()
        if path is not None:
            row = self.model.row_of(path)
            if row >= 0:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if index.isValid():
                    self.table.selectRow(index.row())
        self.refresh_details()

    # --- the action log, and changes made elsewhere ----------------------------------------------

    def _watch_log(self) -> None:
        """Re-read the action log whenever it changes: removals from the Cache page, another
        window or the command line show at once (and reach the other pages)."""

        from PySide6.QtCore import QFileSystemWatcher

        path = actionlog.log_path(self._env)
        self._log_path = path
        self._watcher = QFileSystemWatcher(self)
        self._watch_paths()
        self._watcher.fileChanged.connect(self._log_changed)
        self._watcher.directoryChanged.connect(self._log_changed)

    def _watch_paths(self) -> None:
        """Watch the log, its folder, or (before either exists) the nearest existing parent."""
        import os

        path = self._log_path
        wanted = []
        if os.path.exists(path):
            wanted.append(path)
        folder = os.path.dirname(path)
        while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        wanted.append(folder)
        watched = set(self._watcher.files()) | set(self._watcher.directories())
        stale = [p for p in watched if p not in wanted]
        if stale:
            self._watcher.removePaths(stale)
        fresh = [p for p in wanted if p not in watched and os.path.exists(p)]
        if fresh:
            self._watcher.addPaths(fresh)

    def _log_changed(self, *_args: Any) -> None:
        import os

        self._watch_paths()  # created (or replaced) since
        before = self._log_last
        records = self.show_log()
        keys = [_record_key(r) for r in records]
        new = records[keys.index(before) + 1 :] if before in keys else records
        removed = [
            os.path.join(r.store, r.entry) for r in new if r.action in ("removed", "quarantined")
        ]
        if removed:
            self._announce(CacheChange.of(REMOVED, removed, source="log"))

    def cache_changed(self, change: CacheChange) -> None:
        """Something changed the stores or the pins (this page, another, the command line):
        the action log is read again; removed entries leave the list in place; new pins or
        changed entries are judged again (after the work running now)."""
        self.show_log()
        if change.source == self.page_id or self._generation == 0:
            return  # this page's own change (it already judged again), or never looked yet
        if change.kind == REMOVED and change.paths:
            if self.model.remove_paths(change.paths):
                self.refresh_details()
            if self._busy:
                self._look_again = True  # a survey running now may still list them
            return
        if change.kind == PINNED and self._survey is not None and not self._busy:
            try:
                self._survey.evidence.pins = pins.load(pins.pins_path(self._env))
            except pins.PinError as exc:
                self.banner.set_messages([str(exc)], "error")
                return
            self._policy_changed()
            return
        if self._busy:
            self._look_again = True
        else:
            self.rescan()

    def show_log(self) -> list:
        """Show the action log (the newest 200 records, newest at the bottom); returns them."""
        path = actionlog.log_path(self._env)
        records = actionlog.read(path, limit=200)
        self._log_last = _record_key(records[-1]) if records else None
        self.log_label.setText(f"Action log ({path})")
        self.log_view.setPlainText(
            "\n".join(r.describe() for r in records) if records else "Nothing removed yet."
        )
        self.log_view.verticalScrollBar().setValue(self.log_view.verticalScrollBar().maximum())
        return records

    # --- cleaning ------------------------------------------------------------------------------

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def clean_checked(self) -> None:
        chosen = self.model.chosen()
        survey = self._survey
        if not chosen or survey is None or self._busy:
            return
        question = (
            f"{clean.plan_text(chosen)}?\n\nEach entry is checked again right before it is removed."
        )
        question = question[:1].upper() + question[1:]
        if clean.needs_password(chosen):
            question += " " + clean.PASSWORD_NOTE
        if not self.confirm("Clean up", question):
            return
        recheck = clean.recheck_for(survey.stores, survey.entries, self._env, homes=self._homes)
        env = self._env
        import threading

        cancel = threading.Event()
        self._cancel = cancel
        progress = self._removalProgress

        def work() -> list[clean.Outcome]:
            return clean.remove(
                chosen,
                recheck,
                env=env,
                cancel=cancel,
                on_progress=lambda n, total, o: progress.emit(n, total, o.verdict.entry.name),
            )

        self._run(f"Removing {len(chosen):,} entries…", work, self._cleaned)

    def _show_removal_progress(self, done: int, total: int, name: str) -> None:
        if self._busy:
            self.activity.progress(done / total, f"Removed {done:,} of {total:,} entries ({name})")

    def _cleaned(self, outcomes: Any, error: Any) -> None:
        if isinstance(error, BaseException):
            self.banner.set_messages([f"Cleaning failed: {error}"], "error")
        else:
            failed = [o for o in outcomes if not o.ok]
            text = "Cleaned: " + clean.result_text(outcomes)
            self.statusMessage.emit(text)
            messages = [o.describe() for o in failed]
            if messages:
                self.banner.set_messages(
                    [text + f"; {units.count_text(len(failed), 'entry')} not done:"] + messages,
                    "warning",
                )
            else:
                self.banner.set_messages([], "info")
            self.activity.idle(text)
            gone = [o.verdict.entry.path for o in outcomes if o.ok]
            if gone:
                self._announce(CacheChange.of(REMOVED, gone, source=self.page_id))
        self.show_log()
        self.cleanFinished.emit()
        self.rescan()

    def _announce(self, change: CacheChange) -> None:
        """Tell every page (through the window); alone, at least this page's own log."""
        if hasattr(self.window(), "announce_change"):
            self.cacheChanged.emit(change)
        else:
            self.cache_changed(change)

    # --- optimising ----------------------------------------------------------------------------

    def _usable_stores(self) -> list:
        if self._survey is not None:
            return [s for s in self._survey.stores if s.problem is None]
        from core.stores import discover_stores

        return [s for s in (self._stores or discover_stores(self._env)) if s.problem is None]

    def optimise(self) -> None:
        """A dry run first; then, if the admin agrees, the real thing."""
        if self._busy:
            return
        from core import optimise as opt

        stores = self._usable_stores()

        def dry() -> list:
            return [opt.optimise_store(s, dry_run=True) for s in stores]

        def shown(results: Any, error: Any) -> None:
            if isinstance(error, BaseException):
                self.banner.set_messages([f"Optimise failed: {error}"], "error")
                self.optimiseFinished.emit()
                return
            linked = sum(r.linked for r in results)
            saved = sum(r.saved for r in results)
            if not linked:
                self.statusMessage.emit("Nothing to optimise: no identical files to link")
                self.activity.idle("Nothing to optimise")
                self.optimiseFinished.emit()
                return
            if not self.confirm(
                "Optimise",
                f"Hard-link {linked:,} identical files in "
                f"{sum(len(r.affected) for r in results):,} implementations, saving "
                f"{size_text(saved)}?\n\nEvery changed implementation is verified afterwards.",
            ):
                self.optimiseFinished.emit()
                return
            self._run(
                "Optimising…", lambda: [opt.optimise_store(s) for s in stores], self._optimised
            )

        self._run("Looking for identical files…", dry, shown)

    def _optimised(self, results: Any, error: Any) -> None:
        from core import optimise as opt

        if isinstance(error, BaseException):
            self.banner.set_messages([f"Optimise failed: {error}"], "error")
        else:
            saved = sum(r.saved for r in results)
            text = f"Optimised: {size_text(saved)} saved"
            problems = [p for r in results for p in r.problems]
            problems += [
                f"{r.store}/{n} does not verify after optimising"
                for r in results
                for n in r.not_verified
            ]
            failure = opt.record(results, actionlog.log_path(self._env))
            if failure:
                problems.append(failure)
            self.banner.set_messages(problems, "warning")
            self.statusMessage.emit(text)
            self.activity.idle(text)
            import os

            changed = [os.path.join(r.store, n) for r in results for n in r.affected]
            if changed:
                self._announce(CacheChange.of(MODIFIED, changed, source=self.page_id))
        self.show_log()
        self.optimiseFinished.emit()
        if not isinstance(error, BaseException):
            self.rescan()  # hard links changed what removing each entry gives back
