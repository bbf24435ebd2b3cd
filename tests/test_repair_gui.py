"""Repair in the window: a damaged entry selected, Repair, and it verifies again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.stores import stores_from_paths
from core.verify_entry import verify_directory
from gui import status as st
from tests.test_gui_cache_page import WAIT_MS, open_page, row_of, verify_all
from tests.test_repair import Feed, damage

pytestmark = pytest.mark.usefixtures("private_settings")


def test_repair_from_the_window(qtbot, tmp_path: Path, zi_env: dict[str, str], monkeypatch) -> None:
    zi_env["XDG_STATE_HOME"] = str(tmp_path / "state")
    feed = Feed(tmp_path, zi_env)
    for key in ("XDG_CACHE_HOME", "XDG_CACHE_DIRS", "XDG_STATE_HOME", "HOME"):
        monkeypatch.setenv(key, zi_env[key])
    damage(feed.entry)
    _window, page = open_page(qtbot, env=zi_env, stores=stores_from_paths([str(feed.store)]))
    action = page.repairer  # the page's own Repair, as in its menus
    assert action.action in page.context_actions()
    asked: list[str] = []
    action.confirm = lambda title, text: asked.append(text) or True
    action.inform = lambda title, text: asked.append(text)
    assert not action.action.isEnabled()  # nothing verified yet: nothing known to be damaged
    verify_all(qtbot, page)
    r, row = row_of(page, lambda row: row.entry.path == str(feed.entry))
    assert row.status == st.CORRUPT
    page.select_proxy_row(r)
    assert action.action.isEnabled()
    with qtbot.waitSignal(action.finished, timeout=WAIT_MS) as done:
        action.action.trigger()
    (result,) = done.args[0]
    assert result.action == "repaired", result.message
    assert "Repair 1 damaged entry?" in asked[0] and len(asked) == 1
    assert verify_directory(feed.entry).status == "ok"
    assert os.path.isdir(result.quarantined_to)
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)


def test_the_window_does_not_repair_an_entry_in_use(
    qtbot, tmp_path: Path, zi_env: dict[str, str], monkeypatch
) -> None:
    zi_env["XDG_STATE_HOME"] = str(tmp_path / "state")
    feed = Feed(tmp_path, zi_env)
    for key in ("XDG_CACHE_HOME", "XDG_CACHE_DIRS", "XDG_STATE_HOME", "HOME"):
        monkeypatch.setenv(key, zi_env[key])
    damage(feed.entry)
    _window, page = open_page(qtbot, env=zi_env, stores=stores_from_paths([str(feed.store)]))
    action = page.repairer
    told: list[str] = []
    action.confirm = lambda title, text: True
    action.inform = lambda title, text: told.append(text)
    verify_all(qtbot, page)
    r, _row = row_of(page, lambda row: row.entry.path == str(feed.entry))
    page.select_proxy_row(r)
    user = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=feed.entry,
    )  # fmt: skip
    try:
        assert user.stdout is not None and user.stdout.readline().strip() == "ready"
        with qtbot.waitSignal(action.finished, timeout=WAIT_MS) as done:
            action.action.trigger()
    finally:
        user.communicate(timeout=30)
    (result,) = done.args[0]
    assert result.action == "in-use" and f"process {user.pid}" in result.message
    assert len(told) == 1 and "Repaired 0 of 1" in told[0] and f"process {user.pid}" in told[0]
    assert verify_directory(feed.entry).status == "corrupt"  # left where it was
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
