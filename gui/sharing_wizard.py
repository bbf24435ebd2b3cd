"""The "Enable sharing" wizard: what sharing does and its limits, one page per step that is not
done (with the exact command or file content), a review page where the admin confirms, the apply
with progress, and the self-test. Nothing changes before the review page's Apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QTextOption
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from core import elevate, self_test, sharing
from gui.page_frame import notice_label
from gui.sharing_page import state_badge
from gui.workers import Starter, WorkerGroup


def _label(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    return label


def _code(text: str, parent: QWidget) -> QPlainTextEdit:
    """The exact command or file: wrapped at the view's width (a long useradd line stays whole
    on screen), selectable, copied as it is."""
    view = QPlainTextEdit(parent)
    view.setPlainText(text)
    view.setReadOnly(True)
    view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
    view.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    view.setAccessibleName("Exact command or file content")
    return view


class IntroPage(QWizardPage):
    def __init__(self, blockers: list[sharing.Step], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTitle("Share downloaded programs between users")
        self.setSubTitle("What sharing does, and what it cannot do.")
        # In a scroll area: at 150% on a small screen the text is taller than the wizard.
        body = QWidget(self)
        inner = QVBoxLayout(body)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(_label(sharing.HOW_IT_WORKS, body))
        inner.addWidget(_label(sharing.PROTECTS, body))
        limits = "".join(f"<li>{text}</li>" for text in sharing.LIMITS)
        inner.addWidget(_label(f"<b>Limits</b><ul>{limits}</ul>", body))
        if blockers:
            text = "<b>First, by hand</b> (applying cannot fix these; their steps are skipped):<ul>"
            text += "".join(f"<li>{s.title}: {s.detail}</li>" for s in blockers) + "</ul>"
            inner.addWidget(_label(text, body))
        inner.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)


class StepPage(QWizardPage):
    """One step that is not done: why, and exactly what applying will run or write."""

    def __init__(
        self, step: sharing.Step, number: int, total: int, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.step = step
        self.setTitle(f"Step {number} of {total}: {step.title}")
        self.setSubTitle(step.target or "The account 0store-secure-add runs as.")
        layout = QVBoxLayout(self)
        layout.addWidget(state_badge(step.state, self))
        layout.addWidget(_label(step.detail, self))
        head, _, body = step.preview.partition("\n")
        if not (body and head.endswith(":")):
            head, body = "", step.preview
        if step.fixable:
            layout.addWidget(_label("<b>Applying will run or write exactly this</b>"
                                    + (f": {head}" if head else ":"), self))  # fmt: skip
        else:
            layout.addWidget(
                _label(
                    "<b>Applying cannot do this for you.</b> For reference, the "
                    "step is" + (f": {head}" if head else ":"),
                    self,
                )
            )
        if body:
            layout.addWidget(_code(body, self), 1)
        else:
            layout.addStretch(1)


def how_apply_runs(root: str | None, readiness: elevate.Readiness | None) -> str:
    """What pressing Apply will involve: a password only when pkexec will ask for one (on a fake
    root, or as root, the steps run in this process; without pkexec, the polkit daemon or the
    helper, Apply cannot work from here and the command to use instead is given)."""
    if root is not None:
        return f"Nothing has changed yet. Apply changes the files under {root}."
    if readiness is None:
        readiness = elevate.readiness()
    if readiness.state == elevate.AS_ROOT:
        return "Nothing has changed yet. Apply makes these changes at once (running as root)."
    if readiness.state == elevate.ASKS:
        return ("Nothing has changed yet. Apply asks for an administrator's password (polkit), "
                "once per step.")  # fmt: skip
    if readiness.state == elevate.ALLOWED:
        return "Nothing has changed yet. polkit allows these changes here without a password."
    return (f"Nothing has changed yet, and Apply cannot make these changes from here: "
            f"{readiness.reason}. In a root shell, run every step at once with: "
            f"{sharing.ALL_STEPS_COMMAND}")  # fmt: skip


class ReviewPage(QWizardPage):
    def __init__(self, todo: list[sharing.Step], parent: SharingWizard) -> None:
        super().__init__(parent)
        self.setTitle("Review")
        self.setSubTitle("What Apply will do, in this order.")
        self.explanation = _label(how_apply_runs(parent.root, parent.readiness), self)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "&Apply")
        layout = QVBoxLayout(self)
        layout.addWidget(self.explanation)
        if todo:
            self.changes = QListWidget(self)
            for step in todo:
                self.changes.addItem(sharing.review_text(step))
            layout.addWidget(self.changes, 1)
            layout.addWidget(_label(
                "Each file is written under a temporary name, validated (visudo, apparmor_parser) "
                "and only then put in place; a step that fails leaves its files as they were.",
                self))  # fmt: skip
        else:
            layout.addWidget(
                _label(
                    "Every step that applying can do is already done: nothing "
                    "will change. Apply goes straight to the self-test.",
                    self,
                )
            )
            layout.addStretch(1)


class ApplyPage(QWizardPage):
    """Runs the planned verbs one after the other through :func:`core.elevate.run_helper`."""

    finishedApplying = Signal(bool)

    def __init__(self, wizard: SharingWizard) -> None:
        super().__init__(wizard)
        self._wizard = wizard
        self.setTitle("Applying")
        self.setSubTitle("One step at a time through the privileged helper; a failing step stops "
                         "the rest and leaves its own files as they were.")  # fmt: skip
        self.progress = QProgressBar(self)
        self.log = QListWidget(self)
        self.notice = notice_label(self)
        self.applied = False
        self.ok = False
        layout = QVBoxLayout(self)
        layout.addWidget(self.progress)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.notice)

    def initializePage(self) -> None:
        todo = self._wizard.todo
        self.progress.setRange(0, max(1, len(todo)))
        self.progress.setValue(0)
        self._next(0)

    def _next(self, index: int) -> None:
        todo = self._wizard.todo
        if index >= len(todo):
            self.progress.setValue(self.progress.maximum())
            self.log.addItem("All steps applied." if todo else "Nothing to apply.")
            self._finish(True)
            return
        step = todo[index]
        assert step.verb is not None
        verb, root = step.verb, self._wizard.root
        self.log.addItem(f"{step.title}…")

        def done(outcome: object) -> None:
            assert isinstance(outcome, elevate.HelperOutcome)
            self.log.addItem(f"{step.title}: {outcome.message if outcome.ok else 'failed'}")
            if not outcome.ok:
                text = f"{step.title}: {outcome.message}"
                if outcome.status in (elevate.UNAVAILABLE, elevate.NOT_AUTHORISED):
                    text += ("\n\nOr do every step at once in a root shell: "
                             f"{sharing.ALL_STEPS_COMMAND}")  # fmt: skip
                self.notice.setText(text)
                self.notice.show()
                self._finish(False)
                return
            self.progress.setValue(index + 1)
            self._next(index + 1)

        self._wizard.run("apply", lambda: elevate.run_helper(verb, root=root), done)

    def _finish(self, ok: bool) -> None:
        self.applied, self.ok = True, ok
        if not ok:  # nothing is running any more: there is nothing to cancel
            self._wizard.setButtonText(QWizard.WizardButton.CancelButton, "&Close")
        self.completeChanged.emit()
        self.finishedApplying.emit(ok)

    def isComplete(self) -> bool:
        return self.applied and self.ok


class SelfTestPage(QWizardPage):
    def __init__(self, wizard: SharingWizard) -> None:
        super().__init__(wizard)
        self._wizard = wizard
        self.setTitle("Self-test")
        self.setSubTitle("Proves that sharing works the way 0install will use it.")
        self.result: sharing.SelfTestResult | None = None
        layout = QVBoxLayout(self)
        self.explanation = _label(
            "As an ordinary user, build a tiny implementation, add it with "
            "0store-secure-add-helper DIGEST from its directory, check that it landed in the "
            "shared cache owned by zeroinst and verifies, then remove it.", self)  # fmt: skip
        self.run_button = QPushButton("Run the self-test", self)
        self.run_button.clicked.connect(self.run)
        self.log = QListWidget(self)
        self.notice = notice_label(self)
        layout.addWidget(self.explanation)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.notice)

    def initializePage(self) -> None:
        if self._wizard.root is not None:
            self.run_button.setEnabled(False)
            self.notice.setText(
                f"Not applicable on the fake root {self._wizard.root}: the self-test uses the real "
                "sudo, helper and store, and proves something only on the real system."
            )
            self.notice.show()
            return
        self.run()

    def run(self) -> None:
        self.run_button.setEnabled(False)
        self.log.clear()
        self.notice.hide()

        def done(result: object) -> None:
            assert isinstance(result, sharing.SelfTestResult)
            self.result = result
            self.log.addItems(result.log)
            self.notice.setText(("Passed: " if result.passed else "Failed: ") + result.summary)
            self.notice.show()
            self.run_button.setEnabled(True)
            self.run_button.setText("Run it again")
            self._wizard.selfTestFinished.emit(result)

        self._wizard.run("self-test", self_test.run_self_test, done)


class SharingWizard(QWizard):
    """Built from the current steps; ``root`` is a fake root prefix or None (the real system)."""

    selfTestFinished = Signal(object)

    def __init__(
        self,
        steps: list[sharing.Step],
        *,
        root: str | None = None,
        readiness: elevate.Readiness | None = None,
        starter: Starter | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """``readiness``: what Apply will involve (:func:`core.elevate.readiness`, asked here
        when not given; not used on a fake root)."""
        super().__init__(parent)
        self.setWindowTitle("Enable sharing")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        # After Apply there is nothing to cancel: the last page offers Finish only.
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.root = root
        self.readiness = readiness
        self.jobs = WorkerGroup(starter, lambda: None, self._failed)
        self._on_done: dict[str, Callable[[Any], None]] = {}  # where each step's result goes
        self.todo = sharing.plan(steps)
        waiting = (sharing.MISSING, sharing.ATTENTION, sharing.UNKNOWN)
        pending = [s for s in steps if s.key in sharing.ENABLE_KEYS and s.state in waiting]
        self.intro = IntroPage(sharing.blockers(steps), self)
        self.addPage(self.intro)
        self.step_pages = [StepPage(s, i + 1, len(pending), self) for i, s in enumerate(pending)]
        for page in self.step_pages:
            self.addPage(page)
        self.review = ReviewPage(self.todo, self)
        self.addPage(self.review)
        self.apply_page = ApplyPage(self)
        self.addPage(self.apply_page)
        self.self_test_page = SelfTestPage(self)
        self.addPage(self.self_test_page)
        self._fit_to_screen(parent)

    def _fit_to_screen(self, parent: QWidget | None) -> None:
        """760 x 560, or less on a small screen (1024 x 700 at 150% leaves 682 x 466)."""
        screen = parent.screen() if parent is not None else QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(760, 560)
            return
        room = screen.availableGeometry()
        self.resize(min(760, int(room.width() * 0.95)), min(560, int(room.height() * 0.92)))

    def run(self, name: str, fn: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        self._on_done[name] = on_done
        self.jobs.run(name, fn, on_done)

    def _failed(self, name: str, error: BaseException) -> None:
        """A step that raised is shown as that step's failure."""
        self._on_done[name](
            sharing.SelfTestResult(False, f"unexpected error: {error}")
            if name == "self-test"
            else elevate.HelperOutcome(name, (), elevate.FAILED, f"unexpected error: {error}", "")
        )

    def done(self, result: int) -> None:
        self.jobs.wait(5.0)
        super().done(result)
