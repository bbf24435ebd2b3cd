"""core.verify: the parallel engine gives 0install's verdicts, never crashes on a bad store, reports
progress and stops when cancelled. The stores are made by the real 0install; the references are
core.verify_entry.verify_directory (itself checked against 0install) and ``0install store
audit``."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from core import pool
from core.verify import CHUNK, Progress, verify_paths
from core.verify_entry import Change, VerifyOutcome, verify_directory
from tests.conftest import ZEROINSTALL, RealStore

MTIME = 1_600_000_000
FAKE_SHA256NEW = "sha256new_" + "A" * 52  # well-formed, matches no real contents

# The real 0install is the reference: without it these tests fail (the test command installs it)
# rather than quietly skip.
pytestmark = pytest.mark.needs_0install


# -- helpers ------------------------------------------------------------------------------------


def writable(path: Path) -> None:
    """0install makes implementations read-only; let the test damage one (needed unless root)."""
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)


def copy_impl(src: Path, dest: Path) -> Path:
    """Copy an implementation exactly (mtimes, modes, symlinks), e.g. to give it another name."""
    shutil.copytree(src, dest, symlinks=True)
    writable(dest)
    return dest


def live_workers() -> list[int]:
    """Worker processes still busy: every one must be back in the idle pool (or gone) after a
    run."""
    import psutil

    idle = set(pool.idle_workers())
    return [
        p.pid
        for p in psutil.Process().children()
        if p.pid not in idle
        and p.status() != psutil.STATUS_ZOMBIE
        and "pool_worker.py" in " ".join(p.cmdline())
    ]


def listing_hook(monkeypatch: pytest.MonkeyPatch, directory: Path, action) -> None:
    """Run ``action()`` once, right after ``directory`` has been listed (by os.scandir on a
    descriptor or a path, or os.listdir), before anything in it is opened: a deterministic way to
    change a tree in the middle of a walk in this process."""
    real_scandir, real_listdir = os.scandir, os.listdir
    done = []

    def is_it(where) -> bool:
        if isinstance(where, int):
            where = os.readlink(f"/proc/self/fd/{where}")
        return os.fsdecode(where).rstrip("/") == str(directory)

    def fire(where) -> None:
        if not done and is_it(where):
            done.append(1)
            action()

    class Scandir:
        def __init__(self, where):
            self.where = where
            self.it = real_scandir(where)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.it.close()

        def __iter__(self):
            yield from self.it
            fire(self.where)

    def listdir(where="."):
        names = real_listdir(where)
        fire(where)
        return names

    monkeypatch.setattr(os, "scandir", Scandir)
    monkeypatch.setattr(os, "listdir", listdir)


def assert_same_verdict(
    ours: VerifyOutcome | None, ref: VerifyOutcome, detail: bool = True
) -> None:
    assert ours is not None
    assert (ours.status, ours.expected, ours.actual, ours.recorded, ours.changes) == (
        ref.status,
        ref.expected,
        ref.actual,
        ref.recorded,
        ref.changes,
    )
    if detail:
        assert ours.detail == ref.detail


FILES = {
    "README": "Hello World\n",
    "bin/run": "!#!/bin/sh\necho run\n",
    "bin/link": "@run",
    "lib/empty": "",
    "lib/data.bin": bytes(range(256)) * 40,
    "lib/deep/er/module.py": "x = 1\n",
    "share/": "",
}


def big_files() -> dict[str, bytes]:
    """Files around the chunk size, so both read paths (one read / chunked) are exercised."""
    block = os.urandom(1 << 16)
    data = block * ((3 * CHUNK) // len(block) + 2)
    return {
        "big/exact": data[:CHUNK],
        "big/below": data[: CHUNK - 1],
        "big/above": data[: CHUNK + 1],
        "big/three": data[: 3 * CHUNK + 12345],
    }


@pytest.fixture
def good(real_store: RealStore) -> list[Path]:
    """Implementations added by the real 0install, with each algorithm."""
    return [
        real_store.add("plain", FILES),
        real_store.add("big", {**big_files(), "small": "x"}),
        real_store.add("sha256", FILES | {"alg": "sha256"}, algorithm="sha256"),
        real_store.add("sha1new", FILES | {"alg": "sha1new"}, algorithm="sha1new"),
        real_store.add("sha1", FILES | {"alg": "sha1"}, algorithm="sha1"),
    ]


@pytest.fixture
def mixed(real_store: RealStore, good: list[Path]) -> dict[str, Path]:
    """A store holding everything a bad cache can: damaged, planted, misnamed and odd entries."""
    store = real_store.path
    damaged = real_store.add("damaged", FILES | {"who": "damaged"})
    writable(damaged)
    (damaged / "README").write_text("Hello Wordl\n")
    os.utime(damaged / "README", (MTIME, MTIME))

    wrong_manifest = real_store.add("wrong-manifest", FILES | {"who": "wrong manifest"})
    writable(wrong_manifest)
    manifest = wrong_manifest / ".manifest"
    manifest.chmod(0o644)
    manifest.write_bytes(manifest.read_bytes().replace(b" README\n", b" README-renamed\n"))

    no_manifest = real_store.add("no-manifest", FILES | {"who": "no manifest"})
    writable(no_manifest)
    (no_manifest / ".manifest").unlink()

    fifo = copy_impl(good[0], store / ("sha256new_" + "F" * 52))
    os.mkfifo(fifo / "lib" / "pipe")

    lower = copy_impl(good[0], store / ("sha256new_" + good[0].name[len("sha256new_") :].lower()))
    malformed = copy_impl(good[0], store / "sha1new=deadbeef")
    (store / "tmp-xyz").mkdir()
    (store / "tmp-xyz" / "partial").write_text("half an unpack")
    copy_impl(good[0], store / ("sha256new=" + good[0].name[len("sha256new_") :]))
    (store / "md5=0123").mkdir()
    symlink = store / ("sha256new_" + "S" * 52)
    symlink.symlink_to(good[0])  # following it would find a perfectly good implementation
    planted_file = store / ("sha256new_" + "P" * 52)
    planted_file.write_text("#!/bin/sh\nrm -rf ~\n")
    return {
        **{f"good{i}": p for i, p in enumerate(good)},
        "damaged": damaged,
        "wrong-manifest": wrong_manifest,
        "no-manifest": no_manifest,
        "fifo": fifo,
        "lower": lower,
        "malformed": malformed,
        "tmp": store / "tmp-xyz",
        "loose": store / ("sha256new=" + good[0].name[len("sha256new_") :]),
        "md5": store / "md5=0123",
        "symlink": symlink,
        "planted-file": planted_file,
        "missing": store / ("sha256new_" + "M" * 52),
    }


# Entries whose detail is ours (a clearer reason); every other field is verify_directory's.
OWN_DETAIL = {"symlink", "planted-file", "malformed", "lower"}


# -- a good store -------------------------------------------------------------------------------


def test_store_made_by_0install_verifies(good: list[Path]) -> None:
    results = verify_paths([str(p) for p in good])
    assert [r.status for r in results] == ["ok"] * len(good)
    for path, ours in zip(good, results, strict=True):
        assert ours.expected == path.name == ours.actual == ours.recorded
        assert_same_verdict(ours, verify_directory(path))


def test_bytes_paths_and_trailing_slash(good: list[Path]) -> None:
    results = verify_paths([os.fsencode(good[0]), str(good[1]) + "/"])
    assert [r.status for r in results] == ["ok", "ok"]


def test_empty_list() -> None:
    seen: list[Progress] = []
    assert verify_paths([], on_progress=seen.append) == []
    assert len(seen) == 1 and seen[0].entries_total == 0 and seen[0].eta == 0.0


# -- damage -------------------------------------------------------------------------------------


def _content(impl: Path) -> None:
    (impl / "lib/data.bin").write_bytes(bytes(range(255, -1, -1)) * 40)  # same size
    os.utime(impl / "lib/data.bin", (MTIME, MTIME))


def _mtime(impl: Path) -> None:
    os.utime(impl / "README", (MTIME + 7, MTIME + 7))


def _exec_bit(impl: Path) -> None:
    (impl / "README").chmod(0o555)


def _added(impl: Path) -> None:
    (impl / "lib/deep/extra.py").write_text("print('planted')\n")
    os.utime(impl / "lib/deep/extra.py", (MTIME, MTIME))


def _removed(impl: Path) -> None:
    (impl / "lib/deep/er/module.py").unlink()


def _symlink_target(impl: Path) -> None:
    (impl / "bin/link").unlink()
    (impl / "bin/link").symlink_to("/bin/sh")


DAMAGE = {
    "content": (_content, Change("/lib/data.bin", "modified", ("content",))),
    "mtime": (_mtime, Change("/README", "modified", (f"mtime {MTIME} -> {MTIME + 7}",))),
    "exec bit": (_exec_bit, Change("/README", "modified", ("executable bit set",))),
    "added": (_added, Change("/lib/deep/extra.py", "added", ("file",))),
    "removed": (_removed, Change("/lib/deep/er/module.py", "removed", ("file",))),
    "symlink": (_symlink_target, Change("/bin/link", "modified", ("symlink target",))),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damage_is_found_and_named(real_store: RealStore, good: list[Path], kind: str) -> None:
    damage, change = DAMAGE[kind]
    impl = real_store.add("victim", FILES | {"victim": kind})
    writable(impl)
    damage(impl)
    results = verify_paths([str(good[0]), str(impl), str(good[1])], jobs=2)
    ours = results[1]
    assert ours is not None and ours.status == "corrupt"
    assert ours.changes == [change]
    assert change.path in ours.changes[0].describe()
    assert ours.recorded == ours.expected == impl.name != ours.actual
    assert "Contents changed since it was added" in ours.detail
    assert_same_verdict(ours, verify_directory(impl))
    assert [r.status for r in (results[0], results[2])] == ["ok", "ok"]


# -- bad stores ---------------------------------------------------------------------------------


def test_every_bad_entry_gets_a_reason_and_the_rest_completes(mixed: dict[str, Path]) -> None:
    labels = list(mixed)
    results = dict(zip(labels, verify_paths([str(p) for p in mixed.values()], jobs=3), strict=True))
    status = {label: r.status for label, r in results.items()}
    assert status == {
        **{f"good{i}": "ok" for i in range(5)},
        "damaged": "corrupt",
        "wrong-manifest": "corrupt",
        "no-manifest": "ok",
        "fifo": "corrupt",
        "lower": "corrupt",
        "malformed": "corrupt",
        "tmp": "skipped",
        "loose": "skipped",
        "md5": "skipped",
        "symlink": "corrupt",
        "planted-file": "corrupt",
        "missing": "error",
    }
    detail = {label: r.detail for label, r in results.items()}
    assert detail["wrong-manifest"] == (
        "The directory contents are correct, but the .manifest file is wrong."
    )
    assert detail["fifo"].startswith(
        f"Not a regular file/directory/symlink '{mixed['fifo'] / 'lib' / 'pipe'}'"
    )
    assert detail["tmp"].startswith("not an implementation: Unknown digest type 'tmp-xyz'")
    assert detail["loose"].startswith("not an implementation:")
    assert "the value of 'sha1new=deadbeef' is not 40 lower-case hex digits" in detail["malformed"]
    assert "upper-case base32" in detail["lower"]
    assert detail["symlink"].startswith(f"Planted symlink: '{mixed['symlink']}' is a symlink to")
    assert f"'{mixed['good0']}'" in detail["symlink"] and "not followed" in detail["symlink"]
    assert detail["planted-file"].startswith(
        f"Planted file: '{mixed['planted-file']}' is a regular"
    )
    assert "disappeared" in detail["missing"] and str(mixed["missing"]) in detail["missing"]
    for label in ("symlink", "planted-file", "malformed", "lower", "fifo", "missing"):
        assert results[label].expected == mixed[label].name


def test_same_verdicts_as_verify_directory(mixed: dict[str, Path]) -> None:
    results = verify_paths([str(p) for p in mixed.values()], jobs=4)
    for (label, path), ours in zip(mixed.items(), results, strict=True):
        ref = verify_directory(path)
        assert_same_verdict(ours, ref, detail=label not in OWN_DETAIL)
        if label in ("malformed", "lower"):
            assert ours.detail.endswith(ref.detail)


@pytest.mark.parametrize("alg", ["sha1", "sha1new", "sha256", "sha256new"])
def test_walks_handed_over_splice_to_the_same_manifest(tmp_path: Path, alg: str) -> None:
    """The busiest case of sharing one entry: the walk hands over half of what waits at every
    directory, each subtree is walked on its own (handing over again), and the text spliced back
    is the manifest of the whole walk, byte for byte."""
    from core.manifest import ManifestWalk, generate_manifest, open_entry, open_subtree, splice

    files = {
        f"d{i}/e{j}/f{k}": f"{i}{j}{k}" * (k + 1)
        for i in range(4)
        for j in range(3)
        for k in range(2)
    }
    files |= {"top": "t", "d1/link": "@../top", "d2/e1/g/h/i": "deep", "zz/": ""}
    root = write_tree_at(tmp_path / "t", files)
    parts: dict[bytes, list] = {}
    todo: list[tuple] = []
    walks = 0

    def walk(fd: int, subtree: tuple | None) -> list:
        nonlocal walks
        walks += 1
        w = ManifestWalk(os.fsencode(root), alg, tick=lambda: 1, give=todo.extend)
        return w.run(fd, *(subtree[0], subtree[3]) if subtree else ())

    fd, _st = open_entry(os.fsencode(root))
    top = walk(fd, None)
    os.close(fd)
    while todo:
        subtree = todo.pop()
        fd = open_subtree(os.fsencode(root), subtree)
        parts[subtree[0]] = walk(fd, subtree)
        os.close(fd)
    assert walks > 5
    assert splice(top, parts) == generate_manifest(root, alg)


def write_tree_at(root: Path, files: dict[str, str]) -> Path:
    from tests.conftest import write_tree

    return write_tree(root, files)


def test_jobs_1_and_4_agree(mixed: dict[str, Path]) -> None:
    paths = [str(p) for p in mixed.values()]
    assert verify_paths(paths, jobs=1) == verify_paths(paths, jobs=4)


def _audit(env: dict[str, str]) -> tuple[int, set[str], set[str], int]:
    """Run ``0install store audit``: (exit code, corrupt paths, skipped paths, verified count)."""
    proc = subprocess.run(
        [ZEROINSTALL, "store", "audit"],
        check=False,  # it exits 1 when something is corrupt
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    corrupt: set[str] = set()
    skipped: set[str] = set()
    verified = -1
    in_list = False
    for line in proc.stdout.splitlines():
        if line.startswith("Skipping non-implementation directory "):
            skipped.add(line.split("directory ", 1)[1])
        elif line == "List of corrupted or modified implementations:":
            in_list = True
        elif in_list and line.startswith("/"):
            corrupt.add(line)
        elif line.startswith("Successfully verified implementations: "):
            verified = int(line.rsplit(" ", 1)[1])
            in_list = False
        elif not line:
            in_list = False
    return proc.returncode, corrupt, skipped, verified


def test_same_verdicts_as_0install_store_audit(
    real_store: RealStore, mixed: dict[str, Path]
) -> None:
    # 0install 2.18's audit crashes on a regular file with a digest name; everything else stays.
    mixed.pop("planted-file").unlink()
    mixed.pop("missing")
    store = real_store.path
    entries = sorted(store.iterdir())
    assert set(entries) == set(mixed.values())
    code, corrupt, skipped, verified = _audit(real_store.env)
    results = verify_paths([str(p) for p in entries])
    by_status: dict[str, set[str]] = {}
    for path, outcome in zip(entries, results, strict=True):
        by_status.setdefault(outcome.status, set()).add(str(path))
    assert code == 1  # something is corrupt
    assert by_status["corrupt"] == corrupt
    assert by_status["skipped"] == skipped
    assert len(by_status["ok"]) == verified
    assert set(by_status) == {"ok", "corrupt", "skipped"}


def test_good_store_passes_0install_store_audit_too(
    real_store: RealStore, good: list[Path]
) -> None:
    code, corrupt, skipped, verified = _audit(real_store.env)
    assert (code, corrupt, skipped, verified) == (0, set(), set(), len(good))
    assert all(r.status == "ok" for r in verify_paths([str(p) for p in good]))


@contextlib.contextmanager
def as_nobody():
    """Permissions only stop an unprivileged user: as root, take nobody's uid for the block."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def open_dir():
    """A directory nobody can reach (tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="zia-verify-"))
    path.chmod(0o755)
    yield path
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path)


def test_unreadable_file_and_directory_are_errors(good: list[Path], open_dir: Path) -> None:
    file_case = copy_impl(good[0], open_dir / good[0].name)
    dir_case = copy_impl(good[1], open_dir / good[1].name)
    fine = copy_impl(good[2], open_dir / good[2].name)
    for path in (open_dir, file_case, dir_case, fine):
        for dirpath, _, _ in os.walk(path):
            os.chmod(dirpath, 0o755)
    (file_case / "lib/data.bin").chmod(0o000)
    (dir_case / "big").chmod(0o000)
    paths = [str(file_case), str(dir_case), str(fine)]
    with as_nobody():
        results = verify_paths(paths, jobs=2)
        refs = [verify_directory(p) for p in paths]
    assert [r.status for r in results] == ["error", "error", "ok"]
    assert results[0].detail == f"Cannot read '{file_case / 'lib/data.bin'}': Permission denied"
    assert results[1].detail == f"Cannot read '{dir_case / 'big'}': Permission denied"
    for ours, ref in zip(results, refs, strict=True):
        assert_same_verdict(ours, ref)


def _append(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"more")


def _truncate(path: Path) -> None:
    os.truncate(path, 1 if path.stat().st_size > 1 else 0)


def _to_symlink(path: Path) -> None:
    path.unlink()
    path.symlink_to("/etc/passwd")


MID_RUN = {
    # what happens right after the walk: (file, change, status, words in the detail or the change)
    "small file vanishes": ("small", Path.unlink, "error", "disappeared while it was being read"),
    "big file vanishes": ("big/three", Path.unlink, "error", "disappeared while it was being read"),
    "whole entry vanishes": ("", shutil.rmtree, "error", "disappeared while it was being read"),
    "file becomes a symlink": ("small", _to_symlink, "error", "turned into a symlink"),
    "small file grows": ("small", _append, "corrupt", "/small"),
    "big file grows": ("big/above", _append, "corrupt", "/big/above"),
    "small file shrinks": ("big/below", _truncate, "corrupt", "/big/below"),
    "big file shrinks": ("big/three", _truncate, "corrupt", "/big/three"),
}


@pytest.mark.parametrize("what", MID_RUN)
def test_entry_changing_mid_run(
    good: list[Path], monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """Changes between listing a directory and reading its files: never crash; a file that grew or
    shrank is described as it is when opened (read to that size plus one byte, never further)."""
    victim = good[1]  # holds small and big files
    writable(victim)
    name, change, status, words = MID_RUN[what]
    target = victim / name
    listing_hook(monkeypatch, target.parent if name else victim, lambda: change(target))
    results = verify_paths([str(p) for p in good], jobs=1)
    monkeypatch.undo()
    assert [r.status for r in results] == ["ok", status, "ok", "ok", "ok"]
    ours = results[1]
    assert ours is not None
    if status == "error":
        assert str(victim) in ours.detail and words in ours.detail
    else:
        # Read as it is when opened: the content differs (and its size and mtime with it).
        [changed] = ours.changes
        assert (changed.path, changed.change, changed.what[0]) == (words, "modified", "content")


# -- hostile trees ---------------------------------------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A private directory outside the store, shaped like the subdirectory it will replace."""
    return write_tree_at(tmp_path / "private", {"deeper/id_rsa": "PRIVATE KEY", "id_rsa.pub": "k"})


