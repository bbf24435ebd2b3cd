"""The cache model on real stores: classification, sizes against du, feeds and apps, measuring in
parallel, cancelling, and what happens when the filesystem changes or refuses under us."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections import namedtuple
from pathlib import Path

import pytest

from core import cache, measure, pool, pool_worker, stores, treewalk
from core.cache import Entry
from core.digests import is_strict_digest_name
from core.feeds import ZI_NAMESPACE
from core.measure import Usage
from core.stores import Store
from core.treewalk import measure_walk
from tests.conftest import RealStore, write_tree

ROOT = Path(__file__).resolve().parent.parent
GOOD_SHA256NEW = "sha256new_" + "A" * 52
GOOD_SHA1NEW = "sha1new=" + "a" * 40


def store_at(path: Path) -> Store:
    return stores.stores_from_paths([str(path)])[0]


def by_name(entries: list[Entry]) -> dict[str, Entry]:
    return {e.name: e for e in entries}


def du(path: Path, *options: str) -> int:
    out = subprocess.run(["du", "-s", *options, str(path)], capture_output=True, check=True)
    return int(out.stdout.split()[0])


# --- classification ------------------------------------------------------------------------------


@pytest.mark.needs_0install
def test_every_kind_of_entry(real_store: RealStore, tmp_path: Path) -> None:
    impl = real_store.add("hello", {"hello": "!#!/bin/sh\necho hi\n", "doc/README": "hi"})
    store_dir = real_store.path
    evil = tmp_path / "evil"
    write_tree(evil, {"payload": "!#!/bin/sh\nrm -rf ~\n"})
    (store_dir / GOOD_SHA256NEW).symlink_to(evil)
    (store_dir / GOOD_SHA1NEW).write_text("not a directory")
    (store_dir / ("sha256new_" + "a" * 52)).mkdir()  # lower-case base32
    (store_dir / ("sha256=" + "F" * 64)).mkdir()  # upper-case hex
    (store_dir / "sha1new=deadbeef").mkdir()  # malformed value
    writable = store_dir / ("sha1=" + "b" * 40)
    writable.mkdir()
    writable.chmod(0o775)
    everyone = store_dir / ("sha256=" + "c" * 64)
    everyone.mkdir()
    everyone.chmod(0o777)
    (store_dir / "tmp-x1y2z3").mkdir()
    (store_dir / "0install-abc").mkdir()
    (store_dir / "tmp-file").write_text("")
    (store_dir / "notes.txt").write_text("hello")
    (store_dir / "sha256new=ABC").mkdir()
    (store_dir / ("SHA256NEW_" + "A" * 52)).mkdir()
    (store_dir / "dangling").symlink_to(tmp_path / "nowhere")

    entries = by_name(cache.list_entries([store_at(store_dir)]))
    kinds = {name: e.kind for name, e in entries.items()}
    assert kinds == {
        impl.name: "implementation",
        GOOD_SHA256NEW: "suspicious",
        GOOD_SHA1NEW: "suspicious",
        "sha256new_" + "a" * 52: "suspicious",
        "sha256=" + "F" * 64: "suspicious",
        "sha1new=deadbeef": "suspicious",
        "sha1=" + "b" * 40: "suspicious",
        "sha256=" + "c" * 64: "suspicious",
        "tmp-x1y2z3": "temporary",
        "0install-abc": "temporary",
        "tmp-file": "temporary",
        "notes.txt": "unknown",
        "sha256new=ABC": "unknown",
        "SHA256NEW_" + "A" * 52: "unknown",
        "dangling": "unknown",
    }
    good = entries[impl.name]
    assert good.reason == "" and good.digest is not None and good.digest.name == impl.name
    assert good.program == "(unowned)" and good.version == "" and good.used_by == []
    assert good.owner == "root" if os.geteuid() == 0 else good.owner
    # Added: when 0install wrote the .manifest, not the directory's ctime.
    assert stat.S_ISDIR(good.mode) and good.added_from == "manifest"
    assert good.added == pytest.approx((impl / ".manifest").lstat().st_mtime)
    assert good.path == os.path.join(str(store_dir), impl.name)

    def reason(name: str) -> str:
        return entries[name].reason

    assert reason(GOOD_SHA256NEW) == (
        f"a symlink to {evil} named like an implementation, planted in the store: "
        "0install would run whatever it points at"
    )
    assert entries[GOOD_SHA256NEW].digest is not None  # parsed, even though suspicious
    # No feed lists it: unowned, whatever else is wrong (the status says what is wrong).
    assert entries[GOOD_SHA256NEW].program == "(unowned)"
    issues = {name: e.issue for name, e in entries.items() if e.issue}
    assert issues == {
        GOOD_SHA256NEW: "planted",
        GOOD_SHA1NEW: "not-a-directory",
        "sha256new_" + "a" * 52: "digest-case",
        "sha256=" + "F" * 64: "digest-case",
        "sha1new=deadbeef": "bad-digest",
        "sha1=" + "b" * 40: "group-writable",
        "sha256=" + "c" * 64: "world-writable",
    }
    assert reason(GOOD_SHA1NEW).startswith("a regular file named like an implementation")
    assert "store audit" in reason(GOOD_SHA1NEW)
    assert "in lower case" in reason("sha256new_" + "a" * 52)
    assert "in upper case" in reason("sha256=" + "F" * 64)
    assert "not 40 lower-case hex digits" in reason("sha1new=deadbeef")
    group_writable = reason("sha1=" + "b" * 40)
    assert "writable by its group" in group_writable and "(mode 0775)" in group_writable
    assert "writable by everyone (mode 0777)" in reason("sha256=" + "c" * 64)
    assert "interrupted download" in reason("tmp-x1y2z3")
    assert "0install for Windows" in reason("0install-abc")
    assert reason("tmp-file").startswith("a regular file with a temporary-directory name")
    assert reason("notes.txt").startswith(
        "a regular file whose name is not an implementation digest"
    )
    assert "sha256new_" in reason("sha256new=ABC")
    assert "wrong case" in reason("SHA256NEW_" + "A" * 52)
    assert reason("dangling").startswith(f"a symlink to {tmp_path / 'nowhere'}")
    assert entries["tmp-x1y2z3"].program == "(temporary)"
    assert entries["notes.txt"].program == "(not an implementation)"
    # Without a .manifest, "added" is the directory's (or the link's) own mtime.
    assert entries["tmp-x1y2z3"].added_from == "directory"
    assert entries["tmp-x1y2z3"].added == pytest.approx((store_dir / "tmp-x1y2z3").lstat().st_mtime)
    for e in entries.values():
        assert e.reason.count(".") <= 2, e.reason  # one sentence (dots in names aside)
        assert e.usage is None

    # The planted symlink was never followed: measuring it measures the link, not /tmp/evil.
    link_usage = measure.measure(entries[GOOD_SHA256NEW])
    assert link_usage.files == 1 and link_usage.size == len(str(evil))
    # classify() says the same as list_entries() about a single name.
    again = cache.classify(store_at(store_dir), GOOD_SHA256NEW)
    assert (again.kind, again.reason) == ("suspicious", reason(GOOD_SHA256NEW))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to other users needs root")
def test_owner_must_be_the_store_owner_or_root(tmp_path: Path) -> None:
    store_dir = tmp_path / "shared"
    store_dir.mkdir()
    os.chown(store_dir, 65534, 65534)  # a store owned by "nobody", like zeroinst's
    names = {
        "root": "sha1new=" + "1" * 40,
        "nobody": "sha1new=" + "2" * 40,
        "stranger": "sha1new=" + "3" * 40,
    }
    for name in names.values():
        (store_dir / name).mkdir()
    os.chown(store_dir / names["nobody"], 65534, 65534)
    os.chown(store_dir / names["stranger"], 4242, 4242)
    for name in ("tmp-mine", "tmp-theirs", "junk"):
        (store_dir / name).mkdir()
    os.chown(store_dir / "tmp-mine", 65534, 65534)
    os.chown(store_dir / "tmp-theirs", 4242, 4242)
    os.chown(store_dir / "junk", 4242, 4242)
    entries = by_name(cache.list_entries([store_at(store_dir)]))
    assert entries["tmp-mine"].kind == "temporary"
    # Not left by 0install: whoever owns them can write into the store.
    assert entries["tmp-theirs"].kind == "suspicious"
    assert entries["tmp-theirs"].reason == (
        "a directory owned by 4242, not by the store's owner (nobody) or root: "
        "4242 can write into this store"
    )
    assert entries["junk"].kind == "suspicious"
    assert entries[names["root"]].kind == "implementation"
    assert entries[names["nobody"]].kind == "implementation"
    assert entries[names["nobody"]].owner == "nobody"
    stranger = entries[names["stranger"]]
    assert stranger.kind == "suspicious" and stranger.owner == "4242"
    assert stranger.reason.startswith("owned by 4242, not by the store's owner (nobody) or root")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to nobody needs root")
def test_entry_of_another_user_in_my_store(tmp_path: Path) -> None:
    name = "sha256new_" + "B" * 52
    (tmp_path / name).mkdir()
    os.chown(tmp_path / name, 65534, 65534)
    entry = cache.classify(store_at(tmp_path), name)
    assert entry.kind == "suspicious" and entry.owner == "nobody"
    assert "nobody could change what 0install runs" in entry.reason


def test_classify_an_entry_that_vanished(tmp_path: Path) -> None:
    entry = cache.classify(store_at(tmp_path), GOOD_SHA1NEW)
    assert entry.kind == "unknown" and "disappeared" in entry.reason
    assert entry.digest is not None and entry.digest.algorithm == "sha1new"


def test_ten_thousand_entries(tmp_path: Path) -> None:
    store_dir = tmp_path / "big"
    store_dir.mkdir()
    expected: dict[str, str] = {}
    for i in range(10_000):
        raw = i.to_bytes(4, "big") * 8
        name = "sha256new_" + base64.b32encode(raw).decode().rstrip("=")
        os.mkdir(store_dir / name)
        expected[name] = "implementation"
    for name, kind in (("tmp-1", "temporary"), ("junk", "unknown"), ("sha1new=x", "suspicious")):
        os.mkdir(store_dir / name)
        expected[name] = kind
    entries = cache.list_entries([store_at(store_dir)])
    assert len(entries) == len(expected)
    assert {e.name: e.kind for e in entries} == expected
    assert [e.name for e in entries] == sorted(expected)
    assert all(is_strict_digest_name(e.name) for e in entries if e.kind == "implementation")


def test_stores_with_problems_are_skipped(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "tmp-1").mkdir()
    found = stores.stores_from_paths([str(tmp_path / "missing"), str(ok)])
    assert [e.name for e in cache.list_entries(found)] == ["tmp-1"]


# --- sizes ---------------------------------------------------------------------------------------


def build_measured_tree(root: Path, outside: Path) -> Path:
    write_tree(outside, {"huge": "x" * 200_000})
    write_tree(
        root,
        {
            "a.txt": "hello",
            "bin/run": "!#!/bin/sh\necho run\n",
            "lib/one/two/three/deep.dat": "d" * 50_000,
            "lib/empty/": "",
            "lib/link": "@../a.txt",
            "escape": f"@{outside}",  # a symlink out of the entry: never followed
        },
    )
    os.link(root / "lib/one/two/three/deep.dat", root / "hardlink.dat")
    os.link(root / "a.txt", root / "lib/one/a-again.txt")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(5_000_000)
    return root


def test_sizes_match_du(tmp_path: Path) -> None:
    entry_dir = build_measured_tree(tmp_path / "store" / GOOD_SHA1NEW, tmp_path / "outside")
    entry = cache.classify(store_at(tmp_path / "store"), GOOD_SHA1NEW)
    usage = measure.measure(entry)
    assert usage.error is None
    assert usage.size == du(entry_dir, "-b")
    assert usage.disk == du(entry_dir, "--block-size=1")
    assert usage.size > 5_000_000 > usage.disk  # the sparse file is big but takes no room
    # a.txt, run, deep.dat, link, escape, sparse.img; the two extra hard links count once.
    assert usage.files == 6
    assert usage.size < 5_000_000 + 100_000  # the 200 kB outside the entry were not counted


def test_last_used_is_the_newest_file_atime(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s" / GOOD_SHA1NEW, {"a": "1", "sub/b": "2", "sub/deeper/": ""})
    os.utime(root / "a", (1_600_000_000, 1_600_000_000))
    os.utime(root / "sub/b", (1_650_000_000.5, 1_600_000_000))
    # Directory access times are ignored: listing a directory (as measuring does) touches them.
    os.utime(root / "sub/deeper", (1_700_000_000, 1_600_000_000))
    usage = measure.measure(cache.classify(store_at(tmp_path / "s"), GOOD_SHA1NEW))
    assert usage.last_used == 1_650_000_000.5
    empty = write_tree(tmp_path / "s" / GOOD_SHA256NEW, {"only/dirs/": ""})
    assert measure.measure(cache.classify(store_at(empty.parent), GOOD_SHA256NEW)).last_used is None


def test_symlink_access_times_are_not_last_use(tmp_path: Path) -> None:
    """Verifying reads every symlink (readlink moves its atime; there is no O_NOATIME for it), so a
    symlink's atime says nothing about use: only regular files count, and a planted top-level
    symlink has no last use at all."""
    root = write_tree(tmp_path / "s" / GOOD_SHA1NEW, {"a": "1", "link": "@a"})
    os.utime(root / "a", (1_600_000_000, 1_600_000_000))
    os.utime(root / "link", (1_700_000_000, 1_600_000_000), follow_symlinks=False)
    store = store_at(tmp_path / "s")
    assert measure.measure(cache.classify(store, GOOD_SHA1NEW)).last_used == 1_600_000_000
    (tmp_path / "s" / GOOD_SHA256NEW).symlink_to(root)
    planted = measure.measure(cache.classify(store, GOOD_SHA256NEW))
    assert planted.files == 1 and planted.last_used is None


def test_unreadable_subdirectory_is_reported_and_the_rest_counted(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if os.geteuid() != 0:
        root = write_tree(tmp_path / GOOD_SHA1NEW, {"ok/file": "x" * 1000, "locked/secret": "s"})
        (root / "locked").chmod(0)
        try:
            usage = measure._measure_path(os.fsencode(root))
        finally:
            (root / "locked").chmod(0o755)
    else:
        # Root reads everything: measure as "nobody" in a child process, with a copy of the code
        # it can read (a clone in /root is out of its reach), on a tree in a directory it can reach.
        others = request.getfixturevalue("code_for_other_users")
        base = Path(tempfile.mkdtemp(prefix="zia-measure-"))
        try:
            base.chmod(0o755)
            root = write_tree(base / GOOD_SHA1NEW, {"ok/file": "x" * 1000, "locked/secret": "s"})
            (root / "locked").chmod(0o700)
            code = others.prelude() + (
                "import os; from core.measure import _measure_path; "
                "u = _measure_path(os.fsencode(sys.argv[1])); "
                "print(u.size, u.disk, u.files, repr(u.error))"
            )
            out = subprocess.run(
                [others.python, "-I", "-B", "-c", code, str(root)],
                user=65534,
                cwd="/",
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split(" ", 3)
            usage = Usage(int(out[0]), int(out[1]), int(out[2]), None, eval(out[3]))
        finally:
            shutil.rmtree(base)
    assert usage.error == "1 directory could not be read: Permission denied"
    assert usage.files == 1  # ok/file; locked/secret could not be seen
    assert usage.size >= 1000


def test_entries_vanishing_mid_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree(
        tmp_path / "s" / GOOD_SHA1NEW,
        {
            "keep/a": "a" * 100,
            "keep/b": "b" * 100,
            "gone-dir/c": "c",
            "gone-file": "g",
        },
    )
    real_scandir = os.scandir

    class Vanishing:
        """scandir() whose listing loses 'gone-file' between readdir and lstat, and whose
        'gone-dir' is removed after its parent listed it (the walker lists open directories,
        so names are relative to the descriptor it passes)."""

        def __init__(self, where):
            self._it = real_scandir(where)
            self._fd = where if isinstance(where, int) else None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._it.close()

        def _remove(self, e, remove):
            if self._fd is None:
                remove(e.path)
            else:
                remove(e.name, dir_fd=self._fd)

        def __iter__(self):
            for e in self._it:
                if os.fsencode(e.name) == b"gone-file":
                    self._remove(e, os.unlink)
                yield e
                if os.fsencode(e.name) == b"gone-dir":
                    self._remove(e, shutil.rmtree)

    monkeypatch.setattr(os, "scandir", Vanishing)
    usage = measure._measure_path(os.fsencode(root))
    monkeypatch.undo()
    assert usage.error == "2 entries disappeared while being measured"
    assert usage.files == 2  # keep/a and keep/b
    assert usage.size >= 200


def test_directory_swapped_for_a_symlink_mid_scan_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = write_tree(tmp_path / "outside", {f"f{i}": "o" * 10_000 for i in range(20)})
    root = write_tree(tmp_path / "s" / GOOD_SHA1NEW, {"sub/file": "s", "plain": "p"})
    real_scandir = os.scandir

    def swapping(where):
        return _Swapper(real_scandir(where))

    class _Swapper:
        """A listing after which 'sub', just seen as a directory, is replaced by a symlink."""

        def __init__(self, it):
            self._it = it

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._it.close()

        def __iter__(self):
            for e in self._it:
                yield e
                if os.fsencode(e.name) == b"sub":  # listed as a directory; now swap it
                    shutil.rmtree(root / "sub")
                    (root / "sub").symlink_to(outside)

    monkeypatch.setattr(os, "scandir", swapping)
    usage = measure._measure_path(os.fsencode(root))
    monkeypatch.undo()
    assert usage.error is not None and "not followed" in usage.error
    assert usage.size < 10_000  # nothing of what the symlink points at was counted
    assert usage.files == 1  # plain


def test_directory_swapped_above_the_one_being_read_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sub` becomes a symlink right after it was listed, before `sub/deeper` is read: opening
    `sub/deeper` by its path (O_NOFOLLOW guards only the last component) would follow `sub`."""
    outside = write_tree(tmp_path / "outside", {f"deeper/f{i}": "o" * 10_000 for i in range(20)})
    root = write_tree(
        tmp_path / "s" / GOOD_SHA1NEW, {"sub/deeper/file": "s", "sub/a": "a", "top": "t"}
    )
    real_scandir = os.scandir

    class Swapping:
        def __init__(self, where):
            self._where = where
            self._it = real_scandir(where)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._it.close()

        def __iter__(self):
            yield from self._it
            where = self._where
            if isinstance(where, int):
                where = os.readlink(f"/proc/self/fd/{where}")
            if os.fsdecode(where) == str(root / "sub"):
                (root / "sub").rename(root / "sub.moved")
                (root / "sub").symlink_to(outside)

    monkeypatch.setattr(os, "scandir", Swapping)
    usage = measure._measure_path(os.fsencode(root))
    monkeypatch.undo()
    assert usage.size < 100_000  # nothing of what the symlink points at (200 kB) was counted
    assert usage.files == 3  # the walk went on in the real directory, wherever it moved


