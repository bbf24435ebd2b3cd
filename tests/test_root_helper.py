"""The privileged helper's store verbs: safe removal and quarantine, argument checks, refusal.

Everything happens under tmp_path; the helper's real-root guard is switched off for the whole module
so a mistake raises instead of touching this machine.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from core import root_helper as rh

HELPER_FILE = Path(rh.__file__)
DIGEST = "sha256new_" + "A" * 52
DIGEST2 = "sha256=" + "b" * 64
NOBODY = 65534


pytestmark = pytest.mark.usefixtures("no_real_root")


def make_entry(store: Path, name: str, *, readonly: bool = True) -> Path:
    entry = store / name
    (entry / "bin" / "deep" / "er").mkdir(parents=True)
    (entry / "README").write_text("hello\n")
    (entry / "bin" / "tool").write_text("#!/bin/sh\n")
    (entry / "bin" / "deep" / "data").write_text("x" * 100)
    (entry / "bin" / "deep" / "er" / "leaf").write_text("leaf")
    (entry / "bin" / "link").symlink_to("/etc/passwd")
    (entry / ".manifest").write_text("F ...\n")
    if readonly:
        for dirpath, _dirnames, filenames in os.walk(entry):
            for f in filenames:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    p.chmod(0o444)
            Path(dirpath).chmod(0o555)
    return entry


def outside_tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "precious").write_text("do not delete")
    (outside / "keep" / "also").write_text("do not delete either")
    return outside


def snapshot(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    s = tmp_path / "root" / "var/cache/0install.net/implementations"
    s.mkdir(parents=True)
    return s


def test_removes_a_read_only_tree_and_nothing_else(store: Path, tmp_path: Path):
    make_entry(store, DIGEST)
    make_entry(store, DIGEST2)
    done = rh.remove_implementation(str(store), DIGEST)
    assert done.existed and done.items == 10
    assert sorted(os.listdir(store)) == [DIGEST2]
    assert Path("/etc/passwd").exists()  # the link inside was unlinked, not followed


def test_missing_entry_is_reported_not_an_error(store: Path):
    done = rh.remove_implementation(str(store), DIGEST)
    assert not done.existed and done.items == 0


def test_interrupted_removal_leaves_no_digest_named_partial_entry(store: Path):
    make_entry(store, DIGEST)
    calls = []

    def interrupt(event: str, name: str) -> None:
        calls.append((event, name))
        if event == "unlink" and len([c for c in calls if c[0] == "unlink"]) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rh.remove_implementation(str(store), DIGEST, on_step=interrupt)
    left = os.listdir(store)
    assert DIGEST not in left
    assert len(left) == 1 and left[0].startswith(rh.REMOVAL_PREFIX)
    assert (store / left[0]).is_dir()  # half removed, under a name 0install never uses
    # A later run finishes the job on the temporary name.
    done = rh.remove_implementation(str(store), left[0])
    assert done.existed and os.listdir(store) == []


def test_top_level_symlink_entry_is_unlinked_and_its_target_kept(store: Path, tmp_path: Path):
    outside = outside_tree(tmp_path)
    (store / DIGEST).symlink_to(outside)
    before = snapshot(outside)
    done = rh.remove_implementation(str(store), DIGEST)
    assert done.existed and done.items == 1
    assert os.listdir(store) == []
    assert snapshot(outside) == before
    assert (outside / "precious").read_text() == "do not delete"


def test_top_level_file_entry_is_unlinked(store: Path):
    (store / ("sha1=" + "c" * 40)).write_text("not a directory")
    rh.remove_implementation(str(store), "sha1=" + "c" * 40)
    assert os.listdir(store) == []


@pytest.mark.parametrize("when", ["enter", "unlink"])
def test_subdirectory_swapped_for_a_symlink_mid_removal_deletes_nothing_outside(
    store: Path, tmp_path: Path, when: str
):
    outside = outside_tree(tmp_path)
    before = snapshot(outside)
    make_entry(store, DIGEST, readonly=False)
    swapped = []

    def swap(event: str, name: str) -> None:
        # Just before the walk descends into bin/ (or while it deletes bin/'s files), replace
        # bin/deep by a symlink to a directory outside the store, as an attacker racing us would.
        if swapped or event != when or name not in ("deep", "tool"):
            return
        temp_entries = [n for n in os.listdir(store) if n.startswith(rh.REMOVAL_PREFIX)]
        deep = store / temp_entries[0] / "bin" / "deep"
        if deep.is_symlink() or not deep.exists():
            return
        shutil.move(str(deep), str(tmp_path / "moved-away"))
        deep.symlink_to(outside)
        swapped.append(name)

    rh.remove_implementation(str(store), DIGEST, on_step=swap)
    assert swapped
    assert os.listdir(store) == []
    assert snapshot(outside) == before
    assert (outside / "keep" / "also").read_text() == "do not delete either"


def test_removal_refuses_to_cross_into_another_filesystem(store: Path, tmp_path: Path):
    entry = make_entry(store, DIGEST, readonly=False)
    mnt = entry / "bin" / "mnt"
    mnt.mkdir()
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c",
         "import subprocess, sys, os\n"
         f"subprocess.run(['mount', '-t', 'tmpfs', 'none', {str(mnt)!r}], check=True)\n"
         f"open({str(mnt / 'on-tmpfs')!r}, 'w').write('x')\n"
         "from core import root_helper as rh\n"
         "try:\n"
         f"    rh.remove_implementation({str(store)!r}, {DIGEST!r})\n"
         "except rh.HelperError as e:\n"
         "    print('refused:', e)\n"
         "import glob\n"
         f"print(os.path.exists({str(mnt / 'on-tmpfs')!r}))\n"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # Refused before anything changed: the entry is still under its name, the tmpfs untouched.
    assert "bin/mnt inside it is a mount point: nothing was removed" in proc.stdout
    assert "umount" in proc.stdout and proc.stdout.strip().endswith("True")


@pytest.mark.parametrize("name", ["", ".", "..", "../etc", "a/b", "/etc", "x\0y", "n" * 256])
def test_bad_names_are_refused_before_anything_happens(store: Path, name: str):
    make_entry(store, DIGEST)
    with pytest.raises(rh.UsageError):
        rh.remove_implementation(str(store), name)
    with pytest.raises(rh.UsageError):
        rh.quarantine_entry(str(store), name, str(store.parent / "q"))
    assert os.listdir(store) == [DIGEST]


def test_store_path_must_be_absolute_normalised_and_symlink_free(store: Path, tmp_path: Path):
    (tmp_path / "via-link").symlink_to(store)
    for bad in ["relative/store", str(store) + "/", str(store) + "/../implementations",
                str(tmp_path / "via-link"), str(tmp_path / "missing")]:  # fmt: skip
        with pytest.raises(rh.UsageError):
            rh.remove_implementation(bad, DIGEST)


def test_verb_accepts_only_configured_system_stores(store: Path, tmp_path: Path):
    root = tmp_path / "root"
    make_entry(store, DIGEST)
    other = tmp_path / "root" / "home" / "u" / ".cache" / "0install.net" / "implementations"
    other.mkdir(parents=True)
    make_entry(other, DIGEST)
    with pytest.raises(rh.UsageError, match="not a configured system store"):
        rh.run_verb("remove-implementation", [str(other), DIGEST], root=str(root))
    assert os.listdir(other) == [DIGEST]
    # A store root's own implementation-dirs names becomes acceptable.
    extra = root / "srv" / "zi"
    extra.mkdir(parents=True)
    make_entry(extra, DIGEST)
    conf = root / "etc/xdg/0install.net/injector"
    conf.mkdir(parents=True)
    (conf / "implementation-dirs").write_text("# comment\n/srv/zi\n")
    assert "removed" in rh.run_verb("remove-implementation", [str(extra), DIGEST], root=str(root))
    assert os.listdir(extra) == []
    assert "removed" in rh.run_verb("remove-implementation", [str(store), DIGEST], root=str(root))
    assert "already gone" in rh.run_verb(
        "remove-implementation", [str(store), DIGEST], root=str(root)
    )


def test_unknown_verbs_and_wrong_argument_counts(store: Path, tmp_path: Path):
    root = str(tmp_path / "root")
    with pytest.raises(rh.UsageError, match="unknown verb"):
        rh.run_verb("rm", [str(store), DIGEST], root=root)
    with pytest.raises(rh.UsageError, match="usage"):
        rh.run_verb("remove-implementation", [str(store)], root=root)
    with pytest.raises(rh.UsageError, match="usage"):
        rh.run_verb("quarantine", [str(store), DIGEST, "extra"], root=root)


def test_real_root_is_refused_while_tests_run():
    with pytest.raises(rh.HelperError, match="real /"):
        rh.run_verb("remove-implementation", [rh.SHARED_STORE, DIGEST])


def test_quarantine_moves_the_entry_into_a_root_only_directory(store: Path, tmp_path: Path):
    outside = outside_tree(tmp_path)
    make_entry(store, DIGEST)
    (store / DIGEST2).symlink_to(outside)
    root = str(tmp_path / "root")
    rh.run_verb("quarantine", [str(store), DIGEST], root=root)
    rh.run_verb("quarantine", [str(store), DIGEST2], root=root)
    q = Path(rh.quarantine_dir_for(str(store)))
    assert os.listdir(store) == []
    assert stat.S_IMODE(q.stat().st_mode) == 0o700
    moved = sorted(os.listdir(q))
    assert moved[0].startswith(DIGEST2 + ".") and (q / moved[0]).is_symlink()
    assert moved[1].startswith(DIGEST + ".") and (q / moved[1] / "bin" / "tool").is_file()
    assert (outside / "precious").exists()


def test_quarantine_refuses_a_symlinked_quarantine_directory(store: Path, tmp_path: Path):
    make_entry(store, DIGEST)
    (store.parent / rh.QUARANTINE_DIR_NAME).symlink_to(tmp_path)
    with pytest.raises(OSError):
        rh.quarantine_entry(str(store), DIGEST, rh.quarantine_dir_for(str(store)))
    assert os.listdir(store) == [DIGEST]


def _as_nobody(python: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         python, "-I", *args],
        capture_output=True, text=True, timeout=60, cwd="/",
    )  # fmt: skip


def test_an_ordinary_user_removes_a_read_only_entry_of_its_own_store(code_for_other_users):
    helper = code_for_other_users.path / "core" / "root_helper.py"
    base = tempfile.mkdtemp(prefix="zia-user-store-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        store = Path(base) / "implementations"
        store.mkdir()
        make_entry(store, DIGEST)
        for p in [store, *store.rglob("*")]:
            os.lchown(p, NOBODY, NOBODY)
        proc = _as_nobody(
            code_for_other_users.python,
            "-c",
            f"import importlib.util as u; s = u.spec_from_file_location('rh', {str(helper)!r})\n"
            "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
            f"print(m.remove_implementation({str(store)!r}, {DIGEST!r}).items)",
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "10" and os.listdir(store) == []
    finally:
        shutil.rmtree(base)


def test_helper_refuses_to_run_unless_root(code_for_other_users):
    helper = code_for_other_users.path / "core" / "root_helper.py"
    proc = _as_nobody(
        code_for_other_users.python, str(helper), "remove-implementation", rh.SHARED_STORE, DIGEST
    )
    assert proc.returncode == rh.EXIT_NOT_ROOT
    assert "must run as root" in proc.stderr


@pytest.mark.parametrize(
    "argv, code",
    [
        ([], rh.EXIT_USAGE),
        (["rm", "-rf", "/"], rh.EXIT_USAGE),
        (["remove-implementation"], rh.EXIT_USAGE),
        (["remove-implementation", "/tmp", DIGEST], rh.EXIT_USAGE),
        (["remove-implementation", rh.SHARED_STORE, "../../../etc"], rh.EXIT_USAGE),
        (["quarantine", rh.SHARED_STORE, "a/b"], rh.EXIT_USAGE),
        (["--root", "/tmp", "remove-implementation", rh.SHARED_STORE, DIGEST], rh.EXIT_USAGE),
    ],
)
def test_command_line_refuses_bad_arguments_as_root(argv: list[str], code: int):
    """Run as the installed helper would be (python3 -I, root): none of these can act."""
    proc = subprocess.run(
        [sys.executable, "-I", str(HELPER_FILE), *argv],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""


def test_digest_like_names_cannot_traverse_but_planted_lookalikes_can_be_removed(store: Path):
    """A name that merely looks like a malformed digest is what a planted entry looks like, so it
    can be removed or quarantined; one that tries to leave the store cannot."""
    for bad in ["sha256=../../etc", "sha256new_/AAAA", "../sha1=" + "a" * 40]:
        with pytest.raises(rh.UsageError):
            rh.remove_implementation(str(store), bad)
    planted = "sha256=not-a-real-digest"
    (store / planted).symlink_to("/etc")
    odd = "sha1new=\udcff\nnewline"  # not UTF-8, with a newline: still one entry name
    os.mkdir(os.path.join(os.fsencode(str(store)), os.fsencode(odd)))
    root = str(store.parents[3])
    assert "removed" in rh.run_verb("remove-implementation", [str(store), planted], root=root)
    assert "removed" in rh.run_verb("remove-implementation", [str(store), odd], root=root)
    assert os.listdir(store) == [] and Path("/etc/passwd").exists()


def test_the_log_names_the_user_pkexec_acted_for(monkeypatch):
    """main() replaces the environment with a fixed one; the log must still name PKEXEC_UID's
    user, not root."""
    logged: list[str] = []
    monkeypatch.setattr(rh, "_log", lambda message, priority=0: logged.append(message))
    monkeypatch.setattr(rh.os, "geteuid", lambda: 0)
    saved = dict(os.environ)
    monkeypatch.setenv("PKEXEC_UID", "1234")
    try:
        # The shared store is refused while tests run (no real root), so nothing is done.
        code = rh.main(["remove-implementation", rh.SHARED_STORE, DIGEST])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert code != rh.EXIT_OK
    assert logged and "for uid 1234" in logged[-1], logged
