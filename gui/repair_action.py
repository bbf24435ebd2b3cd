"""Repair on the Cache page: a toolbar button, and an entry of the page's menus.

Made by the Cache page, as Delete is: it uses the page's ``table``, ``toolbar``,
``selected_rows()`` and ``rescan()``. Enabled when a selected entry was found damaged; after one
confirmation, :func:`core.repair.repair` (the same function as ``zeroinstall-admin repair``) moves
each damaged entry aside and has 0install fetch the same version again, off the GUI thread; the
page then scans again and says what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMessageBox, QWidget

from gui.icons import icon
from gui.workers import Starter, Worker


class RepairAction(QObject):
    finished = Signal(object)  # the core.repair results, or None when nothing was done

    def __init__(
        self, page: Any, env: Mapping[str, str] | None = None, *, starter: Starter | None = None
    ) -> None:
        super().__init__(page)
        self.page = page
        self._env = None if env is None else dict(env)
        self._starter = starter
        self._busy = False
        self.confirm: Callable[[str, str], bool] = self._ask
        self.inform: Callable[[str, str], None] = self._tell
        self.action = QAction(icon("repair"), "&Repair…", page)
        self.action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        tip = "Move the selected damaged entries aside and fetch them again with 0install"
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.triggered.connect(self.repair_selected)
        page.toolbar.addAction(self.action)  # the page puts it in its menus
        page.table.selectionModel().selectionChanged.connect(lambda *_: self.update())
        verified = getattr(page, "verifyFinished", None)
        if verified is not None:
            verified.connect(self.update)
        self.update()

    def damaged(self) -> list[Any]:
        return [row.entry for row in self.page.selected_rows() if row.damaged]

    def update(self) -> None:
        self.action.setEnabled(not self._busy and bool(self.damaged()))

    def _parent(self) -> QWidget:
        return self.page.window()

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(
            self._parent(),
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _tell(self, title: str, text: str) -> None:
        QMessageBox.information(self._parent(), title, text)

    def repair_selected(self) -> None:
        entries = self.damaged()
        if self._busy or not entries:
            return
        text = (
            f"Repair {len(entries):,} damaged {'entry' if len(entries) == 1 else 'entries'}?\n\n"
            "Each is moved into the quarantine beside its store (kept as evidence) and the same "
            "version is fetched again with 0install, which may need the network. Entries of the "
            "shared system store need an administrator's authorisation. Every step goes to the "
            "action log."
        )
        if not self.confirm("Repair", text):
            self.finished.emit(None)
            return
        from core import repair

        env = self._env
        self._busy = True
        self.update()
        activity = getattr(self.page, "activity", None)
        if activity is not None:
            activity.busy(f"Repairing {len(entries):,} entries…")
        worker = Worker(
            lambda: repair.repair(entries, env=env),
            starter=self._starter,
            name="repair",
            parent=self,
        )

        def done(results: Any, error: Any, w: Worker = worker) -> None:
            self._busy = False
            if activity is not None and not getattr(self.page, "busy", False):
                activity.idle()
            w.deleteLater()
            self._done(results, error)

        worker.done.connect(done)
        worker.start()

    def _done(self, results: Any, error: Any) -> None:
        if isinstance(error, BaseException):
            self.inform("Repair", f"Repairing failed: {error}")
            self.finished.emit(None)
            self.update()
            return
        lines = "\n".join(f"• {r.message}" for r in results[:10])
        if len(results) > 10:
            lines += f"\n• … and {len(results) - 10} more"
        repaired = sum(1 for r in results if r.action == "repaired")
        banner = getattr(self.page, "banner", None)
        if banner is not None and repaired:
            banner.add_message(
                f"Repaired {repaired:,} entries (recorded in the action log)", "info"
            )
        if repaired != len(results):
            self.inform("Repair", f"Repaired {repaired:,} of {len(results):,}:\n\n{lines}")
        self.finished.emit(results)
        self.page.rescan()
