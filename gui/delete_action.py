"""Delete on the Cache page: the Del key, the Cache menu, the row's context menu and a toolbar
button.

It only presents :func:`core.delete.check` (the same decision as the command line's ``delete``):
which of the selected entries are kept and why, which may go and the exact space, in one
confirmation; then :func:`core.clean.remove` (which checks again right before acting and writes
the action log) runs off the GUI thread. What was removed is announced through the page's
``cacheChanged``: every page drops it at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from core import clean, delete
from core.units import DISK_WORD, count_text, size_text
from gui.icons import icon
from gui.workers import Starter, Worker

LIST_ROWS = 8
"""Rows a list of the Delete dialog shows before it scrolls."""


def entry_line(entry: Any) -> str:
    """ "Editor 2.1 (user, sha256new_RZ3AB4XW…)": what an entry is, in one line."""
    head = f"{entry.program} {entry.version}".strip()
    name = entry.name if len(entry.name) <= 24 else entry.name[:22] + "…"
    return f"{head} ({entry.store.label}, {name})"


class DeleteDialog(QDialog):
    """Asks before deleting: what will be deleted (with each entry's disk use), what is kept and
    why, in two lists that scroll, so the buttons stay on screen however many are selected."""

    def __init__(self, plan: delete.Plan, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Delete")
        allowed, kept = plan.allowed, plan.kept
        question, note = plan.question(), plan.note()
        layout = QVBoxLayout(self)
        head = QLabel(question, self)
        font = head.font()
        font.setBold(True)
        head.setFont(font)
        head.setWordWrap(True)
        layout.addWidget(head)
        self.delete_list = self._list(
            [
                f"{entry_line(v.entry)}: {size_text(v.footprint.disk if v.footprint else None)}"
                for v in allowed
            ],
            "Entries to delete",
        )
        layout.addWidget(QLabel(f"Will be deleted ({DISK_WORD.lower()} each):", self))
        layout.addWidget(self.delete_list)
        self.keep_list = self._list(
            [f"{entry_line(e)}: {'; '.join(r)}" for e, r in kept], "Entries kept"
        )
        if kept:
            layout.addWidget(QLabel("Kept, and why:", self))
            layout.addWidget(self.keep_list)
        self.note = QLabel(note, self)
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        buttons = QDialogButtonBox(self)
        self.delete_button = buttons.addButton(
            "Delete", QDialogButtonBox.ButtonRole.DestructiveRole
        )
        self.delete_button.setIcon(icon("delete"))
        cancel = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)
        cancel.setFocus()
        self.delete_button.clicked.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        fm = self.fontMetrics()
        width = fm.averageCharWidth() * 80
        screen = (parent.screen() if parent else None) or QGuiApplication.primaryScreen()
        if screen is not None:
            width = min(width, screen.availableGeometry().width() - 40)
        self.setMinimumWidth(min(width, fm.averageCharWidth() * 60))
        self.resize(width, self.sizeHint().height())

    def _list(self, lines: list[str], name: str) -> QListWidget:
        view = QListWidget(self)
        view.setAccessibleName(name)
        view.addItems(lines)
        for i, line in enumerate(lines):
            view.item(i).setToolTip(line)
        view.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        view.setWordWrap(False)
        # Long lines are cut in the middle (whole in the tooltip): no horizontal scroll bar
        # taking a short list's room.
        view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rows = max(1, min(LIST_ROWS, len(lines)))
        height = rows * view.sizeHintForRow(0) + 2 * view.frameWidth() + 4 if lines else 0
        view.setFixedHeight(height)
        return view

    @property
    def deleted(self) -> list[str]:
        return [self.delete_list.item(i).text() for i in range(self.delete_list.count())]

    @property
    def kept(self) -> list[str]:
        return [self.keep_list.item(i).text() for i in range(self.keep_list.count())]


class DeleteAction(QObject):
    finished = Signal(object)  # the outcomes, or None when nothing was removed

    def __init__(
        self,
        page: Any,
        env: Mapping[str, str] | None = None,
        *,
        starter: Starter | None = None,
        homes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(page)
        self.page = page
        self._env = None if env is None else dict(env)
        self._starter = starter
        self._homes = homes
        self._busy = False
        # Tests replace these: confirm(title, text) gets the dialog's whole text.
        self.confirm: Callable[[str, str], bool] = self._ask
        self.inform: Callable[[str, str], None] = self._tell
        self._plan: delete.Plan | None = None
        self.action = QAction(icon("delete"), "&Delete…", page)
        self.action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        tip = "Delete the selected entries, after checking nobody uses them (Del)"
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.triggered.connect(self.delete_selected)
        self.action.setEnabled(False)

    def install(self) -> None:
        """Put the action on the page's table (Del) and toolbar, once its widgets exist."""
        table = self.page.table
        table.addAction(self.action)
        self.page.toolbar.addSeparator()
        self.page.toolbar.addAction(self.action)
        table.selectionModel().selectionChanged.connect(lambda *_: self._update())
        self.page.proxy.layoutChanged.connect(self._update)
        self.page.proxy.rowsRemoved.connect(self._update)
        self.page.proxy.modelReset.connect(self._update)
        self._update()

    def _update(self, *_args: Any) -> None:
        has = self.page.table.selectionModel().hasSelection()
        self.action.setEnabled(has and not self._busy)

    def _parent(self) -> QWidget:
        return self.page.window()

    def _ask(self, title: str, text: str) -> bool:
        assert self._plan is not None
        dialog = DeleteDialog(self._plan, self._parent())
        dialog.setWindowTitle(title)
        return dialog.exec() == QDialog.DialogCode.Accepted

    def _tell(self, title: str, text: str) -> None:
        QMessageBox.information(self._parent(), title, text)

    def _run(self, what: str, fn: Callable[[], Any], done: Callable[[Any, Any], None]) -> None:
        self._busy = True
        self._update()
        activity = getattr(self.page, "activity", None)
        if activity is not None:
            activity.busy(what)
        worker = Worker(fn, starter=self._starter, name="delete", parent=self)

        def finished(result: Any, error: Any, w: Worker = worker) -> None:
            self._busy = False
            if activity is not None and not getattr(self.page, "busy", False):
                activity.idle()
            self._update()
            w.deleteLater()
            done(result, error)

        worker.done.connect(finished)
        worker.start()

    def delete_selected(self) -> None:
        if self._busy:
            return
        entries = [row.entry for row in self.page.selected_rows()]
        if not entries:
            return
        env, homes = self._env, self._homes

        def check() -> delete.Plan:
            return delete.check(entries, env, homes=homes)

        self._run("Checking whether anything uses the selected entries…", check, self._checked)

    def _checked(self, result: Any, error: Any) -> None:
        if isinstance(error, BaseException):
            self.inform("Delete", f"The entries could not be checked: {error}")
            self.finished.emit(None)
            return
        plan: delete.Plan = result
        allowed, kept = plan.allowed, plan.kept
        kept_lines = [f"• {entry_line(e)}: {'; '.join(r)}" for e, r in kept]
        if not allowed:
            self.inform(
                "Delete",
                "Nothing deleted: every selected entry is in use or protected.\n\n"
                + "\n".join(kept_lines[:10])
                + (f"\n• … and {len(kept) - 10} more" if len(kept) > 10 else ""),
            )
            self.finished.emit(None)
            return
        question, note = plan.question(), plan.note()
        lines = [
            f"• {entry_line(v.entry)}: {size_text(v.footprint.disk if v.footprint else None)}"
            for v in allowed
        ]
        text = f"{question}\n\nWill be deleted:\n" + "\n".join(lines)
        if kept:
            text += "\n\nKept, and why:\n" + "\n".join(kept_lines)
        text += f"\n\n{note}"
        self._plan = plan
        if not self.confirm("Delete", text):
            self.finished.emit(None)
            return
        env = self._env
        self._run(
            f"Deleting {count_text(len(allowed), 'entry')}…",
            lambda: clean.remove(allowed, plan.recheck, env=env),
            self._done,
        )

    def _done(self, outcomes: Any, error: Any) -> None:
        if isinstance(error, BaseException):
            self.inform("Delete", f"Deleting failed: {error}")
            self.finished.emit(None)
            return
        failed = [o for o in outcomes if not o.ok]
        if failed:
            self.inform(
                "Delete",
                "Not deleted:\n" + "\n".join(f"• {o.describe()}" for o in failed[:10]),
            )
        banner = getattr(self.page, "banner", None)
        gone = [o for o in outcomes if o.ok]
        if banner is not None and gone:
            quarantined = sum(1 for o in gone if o.action == "quarantined")
            text = f"Deleted {count_text(len(gone) - quarantined, 'entry')}"
            if quarantined:
                text += f", quarantined {count_text(quarantined, 'entry')}"
            banner.add_message(text + " (recorded in the action log)", "info")
        if gone:
            from gui.changes import REMOVED, CacheChange

            change = CacheChange.of(
                REMOVED, [o.verdict.entry.path for o in gone], getattr(self.page, "page_id", "")
            )
            if hasattr(self.page.window(), "announce_change"):
                self.page.cacheChanged.emit(change)  # the window tells every page
            else:
                self.page.cache_changed(change)
        self.finished.emit(outcomes)
