"""The Sharing page: where each step of the shared system cache stands, and the buttons to enable
it (the wizard), prove it (the self-test), undo it, or export it for other machines.

The page never runs as root: detection reads only, changes go through :mod:`core.elevate` (pkexec
and the one privileged helper), and when that is not possible here the page shows the equivalent
root command instead of failing silently.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core import elevate, self_test, sharing
from gui.page_frame import notice_label, page_heading, page_intro, scrolling
from gui.workers import Starter, WorkerGroup

STATE_STYLE = {
    sharing.DONE: (sharing.STATE_WORDS[sharing.DONE], "#1e7b34", "#e3f4e6"),
    sharing.MISSING: (sharing.STATE_WORDS[sharing.MISSING], "#8a5a00", "#fff3d6"),
    sharing.ATTENTION: (sharing.STATE_WORDS[sharing.ATTENTION], "#a61b1b", "#fde4e4"),
    sharing.NOT_APPLICABLE: (sharing.STATE_WORDS[sharing.NOT_APPLICABLE], "#555555", "#ececec"),
    sharing.UNKNOWN: (sharing.STATE_WORDS[sharing.UNKNOWN], "#1f4e8a", "#e3ecf8"),
}
"""Text, colour and background of each state's badge (words, not colour alone)."""


def state_badge(state: str, parent: QWidget | None = None) -> QLabel:
    text, fg, bg = STATE_STYLE.get(state, (state, "#000000", "#ffffff"))
    badge = QLabel(text, parent)
    badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
    badge.setStyleSheet(
        f"QLabel {{ color: {fg}; background: {bg}; border: 1px solid {fg}; border-radius: 4px;"
        " padding: 2px 8px; font-weight: 600; }"
    )
    badge.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    badge.setAccessibleName(f"State: {text}")
    return badge


