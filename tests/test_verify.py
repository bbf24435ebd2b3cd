"""core.verify: the parallel engine gives 0install's verdicts, never crashes on a bad store, reports
progress and stops when cancelled. The stores are made by the real 0install; the references are
core.manifest.verify_directory (itself checked against 0install) and ``0install store audit``."""

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

from core import verify
from core.manifest import Change, VerifyOutcome, verify_directory
from core.verify import CHUNK, Progress, verify_paths
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


def live_workers() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith("verify-worker-") and t.is_alive()
    ]


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
    for path, ours in zip(good, results):
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
    results = dict(zip(labels, verify_paths([str(p) for p in mixed.values()], jobs=3)))
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
    for (label, path), ours in zip(mixed.items(), results):
        ref = verify_directory(path)
        assert_same_verdict(ours, ref, detail=label not in OWN_DETAIL)
        if label in ("malformed", "lower"):
            assert ours.detail.endswith(ref.detail)


@pytest.mark.parametrize(
    "tuning",
    [
        {"WALK_AHEAD_FILES": 1, "BATCH_FILES": 1, "BIG_FILE": 1, "CHUNK": 4096},
        {"WALK_AHEAD_FILES": 2, "BATCH_FILES": 3, "BATCH_BYTES": 10, "BIG_FILE": 1 << 30},
        {"BIG_FILE": 100_000, "CHUNK": 65536},
    ],
    ids=["every-file-a-big-task", "tiny-batches-no-big-files", "small-chunks"],
)
def test_any_scheduling_gives_the_same_verdicts(
    mixed: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tuning: dict[str, int]
) -> None:
    for name, value in tuning.items():
        monkeypatch.setattr(verify, name, value)
    seen: list[Progress] = []
    results = verify_paths(
        [str(p) for p in mixed.values()], jobs=3, on_progress=seen.append, progress_interval=0
    )
    for (label, path), ours in zip(mixed.items(), results):
        assert_same_verdict(ours, verify_directory(path), detail=label not in OWN_DETAIL)
    assert seen[-1].bytes_done == seen[-1].bytes_total


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
    for path, outcome in zip(entries, results):
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
    for ours, ref in zip(results, refs):
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
    """Changes between the walk and the hashing: read to the real end (as 0install), never crash."""
    victim = good[1]  # holds small and big files
    writable(victim)
    name, change, status, words = MID_RUN[what]
    real_plan_tree = verify.plan_tree

    def walk_then_change(root, algorithm, **kwargs):
        plan = real_plan_tree(root, algorithm, **kwargs)
        if os.fsdecode(root) == str(victim):
            change(victim / name)
        return plan

    monkeypatch.setattr(verify, "plan_tree", walk_then_change)
    results = verify_paths([str(p) for p in good], jobs=2)
    assert [r.status for r in results] == ["ok", status, "ok", "ok", "ok"]
    ours = results[1]
    assert ours is not None
    if status == "error":
        assert str(victim) in ours.detail and words in ours.detail
    else:
        # The walk saw the old size and mtime; the content read to its real end differs.
        assert ours.changes == [Change(words, "modified", ("content",))]


# -- callbacks, progress, cancel ----------------------------------------------------------------


def test_on_result_once_per_entry_with_its_index(mixed: dict[str, Path]) -> None:
    calls: list[tuple[int, VerifyOutcome, str]] = []

    def on_result(index: int, outcome: VerifyOutcome) -> None:
        calls.append((index, outcome, threading.current_thread().name))

    results = verify_paths([str(p) for p in mixed.values()], jobs=3, on_result=on_result)
    assert sorted(i for i, _, _ in calls) == list(range(len(mixed)))
    for index, outcome, thread in calls:
        assert outcome is results[index]
        assert thread.startswith("verify-worker-")  # a worker, not the caller


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


def test_cancel_during_a_long_walk_returns_without_waiting_for_it(
    good: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk stuck in one system call (a hung network filesystem, a single directory of millions
    of names) cannot be interrupted: a cancelled run must not wait for it, and the walker left
    behind must not report anything once verify_paths has returned."""
    walking = threading.Event()
    release = threading.Event()
    real_plan_tree = verify.plan_tree

    def endless_walk(root, algorithm, **kwargs):
        walking.set()
        release.wait(30)  # stands for a system call that does not return
        return real_plan_tree(root, algorithm, **kwargs)

    monkeypatch.setattr(verify, "plan_tree", endless_walk)
    cancel = threading.Event()
    calls: list[int] = []

    def on_progress(p: Progress) -> None:
        if walking.is_set():
            cancel.set()

    t0 = time.perf_counter()
    results = verify_paths(
        [str(good[0])],
        on_result=lambda i, o: calls.append(i),
        on_progress=on_progress,
        cancel=cancel,
        progress_interval=0,
    )
    assert time.perf_counter() - t0 < 5
    assert results == [None]
    release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("verify-worker-"):
            thread.join(10)
    assert calls == []


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
