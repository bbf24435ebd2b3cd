"""The Cache page's strip of scheduled maintenance (issue 23): "Last check: today 03:12, 2
problems", read from the status file the runs write, with the findings one click away (also
opened from the Maintenance page).
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core import maintenance, maintenance_status

STRIP_POLL_MS = 30_000
"""How often the Cache page's strip looks whether a scheduled run wrote a new status."""
_STRIP_STYLES = {"info": ("#e3eefb", "#7aa7dd"), "warning": ("#fff4d6", "#e0b54a")}


class FindingsDialog(QDialog):
    """The problems the last checks found, one per line, the whole detail in each tooltip."""

    def __init__(self, findings: list[maintenance_status.Finding], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Problems found by scheduled maintenance")
        self.list = QListWidget(self)
        self.list.setAccessibleName("Problems")
        self.list.setWordWrap(True)
        self.list.setSpacing(3)
        self.list.setAlternatingRowColors(True)
        for finding in findings:
            item = QListWidgetItem(finding.line(), self.list)
            item.setToolTip(finding.detail)
        if not findings:
            QListWidgetItem("No problems.", self.list)
        note = QLabel(
            "Verify or delete these entries on the Cache page; every run's lines are also in "
            "the journal: journalctl -t zeroinstall-admin-verify -t zeroinstall-admin-watch", self
        )  # fmt: skip
        note.setWordWrap(True)
        note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        copy = buttons.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(note)
        layout.addWidget(buttons)
        screen = self.screen() or QGuiApplication.primaryScreen()
        room = screen.availableGeometry().size() * 0.9 if screen is not None else QSize(760, 360)
        self.resize(QSize(760, 360).boundedTo(room))
        self._text = "\n".join(f.line() for f in findings)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self._text)


class MaintenanceStrip(QFrame):
    """One line above the Cache page's table: the last scheduled check and its problems (hidden
    when no check has run on this machine)."""

    def __init__(self, root: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("maintenanceStrip")
        self.root = root or "/"
        self.findings: list[maintenance_status.Finding] = []
        self.label = QLabel(self)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton("Show problems…", self)
        self.button.setAccessibleName("Show the problems scheduled maintenance found")
        self.button.clicked.connect(self.show_findings)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 6, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.dialog: FindingsDialog | None = None
        self._stamp: tuple[int, int] | None = None
        self.timer = QTimer(self)  # a run may finish while the window is open
        self.timer.setInterval(STRIP_POLL_MS)
        self.timer.timeout.connect(self.refresh_if_changed)
        self.timer.start()
        self.refresh()

    def _status_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(maintenance.Place(self.root).status_file)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def refresh_if_changed(self) -> None:
        if self._status_stamp() != self._stamp:
            self.refresh()

    def refresh(self) -> None:
        """Read the status file again (a few kilobytes: read here, on the GUI thread)."""
        self._stamp = self._status_stamp()
        status = maintenance_status.read_status(self.root)
        text = maintenance_status.last_check_text(status)
        self.findings = maintenance_status.current_findings(status)
        if text is None:
            self.hide()
            return
        self.label.setText(text)
        self.button.setVisible(bool(self.findings))
        background, border = _STRIP_STYLES["warning" if self.findings else "info"]
        self.setStyleSheet(
            f"QFrame#maintenanceStrip {{ background: {background}; border: 1px solid {border};"
            " border-radius: 4px; } QFrame#maintenanceStrip QLabel { color: #1f1f1f; }"
        )
        self.show()

    def show_findings(self) -> None:
        self.dialog = FindingsDialog(self.findings, self)
        self.dialog.show()