# --- measure_all ---------------------------------------------------------------------------------


def many_entries(tmp_path: Path, count: int = 40) -> list[Entry]:
    store_dir = tmp_path / "many"
    for i in range(count):
        files = {f"d{j}/f{k}": "x" * (i * 37 + j + k) for j in range(i % 7 + 1) for k in range(5)}
        write_tree(store_dir / f"sha1new={i:040x}", files)
    (store_dir / "link").symlink_to(tmp_path)
    (store_dir / "tmp-file").write_text("t")
    return cache.list_entries([store_at(store_dir)])


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_measure_all_reports_each_entry_once_with_exact_results(tmp_path: Path, jobs: int) -> None:
    entries = many_entries(tmp_path)
    expected = {e.name: measure.measure(e) for e in entries}
    got: dict[str, Usage] = {}
    threads: set[str] = set()

    def on_result(entry: Entry, usage: Usage) -> None:
        assert entry.name not in got
        got[entry.name] = usage
        threads.add(threading.current_thread().name)

    measure.measure_all(entries, on_result, jobs=jobs)
    assert got == expected
    assert threads == {threading.current_thread().name}  # results come back in this thread
    assert all(e.usage is None for e in entries)  # storing it is the caller's business


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    store_dir = os.fsencode(tmp_path / "store")
    os.mkdir(store_dir)
    for top in (b"tmp-\xff\xfe", b"caf\xe9"):
        os.mkdir(store_dir + b"/" + top)
        for sub in (b"d\x80", b"plain"):
            os.mkdir(store_dir + b"/" + top + b"/" + sub)
            with open(store_dir + b"/" + top + b"/" + sub + b"/f\xff", "wb") as f:
                f.write(b"z" * 300)
    entries = cache.list_entries([store_at(tmp_path / "store")])
    assert sorted(os.fsencode(e.name) for e in entries) == [b"caf\xe9", b"tmp-\xff\xfe"]
    assert {e.kind for e in entries} == {"temporary", "unknown"}
    expected = {e.name: measure.measure(e) for e in entries}
    assert all(u.files == 2 and u.error is None for u in expected.values())
    assert measure_on_helpers(entries, 2) == expected