class SharingPage(QWidget):
    """The steps of sharing the system cache, and what to do about each."""

    page_id = "sharing"
    title = "Sharing"
    icon_name = "sharing"

    statusMessage = Signal(str)
    refreshed = Signal()
    """Detection finished and the rows show it."""
    selfTestFinished = Signal(object)
    """A :class:`core.sharing.SelfTestResult`."""
    disableFinished = Signal(object)
    """A :class:`core.elevate.HelperOutcome`."""

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
        self.jobs = WorkerGroup(starter, lambda: self._set_busy(self.busy), self._failed)
        self._generation = 0
        self.steps: list[sharing.Step] = []
        self.self_test: sharing.SelfTestResult | None = None
        self.readiness: elevate.Readiness | None = None
        """What Apply will involve (None on a fake root: the steps run in this process)."""
        self._readiness_said: elevate.Readiness | None = None
        self.disable_files: tuple[list[str], list[str]] = ([], [])
        """What Disable would remove, and what it would leave alone (not written by this app)."""
        self.wizard = None

        heading = page_heading("Sharing downloads between users", self)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        intro = page_intro(
            "With a shared cache, a program one user downloads is used by everyone: "
            "0store-secure-add, running as zeroinst, copies it into /var/cache/0install.net, "
            "hashes it and names it by its digest. Users cannot write there directly; "
            "verifying the cache (Cache page) finds planted or tampered entries. Without every "
            "step below, 0install silently keeps each user's downloads in their own cache.",
            root, self,
        )  # fmt: skip

        buttons = self._build_buttons()
        self.notice = notice_label(self)
        scroll = self._build_rows()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.addWidget(heading)
        layout.addWidget(intro)
        summary_row = QHBoxLayout()
        summary_row.addWidget(self.summary, 1)
        summary_row.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(summary_row)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        layout.addWidget(scroll, 1)

        self._build_actions()
        self._set_busy(False)
        self.summary.setText("Checking each step…")

    def _build_buttons(self) -> QHBoxLayout:
        """Enable, self-test, disable and export (Refresh goes beside the summary above them, so
        that the row fits a narrow window)."""
        self.enable_button = QPushButton("Enable sharing…", self)
        self.enable_button.setDefault(True)
        self.enable_button.clicked.connect(self.open_wizard)
        self.self_test_button = QPushButton("Run self-test", self)
        self.self_test_button.clicked.connect(self.run_self_test)
        self.disable_button = QPushButton("Disable sharing…", self)
        self.disable_button.clicked.connect(self.confirm_disable)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip(
            "Export for other machines: the same steps as a shell script or an Ansible playbook"
        )
        export_menu = QMenu(self.export_button)
        export_menu.addAction("Shell script (POSIX sh)…", lambda: self.export(False))
        export_menu.addAction("Ansible playbook…", lambda: self.export(True))
        self.export_button.setMenu(export_menu)
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        for b in (self.enable_button, self.self_test_button, self.disable_button,
                  self.export_button):  # fmt: skip
            buttons.addWidget(b)
        buttons.addStretch(1)
        return buttons

    def _build_rows(self) -> QScrollArea:
        """The grid the steps fill (:meth:`show_steps`), scrolling."""
        self.rows_widget = QWidget(self)
        self.grid = QGridLayout(self.rows_widget)
        self.grid.setColumnStretch(2, 1)
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(10)
        return scrolling(self.rows_widget, self)

    def _build_actions(self) -> None:
        """The page's menu entries (:meth:`menu_actions`), the same slots as the buttons."""
        self._refresh_action = QAction("&Refresh sharing status", self)
        self._refresh_action.setShortcut(QKeySequence.StandardKey.Refresh)
        self._refresh_action.triggered.connect(self.refresh)
        self._wizard_action = QAction("&Enable sharing…", self)
        self._wizard_action.triggered.connect(self.open_wizard)
        self._test_action = QAction("Run &self-test", self)
        self._test_action.triggered.connect(self.run_self_test)
        self._disable_action = QAction("&Disable sharing…", self)
        self._disable_action.triggered.connect(self.confirm_disable)

    # --- page protocol ----------------------------------------------------------------------

    def menu_actions(self) -> list[QAction | None]:
        return [self._wizard_action, self._test_action, self._disable_action, None,
                self._refresh_action]  # fmt: skip

    def start(self) -> None:
        self.refresh()

    def _say_readiness(self) -> None:
        """When changes cannot be made from here, say what is missing and the root command."""
        ready = self.readiness
        if ready is None or ready.possible or ready == self._readiness_said:
            return  # said once; later notices (an outcome, the self-test) stay
        self._readiness_said = ready
        self.show_notice(
            f"Changes cannot be made from here: {ready.reason}. As root, run "
            f"'zeroinstall-admin sharing enable', or every step at once: "
            f"{sharing.ALL_STEPS_COMMAND}"
        )

    def shutdown(self, timeout: float = 5.0) -> None:
        self.jobs.wait(timeout)

    def save_state(self, settings: QSettings) -> None:
        """Nothing to remember: the state is read from the system each time."""

    def restore_state(self, settings: QSettings) -> None:
        """Nothing to restore."""

    # --- running core work ------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.jobs.busy

    def _failed(self, name: str, error: BaseException) -> None:
        self.show_notice(f"{name} failed unexpectedly: {error}")
        if name == "detect":
            self.summary.setText("The steps could not be checked.")

    def _set_busy(self, busy: bool) -> None:
        for w in (self.enable_button, self.self_test_button, self.disable_button,
                  self.refresh_button, self._wizard_action, self._test_action,
                  self._disable_action, self._refresh_action):  # fmt: skip
            w.setEnabled(not busy)
        if not busy and self.steps:
            enabled = sharing.overall(self.steps).state == sharing.ENABLED
            has_files = bool(self.disable_files[0])
            self.disable_button.setEnabled(has_files)
            kept = self.disable_files[1]
            self.disable_button.setToolTip(
                ""
                if has_files
                else "This app wrote none of the files here; "
                + (
                    "those written by hand stay: " + ", ".join(kept)
                    if kept
                    else "nothing to remove"
                )
            )
            self._disable_action.setEnabled(has_files)
            self.enable_button.setText("Check and repair…" if enabled else "Enable sharing…")
            fake = self.root is not None
            self.self_test_button.setEnabled(not fake)
            self._test_action.setEnabled(not fake)

    # --- detection --------------------------------------------------------------------------

    def refresh(self) -> None:
        self._generation += 1
        generation = self._generation
        root = self.root or "/"
        fake = self.root is not None
        result = self.self_test

        def work() -> tuple[list[sharing.Step], elevate.Readiness | None, object]:
            return (
                sharing.detect(root, self_test=result),
                None if fake else elevate.readiness(),
                sharing.disable_preview(root),
            )

        def done(found: object) -> None:
            if generation != self._generation:
                return  # a newer refresh is on its way
            assert isinstance(found, tuple)
            steps, self.readiness, self.disable_files = found
            self.show_steps(steps)
            self._say_readiness()

        self.jobs.run("detect", work, done)

    def show_steps(self, steps: list[sharing.Step]) -> None:
        self.steps = steps
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item else None
            if widget is not None:
                widget.deleteLater()
        for row, step in enumerate(steps):
            number = QLabel(f"{row + 1}.", self.rows_widget)
            title = QLabel(f"<b>{step.title}</b>", self.rows_widget)
            detail = QLabel(step.detail, self.rows_widget)
            detail.setWordWrap(True)
            detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            detail.setTextFormat(Qt.TextFormat.PlainText)
            badge = state_badge(step.state, self.rows_widget)
            badge.setObjectName(f"state-{step.key}")
            # The state under the step's name, beside its detail: the page stays readable in a
            # narrow window (150% on a small screen) without scrolling sideways.
            name = QWidget(self.rows_widget)
            name_layout = QVBoxLayout(name)
            name_layout.setContentsMargins(0, 0, 0, 0)
            name_layout.setSpacing(3)
            name_layout.addWidget(title)
            name_layout.addWidget(badge, 0, Qt.AlignmentFlag.AlignLeft)
            for col, w in enumerate((number, name, detail)):
                self.grid.addWidget(w, row, col, Qt.AlignmentFlag.AlignTop)
        self.grid.setRowStretch(len(steps), 1)
        text = sharing.overall(steps).summary
        self.summary.setText(text)
        self._set_busy(self.busy)
        if self.isVisible():  # the summary above says it too; other pages keep their status bar
            self.statusMessage.emit(text)
        self.refreshed.emit()

    # --- actions ----------------------------------------------------------------------------

    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def show_outcome(self, outcome: elevate.HelperOutcome) -> None:
        """Say what happened; when root could not be reached from here, give the command."""
        text = outcome.message
        if outcome.status in (elevate.UNAVAILABLE, elevate.NOT_AUTHORISED):
            text = (
                f"{outcome.message}\n\nOr do every step at once in a root shell: "
                f"{sharing.ALL_STEPS_COMMAND}"
            )
        self.show_notice(text)

    def open_wizard(self) -> None:
        from gui.sharing_wizard import SharingWizard

        wizard = SharingWizard(self.steps, root=self.root, readiness=self.readiness,
                               starter=self._starter, parent=self)  # fmt: skip
        wizard.finished.connect(lambda _code: self.refresh())
        wizard.selfTestFinished.connect(self._self_test_done)
        self.wizard = wizard
        wizard.open()

    def run_self_test(self) -> None:
        self.show_notice("Running the self-test as an ordinary user…")
        self.jobs.run("self-test", self_test.run_self_test, self._self_test_done)

    def _self_test_done(self, result: object) -> None:
        assert isinstance(result, sharing.SelfTestResult)
        self.self_test = result
        self.show_notice(("Passed: " if result.passed else "Failed: ") + result.summary)
        self.selfTestFinished.emit(result)
        self.refresh()

    def confirm_disable(self) -> None:
        present, kept = sharing.disable_preview(self.root or "/")
        self.disable_files = (present, kept)
        left = ("\n\nLeft alone (not written by this app):\n" + "\n".join(kept)) if kept else ""
        if not present:
            self.show_notice("Nothing to remove: this app wrote no helper script, sudoers drop-in "
                             "or profile here." + left.replace("\n\n", " ", 1))  # fmt: skip
            return
        box = QMessageBox(
            QMessageBox.Icon.Question, "Disable sharing",
            "Remove these files? "
            + ("Sharing goes on wherever files written by hand (such as those below) provide it. "
               if kept else "Users then keep new downloads in their own caches again. ")
            + "The zeroinst user and the shared cache (everyone's programs) stay.\n\n"
            + "\n".join(present) + left,
            QMessageBox.StandardButton.Cancel, self,
        )  # fmt: skip
        remove = box.addButton("Disable sharing", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _r: self.disable() if box.clickedButton() is remove else None)
        box.open()

    def disable(self) -> None:
        root = self.root

        def done(outcome: object) -> None:
            assert isinstance(outcome, elevate.HelperOutcome)
            self.show_outcome(outcome)
            self.disableFinished.emit(outcome)
            self.refresh()

        self.jobs.run("disable", lambda: elevate.run_helper("disable", root=root), done)

    def export(self, ansible: bool) -> None:
        from core import sharing_export

        name = "enable-sharing.yml" if ansible else "enable-sharing.sh"
        path, _ = QFileDialog.getSaveFileName(self, "Export the enable steps", name)
        if not path:
            return
        text = sharing_export.ansible_playbook() if ansible else sharing_export.posix_script()
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            if not ansible:
                import os

                os.chmod(path, 0o755)
        except OSError as exc:
            self.show_notice(f"Could not write {path}: {exc.strerror}")
            return
        self.show_notice(f"Wrote {path}.")
