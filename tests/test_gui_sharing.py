"""The Sharing page and its wizard on fake roots: rows, the wizard walked to the self-test page,
nothing changed before Apply, a refused or unreachable authorisation, disable."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel, QWizard

from core import elevate, sharing
from core import root_helper as rh
from gui.sharing_page import SharingPage
from gui.sharing_wizard import ApplyPage, ReviewPage, SelfTestPage, SharingWizard, StepPage
from gui.workers import inline_starter
from tests.test_sharing import make_root, tree_state

WAIT_MS = 60_000


pytestmark = pytest.mark.usefixtures("no_real_root")


def started_page(qtbot, root: Path) -> SharingPage:
    page = SharingPage(str(root), starter=inline_starter)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.start()
    return page


def badge(page: SharingPage, key: str) -> str:
    label = page.rows_widget.findChild(QLabel, f"state-{key}")
    assert label is not None
    return label.text()


def test_page_shows_one_row_per_step_with_its_state(qtbot, tmp_path: Path):
    root = make_root(tmp_path, debian=True)
    page = started_page(qtbot, root)
    assert page.page_id == "sharing"
    assert [badge(page, k) for k in ("user", "store", "helper", "sudoers", "apparmor",
                                     "self-test")] == [
        "Done", "Done", "Missing", "Missing", "Not applicable", "Not applicable"]  # fmt: skip
    assert page.summary.text() == "Sharing is not enabled: 2 steps to apply."
    assert not page.disable_button.isEnabled() and page.enable_button.isEnabled()
    assert not page.self_test_button.isEnabled()  # a fake root: nothing to prove


def test_wizard_walks_to_the_self_test_page_and_changes_nothing_before_apply(qtbot, tmp_path: Path):
    root = make_root(tmp_path, apparmor=True)
    page = started_page(qtbot, root)
    page.open_wizard()
    wizard = page.wizard
    assert wizard is not None
    qtbot.addWidget(wizard)
    before = tree_state(root)

    steps_seen = []
    while not isinstance(wizard.currentPage(), ReviewPage):
        current = wizard.currentPage()
        if isinstance(current, StepPage):
            steps_seen.append(current.step.key)
        wizard.next()
    assert steps_seen == ["user", "store", "helper", "sudoers", "apparmor"]
    review = wizard.currentPage()
    assert review.isCommitPage()
    assert review.buttonText(QWizard.WizardButton.CommitButton) == "&Apply"
    assert tree_state(root) == before  # nothing changed up to here

    wizard.next()
    apply_page = wizard.currentPage()
    assert isinstance(apply_page, ApplyPage)
    qtbot.waitUntil(lambda: apply_page.applied, timeout=WAIT_MS)
    assert apply_page.ok and apply_page.isComplete()
    assert sharing.is_enabled(sharing.detect(str(root)))
    assert (root / "etc/apparmor.d/usr.bin.0store-secure-add").is_file()

    wizard.next()
    test_page = wizard.currentPage()
    assert isinstance(test_page, SelfTestPage)
    assert "Not applicable on the fake root" in test_page.notice.text()
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        wizard.accept()
    assert page.summary.text().startswith("Sharing is enabled.")
    assert page.enable_button.text() == "Check and repair…"


def test_apply_that_cannot_reach_root_shows_the_root_command(qtbot, tmp_path: Path, monkeypatch):
    root = make_root(tmp_path)
    page = started_page(qtbot, root)

    def unreachable(verb: str, *args: str, root: str | None = None) -> elevate.HelperOutcome:
        command = elevate.root_command(verb, *args)
        return elevate.HelperOutcome(
            verb, args, elevate.UNAVAILABLE,
            "no polkit authentication agent in this session (SSH, VNC or a minimal desktop): "
            "run this as root instead: " + command, command)  # fmt: skip

    monkeypatch.setattr(elevate, "run_helper", unreachable)
    page.open_wizard()
    wizard = page.wizard
    qtbot.addWidget(wizard)
    while not isinstance(wizard.currentPage(), ApplyPage):
        wizard.next()
    apply_page = wizard.currentPage()
    qtbot.waitUntil(lambda: apply_page.applied, timeout=WAIT_MS)
    assert not apply_page.isComplete()
    text = apply_page.notice.text()
    assert "no polkit authentication agent" in text and "sudo " in text and "create-user" in text
    assert "zeroinstall-admin sharing script | sudo sh" in text
    assert rh.read_account("zeroinst", str(root)) is None
    wizard.reject()


def test_disable_from_the_page(qtbot, tmp_path: Path):
    root = make_root(tmp_path)
    rh.enable(str(root))
    page = started_page(qtbot, root)
    assert page.disable_button.isEnabled()
    with qtbot.waitSignal(page.disableFinished, timeout=WAIT_MS) as signal:
        page.disable()
    assert signal.args[0].ok
    qtbot.waitUntil(lambda: badge(page, "sudoers") == "Missing", timeout=WAIT_MS)
    assert "removed" in page.notice.text()
    assert not (root / rh.SUDOERS_DROPIN.lstrip("/")).exists()


def test_the_window_has_the_sharing_page(qtbot):
    from gui.app import _build_window

    window, _cache = _build_window(None, None, None)
    qtbot.addWidget(window)
    try:
        pages = window.pages
        sharing_pages = [p for p in pages if isinstance(p, SharingPage)]
        assert len(sharing_pages) == 1
        assert pages.index(sharing_pages[0]) > pages.index(_cache)
    finally:
        _cache.shutdown()


def test_page_says_up_front_when_changes_cannot_be_made_here(qtbot, monkeypatch):
    monkeypatch.setattr(
        elevate,
        "readiness",
        lambda verb="enable": elevate.Readiness(elevate.UNAVAILABLE, elevate.NO_DAEMON),
    )
    monkeypatch.setattr(rh, "_ALLOW_REAL_ROOT", True)  # detection only reads; nothing is applied
    page = SharingPage(starter=inline_starter)  # the real system
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.refreshed, timeout=WAIT_MS):
        page.start()
    text = page.notice.text()
    assert page.notice.isVisibleTo(page)
    assert "cannot reach the polkit daemon" in text and "polkitd" in text
    assert "zeroinstall-admin sharing script | sudo sh" in text


@pytest.mark.parametrize(
    "readiness, expected",
    [
        (elevate.Readiness(elevate.AS_ROOT), "at once (running as root)"),
        (elevate.Readiness(elevate.ASKS), "asks for an administrator's password"),
        (elevate.Readiness(elevate.ALLOWED), "without a password"),
        (elevate.Readiness(elevate.UNAVAILABLE, elevate.NO_PKEXEC), "pkexec is not installed"),
        (elevate.Readiness(elevate.UNAVAILABLE, elevate.NO_DAEMON), "polkit daemon"),
        (elevate.Readiness(elevate.NOT_AUTHORISED, elevate.REFUSED), "does not let this user"),
    ],
)
def test_the_review_page_says_what_apply_involves(qtbot, tmp_path: Path, readiness, expected):
    """A password is promised only when pkexec will ask for one; otherwise what is missing and
    the all-steps command."""
    import gui.sharing_wizard as sw

    root = make_root(tmp_path)
    steps = sharing.detect(str(root))
    wizard = sw.SharingWizard(steps, readiness=readiness, starter=inline_starter)
    qtbot.addWidget(wizard)
    text = wizard.review.explanation.text()
    assert expected in text
    asks = "asks for an administrator's password" in text
    assert asks == (readiness.state == elevate.ASKS)
    if not readiness.possible:
        assert "cannot make these changes from here" in text
        assert "zeroinstall-admin sharing script | sudo sh" in text
    on_fake_root = sw.SharingWizard(steps, root=str(root), readiness=readiness,
                                    starter=inline_starter)  # fmt: skip
    qtbot.addWidget(on_fake_root)
    assert on_fake_root.review.explanation.text() == (
        f"Nothing has changed yet. Apply changes the files under {root}."
    )


def walk_to(wizard, page_type):
    for _ in range(20):
        if isinstance(wizard.currentPage(), page_type):
            return wizard.currentPage()
        wizard.next()
    raise AssertionError(f"the wizard never reached a {page_type.__name__}")


def test_after_apply_the_last_page_offers_finish_not_cancel(qtbot, tmp_path: Path):
    root = make_root(tmp_path)
    page = started_page(qtbot, root)
    page.open_wizard()
    wizard = page.wizard
    qtbot.addWidget(wizard)
    apply_page = walk_to(wizard, ApplyPage)
    qtbot.waitUntil(lambda: apply_page.applied, timeout=WAIT_MS)
    wizard.next()
    assert isinstance(wizard.currentPage(), SelfTestPage)
    assert not wizard.button(QWizard.WizardButton.CancelButton).isVisible()
    assert wizard.button(QWizard.WizardButton.FinishButton).isVisible()
    assert not wizard.button(QWizard.WizardButton.BackButton).isVisible()
    wizard.accept()


def test_a_failed_apply_offers_close(qtbot, tmp_path: Path, monkeypatch):
    root = make_root(tmp_path)
    page = started_page(qtbot, root)

    def refused(verb: str, *args: str, root: str | None = None) -> elevate.HelperOutcome:
        error = "Error getting authority: Error initializing authority: Could not connect: "
        error += "No such file"
        return elevate.interpret(verb, args, 127, "", error)

    monkeypatch.setattr(elevate, "run_helper", refused)
    page.open_wizard()
    wizard = page.wizard
    qtbot.addWidget(wizard)
    apply_page = walk_to(wizard, ApplyPage)
    qtbot.waitUntil(lambda: apply_page.applied, timeout=WAIT_MS)
    assert wizard.buttonText(QWizard.WizardButton.CancelButton) == "&Close"
    text = apply_page.notice.text()
    assert "cannot reach the polkit daemon" in text and "polkitd" in text
    assert "zeroinstall-admin sharing script | sudo sh" in text
    assert "needs an administrator's password" not in text
    wizard.reject()


def test_step_pages_show_whole_commands_and_the_review_uses_words(qtbot, tmp_path: Path):
    from PySide6.QtWidgets import QPlainTextEdit

    root = make_root(tmp_path)
    wizard = SharingWizard(sharing.detect(str(root)), root=str(root), starter=inline_starter)
    qtbot.addWidget(wizard)
    wizard.resize(500, 400)
    wizard.show()
    first = walk_to(wizard, StepPage)
    assert first.step.key == "user"
    view = first.findChild(QPlainTextEdit)
    assert view.toPlainText() == "useradd " + " ".join(rh.USERADD_ARGS)
    assert view.lineWrapMode() == QPlainTextEdit.LineWrapMode.WidgetWidth
    assert view.isReadOnly()
    review = walk_to(wizard, ReviewPage)
    items = [review.changes.item(i).text() for i in range(review.changes.count())]
    assert items[0] == "Create the zeroinst system user (not there yet)"
    assert all(sharing.MISSING not in item.split("(")[0] for item in items)
    assert not any(item.endswith(": missing") for item in items)
    wizard.reject()


def test_the_wizard_says_what_sharing_protects_and_what_verification_is_for(qtbot, tmp_path):
    root = make_root(tmp_path)
    wizard = SharingWizard(sharing.detect(str(root)), root=str(root), starter=inline_starter)
    qtbot.addWidget(wizard)
    text = " ".join(label.text() for label in wizard.intro.findChildren(QLabel))
    assert "cannot write the shared cache directly" in text
    assert "trusts the entry names" in text and "merely exists" in text
    assert "planted or tampered" in text
    assert "cannot plant a modified program" not in text
    assert "would not be used" not in text
    wizard.reject()


def test_disable_confirmation_lists_exactly_what_goes(qtbot, tmp_path: Path):
    from PySide6.QtWidgets import QMessageBox

    from tests.test_sharing import make_handmade

    root = make_handmade(tmp_path, "main")
    rh.step_install_sudoers(str(root))
    page = started_page(qtbot, root)
    assert page.disable_button.isEnabled()
    page.confirm_disable()
    box = page.findChild(QMessageBox)
    assert box is not None
    removed, _, kept = box.text().partition("Left alone (not written by this app):")
    assert rh.SUDOERS_DROPIN in removed and rh.HELPER_SCRIPT_PATH not in removed
    assert rh.HELPER_SCRIPT_PATH in kept
    box.reject()


def test_the_summary_is_the_core_verdict(qtbot, tmp_path: Path):
    from tests.test_sharing import make_handmade

    root = make_handmade(tmp_path, "dropin")
    page = started_page(qtbot, root)
    assert page.summary.text() == sharing.overall(sharing.detect(str(root))).summary
    assert page.summary.text() == "Sharing is enabled."
    assert badge(page, "sudoers") == "Done" and badge(page, "helper") == "Done"
    assert page.enable_button.text() == "Check and repair…"
    assert not page.disable_button.isEnabled()  # nothing of ours to remove


def test_a_step_that_raises_is_shown_as_that_steps_failure(qtbot, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    wizard = SharingWizard(sharing.detect(str(root)), root=str(root), starter=inline_starter)
    qtbot.addWidget(wizard)
    got: list[object] = []

    def broken() -> object:
        raise OSError("the disk went away")

    wizard.run("enable", broken, got.append)
    wizard.run("self-test", broken, got.append)
    qtbot.waitUntil(lambda: len(got) == 2)
    enable, test = got
    assert isinstance(enable, elevate.HelperOutcome) and enable.status == elevate.FAILED
    assert "unexpected error: the disk went away" in enable.message
    assert isinstance(test, sharing.SelfTestResult) and not test.passed
    assert "unexpected error: the disk went away" in test.summary
    wizard.reject()