def test_splitting_an_entry_counts_everything_once(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / GOOD_SHA1NEW,
        {
            f"p{i}/q{j}/f{k}": "y" * (i + j + k)
            for i in range(6)
            for j in range(4)
            for k in range(3)
        },
    )
    os.link(root / "p0/q0/f0", root / "p5/q3/hard")  # a hard link across the split parts
    whole = measure._measure_path(os.fsencode(root))
    given: list[tuple[bytes, int, int]] = []
    tally = measure._Tally()
    tally.add(measure_walk(os.fsencode(root), tick=lambda: 1, give=given.extend))
    assert given  # it did hand work over
    while given:
        rel, dev, ino = given.pop()
        tick = lambda: int(len(given) < 3)  # noqa: E731
        tally.add(measure_walk(os.fsencode(root), rel, dev, ino, tick, given.extend))
    assert tally.usage() == whole
    assert whole.size == du(root, "-b") and whole.disk == du(root, "--block-size=1")


def test_big_single_entry_with_helpers(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "s" / GOOD_SHA1NEW,
        {f"p{i}/q{j}/f{k}": "z" * k for i in range(20) for j in range(10) for k in range(4)},
    )
    entry = cache.classify(store_at(root.parent), GOOD_SHA1NEW)
    got: list[Usage] = []
    measure.measure_all([entry], lambda e, u: got.append(u), jobs=2)
    assert got == [measure.measure(entry)]
    assert got[0].size == du(root, "-b")


