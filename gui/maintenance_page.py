"""Scheduled maintenance in the window (issue 23): the Maintenance page (settings, enable, disable,
the last runs). The strip on the Cache page is :mod:`gui.maintenance_strip`.

Decisions live in ``core`` (:mod:`core.maintenance` the settings, :mod:`core.maintenance_status`
the last runs, :mod:`core.maintenance_installed` what is installed and the units' preview); changes
go through :mod:`core.elevate` and the privileged helper's ``maintenance-enable``/``-disable``
verbs, as on the command line.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from core import elevate, maintenance, maintenance_status
from core import root_helper as rh
from core.maintenance_installed import InstalledState, calendar_problem, enable_preview, installed
from gui.maintenance_strip import FindingsDialog
from gui.page_frame import notice_label, page_heading, page_intro, scrolling
from gui.workers import Starter, WorkerGroup

INTRO = (
    "Verifies the shared cache every day and cleans it every week without opening this window "
    "(systemd timers, sandboxed, at idle priority), verifies each new entry within seconds of its "
    "arrival, and removes the least recently used entries when the disk runs low. Findings go to "
    "the journal, the action log and the Cache page."
)


class _WheelOnceClicked:
    """For a spin box in a page that scrolls: the wheel changes its value only once it has been
    clicked (or tabbed to, with its focus policy StrongFocus); before that the wheel scrolls the
    page, and no setting changes unseen under it."""

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        if self.hasFocus():  # type: ignore[attr-defined]
            super().wheelEvent(event)  # type: ignore[misc]
        else:
            event.ignore()  # to the scroll area


class _SpinBox(_WheelOnceClicked, QSpinBox):
    pass


class _DoubleSpinBox(_WheelOnceClicked, QDoubleSpinBox):
    pass


class SettingsForm(QWidget):
    """The maintenance settings as two groups: the schedule, and what clean-up removes; side by
    side where the page is wide enough, else one above the other (:meth:`fit_width`).
    :meth:`settings` checks them (core's checks); :meth:`fill` shows written ones."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        defaults = maintenance.Settings()
        self.verify_when = QLineEdit(defaults.verify, self)
        self.verify_when.setToolTip("A systemd calendar spec: daily, weekly, 'Sun *-*-* 03:00'…")
        self.clean_when = QLineEdit(defaults.clean, self)
        self.clean_when.setToolTip(self.verify_when.toolTip())
        self.days = _SpinBox(self)
        self.days.setRange(0, 3650)
        self.days.setSuffix(" days")
        self.days.setValue(int(defaults.older_than_days))
        self.keep = _SpinBox(self)
        self.keep.setRange(0, 99)
        self.keep.setSpecialValueText("none")
        self.grace = _DoubleSpinBox(self)
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
        for box in (self.days, self.keep, self.grace):
            box.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        for edit in (self.verify_when, self.clean_when, self.min_free, self.max_free):
            edit.setMinimumWidth(self.fontMetrics().horizontalAdvance("M") * 11)
        self._groups = (
            self._group("Schedule", [
                ("Verify:", self.verify_when), ("Clean up:", self.clean_when),
                (None, self.watch), (None, self.mail),
            ]),
            self._group("What clean-up removes", [
                ("Entries unused for:", self.days), ("Keep newest versions:", self.keep),
                ("Free space low below:", self.min_free), ("Remove oldest until:", self.max_free),
                ("Never within (grace):", self.grace),
            ]),
        )  # fmt: skip
        self._layout = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        for group in self._groups:
            self._layout.addWidget(group, 1)

    def fit_width(self, width: int) -> None:
        """The groups side by side when ``width`` holds both, else one above the other (a narrow
        window, a large font or scale)."""
        both = sum(g.minimumSizeHint().width() for g in self._groups) + self._layout.spacing()
        wide = width >= both
        self._layout.setDirection(
            QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom
        )

    def _group(self, title: str, rows: list[tuple[str | None, QWidget]]) -> QGroupBox:
        group = QGroupBox(title, self)
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        for label, field in rows:
            if label is None:
                form.addRow(field)
            else:
                form.addRow(label, field)
        return group

    def fill(self, s: maintenance.Settings) -> None:
        self.verify_when.setText(s.verify)
        self.clean_when.setText(s.clean)
        self.days.setValue(int(s.older_than_days))
        self.keep.setValue(s.keep)
        self.grace.setValue(s.grace_days)
        self.min_free.setText(s.min_free)
        self.max_free.setText(s.max_free)
        self.watch.setChecked(s.watch)
        self.mail.setChecked(s.mail)

    def settings(self) -> maintenance.Settings:
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
        self.jobs = WorkerGroup(starter, self._set_busy, self._failed)
        self.state: InstalledState | None = None
        self.status: dict = {}
        self.confirm: Callable[[str, str], bool] = self._ask
        """Asks the admin (tests replace it)."""
        self._build_last_runs()
        self.form = SettingsForm(self)
        self._build_buttons()
        self.notice = notice_label(self)

        content = QWidget(self)
        layout = QVBoxLayout(content)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.addWidget(page_heading("Scheduled maintenance", self))
        layout.addWidget(page_intro(INTRO, root, self))
        layout.addWidget(self.summary)
        layout.addLayout(self._check_row)
        layout.addWidget(self.runs)
        layout.addWidget(self.form)
        layout.addLayout(self._buttons)
        layout.addWidget(self.notice)
        layout.addStretch(1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._scroll = scrolling(content, self)
        outer.addWidget(self._scroll)
        self.summary.setText("Reading the maintenance settings…")
        self.problems_button.hide()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        margins = self._scroll.widget().layout().contentsMargins()
        self.form.fit_width(event.size().width() - margins.left() - margins.right())
        super().resizeEvent(event)

    def _build_last_runs(self) -> None:
        """Whether maintenance is enabled, the last check (its problems a click away), the runs."""
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.last_check = QLabel(self)
        self.problems_button = QPushButton("Show problems…", self)
        self.problems_button.clicked.connect(self.show_findings)
        self._check_row = QHBoxLayout()
        self._check_row.addWidget(self.last_check, 1)
        self._check_row.addWidget(self.problems_button)
        self.runs = QLabel(self)
        self.runs.setWordWrap(True)
        self.runs.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def _build_buttons(self) -> None:
        """Enable, disable and refresh, as buttons and as the menu's actions."""
        self.enable_button = QPushButton("Enable maintenance…", self)
        self.enable_button.setDefault(True)
        self.enable_button.clicked.connect(self.enable)
        self.disable_button = QPushButton("Disable maintenance…", self)
        self.disable_button.clicked.connect(self.disable)
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh)
        self._buttons = QHBoxLayout()
        self._buttons.addWidget(self.enable_button)
        self._buttons.addWidget(self.disable_button)
        self._buttons.addStretch(1)
        self._buttons.addWidget(self.refresh_button)
        self._refresh_action = QAction("&Refresh maintenance status", self)
        self._refresh_action.setShortcut(QKeySequence.StandardKey.Refresh)
        self._refresh_action.triggered.connect(self.refresh)
        self._enable_action = QAction("&Enable maintenance…", self)
        self._enable_action.triggered.connect(self.enable)
        self._disable_action = QAction("&Disable maintenance…", self)
        self._disable_action.triggered.connect(self.disable)

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
        self.jobs.wait(timeout)

    def save_state(self, settings: QSettings) -> None:
        """Nothing to remember: the settings are read from the system."""

    def restore_state(self, settings: QSettings) -> None:
        """Before maintenance is enabled, start from the Clean up page's policy."""
        if self.state is None or self.state.settings is None:
            for key, spin in (("clean/days", self.form.days), ("clean/keep", self.form.keep)):
                try:
                    spin.setValue(int(str(settings.value(key, spin.value()))))
                except ValueError:
                    continue

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    # --- work -------------------------------------------------------------------------------

    def _failed(self, name: str, error: BaseException) -> None:
        self.show_notice(f"{name} failed unexpectedly: {error}")

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

        self.jobs.run("read", read, self._show)

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
            self.form.fill(s)
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

    def show_findings(self) -> None:
        self.dialog = FindingsDialog(maintenance_status.current_findings(self.status), self)
        self.dialog.show()

    def _ask(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def enable(self) -> None:
        try:
            settings = self.form.settings()
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
        self.jobs.run(
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
        self.jobs.run("disable", lambda: elevate.run_helper("maintenance-disable", root=fake),
                      self._applied)  # fmt: skip

    def _applied(self, outcome: object) -> None:
        assert isinstance(outcome, elevate.HelperOutcome)
        if outcome.ok:
            self.show_notice("Done: " + outcome.message.replace("; ", "\n"))
        else:  # when root cannot be reached from here, the message gives the root command
            self.show_notice(outcome.message)
        self.applied.emit(outcome)
        self.refresh()
