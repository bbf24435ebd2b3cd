"""Scheduled maintenance in the window (issue 23): the Maintenance page (settings, enable, disable,
the last runs) and the strip on the Cache page that says "Last check: today 03:12, 2 problems"
with the findings one click away.

Decisions live in :mod:`core.maintenance` (settings, status, the units' preview); changes go
through :mod:`core.elevate` and the privileged helper's ``maintenance-enable``/``-disable`` verbs,
as on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core import elevate, maintenance, maintenance_status
from core import root_helper as rh
from core.maintenance_installed import InstalledState, calendar_problem, enable_preview, installed
from gui.workers import Starter, Worker

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


class MaintenancePage(QWidget):
    """Scheduled verification and clean-up of the shared store: settings, enable, disable."""

    page_id = "maintenance"
    title = "Maintenance"
    icon_name = "verify-all"

    statusMessage = Signal(str)
    refreshed = Signal()
    applied = Signal(object)
    """A :class:`core.elevate.HelperOutcome` of enable or disable."""

    def __init__(
        self,
        root: str | None = None,
        *,
        starter: Starter | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``root``: a fake root prefix (tests, demos); None is the real system."""
        super().__init__(parent)
        self.root = root
        self._starter = starter
        self._workers: set[Worker] = set()
        self._finished_workers: list[Worker] = []
        self.state: InstalledState | None = None
        self.status: dict = {}
        self.confirm: Callable[[str, str], bool] = self._ask
        """Asks the admin (tests replace it)."""

        heading = QLabel("Scheduled maintenance", self)
        font = QFont(heading.font())
        font.setPointSizeF(font.pointSizeF() * 1.35)
        font.setBold(True)
        heading.setFont(font)
        intro = QLabel(
            "Verifies the shared cache every day and cleans it every week without opening this "
            "window (systemd timers, sandboxed, at idle priority), verifies each new entry "
            "within seconds of its arrival, and removes the least recently used entries when "
            "the disk runs low. Findings go to the journal, the action log and the Cache page.",
            self,
        )
        intro.setWordWrap(True)
        if root:
            intro.setText(intro.text() + f" Showing the fake root {root}.")
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.last_check = QLabel(self)
        self.problems_button = QPushButton("Show problems…", self)
        self.problems_button.clicked.connect(self.show_findings)
        check_row = QHBoxLayout()
        check_row.addWidget(self.last_check, 1)
        check_row.addWidget(self.problems_button)
        self.runs = QLabel(self)
        self.runs.setWordWrap(True)
        self.runs.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        defaults = maintenance.Settings()
        self.verify_when = QLineEdit(defaults.verify, self)
        self.verify_when.setToolTip("A systemd calendar spec: daily, weekly, 'Sun *-*-* 03:00'…")
        self.clean_when = QLineEdit(defaults.clean, self)
        self.clean_when.setToolTip(self.verify_when.toolTip())
        self.days = QSpinBox(self)
        self.days.setRange(0, 3650)
        self.days.setSuffix(" days")
        self.days.setValue(int(defaults.older_than_days))
        self.keep = QSpinBox(self)
        self.keep.setRange(0, 99)
        self.keep.setSpecialValueText("none")
        self.grace = QDoubleSpinBox(self)
        self.grace.setRange(0, 365)
        self.grace.setDecimals(1)
        self.grace.setSuffix(" days")
        self.grace.setValue(defaults.grace_days)
        self.min_free = QLineEdit(defaults.min_free, self)
        self.min_free.setToolTip("10%,5G: the smaller of the two; 10%, 5G or off")
        self.max_free = QLineEdit(defaults.max_free, self)
        self.max_free.setToolTip(
            "The least recently used entries nothing uses, pins or selects go until this much is "
            "free (" + self.min_free.toolTip() + ")"
        )
        self.grace.setToolTip("The free-space clean-up never removes entries used or added "
                              "within this time")  # fmt: skip
        self.watch = QCheckBox("Verify new entries as they appear", self)
        self.watch.setChecked(defaults.watch)
        self.mail = QCheckBox("Mail root about findings", self)
        self.mail.setToolTip("Through sendmail, after a run that found or removed something")
        schedule = QGroupBox("Schedule", self)
        form = QFormLayout(schedule)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form.addRow("Verify:", self.verify_when)
        form.addRow("Clean up:", self.clean_when)
        form.addRow(self.watch)
        form.addRow(self.mail)
        policy = QGroupBox("What clean-up removes", self)
        form2 = QFormLayout(policy)
        form2.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        form2.addRow("Entries unused for:", self.days)
        form2.addRow("Keep newest versions:", self.keep)
        form2.addRow("Free space low below:", self.min_free)
        form2.addRow("Remove oldest until:", self.max_free)
        form2.addRow("Never within (grace):", self.grace)
        for edit in (self.verify_when, self.clean_when, self.min_free, self.max_free):
            edit.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 11)
        groups = QHBoxLayout()
        groups.addWidget(schedule, 1)
        groups.addWidget(policy, 1)

        self.enable_button = QPushButton("Enable maintenance…", self)
        self.enable_button.setDefault(True)
        self.enable_button.clicked.connect(self.enable)
        self.disable_button = QPushButton("Disable maintenance…", self)
        self.disable_button.clicked.connect(self.disable)
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        buttons.addWidget(self.enable_button)
        buttons.addWidget(self.disable_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        self.notice = QLabel(self)
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.setStyleSheet(
            "QLabel { background: palette(base); border: 1px solid palette(mid);"
            " border-radius: 4px; padding: 8px; }"
        )
        self.notice.hide()

        content = QWidget(self)
        layout = QVBoxLayout(content)
        layout.setContentsMargins(12, 12, 12, 12)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addWidget(self.summary)
        layout.addLayout(check_row)
        layout.addWidget(self.runs)
        layout.addLayout(groups)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addStretch(1)

        self._refresh_action = QAction("&Refresh maintenance status", self)
        self._refresh_action.setShortcut(QKeySequence.StandardKey.Refresh)
        self._refresh_action.triggered.connect(self.refresh)
        self._enable_action = QAction("&Enable maintenance…", self)
        self._enable_action.triggered.connect(self.enable)
        self._disable_action = QAction("&Disable maintenance…", self)
        self._disable_action.triggered.connect(self.disable)
        self.summary.setText("Reading the maintenance settings…")
        self.problems_button.hide()

    # --- page protocol ----------------------------------------------------------------------

    def menu_actions(self) -> list[QAction | None]:
        return [self._enable_action, self._disable_action, None, self._refresh_action]

    def start(self) -> None:
        reason = None if self.root is not None else elevate.unavailable_reason()
        if reason:
            self.show_notice(
                f"Changes cannot be made from here: {reason}. As root, run 'zeroinstall-admin "
                "maintenance enable', or the exported script: zeroinstall-admin maintenance "
                "script | sudo sh"
            )
        self.refresh()

    def shutdown(self, timeout: float = 5.0) -> None:
        for worker in list(self._workers):
            worker.wait(timeout)

    def save_state(self, settings: QSettings) -> None:
        """Nothing to remember: the settings are read from the system."""

    def restore_state(self, settings: QSettings) -> None:
        """Before maintenance is enabled, start from the Clean up page's policy."""
        if self.state is None or self.state.settings is None:
            for key, spin in (("clean/days", self.days), ("clean/keep", self.keep)):
                try:
                    spin.setValue(int(str(settings.value(key, spin.value()))))
                except ValueError:
                    continue

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    # --- work -------------------------------------------------------------------------------

    def _run(self, name: str, fn: Callable[[], object], on_done: Callable[[object], None]) -> None:
        # Finished workers are let go here, never inside their own signal (a deleteLater there
        # crashed PySide 6 under pytest-qt's event processing).
        self._finished_workers = self._finished_workers[-2:]
        worker = Worker(fn, starter=self._starter, name=name)
        self._workers.add(worker)

        def finished(result: object, error: object) -> None:
            self._workers.discard(worker)
            self._finished_workers.append(worker)
            self._set_busy()
            if isinstance(error, BaseException):
                self.show_notice(f"{name} failed unexpectedly: {error}")
                return
            on_done(result)

        worker.done.connect(finished)
        self._set_busy()
        worker.start()

    def _set_busy(self) -> None:
        busy = self.busy
        for w in (self.enable_button, self.refresh_button, self._enable_action,
                  self._refresh_action):  # fmt: skip
            w.setEnabled(not busy)
        has_files = bool(self.state and self.state.files)
        self.disable_button.setEnabled(not busy and has_files)
        self._disable_action.setEnabled(not busy and has_files)

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def refresh(self) -> None:
        root = self.root or "/"

        def read() -> tuple[InstalledState, dict]:
            return installed(root), maintenance_status.read_status(root)

        self._run("read", read, self._show)

    def _show(self, result: object) -> None:
        assert isinstance(result, tuple)
        self.state, self.status = result
        state = self.state
        s = state.settings
        if state.enabled and s is not None:
            text = (
                f"Maintenance is enabled: verify {s.verify}, clean up {s.clean}, watch "
                f"{'on' if s.watch else 'off'}."
            )
            self._fill(s)
            self.enable_button.setText("Apply changes…")
        else:
            text = "Maintenance is not enabled."
            self.enable_button.setText("Enable maintenance…")
        if state.settings_problem:
            text += f" {state.settings_problem}"
        if state.foreign:
            text += " Not written by this tool (left alone): " + ", ".join(state.foreign) + "."
        self.summary.setText(text)
        line = maintenance_status.last_check_text(self.status)
        self.last_check.setText(line or "No scheduled check has run yet.")
        self.problems_button.setVisible(bool(maintenance_status.current_findings(self.status)))
        runs = maintenance_status.run_summaries(self.status)
        self.runs.setText("\n".join(runs))
        self.runs.setVisible(bool(runs))
        self._set_busy()
        if self.isVisible():
            self.statusMessage.emit(text)
        self.refreshed.emit()

    def _fill(self, s: maintenance.Settings) -> None:
        self.verify_when.setText(s.verify)
        self.clean_when.setText(s.clean)
        self.days.setValue(int(s.older_than_days))
        self.keep.setValue(s.keep)
        self.grace.setValue(s.grace_days)
        self.min_free.setText(s.min_free)
        self.max_free.setText(s.max_free)
        self.watch.setChecked(s.watch)
        self.mail.setChecked(s.mail)

    def settings_from_form(self) -> maintenance.Settings:
        """The form as checked settings; raises core.root_helper.UsageError naming the bad one."""
        return maintenance.Settings.from_mapping(
            {
                "verify": self.verify_when.text().strip(),
                "clean": self.clean_when.text().strip(),
                "older_than_days": str(self.days.value()),
                "keep": str(self.keep.value()),
                "grace_days": f"{self.grace.value():g}",
                "min_free": self.min_free.text().strip(),
                "max_free": self.max_free.text().strip(),
                "watch": "yes" if self.watch.isChecked() else "no",
                "mail": "yes" if self.mail.isChecked() else "no",
            }
        )

    def show_findings(self) -> None:
        self.dialog = FindingsDialog(maintenance_status.current_findings(self.status), self)
        self.dialog.show()

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def enable(self) -> None:
        try:
            settings = self.settings_from_form()
        except rh.UsageError as exc:
            self.show_notice(f"Nothing was changed: {exc}.")
            return
        try:  # two runs of systemd-analyze calendar, some milliseconds: here, before asking
            problem = calendar_problem(settings)
        except maintenance.MaintenanceError as exc:
            problem = str(exc)
        if problem:
            self.show_notice(f"Nothing was changed: {problem}.")
            return
        files = "\n".join(path for path, _ in enable_preview(settings))
        if not self.confirm(
            "Enable maintenance",
            "These files are written (each checked with systemd-analyze first) and the timers "
            f"started:\n\n{files}\n\nApply?",
        ):
            return
        fake = self.root
        self._run(
            "enable",
            lambda: elevate.run_helper("maintenance-enable", *settings.as_args(), root=fake),
            self._applied,
        )

    def disable(self) -> None:
        files = "\n".join(self.state.files if self.state else [])
        if not self.confirm(
            "Disable maintenance",
            "The timers and the watch stop and these files are removed (the status file and the "
            f"action log stay):\n\n{files}\n\nRemove them?",
        ):
            return
        fake = self.root
        self._run("disable", lambda: elevate.run_helper("maintenance-disable", root=fake),
                  self._applied)  # fmt: skip

    def _applied(self, outcome: object) -> None:
        assert isinstance(outcome, elevate.HelperOutcome)
        if outcome.ok:
            self.show_notice("Done: " + outcome.message.replace("; ", "\n"))
        else:  # when root cannot be reached from here, the message gives the root command
            self.show_notice(outcome.message)
        self.applied.emit(outcome)
        self.refresh()