@pytest.mark.parametrize("jobs", [1, 2])
def test_cancel_stops_reporting_at_once(tmp_path: Path, jobs: int) -> None:
    entries = many_entries(tmp_path)
    cancel = threading.Event()
    calls: list[str] = []

    def on_result(entry: Entry, usage: Usage) -> None:
        calls.append(entry.name)
        cancel.set()

    measure.measure_all(entries, on_result, cancel=cancel, jobs=jobs)
    assert len(calls) == 1
    measure.measure_all(entries, on_result, cancel=cancel, jobs=jobs)  # already cancelled
    assert len(calls) == 1


def test_cancel_inside_a_big_entry(tmp_path: Path) -> None:
    root = write_tree(tmp_path / GOOD_SHA1NEW, {f"d{i}/f": "x" for i in range(50)})
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(measure._Cancelled):
        measure._measure_path(os.fsencode(root), cancel)


def test_error_in_on_result_is_raised(tmp_path: Path) -> None:
    entries = many_entries(tmp_path, 10)

    def on_result(entry: Entry, usage: Usage) -> None:
        raise RuntimeError("the GUI went away")

    with pytest.raises(RuntimeError, match="GUI went away"):
        measure.measure_all(entries, on_result, jobs=2)


def measure_on_helpers(entries: list[Entry], workers: int) -> dict[str, Usage]:
    """measure_all on worker processes (this thread only coordinates)."""
    got: dict[str, Usage] = {}
    measure.measure_all(entries, lambda e, u: got.__setitem__(e.name, u), jobs=max(2, workers))
    return got