def _swap_for_symlink(directory: Path, target: Path) -> None:
    directory.rename(directory.with_name(directory.name + ".moved"))
    directory.symlink_to(target)


def test_directory_swapped_for_a_symlink_mid_run_is_never_followed(
    real_store: RealStore, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sub` becomes a symlink to a private directory right after `sub` itself was listed, before
    `sub/deeper` is read: reading `sub/deeper` by its path would follow it out of the store."""
    impl = real_store.add("hostile", {"sub/deeper/file": "x", "sub/a": "a", "top": "t"})
    writable(impl)
    listing_hook(monkeypatch, impl / "sub", lambda: _swap_for_symlink(impl / "sub", secret))
    [outcome] = verify_paths([str(impl)], jobs=1)  # in this process, where the hook is
    monkeypatch.undo()
    text = outcome.detail + " ".join(c.describe() for c in outcome.changes)
    assert "id_rsa" not in text
    # The walk went on in the real directory (moved, but still the one listed): nothing changed.
    assert outcome.status == "ok", text


def test_directory_swapped_for_a_symlink_to_dev_is_never_read(
    real_store: RealStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    impl = real_store.add("hostile-dev", {"sub/zero": "0", "sub/deeper/x": "x"})
    writable(impl)

    def swap() -> None:
        shutil.rmtree(impl / "sub")
        (impl / "sub").symlink_to("/dev")

    listing_hook(monkeypatch, impl, swap)
    [outcome] = verify_paths([str(impl)], jobs=1)
    monkeypatch.undo()
    assert outcome.status == "error"
    assert outcome.detail == f"'{impl / 'sub'}' turned into a symlink while it was being read"


def test_file_swapped_for_a_fifo_or_device_is_never_read(
    real_store: RealStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    impl = real_store.add("hostile-fifo", {"f": "data", "g": "more"})
    writable(impl)

    def swap() -> None:
        (impl / "f").unlink()
        os.mkfifo(impl / "f")

    listing_hook(monkeypatch, impl, swap)
    [outcome] = verify_paths([str(impl)], jobs=1)
    monkeypatch.undo()
    assert outcome.status == "error"
    assert outcome.detail == f"'{impl / 'f'}' was replaced while it was being read"


def test_huge_manifest_is_not_read(real_store: RealStore) -> None:
    from core.manifest import MANIFEST_LIMIT

    impl = real_store.add("huge-manifest", {"f": "data"})
    writable(impl)
    manifest = impl / ".manifest"
    manifest.chmod(0o644)
    with open(manifest, "r+b") as f:
        f.truncate(MANIFEST_LIMIT + 5 * (1 << 20))
    [outcome] = verify_paths([str(impl)], jobs=1)
    assert outcome.status == "corrupt"
    assert "is 69 MB, far larger than any implementation's manifest (at most 64 MB)" in (
        outcome.detail
    )
    assert len(outcome.detail) < 200 and not outcome.changes


def test_garbage_manifest_lines_are_cut_short(real_store: RealStore) -> None:
    impl = real_store.add("garbage-manifest", {"f": "data"})
    writable(impl)
    manifest = impl / ".manifest"
    manifest.chmod(0o644)
    manifest.write_bytes(b"F " + b"\x1b[2K" * 100_000 + b"\n")
    [outcome] = verify_paths([str(impl)], jobs=1)
    assert outcome.status == "corrupt"
    described = [c.describe() for c in outcome.changes]
    assert all(len(d) < 200 for d in described), described
    assert "\x1b" not in "".join(described)


# -- callbacks, progress, cancel ----------------------------------------------------------------


def test_on_result_once_per_entry_with_its_index(mixed: dict[str, Path]) -> None:
    calls: list[tuple[int, VerifyOutcome, str]] = []

    def on_result(index: int, outcome: VerifyOutcome) -> None:
        calls.append((index, outcome, threading.current_thread().name))

    results = verify_paths([str(p) for p in mixed.values()], jobs=3, on_result=on_result)
    assert sorted(i for i, _, _ in calls) == list(range(len(mixed)))
    for index, outcome, thread in calls:
        assert outcome is results[index]
        assert thread == threading.current_thread().name  # the caller's thread


def test_progress_is_monotonic_and_complete(mixed: dict[str, Path]) -> None:
    seen: list[Progress] = []
    paths = [str(p) for p in mixed.values()]
    verify_paths(paths, jobs=2, on_progress=seen.append, progress_interval=0)
    assert seen
    for before, after in itertools.pairwise(seen):
        assert after.entries_done >= before.entries_done
        assert after.bytes_done >= before.bytes_done
        assert after.bytes_total >= before.bytes_total
        assert after.elapsed >= before.elapsed
    last = seen[-1]
    assert last.entries_done == last.entries_total == len(paths)
    assert last.bytes_done == last.bytes_total > 3 * CHUNK
    assert last.eta == 0.0 and last.bytes_per_second > 0


def test_progress_is_throttled(good: list[Path]) -> None:
    stamps: list[float] = []
    interval = 0.05
    verify_paths(
        [str(p) for p in good] * 20,
        jobs=2,
        progress_interval=interval,
        on_progress=lambda p: stamps.append(p.elapsed),
    )
    gaps = [b - a for a, b in itertools.pairwise(stamps[:-1])]  # the final one may come any time
    assert all(gap >= interval for gap in gaps)


def test_progress_eta() -> None:
    p = Progress(entries_done=1, entries_total=4, bytes_done=100, bytes_total=400, elapsed=2.0)
    assert p.bytes_per_second == 50.0
    assert p.eta == 6.0
    assert Progress(0, 4, 0, 400, 0.5).eta is None


def test_cancel_from_on_result(good: list[Path]) -> None:
    cancel = threading.Event()
    calls: list[int] = []

    def on_result(index: int, outcome: VerifyOutcome) -> None:
        calls.append(index)
        cancel.set()

    paths = [str(p) for p in good] * 3
    results = verify_paths(paths, jobs=1, on_result=on_result, cancel=cancel)
    assert len(calls) == 1
    assert [i for i, r in enumerate(results) if r is not None] == calls
    assert results.count(None) == len(paths) - 1


def test_cancel_from_on_result_with_many_workers(good: list[Path]) -> None:
    cancel = threading.Event()
    calls: list[int] = []

    def on_result(index: int, outcome: VerifyOutcome) -> None:
        calls.append(index)
        cancel.set()

    paths = [str(p) for p in good] * 6
    results = verify_paths(paths, jobs=4, on_result=on_result, cancel=cancel)
    assert None in results
    assert sorted(calls) == [i for i, r in enumerate(results) if r is not None]


def test_cancel_from_on_progress_stops_inside_a_big_file(tmp_path: Path) -> None:
    """Hashing this 8 GB (sparse) file would take seconds; cancelling stops between chunks."""
    impl = tmp_path / FAKE_SHA256NEW
    impl.mkdir()
    with open(impl / "huge", "wb") as f:
        f.truncate(8 << 30)
    cancel = threading.Event()
    cancelled_at: list[float] = []
    seen: list[Progress] = []

    def on_progress(p: Progress) -> None:
        seen.append(p)
        if p.bytes_done > 0 and not cancel.is_set():
            cancel.set()
            cancelled_at.append(time.perf_counter())

    results = verify_paths([str(impl)], on_progress=on_progress, cancel=cancel, progress_interval=0)
    returned = time.perf_counter() - cancelled_at[0]
    assert results == [None]
    assert 0 < seen[-1].bytes_done < seen[-1].bytes_total == 8 << 30
    assert returned < 1.0, f"took {returned:.2f} s to stop"
    # ...and the worker really stopped: it was not just left behind.
    assert not live_workers()


def test_cancel_during_a_long_walk_returns_without_waiting_for_it(good: list[Path]) -> None:
    """A walk stuck in one system call (a hung network filesystem, a single directory of millions
    of names) cannot be interrupted: a cancelled run must not wait for it, the stuck worker is
    killed, and nothing is reported once verify_paths has returned."""
    import signal

    import psutil

    pool.shutdown()
    cancel = threading.Event()
    calls: list[int] = []
    stopped: list[int] = []

    def workers() -> list[int]:
        found = []
        for child in psutil.Process().children():
            try:
                if "pool_worker.py" in " ".join(child.cmdline()):
                    found.append(child.pid)
            except psutil.Error:  # gone, or a zombie of an earlier test not collected yet
                pass
        return found

    def on_result(index: int, outcome: VerifyOutcome) -> None:
        calls.append(index)
        # All the work is in the workers (work_here=False): a result means they are at it.
        if not stopped:
            for pid in workers():
                os.kill(pid, signal.SIGSTOP)  # stands for a call that never returns
                stopped.append(pid)
            cancel.set()

    returned = threading.Event()
    outcome: list[list] = []

    def run() -> None:
        outcome.append(
            verify_paths(
                [str(p) for p in good] * 40,
                jobs=2,
                on_result=on_result,
                cancel=cancel,
                work_here=False,
            )
        )
        returned.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # Waiting for a stopped worker would never end: a guard against that hang, not a timing.
    assert returned.wait(120), "verify_paths waited for the stuck workers"
    [results] = outcome
    assert stopped and results.count(None) > 0
    assert sorted(calls) == [i for i, r in enumerate(results) if r is not None]
    assert not set(stopped) & set(pool.idle_workers())  # the stuck ones were not kept
    for pid in stopped:  # killed and collected, not left stopped
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
    assert not live_workers()


def test_exception_in_a_callback_reaches_the_caller(good: list[Path]) -> None:
    def on_result(index: int, outcome: VerifyOutcome) -> None:
        raise RuntimeError("the GUI broke")

    with pytest.raises(RuntimeError, match="the GUI broke"):
        verify_paths([str(p) for p in good], jobs=2, on_result=on_result)
    assert not live_workers()


def test_no_worker_left_behind(good: list[Path]) -> None:
    verify_paths([str(p) for p in good], jobs=4)
    assert not live_workers()


def test_read_only_modes_survive(good: list[Path]) -> None:
    """Verification only reads: modes and mtimes of the store are untouched."""
    before = {p: os.lstat(p) for p in good[0].rglob("*")}
    verify_paths([str(good[0])])
    for p, st in before.items():
        now = os.lstat(p)
        assert (stat.S_IMODE(now.st_mode), now.st_mtime_ns) == (
            stat.S_IMODE(st.st_mode),
            st.st_mtime_ns,
        )


def test_access_times_are_left_alone(good: list[Path]) -> None:
    """atime is the only 'last used' record; hashing must not reset it (relatime would here)."""
    files = [p for p in good[1].rglob("*") if p.is_file() and not p.is_symlink()]
    old = MTIME - 3600  # before the mtime: any ordinary read would update it under relatime
    for p in files:
        os.utime(p, ns=(old * 10**9, os.lstat(p).st_mtime_ns))
    assert verify_paths([str(good[1])])[0].status == "ok"
    assert {os.lstat(p).st_atime_ns for p in files} == {old * 10**9}


def test_one_big_entry_is_shared_between_workers(
    real_store: RealStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing else queued, the idle worker gets subtrees of the busy one's entry; the text
    spliced back gives the same verdict as one walk."""
    files = {f"d{i}/e{j}/f": os.urandom(300_000) for i in range(8) for j in range(6)}
    impl = real_store.add("big-one", files)
    handed: list[bytes] = []
    real_add = pool.Run.add

    def recording(self, units, first=False):
        units = list(units)
        handed.extend(u[2] for u in units if u[2])  # subtrees: a path inside the entry
        return real_add(self, units, first)

    pool.shutdown()
    verify_paths([str(impl)] * 4, jobs=3)  # the workers have started and said they are ready
    monkeypatch.setattr(pool.Run, "add", recording)
    [outcome] = verify_paths([str(impl)], jobs=3)
    assert outcome.status == "ok", outcome.detail
    assert handed  # work was handed over
    assert_same_verdict(outcome, verify_directory(impl))


def test_workers_begin_before_every_entry_is_prepared(
    good: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries are prepared in batches, and the workers are given each batch at once (on a
    re-check of unchanged entries, preparing them all first would be half the time)."""
    paths = [str(p) for p in good] * 4
    expected = [o.status for o in verify_paths(paths, jobs=2)]  # a worker has started and is ready
    monkeypatch.setattr("core.verify.PREPARE_BATCH", 3)
    sent: list[int] = []  # chunks sent to the worker so far, at each start()
    real_start = pool.Run.start

    def start(self: pool.Run) -> None:
        real_start(self)
        sent.append(self.next_chunk)

    monkeypatch.setattr(pool.Run, "start", start)
    outcomes = verify_paths(paths, jobs=2)
    assert [o.status for o in outcomes] == expected == ["ok"] * len(paths)
    assert len(sent) == -(-len(paths) // 3)  # one start() per batch
    assert sent[0] >= 1, "the first batch went to the worker at once"
    assert not live_workers()


def test_a_failure_while_preparing_gives_the_workers_back(
    good: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(p) for p in good] * 4
    verify_paths(paths, jobs=2)  # a worker has started and is ready
    monkeypatch.setattr("core.verify.PREPARE_BATCH", 3)

    def known(index: int, path: bytes) -> None:
        if index == 10:
            raise RuntimeError("the records broke")

    with pytest.raises(RuntimeError, match="the records broke"):
        verify_paths(paths, jobs=2, known=known, on_keys=lambda i, d: None)
    assert not live_workers()
    assert pool.idle_workers()  # given back, and usable by the next run
    assert [o.status for o in verify_paths(paths, jobs=2)] == ["ok"] * len(paths)
