"""The window's Clean and Delete with a bind mount inside an entry: the entry stays whole, nothing
outside is touched, and the window says which mount point to unmount.

Mounting needs a private mount namespace:
:func:`test_the_window_leaves_entries_holding_a_mount_alone` runs the real test
(:func:`test_inside_a_private_mount_namespace`) in a pytest of its own under ``unshare -m``; run
directly, that one skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import test_gui_clean
from tests.conftest import RealStore
from tests.test_gui_clean import WAIT_MS, open_cache, open_clean, select

store = test_gui_clean.store  # the same fixture: three candidates and one recent entry

REPO = Path(__file__).resolve().parent.parent
INSIDE = "ZIA_PRIVATE_MOUNT_NAMESPACE"

pytestmark = pytest.mark.usefixtures("private_settings")


def test_the_window_leaves_entries_holding_a_mount_alone(tmp_path: Path) -> None:
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-m", "pytest", "-q",
         "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'inner'}",
         f"{__file__}::test_inside_a_private_mount_namespace"],
        capture_output=True, text=True, timeout=600, check=False, cwd=REPO,
        env={**os.environ, INSIDE: "1", "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


@pytest.mark.skipif(os.environ.get(INSIDE) != "1", reason="run inside a private mount namespace")
def test_inside_a_private_mount_namespace(qtbot, store: RealStore, tmp_path: Path) -> None:
    d = store.digests
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("must survive")
    targets = {k: store.path / d[k] / "lib" for k in ("old", "older")}
    for target in targets.values():
        subprocess.run(["mount", "--bind", str(outside), str(target)], check=True)

    # Clean: both candidates holding a mount stay, the third goes; the banner says what to do.
    page = open_clean(qtbot, store)
    page.confirm = lambda title, text: True
    with qtbot.waitSignal(page.cleanFinished, timeout=WAIT_MS):
        page.clean_action.trigger()
    qtbot.waitUntil(lambda: not page.busy, timeout=WAIT_MS)
    assert (store.path / d["old"]).exists() and (store.path / d["older"]).exists()
    assert not (store.path / d["stray"]).exists()
    said = "\n".join(page.banner.messages)
    assert f"umount '{targets['old']}'" in said and f"umount '{targets['older']}'" in said
    assert (outside / "canary").read_text() == "must survive"

    # Delete on the Cache page: the same refusal, said in the window.
    cache, deleter = open_cache(qtbot, store)
    deleter.confirm = lambda title, text: True
    told: list[str] = []
    deleter.inform = lambda title, text: told.append(text)
    select(cache, {d["old"]})
    with qtbot.waitSignal(deleter.finished, timeout=WAIT_MS):
        deleter.action.trigger()
    assert told and f"umount '{targets['old']}'" in told[0] and "Hello 1.0" in told[0]
    assert (store.path / d["old"]).exists() and (outside / "canary").read_text() == "must survive"