def psutil_process(pid: int):
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return type("Gone", (), {"wait": staticmethod(lambda timeout: None)})()


def worker_pids() -> list[int]:
    import psutil

    return [
        p.pid
        for p in psutil.Process().children()
        if "pool_worker.py" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE
    ]


def test_helpers_measure_exactly_like_this_thread(tmp_path: Path) -> None:
    entries = many_entries(tmp_path, 30)
    measure.shutdown_helpers()
    assert measure_on_helpers(entries, 3) == {e.name: measure.measure(e) for e in entries}
    # Once started, workers are kept for the next call (jobs=3: this thread and two workers).
    assert len(pool.idle_workers()) == 2
    assert measure_on_helpers(entries, 3) == {e.name: measure.measure(e) for e in entries}
    measure.shutdown_helpers()
    assert pool.idle_workers() == []
    # Started ahead of time (not waited for), they are used by the next call.
    measure.prepare_measuring(jobs=3)
    started = set(pool.idle_workers())
    assert len(started) == 2
    assert measure_on_helpers(entries, 3) == {e.name: measure.measure(e) for e in entries}
    assert set(pool.idle_workers()) == started
    measure.shutdown_helpers()


def test_workers_alone_measure_exactly_like_this_thread(tmp_path: Path) -> None:
    """work_here=False (a window's process): every unit goes to the workers."""
    entries = many_entries(tmp_path, 30)
    got: dict[str, Usage] = {}
    measure.measure_all(entries, lambda e, u: got.__setitem__(e.name, u), jobs=2, work_here=False)
    assert got == {e.name: measure.measure(e) for e in entries}


