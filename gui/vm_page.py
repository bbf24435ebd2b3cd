"""The Virtual machines page: share the cache with VirtualBox guests, and write configuration for
Vagrant, microvm.nix and libvirt guests.

Every VBoxManage call runs off the GUI thread, one job at a time, each call with a timeout. A
refresh shows the VMs' names as soon as ``list vms`` gave them and fills in each VM's details as
they arrive (several VMs are read side by side, calls about one VM one at a time); Cancel stops
the job and kills its running VBoxManage calls. Every change is logged as the exact command it
runs, and failures show VBoxManage's own ``error:`` line with a plain explanation.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFontDatabase, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core import vbox_vms, vboxmanage, vboxmanage_output, vm_guest, vm_share
from gui.actions import make_action
from gui.banner import Banner
from gui.icons import icon
from gui.page_frame import page_toolbar
from gui.settings import read_bytes
from gui.snippet_panel import SnippetPanel
from gui.vm_models import FolderModel, VMModel
from gui.vm_share_dialog import ShareDialog, SharePlan
from gui.workers import Batcher, Starter, Worker

Job = Callable[[threading.Event], Any]
"""A background job: it gets its own cancel event (set by Cancel, or when the page closes)."""


# --- the page -------------------------------------------------------------------------------------


class VMPage(QWidget):
    """Lists VirtualBox VMs and their shared folders; shares the cache; writes configuration."""

    page_id = "vms"
    title = "Virtual machines"
    icon_name = "vm"

    statusMessage = Signal(str)
    refreshed = Signal()
    jobsIdle = Signal()

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        starter: Starter | None = None,
        timeout: float | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._env = {**os.environ, **(env or {})}
        self._starter = starter
        self._timeout = timeout
        self._manager: vboxmanage.VBoxManage | None = None
        self._version = ""
        self._queue: list[tuple[str, Job, Callable[[Any, Any], None]]] = []
        self._worker: Worker | None = None
        self._job_cancel = threading.Event()  # the running job's
        self._generation = 0
        self._reading = 0  # counts refreshes, to drop an old one's progress
        self._started = False
        # A refresh's progress, from its reading threads: ("names", ...) then ("vm", row, VM).
        self._progress = Batcher(50, self)
        self._progress.delivered.connect(self._arrived)
        # VM uuid -> the ShareRequest fields of its transient shares, to make permanent once it
        # has stopped (remembered across sessions).
        self.pending: dict[str, list[dict]] = {}
        self._change_errors: list[str] = []  # the last change's failures, kept over refreshes
        self.model = VMModel(self)
        self.folder_model = FolderModel(self)
        self._build_actions()
        self._build_widgets()
        self._update_actions()

    # --- construction ----------------------------------------------------------------------------

    _action = make_action

    def _build_actions(self) -> None:
        self.refresh_action = self._action(
            "&Refresh",
            "Read the VMs and their shared folders again",
            self.refresh,
            QKeySequence.StandardKey.Refresh,
            "rescan",
        )
        self.share_action = self._action(
            "&Share the cache with these VMs…",
            "Share the Zero Install cache with the selected VMs (read-only by default)",
            self.share_selected,
            "Ctrl+Shift+S",
            "folder-open",
        )
        self.remove_action = self._action(
            "Re&move share",
            "Remove the selected shared folder from its VM",
            self.remove_selected,
            QKeySequence.StandardKey.Delete,
            "cancel",
        )
        self.cancel_action = self._action(
            "C&ancel",
            "Stop reading the VMs (or the running change): kill the VBoxManage calls it waits for",
            self.cancel,
            "Esc",
            "cancel",
        )
        self.copy_action = self._action(
            "&Copy guest instructions",
            "Copy what to type in the guest to the clipboard",
            self.copy_instructions,
        )

    def menu_actions(self) -> list[QAction | None]:
        return [
            self.refresh_action,
            self.cancel_action,
            None,
            self.share_action,
            self.remove_action,
            None,
            self.copy_action,
        ]

    def _build_widgets(self) -> None:
        self.banner = Banner(self)
        self.banner.closed.connect(self._change_errors.clear)
        self.tabs = QTabWidget(self)
        vb_tab = self._build_virtualbox_tab()

        self.snippets = SnippetPanel(self.tabs)
        self.snippets.saved.connect(lambda path: self._status(f"Saved {path}"))
        self.tabs.addTab(vb_tab, icon("vm"), "VirtualBox")
        self.tabs.addTab(self.snippets, "Vagrant, microvm.nix, libvirt, fstab")
        self._tab_restored = False  # a saved tab (or the first look) has chosen the tab

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.banner)
        layout.addWidget(self.tabs, 1)

    def _build_virtualbox_tab(self) -> QWidget:
        """The VirtualBox tab: the toolbar and where VBoxManage is, the bar offering to make
        transient shares permanent, then the VMs, their shared folders, and the guest
        instructions and command log (in tabs), one above the other in a splitter."""
        vb_tab = QWidget(self.tabs)
        self._build_toolbar(vb_tab)
        self._build_pending_bar(vb_tab)
        self._build_vm_table(vb_tab)
        folders_box = self._build_folder_table(vb_tab)
        self._build_bottom(vb_tab)

        self.splitter = QSplitter(Qt.Orientation.Vertical, vb_tab)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(folders_box)
        self.splitter.addWidget(self.bottom)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setChildrenCollapsible(False)

        vl = QVBoxLayout(vb_tab)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.setSpacing(4)
        vl.addWidget(self.toolbar)
        vl.addWidget(self.where)
        vl.addWidget(self.pending_bar)
        vl.addWidget(self.splitter, 1)
        return vb_tab

    def _build_toolbar(self, vb_tab: QWidget) -> None:
        """The VirtualBox actions, and the line that says which VBoxManage runs them."""
        self.toolbar = page_toolbar(
            "Virtual machines",
            vb_tab,
            [self.refresh_action, self.cancel_action, None, self.share_action, self.remove_action],
        )
        self.where = QLabel("Looking for VirtualBox…", vb_tab)
        self.where.setWordWrap(True)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def _build_pending_bar(self, vb_tab: QWidget) -> None:
        """Offers to make transient shares permanent once their VMs have stopped."""
        self.pending_bar = QFrame(vb_tab)
        self.pending_bar.setFrameShape(QFrame.Shape.StyledPanel)
        self.pending_label = QLabel(self.pending_bar)
        self.pending_label.setWordWrap(True)
        self.pending_button = QPushButton("Make &permanent", self.pending_bar)
        self.pending_button.clicked.connect(self.make_pending_permanent)
        self.forget_button = QPushButton("&Forget", self.pending_bar)
        self.forget_button.setToolTip("Do not offer this again")
        self.forget_button.clicked.connect(self.forget_pending)
        bar = QHBoxLayout(self.pending_bar)
        bar.setContentsMargins(8, 4, 4, 4)
        bar.addWidget(self.pending_label, 1)
        bar.addWidget(self.pending_button)
        bar.addWidget(self.forget_button)
        self.pending_bar.hide()

    def _build_vm_table(self, vb_tab: QWidget) -> None:
        """The VMs: several can be selected at once; a double click shares the cache with them."""
        self.table = QTableView(vb_tab)
        self.table.setModel(self.model)
        self.table.setAccessibleName("Virtual machines")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in ((0, 190), (1, 95), (2, 140), (3, 120)):
            self.table.setColumnWidth(column, width)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.doubleClicked.connect(lambda _i: self.share_selected())

    def _build_folder_table(self, vb_tab: QWidget) -> QWidget:
        """The selected VM's shared folders, under their title; Delete removes the selected one."""
        self.folders = QTableView(vb_tab)
        self.folders.setModel(self.folder_model)
        self.folders.setAccessibleName("Shared folders")
        self.folders.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.folders.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.folders.verticalHeader().hide()
        self.folders.setWordWrap(False)
        self.folders.horizontalHeader().setStretchLastSection(True)
        for column, width in ((0, 110), (1, 220), (2, 80), (3, 80), (4, 90), (5, 70)):
            self.folders.setColumnWidth(column, width)
        self.folders.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.folders_title = QLabel("Shared folders", vb_tab)
        # Delete removes a share only from the folders table, not while typing elsewhere.
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.folders.addAction(self.remove_action)
        folders_box = QWidget(vb_tab)
        fl = QVBoxLayout(folders_box)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(self.folders_title)
        fl.addWidget(self.folders, 1)
        return folders_box

    def _build_bottom(self, vb_tab: QWidget) -> None:
        """Guest instructions and the command log, in tabs sharing the full width, with Copy."""
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.instructions = QPlainTextEdit(vb_tab)
        self.instructions.setReadOnly(True)
        self.instructions.setFont(mono)
        self.instructions.setAccessibleName("Guest instructions")
        self.instructions.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        copy = QPushButton("&Copy", vb_tab)
        copy.setToolTip("Copy the guest instructions to the clipboard")
        copy.clicked.connect(self.copy_shown)
        self.copy_button = copy
        self._copy_reset = QTimer(self)
        self._copy_reset.setSingleShot(True)
        self._copy_reset.setInterval(2000)
        self._copy_reset.timeout.connect(lambda: copy.setText("&Copy"))

        self.log = QPlainTextEdit(vb_tab)
        self.log.setReadOnly(True)
        self.log.setFont(mono)
        self.log.setAccessibleName("Commands run")
        self.log.setPlaceholderText(
            "Every change is logged here as the VBoxManage command it runs."
        )
        self.log.setMaximumBlockCount(2000)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)

        self.bottom = QTabWidget(vb_tab)
        self.bottom.setDocumentMode(True)
        self.bottom.addTab(self.instructions, "Guest instructions")
        self.bottom.addTab(self.log, "Commands run")
        self.bottom.setCornerWidget(copy, Qt.Corner.TopRightCorner)
        self.bottom.currentChanged.connect(self._bottom_changed)

    # --- page protocol ---------------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        self.snippets.set_host_path(vm_share.default_host_path(self._env)[0])
        self.snippets.detect_libvirt(self._starter)
        self.refresh()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Drop queued jobs and wait (bounded) for the running one; a hung VBoxManage is killed
        by its own timeout, and its daemon thread never keeps the process alive."""
        self._queue.clear()
        self._generation += 1
        self._reading += 1
        self._job_cancel.set()  # a VBoxManage still running is killed within 0.1 s
        if self._worker is not None:
            self._worker.wait(timeout)

    def save_state(self, settings: QSettings) -> None:
        settings.beginGroup("vms")
        settings.setValue("splitter", self.splitter.saveState())
        settings.setValue("header", self.table.horizontalHeader().saveState())
        settings.setValue("tab", self.tabs.currentIndex())
        settings.setValue("pending", json.dumps(self.pending))
        settings.endGroup()

    def restore_state(self, settings: QSettings) -> None:
        settings.beginGroup("vms")
        try:
            state = read_bytes(settings, "splitter")
            if state:
                self.splitter.restoreState(state)
            header = read_bytes(settings, "header")
            if header:
                self.table.horizontalHeader().restoreState(header)
            try:
                if settings.contains("tab"):
                    self._tab_restored = True
                self.tabs.setCurrentIndex(int(settings.value("tab", 0)))
                pending = json.loads(str(settings.value("pending", "{}")))
                if isinstance(pending, dict):
                    self.pending = pending
            except (TypeError, ValueError):
                pass
        finally:
            settings.endGroup()

    # --- background jobs -------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._worker is not None or bool(self._queue)

    def _submit(self, label: str, fn: Job, done: Callable[[Any, Any], None]) -> None:
        """Queue ``fn(cancel)`` to run off the GUI thread after the jobs before it;
        ``done(result, error)`` runs on the GUI thread."""
        self._queue.append((label, fn, done))
        self._next()

    def cancel(self) -> None:
        """Stop the running job: its VBoxManage calls are killed, what it read is kept."""
        if self._worker is not None:
            self._job_cancel.set()
            self._status("Cancelling…")
            self.cancel_action.setEnabled(False)

    def _next(self) -> None:
        if self._worker is not None:
            return
        if not self._queue:
            if self._last_status is not None and self._last_status == self._job_label:
                self._status("")  # "Reading the VirtualBox VMs..." is over; say nothing stale
            self._update_actions()
            self.jobsIdle.emit()
            return
        label, fn, done = self._queue.pop(0)
        generation = self._generation
        cancel = self._job_cancel = threading.Event()
        worker = Worker(lambda: fn(cancel), starter=self._starter, name="vboxmanage", parent=self)
        self._worker = worker
        self._job_label = label
        self._status(label)
        self._update_actions()

        def finished(result: Any, error: Any) -> None:
            self._worker = None
            worker.deleteLater()
            self._progress.flush()  # what the job read arrives before its end
            try:
                if generation == self._generation:
                    done(result, error)
            finally:
                self._next()

        worker.done.connect(finished)
        worker.start()

    # --- refresh ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        env = self._env
        timeout = self._timeout
        progress = self._progress
        self._reading += 1  # what an older refresh still delivers is dropped
        generation = self._reading

        def read(cancel: threading.Event) -> dict:
            from core.stores import discover_stores

            manager = vboxmanage.VBoxManage.find(timeout=timeout, env=env, cancel=cancel)
            try:
                stores = [s.path for s in discover_stores(env)]
            except OSError:
                stores = []
            if manager is None:
                return {"manager": None, "stores": stores}
            # The version beside the list, not before it: a stuck VirtualBox costs one timeout.
            version: list[vboxmanage.VBoxResult] = []
            asking = threading.Thread(
                target=lambda: version.append(manager.run(["--version"])), daemon=True
            )
            asking.start()
            try:
                names = vbox_vms.list_vm_names(manager)
            except vboxmanage.VBoxError as exc:
                asking.join()
                return {
                    "manager": manager,
                    "version": version,
                    "error": exc.result,
                    "stores": stores,
                }
            progress.put((generation, "names", manager, stores, names))
            vms = vbox_vms.read_vms(
                manager, names, lambda row, vm: progress.put((generation, "vm", row, vm)), cancel
            )
            asking.join()
            return {"manager": manager, "version": version, "vms": vms, "stores": stores}

        self._submit("Reading the VirtualBox VMs…", read, self._refreshed)

    def _arrived(self, items: list) -> None:
        """A refresh's progress on the GUI thread: the names at once, then each VM."""
        current = self.current_vm()
        for item in items:
            if item[0] != self._reading:
                continue
            if item[1] == "names":
                _gen, _kind, manager, stores, names = item
                self._manager = manager
                self.where.setText(f"VBoxManage: {manager.exe}")
                # What was shown stays shown (marked as being read) until its update arrives.
                shown = {vm.uuid: vm for vm in self.model.vms if vm.known}
                placeholders = [
                    replace(shown[uuid], reading=True)
                    if uuid in shown
                    else vbox_vms.VM(name, uuid, reading=True)
                    for name, uuid in names
                ]
                self._keep_selection(placeholders, stores)
                self._status(f"Reading {len(names)} VM{'' if len(names) == 1 else 's'}…")
            else:
                _gen, _kind, row, vm = item
                self.model.update_vm(row, vm)
                if current is not None and vm.uuid == current.uuid:
                    self._selection_changed()

    def _refreshed(self, result: Any, error: Any) -> None:
        self.banner.set_messages(self._change_errors, "error")
        if error is not None:
            self.banner.add_message(f"Could not read the VMs: {error}", "error")
            self.refreshed.emit()
            return
        self._manager = result["manager"]
        if self._manager is None:
            problem = vboxmanage.env_problem(self._env)
            self.where.setText(
                "VirtualBox is not installed here (no VBoxManage on PATH, in the usual places, or "
                "in $VBOX_MANAGE). The configuration generators in the next tab need no "
                "VirtualBox." + (f"\nNote: {problem}." if problem else "")
            )
            self.model.set_vms([], result["stores"])
            self._selection_changed()
            if not self._tab_restored:
                # Nothing to list: the generators are what this page can do here. Once only, so
                # a refresh never takes the admin away from the tab they chose.
                self._tab_restored = True
                self.tabs.setCurrentWidget(self.snippets)
            self.refreshed.emit()
            return
        version = result["version"][0] if result["version"] else None
        self._version = version.stdout.strip() if version is not None and version.ok else ""
        shown = f" {self._version}" if self._version else ""
        self.where.setText(f"VBoxManage{shown}: {self._manager.exe}")
        if "error" in result:
            failure = result["error"]
            self.banner.add_message(
                f"Could not list the VMs: {failure.error_text}"
                + (f" ({failure.explanation})" if failure.explanation else ""),
                "error",
            )
            self.model.set_vms([], result["stores"])
            self._selection_changed()
        else:
            if [vm.uuid for vm in self.model.vms] != [vm.uuid for vm in result["vms"]]:
                self._keep_selection(result["vms"], result["stores"])
            else:
                for row, vm in enumerate(result["vms"]):
                    self.model.update_vm(row, vm)
                self._selection_changed()
            self._report(self.model.vms)
            self._check_pending()
            count = len(self.model.vms)
            self._status(f"{count} VirtualBox VM{'' if count == 1 else 's'}")
        self.refreshed.emit()

    def _report(self, vms: Sequence[vbox_vms.VM]) -> None:
        """The banner after a refresh: what could not be read, and old Guest Additions."""
        cancelled = [vm.name for vm in vms if vm.error == vbox_vms.CANCELLED]
        skipped = [vm.name for vm in vms if vm.error == vbox_vms.STUCK]
        for vm in vms:
            if vm.error and vm.error not in (vbox_vms.CANCELLED, vbox_vms.STUCK):
                self.banner.add_message(f"{vm.name}: {vm.error}", "warning")
        if skipped:
            self.banner.add_message(
                "Not read, because VBoxManage did not answer in time for another VM: "
                + ", ".join(skipped)
                + ". Refresh to try again.",
                "warning",
            )
        if cancelled:
            self.banner.add_message(
                "Cancelled: not read: " + ", ".join(cancelled) + ". Refresh to read them.",
                "warning",
            )
        old = [vm.name for vm in vms if vm.ga_old]
        if old:
            self.banner.add_message(
                "Guest Additions older than 4.2.0 in " + ", ".join(old) + ": symlinks in "
                "shared folders break, and a guest writing to a shared cache may fail with "
                '"Incorrect manifest -- archive is corrupted". Update them in the guest.',
                "warning",
            )

    def _keep_selection(self, vms: Sequence[vbox_vms.VM], stores: Sequence[str]) -> None:
        chosen = {vm.uuid for vm in self.selected_vms()}
        self.model.set_vms(vms, stores)
        selection = self.table.selectionModel()
        for row, vm in enumerate(self.model.vms):
            if vm.uuid in chosen:
                selection.select(
                    self.model.index(row, 0),
                    selection.SelectionFlag.Select | selection.SelectionFlag.Rows,
                )
        if not chosen and self.model.vms:
            self.table.selectRow(0)
        self._selection_changed()

    # --- selection, instructions -----------------------------------------------------------------

    def selected_vms(self) -> list[vbox_vms.VM]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.vms[r] for r in rows if r < len(self.model.vms)]

    def current_vm(self) -> vbox_vms.VM | None:
        index = self.table.currentIndex()
        selected = self.selected_vms()
        if index.isValid() and self.model.vms[index.row()] in selected:
            return self.model.vms[index.row()]
        return selected[0] if selected else None

    def select_vms(self, names: Sequence[str]) -> None:
        self.table.clearSelection()
        selection = self.table.selectionModel()
        for row, vm in enumerate(self.model.vms):
            if vm.name in names:
                selection.select(
                    self.model.index(row, 0),
                    selection.SelectionFlag.Select | selection.SelectionFlag.Rows,
                )

    def _selection_changed(self, *_args: object) -> None:
        vm = self.current_vm()
        if vm is None:
            self.folder_model.set_folders([], [])
            self.folders_title.setText("Shared folders")
            if self._manager is None:
                text = ""
            elif not self.model.vms:
                text = (
                    "VirtualBox has no VMs registered for this user. VirtualBox keeps VMs per "
                    "user: run this program as the user who owns them to see and share them."
                )
            else:
                text = "Select a VM to see its shared folders and what to type in the guest."
            self.instructions.setPlainText(text)
        else:
            flags = [self.model.is_cache(f) for f in vm.folders]
            self.folder_model.set_folders(vm.folders, flags)
            self.folders_title.setText(f"Shared folders of {vm.name}")
            self.instructions.setPlainText(self.instructions_for(vm))
        self._update_actions()

    def instructions_for(self, vm: vbox_vms.VM) -> str:
        """What to type in ``vm``'s guest: the same text as ``zeroinstall-admin vm list``."""
        return vm_guest.guest_text(vm, self.model.cache_paths)

    def copy_instructions(self) -> None:
        QGuiApplication.clipboard().setText(self.instructions.toPlainText())
        self._copied("Guest instructions copied to the clipboard")

    def copy_shown(self) -> None:
        """The Copy button: the guest instructions, or the command log when that is shown."""
        if self.bottom.currentWidget() is self.log:
            QGuiApplication.clipboard().setText(self.log.toPlainText())
            self._copied("Commands run copied to the clipboard")
        else:
            self.copy_instructions()

    def _copied(self, text: str) -> None:
        """Say so on the button itself (where the admin looks) and in the status bar."""
        self.copy_button.setText("Copied ✓")
        self._status(text)
        self._copy_reset.start()  # owned by the page: it never outlives the button

    def _bottom_changed(self, _index: int) -> None:
        log = self.bottom.currentWidget() is self.log
        self.copy_button.setToolTip(
            "Copy the commands run to the clipboard"
            if log
            else "Copy the guest instructions to the clipboard"
        )
        self._update_actions()

    def selected_folder(self) -> vboxmanage_output.SharedFolder | None:
        rows = self.folders.selectionModel().selectedRows()
        if not rows:
            return None
        return self.folder_model.folders[rows[0].row()]

    def _update_actions(self) -> None:
        available = self._manager is not None and not self.busy
        self.refresh_action.setEnabled(not self.busy)
        self.cancel_action.setEnabled(self._worker is not None and not self._job_cancel.is_set())
        self.share_action.setEnabled(available and bool(self.selected_vms()))
        self.remove_action.setEnabled(available and self.selected_folder() is not None)
        self.copy_action.setEnabled(bool(self.instructions.toPlainText()))
        shown = self.bottom.currentWidget()
        self.copy_button.setEnabled(isinstance(shown, QPlainTextEdit) and bool(shown.toPlainText()))

    # --- changes ---------------------------------------------------------------------------------

    def _user_store(self) -> str:
        from core.stores import cache_dirs

        return os.path.join(cache_dirs(self._env)[0], "implementations")

    def share_dialog(self, vms: Sequence[vbox_vms.VM]) -> ShareDialog:
        return ShareDialog(
            vms,
            vm_share.default_host_path(self._env)[0],
            self._user_store(),
            self,
            stores=self.model.cache_paths,
        )

    def share_selected(self) -> None:
        vms = self.selected_vms()
        if not vms or self._manager is None:
            return
        dialog = self.share_dialog(vms)
        dialog.fit_to_screen()
        try:
            if dialog.exec() == QDialog.DialogCode.Accepted:
                self.run_share(vms, dialog.plan())
        finally:
            dialog.deleteLater()

    def run_share(self, vms: Sequence[vbox_vms.VM], plan: SharePlan) -> None:
        """Share ``plan`` with each VM in the background, then refresh."""
        manager = self._manager
        if manager is None:
            return
        if plan.guest_cache is not None and not os.path.isdir(plan.guest_cache.host_path):
            try:
                os.makedirs(plan.guest_cache.host_path, mode=0o755, exist_ok=True)
                self._log_line(f"$ mkdir -p {plan.guest_cache.host_path}")
            except OSError as exc:
                self.banner.add_message(
                    f"Could not create '{plan.guest_cache.host_path}': {exc.strerror or exc}"
                )
                return
        vms = list(vms)
        requests = [plan.request] + ([plan.guest_cache] if plan.guest_cache else [])

        def shared(vm: vbox_vms.VM, ok: bool) -> None:
            if ok and plan.permanent_later and plan.request.transient_for(vm):
                self.pending[vm.uuid] = [asdict(r) for r in requests]

        for vm, problem in plan.refused(vms):
            self._log_line(f"# {vm.name}: skipped: {problem}")
        vms = [vm for vm in vms if not plan.problem(vm)]
        if not vms:
            return
        work = [(vm, plan.commands(vm)) for vm in vms]
        self._run_changes(
            f"Sharing with {len(vms)} VM{'' if len(vms) == 1 else 's'}…", manager, work, shared
        )

    def remove_selected(self) -> None:
        vm, folder = self.current_vm(), self.selected_folder()
        if vm is None or folder is None or self._manager is None:
            return
        problem = vm_share.unshare_problem(vm, folder)
        if problem:
            QMessageBox.information(self, "Remove share", f"Nothing was run: {problem}.")
            return
        commands = vm_share.unshare_commands(vm, folder.name, folder.transient)
        text = "\n".join(vboxmanage.command_line(c) for c in commands)
        answer = QMessageBox.question(
            self,
            "Remove share",
            f"Remove the shared folder '{folder.name}' from {vm.name}?\n\nVBoxManage will run:\n"
            f"{text}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,  # removing is not what Enter should do
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.pending.pop(vm.uuid, None)
        self._run_changes(
            f"Removing '{folder.name}' from {vm.name}…", self._manager, [(vm, commands)]
        )

    def _run_changes(
        self,
        label: str,
        manager: vboxmanage.VBoxManage,
        work: Sequence[tuple[vbox_vms.VM, Sequence[Sequence[str]]]],
        after: Callable[[vbox_vms.VM, bool], None] | None = None,
    ) -> None:
        """Run each VM's commands in the background, log them, then refresh; ``after(vm, ok)``
        follows on the GUI thread for each VM."""
        self._change_errors.clear()
        for vm, commands in work:
            for args in commands:
                self._log_line(f"$ {vboxmanage.command_line(args)}    # {vm.name}")

        def run(cancel: threading.Event) -> list[tuple[vbox_vms.VM, list[vboxmanage.VBoxResult]]]:
            stoppable = manager.with_cancel(cancel)
            return [(vm, vm_share.run_commands(stoppable, vm, commands)) for vm, commands in work]

        self._submit(label, run, lambda result, error: self._changed(result, error, after))
        self._update_actions()

    def _changed(
        self, result: Any, error: Any, after: Callable[[vbox_vms.VM, bool], None] | None = None
    ) -> None:
        if error is not None:
            self._change_errors.append(f"Unexpected error: {error}")
        else:
            failures = 0
            for vm, results in result:
                if after is not None:
                    after(vm, all(r.ok for r in results))
                for r in results:
                    if r.ok:
                        self._log_line(f"  ok: {r.command}")
                    else:
                        failures += 1
                        self._log_line(f"  {vm.name}: {r.error_text}")
                        if r.explanation:
                            self._log_line(f"    ({r.explanation})")
                        self._change_errors.append(
                            f"{vm.name}: {r.error_text}"
                            + (f" ({r.explanation})" if r.explanation else "")
                        )
            self._status(
                "Done"
                if not failures
                else f"{failures} command{'' if failures == 1 else 's'} failed: see the log"
            )
        self.refresh()

    _job_label: str | None = None  # what the running (or last) job said it does
    _last_status: str | None = None

    def _status(self, text: str) -> None:
        """A status-bar message, only while this page is the one shown."""
        if self.isVisible():
            self._last_status = text
            self.statusMessage.emit(text)

    def _log_line(self, text: str) -> None:
        self.log.appendPlainText(text)
        # appendPlainText scrolls to the end of the last line: show lines from their start.
        self.log.horizontalScrollBar().setValue(0)
        self.bottom.setCurrentWidget(self.log)
        self._update_actions()

    # --- permanent later -------------------------------------------------------------------------

    def ready_pending(self) -> list[tuple[vbox_vms.VM, list[vm_share.ShareRequest]]]:
        """Shares waiting to become permanent whose VM has stopped (and does not have them)."""
        ready = []
        for vm in self.model.vms:
            if vm.uuid not in self.pending or not vm.known:
                continue
            requests = vm_share.pending_shares(vm, self.pending[vm.uuid])
            if requests:
                ready.append((vm, requests))
            elif not vm.running and not vm.saved:
                self.pending.pop(vm.uuid, None)  # made permanent by hand, or nothing valid left
        return ready

    def _check_pending(self) -> None:
        ready = self.ready_pending()
        if not ready:
            self.pending_bar.hide()
            return
        names = ", ".join(
            f"{vm.name} ({', '.join(repr(r.name) for r in requests)})" for vm, requests in ready
        )
        self.pending_label.setText(
            f"Stopped since their transient share was added: {names}. The share ended with the "
            "VM. Make it permanent now?"
        )
        self.pending_bar.show()

    def make_pending_permanent(self) -> None:
        ready = self.ready_pending()
        if not ready or self._manager is None:
            return
        work = []
        for vm, requests in ready:
            self.pending.pop(vm.uuid, None)
            work.append((vm, [c for r in requests for c in vm_share.share_commands(vm, r)]))
        self.pending_bar.hide()
        self._run_changes("Making shares permanent…", self._manager, work)

    def forget_pending(self) -> None:
        for vm, _requests in self.ready_pending():
            self.pending.pop(vm.uuid, None)
        self.pending_bar.hide()
