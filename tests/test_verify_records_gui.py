"""The window and verification records: a rescan (F5) keeps an "OK" only when every change key
of the entry still matches, and an unchanged verdict says since when."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core.stores import stores_from_paths
from core.verify_entry import VerifyOutcome
from gui import status as st
from gui.cache_rows import verdict_age
from tests.test_gui_cache_page import open_page, rescan, verify_all
from tests.test_verify_records import FILES, add_entry, tick_past

pytestmark = pytest.mark.usefixtures("private_settings")


def test_a_file_rewritten_in_place_is_corrupt_after_f5(qtbot, tmp_path: Path) -> None:
    store = tmp_path / "cache" / "implementations"
    store.mkdir(parents=True)
    tampered = add_entry(store, FILES)
    other = add_entry(store, {"a": "unrelated\n"})
    _window, page = open_page(qtbot, stores=stores_from_paths([str(store)]))
    verify_all(qtbot, page)
    assert {r.status for r in page.model.rows} == {st.OK}
    tick_past(tampered)
    dir_ctime = os.stat(tampered).st_ctime_ns
    # Old size, mode and mtime back, the directory untouched: only the file's ctime changed,
    # which the old fingerprint (the directory's and the .manifest's) never saw.
    f = tampered / "lib" / "deep" / "mod.py"
    before = f.stat()
    os.chmod(f, 0o644)
    with open(f, "r+b") as out:
        out.write(b"#")
    os.chmod(f, before.st_mode)
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(tampered).st_ctime_ns == dir_ctime
    rescan(qtbot, page)
    by_path = {r.entry.path: r for r in page.model.rows}
    assert by_path[str(tampered)].status == st.CORRUPT
    assert by_path[str(other)].status == st.OK
    assert "checked again by their change keys" in page.activity.text


def test_an_unchanged_verdict_says_since_when() -> None:
    class Row:
        verified_at = time.time()
        outcome = VerifyOutcome(
            "ok", "", unchanged_since=time.mktime((2026, 12, 3, 9, 0, 0, 0, 0, -1))
        )

    now = time.mktime((2026, 12, 7, 12, 0, 0, 0, 0, -1))
    assert verdict_age(Row(), now).startswith("OK, unchanged since 3 Dec")  # type: ignore[arg-type]


def test_the_window_says_when_everything_is_hashed_because_inodes_are_unstable(
    qtbot, tmp_path: Path, monkeypatch
) -> None:
    from core import records

    store = tmp_path / "cache" / "implementations"
    store.mkdir(parents=True)
    add_entry(store, FILES)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"99 1 0:77 / {store.parent} rw - fuse.sshfs host:/x rw\n")
    monkeypatch.setenv(records.ENV_MOUNTINFO, str(mountinfo))
    _window, page = open_page(qtbot, stores=stores_from_paths([str(store)]))
    verify_all(qtbot, page)
    verify_all(qtbot, page)
    said = [m for m in page.banner.messages if "FUSE" in m]
    assert len(said) == 1 and "every entry was hashed in full" in said[0], page.banner.messages


def test_f5_twice_in_a_row_still_checks_every_kept_ok(qtbot, tmp_path: Path) -> None:
    store = tmp_path / "cache" / "implementations"
    store.mkdir(parents=True)
    entries = [add_entry(store, {"f": f"{i}\n"}) for i in range(5)]
    _window, page = open_page(qtbot, stores=stores_from_paths([str(store)]))
    verify_all(qtbot, page)
    tick_past(entries[0])
    f = entries[0] / "f"
    before = f.stat()
    with open(f, "r+b") as out:
        out.write(b"X")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    page.rescan()
    page.rescan()  # the first scan (and any re-check of it) is dropped
    qtbot.waitUntil(lambda: not page.busy and "checked again" in page.activity.text, timeout=60_000)
    by_path = {r.entry.path: r.status for r in page.model.rows}
    assert by_path.pop(str(entries[0])) == st.CORRUPT
    assert set(by_path.values()) == {st.OK}