@pytest.mark.parametrize("when", [1, 5, 25])
def test_a_worker_that_dies_has_its_work_redone(tmp_path: Path, when: int) -> None:
    """A worker killed mid-run (after the when-th result): its unanswered units are done again,
    every entry is reported once, with exact results, and the dead worker is not kept."""
    import signal

    measure.shutdown_helpers()
    entries = many_entries(tmp_path, 40)
    expected = {e.name: measure.measure(e) for e in entries}
    got: dict[str, Usage] = {}
    killed: list[int] = []

    def on_result(entry: Entry, usage: Usage) -> None:
        assert entry.name not in got
        got[entry.name] = usage
        # At the when-th result, or the first after it once a worker is there to kill (on a
        # busy machine this thread may answer the first units before the worker is listed).
        pids = worker_pids() if len(got) >= when and not killed else []
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    measure.measure_all(entries, on_result, jobs=2)
    assert got == expected
    assert killed, "no worker was running to be killed"
    psutil_process(killed[0]).wait(5)  # SIGKILL takes effect soon, not at once
    assert killed[0] not in pool.idle_workers()
    measure.shutdown_helpers()


def test_helpers_that_cannot_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    measure.shutdown_helpers()
    monkeypatch.setattr(sys, "executable", "/bin/false")
    entries = many_entries(tmp_path, 8)
    got: dict[str, Usage] = {}
    measure.measure_all(entries, lambda e, u: got.__setitem__(e.name, u), jobs=3)
    assert got == {e.name: measure.measure(e) for e in entries}
    measure.shutdown_helpers()


