"""Delete on the Cache page: the Del key, the table's context menu and a toolbar button.

Attached from outside (:func:`attach`), so the Cache page needs no change: it uses the page's
``table``, ``toolbar``, ``selected_rows()`` and ``rescan()``. The same checks as Clean up: the
evidence is gathered for the selected entries (apps, pins, running processes, VMs, this app and
0install itself), entries in use or rooted are kept and the reasons shown, the rest are removed
after one confirmation with the count and the exact space, through :func:`core.clean.remove`
(which checks again right before acting and writes the action log).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox, QWidget

from core import clean
from core.units import size_text
from gui.icons import icon
from gui.workers import Starter, Worker


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
        self.confirm: Callable[[str, str], bool] = self._ask
        self.inform: Callable[[str, str], None] = self._tell
        self.action = QAction(icon("delete"), "&Delete…", page)
        self.action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        tip = "Delete the selected entries, after checking nobody uses them (Del)"
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.triggered.connect(self.delete_selected)
        table = page.table
        table.addAction(self.action)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        page.toolbar.addSeparator()
        page.toolbar.addAction(self.action)
        table.selectionModel().selectionChanged.connect(lambda *_: self._update())
        self._update()

    def _update(self) -> None:
        has = self.page.table.selectionModel().hasSelection()
        self.action.setEnabled(has and not self._busy)

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

        def check() -> tuple[list[clean.Verdict], list[tuple[Any, list[str]]], Any]:
            from core import evidence, pins

            stores = list({id(e.store): e.store for e in entries}.values())
            ev = evidence.collect(
                stores, entries, pins=pins.load(pins.pins_path(env)), env=env, homes=homes
            )
            allowed, kept = [], []
            for entry in entries:
                reasons = ev.reasons(entry)
                if reasons:
                    kept.append((entry, reasons))
                    continue
                allowed.append(
                    clean.Verdict(
                        entry,
                        "remove",
                        ["deleted on request"],
                        entry.usage.last_used if entry.usage else None,
                        clean.footprint(entry.path),
                    )
                )
            recheck = clean.recheck_for(stores, entries, env, homes=homes)
            return allowed, kept, recheck

        self._run("Checking whether anything uses the selected entries…", check, self._checked)

    def _checked(self, result: Any, error: Any) -> None:
        if isinstance(error, BaseException):
            self.inform("Delete", f"The entries could not be checked: {error}")
            self.finished.emit(None)
            return
        allowed, kept, recheck = result
        kept_text = "\n".join(
            f"• {e.program} {e.version} ({e.name}): {'; '.join(r)}".replace("  ", " ")
            for e, r in kept[:10]
        )
        if len(kept) > 10:
            kept_text += f"\n• … and {len(kept) - 10} more"
        if not allowed:
            self.inform(
                "Delete", f"Nothing deleted: every selected entry is in use.\n\n{kept_text}"
            )
            self.finished.emit(None)
            return

        _size, disk = clean.reclaimable(v.footprint for v in allowed)
        text = f"Delete {len(allowed):,} entries, freeing {size_text(disk)}?"
        if kept:
            text += f"\n\n{len(kept):,} selected entries are kept:\n{kept_text}"
        text += (
            "\n\nEntries of the shared system store need an administrator's "
            "authorisation. Every deletion goes to the action log."
        )
        if not self.confirm("Delete", text):
            self.finished.emit(None)
            return
        env = self._env
        self._run(
            f"Deleting {len(allowed):,} entries…",
            lambda: clean.remove(allowed, recheck, env=env),
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
        done = len(outcomes) - len(failed)
        if banner is not None and done:
            banner.add_message(f"Deleted {done:,} entries (recorded in the action log)", "info")
        self.finished.emit(outcomes)
        self.page.rescan()


def attach(page: Any, env: Mapping[str, str] | None = None) -> DeleteAction:
    """Give a Cache page its Delete action (kept alive as a child of the page)."""
    return DeleteAction(page, env)