def test_workers_start_when_the_standard_streams_are_closed(tmp_path: Path) -> None:
    """Started with stdin and stderr closed, a process gets descriptors 0 and 2 for the pipes and
    flags it makes for a worker: the worker must still get each where it expects it."""
    entries = many_entries(tmp_path, 12)
    paths = [e.path for e in entries]
    script = f"""
import os, sys
os.close(0)
os.close(2)
sys.path.insert(0, {str(ROOT)!r})
from core import measure, pool
got = {{}}
# All of it on the worker: one that could not start would leave it to this thread, and be gone.
measure.measure_paths(
    {paths!r}, lambda i, u: got.__setitem__(i, (u.size, u.files)), jobs=1, work_here=False
)
print(sorted(got.items()), len(pool.idle_workers()))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    expected = sorted(
        (i, (measure.measure(e).size, measure.measure(e).files)) for i, e in enumerate(entries)
    )
    assert proc.stdout.split("] ")[0] + "]" == str(expected)
    assert proc.stdout.split("] ")[1].strip() == "1"  # its worker answered and was kept


def test_a_worker_keeps_no_descriptor_it_was_not_given() -> None:
    """posix_spawn passes on every descriptor not marked close-on-exec: a worker closes those."""
    measure.shutdown_helpers()
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)  # as one left open by whoever started us
    try:
        pool.prestart(jobs=2)
        [worker] = pool._idle
        # It has closed what it was not given by the time it says it is ready.
        assert [type(m) for m in worker.receive() or []] == [pool_worker.Ready]
        ours = os.readlink(f"/proc/self/fd/{write_end}")
        theirs = [
            os.readlink(f"/proc/{worker.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{worker.pid}/fd")
        ]
        assert ours not in theirs
        assert len(theirs) <= 5  # its pipes, stderr, the flags and the flags' mapping
    finally:
        os.close(read_end)
        os.close(write_end)
        measure.shutdown_helpers()


# --- access-time reliability ---------------------------------------------------------------------

FakePartition = namedtuple("FakePartition", "device mountpoint fstype opts")


def test_noatime_mount_makes_last_used_unreliable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = tmp_path / "fast"
    fast_store = fast / "store"
    other_store = tmp_path / "fastidious" / "store"  # shares a prefix, not the mount
    for d in (fast_store, other_store):
        (d / GOOD_SHA1NEW).mkdir(parents=True)
    parts = [
        FakePartition("/dev/vda", "/", "ext4", "rw,relatime"),
        FakePartition("/dev/vdb", str(fast), "ext4", "rw,noatime,discard"),
        FakePartition("tmpfs", str(tmp_path / "elsewhere"), "tmpfs", "rw,noatime"),
    ]
    monkeypatch.setattr(cache, "_mount_table", lambda: [(p.mountpoint, p.opts) for p in parts])
    assert cache.atime_reliable(str(fast_store)) is False
    assert cache.atime_reliable(str(fast)) is False
    assert cache.atime_reliable(str(other_store)) is True
    entries = cache.list_entries(stores.stores_from_paths([str(fast_store), str(other_store)]))
    assert [e.atime_reliable for e in entries] == [False, True]
    # A later mount over the same point wins; a read-only one never records access either.
    parts.append(FakePartition("/dev/vdc", str(fast), "ext4", "rw,relatime"))
    assert cache.atime_reliable(str(fast_store)) is True
    parts.append(FakePartition("/dev/vdd", str(fast), "squashfs", "ro"))
    assert cache.atime_reliable(str(fast_store)) is False


def test_atime_reliable_on_this_machine() -> None:
    import psutil

    roots = [p for p in psutil.disk_partitions(all=True) if p.mountpoint == "/"]
    opts = set(roots[-1].opts.split(",")) if roots else set()
    assert cache.atime_reliable("/") is not bool({"noatime", "ro"} & opts)
    # The mount table read without psutil says what psutil says.
    ours = {(mp, frozenset(o.split(","))) for mp, o in cache._mount_table()}
    theirs = {
        (p.mountpoint, frozenset(p.opts.split(","))) for p in psutil.disk_partitions(all=True)
    }
    assert theirs <= ours


# --- everything together -------------------------------------------------------------------------


@pytest.mark.needs_0install
def test_scan_maps_feeds_and_apps(real_store: RealStore, tmp_path: Path) -> None:
    env = real_store.env
    used = real_store.add("used", {"run": "!#!/bin/sh\necho used\n"})
    unowned = real_store.add("unowned", {"x": "x"})
    url = "http://example.com/used.xml"
    interfaces = Path(stores.cache_dirs(env)[0]) / "interfaces"
    interfaces.mkdir(parents=True)
    (interfaces / "http%3a%2f%2fexample.com%2fused.xml").write_text(
        f'<interface xmlns="{ZI_NAMESPACE}" uri="{url}"><name>Used</name>'
        f'<group version="3.1"><implementation id="x" main="run">'
        f'<manifest-digest sha256new="{used.name.split("_", 1)[1]}"/></implementation></group>'
        "</interface>"
    )
    (interfaces / "http%3a%2f%2fexample.com%2fbroken.xml").write_text("<interface")
    app = Path(stores.config_dirs(env)[0]) / "apps" / "tool"
    app.mkdir(parents=True)
    (app / "selections.xml").write_text(
        f'<selections xmlns="{ZI_NAMESPACE}" interface="{url}"><selection id="x" interface="{url}"'
        f' version="3.1"><manifest-digest sha256new="{used.name.split("_", 1)[1]}"/></selection>'
        "</selections>"
    )
    impl_dirs = Path(stores.config_dirs(env)[0]) / "injector" / "implementation-dirs"
    impl_dirs.parent.mkdir(parents=True)
    impl_dirs.write_text(f"{tmp_path}/unplugged-drive\n")

    result = cache.scan(env=env)
    assert [s.path for s in result.stores][-1] == f"{tmp_path}/unplugged-drive"
    entries = by_name(result.entries)
    assert entries[used.name].program == "Used" and entries[used.name].version == "3.1"
    assert entries[used.name].feed is not None and entries[used.name].feed.feed_url == url
    assert entries[used.name].used_by == ["tool"]
    assert entries[unowned.name].program == "(unowned)" and entries[unowned.name].used_by == []
    assert entries[unowned.name].short_name == unowned.name[: len("sha256new_") + 8] + "…"
    assert len(result.problems) == 2, result.problems
    assert any("unplugged-drive" in p and "does not exist" in p for p in result.problems)
    assert any("broken.xml" in p for p in result.problems)

    # The same with stores given explicitly (--store): feeds and apps still come from env.
    explicit = cache.scan(stores.stores_from_paths([str(real_store.path)]), env=env)
    assert by_name(explicit.entries)[used.name].used_by == ["tool"]

    # A world-writable entry keeps its program's name; what is wrong is in its kind and issue.
    os.chmod(used, 0o777)
    try:
        again = by_name(cache.scan(env=env).entries)[used.name]
    finally:
        os.chmod(used, 0o555)
    assert again.kind == "suspicious" and again.issue == "world-writable"
    assert again.program == "Used" and again.version == "3.1"


@pytest.mark.needs_0install
def test_added_and_fingerprint(real_store: RealStore) -> None:
    """chmod, chown and mv change a directory's ctime, not when it was added; its fingerprint
    changes with anything that could change what it holds."""
    impl = real_store.add("fp", {"a": "1"})
    store = store_at(real_store.path)
    before = cache.classify(store, impl.name)
    manifest_mtime = (impl / ".manifest").lstat().st_mtime
    assert before.added == pytest.approx(manifest_mtime) and before.added_from == "manifest"
    os.utime(impl / ".manifest", (0, 1_000_000_000), follow_symlinks=False)
    os.chmod(impl, 0o755)
    os.chmod(impl, 0o555)
    after = cache.classify(store, impl.name)
    assert after.added == 1_000_000_000  # follows the .manifest, not the chmod
    assert after.fingerprint != before.fingerprint  # ctime of both changed
    assert cache.classify(store, impl.name).fingerprint == after.fingerprint  # stable otherwise
    assert len(after.fingerprint) == 8


def _seen_fields(entry: Entry) -> tuple:
    """Everything listing and measuring say of an entry (its store compared by path)."""
    return (
        entry.store.path,
        entry.name,
        entry.path,
        entry.kind,
        entry.reason,
        entry.digest,
        entry.owner,
        entry.mode,
        entry.added,
        entry.added_from,
        entry.issue,
        entry.fingerprint,
        entry.feed,
        entry.used_by,
        entry.atime_reliable,
        entry.usage,
    )


@pytest.mark.needs_0install
@pytest.mark.parametrize("jobs", [1, 2])
def test_listing_and_measuring_in_one_pass_agree_with_each_alone(
    real_store: RealStore, tmp_path: Path, jobs: int
) -> None:
    """scan_and_measure classifies from what the walk saw (the entry's lstat and its .manifest's):
    every field comes out as a separate scan and measure_all give it, hostile entries included."""
    impl = real_store.add("hello", {"hello": "!#!/bin/sh\necho hi\n", "doc/README": "hi"})
    store_dir = real_store.path
    evil = write_tree(tmp_path / "evil", {"payload": "x"})
    (store_dir / GOOD_SHA256NEW).symlink_to(evil)  # planted
    (store_dir / GOOD_SHA1NEW).write_text("not a directory")
    (store_dir / ("sha256new_" + "a" * 52)).mkdir()  # digest in the wrong case
    everyone = store_dir / ("sha256=" + "c" * 64)
    everyone.mkdir()
    everyone.chmod(0o777)
    linked = store_dir / ("sha1=" + "d" * 40)  # a .manifest that is a symlink: never followed
    linked.mkdir()
    (linked / ".manifest").symlink_to(impl / ".manifest")
    odd = store_dir / ("sha1new=" + "e" * 40)  # a .manifest that is a directory
    (odd / ".manifest" / "inner").mkdir(parents=True)
    (store_dir / "tmp-x1y2z3").mkdir()
    (store_dir / "notes.txt").write_text("hello")
    (store_dir / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkdir(os.fsencode(store_dir) + b"/caf\xe9-\xff")  # not UTF-8
    store = [store_at(store_dir)]

    expected = cache.scan(store, env=real_store.env).entries
    measure.measure_all(expected, lambda e, u: setattr(e, "usage", u), jobs=1)
    arrived: list[Entry] = []
    result, totals = measure.scan_and_measure(store, arrived.append, jobs=jobs, env=real_store.env)

    assert [_seen_fields(e) for e in result.entries] == [_seen_fields(e) for e in expected]
    assert sorted(id(e) for e in arrived) == sorted(id(e) for e in result.entries)
    assert {e.added_from for e in result.entries if e.name == linked.name} == {"directory"}
    assert totals.size == sum(e.usage.size for e in expected if e.usage)


def test_one_pass_leaves_out_entries_gone_before_they_were_examined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry removed between reading the store's names and walking it is not listed, as a
    separate scan would not list it; the rest are."""
    store_dir = tmp_path / "store"
    keep = write_tree(store_dir / ("sha1=" + "a" * 40), {"f": "x"})
    gone = write_tree(store_dir / ("sha1=" + "b" * 40), {"f": "x"})
    real_paths = measure.measure_paths

    def remove_first(paths, *args, **kwargs):
        shutil.rmtree(gone)
        return real_paths(paths, *args, **kwargs)

    monkeypatch.setattr(measure, "measure_paths", remove_first)
    result, _totals = measure.scan_and_measure([store_at(store_dir)], jobs=1)
    assert [e.name for e in result.entries] == [keep.name]
    assert result.entries[0].usage is not None and result.entries[0].usage.files == 1


def test_walk_sees_the_entry_and_its_manifest_as_lstat_does(tmp_path: Path) -> None:
    entry = write_tree(tmp_path / "e", {".manifest": "D 1 /x\n", "x/y": "z"})
    result = measure_walk(os.fsencode(entry), stats=True)
    assert result is not None
    top, manifest = result[6]
    assert cache.top_stat(top) == cache.top_stat(treewalk.stat_fields(entry.lstat()))
    assert cache.top_stat(manifest).st_mtime == (entry / ".manifest").lstat().st_mtime
    bare = write_tree(tmp_path / "bare", {"x": "y"})
    assert measure_walk(os.fsencode(bare), stats=True)[6][1] is None  # type: ignore[index]
    link = tmp_path / "link"
    link.symlink_to(entry)
    top, manifest = measure_walk(os.fsencode(link), stats=True)[6]  # type: ignore[index]
    assert stat.S_ISLNK(top[0]) and manifest is None  # the link itself, never its target
    assert measure_walk(os.fsencode(tmp_path / "missing"), stats=True)[6] is None  # type: ignore[index]


def test_one_pass_reports_progress_against_the_total(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    for i in range(600):
        (store_dir / f"sha1={i:040x}").mkdir(parents=True)
    seen: list[tuple[int, int]] = []
    result, _totals = measure.scan_and_measure(
        [store_at(store_dir)], jobs=2, on_progress=lambda done, total: seen.append((done, total))
    )
    assert len(result.entries) == 600
    assert seen == [(256, 600), (512, 600)]  # each entry counted once, never past the total
