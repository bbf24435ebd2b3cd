"""Verification records (core.records): unchanged entries judged by a stat walk of their change
keys, and every kind of tampering caught all the same."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core import records
from core.digests import format_digest
from core.manifest import ManifestWalk, generate_manifest, hash_manifest, open_entry
from core.verify import verify_remembering
from tests.conftest import run_cli, write_tree


def add_entry(store: Path, files: dict[str, bytes | str], algorithm: str = "sha256new") -> Path:
    """An implementation added as 0install adds one: .manifest, named by its digest, read-only."""
    src = write_tree(store.parent / "src" / str(len(list(store.parent.glob("src/*")))), files)
    manifest = generate_manifest(src, algorithm)
    (src / ".manifest").write_bytes(manifest)
    os.utime(src / ".manifest", (1_600_000_000, 1_600_000_000))
    dest = store / format_digest(algorithm, hash_manifest(algorithm, manifest))
    os.rename(src, dest)
    read_only(dest)
    return dest


def read_only(root: Path) -> None:
    for dirpath, dirs, files in os.walk(root):
        for name in files + dirs:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & ~0o222)
    os.chmod(root, 0o555)


@contextlib.contextmanager
def unlocked(entry: Path, *paths: Path) -> Iterator[None]:
    """Make ``entry``'s directories and ``paths`` writable for a change, then put back every
    mode and mtime as they were: only ctimes tell that something happened."""
    saved = {}
    for dirpath, dirs, files in os.walk(entry):
        for p in [dirpath, *(os.path.join(dirpath, n) for n in [*dirs, *files])]:
            saved[p] = os.lstat(p)
    for p, st in saved.items():
        if stat.S_ISDIR(st.st_mode) or p in {str(x) for x in paths}:
            os.chmod(p, st.st_mode | 0o200)
    yield
    for p, st in saved.items():
        if os.path.lexists(p) and os.lstat(p).st_ino == st.st_ino:
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(p, st.st_mode)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def tick_past(root: Path) -> None:
    """Wait (on the filesystem, not on a timer) until a file changed now gets a ctime later than
    every ctime under ``root``: then a change made next always changes a key, even with the racy
    margin set to 0 as these tests do."""
    newest = max(
        os.lstat(os.path.join(d, n)).st_ctime_ns
        for d, dirs, files in os.walk(root)
        for n in [*dirs, *files, "."]
    )
    probe = root.parent.parent / "probe"
    while True:
        probe.write_bytes(b"x")
        if os.stat(probe).st_ctime_ns > newest:
            return


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    place = tmp_path / "records"
    monkeypatch.setenv(records.ENV_DIR, str(place))
    return place


@pytest.fixture
def store(tmp_path: Path, where: Path) -> Path:
    s = tmp_path / "cache" / "implementations"
    s.mkdir(parents=True)
    return s


FILES = {
    "README": "hello\n",
    "bin/": "",
    "bin/run": "!#!/bin/sh\necho hi\n",
    "lib/": "",
    "lib/deep/": "",
    "lib/deep/mod.py": "x = 1\n" * 50,
    "lib/data.bin": b"\x00\x01" * 300,
    "current": "@lib/deep/mod.py",
}


def verify(paths: list[Path], **options) -> tuple[list, list[str]]:
    notes: list[str] = []
    options.setdefault("racy_ns", 0)
    options.setdefault("jobs", 2)
    results = verify_remembering([str(p) for p in paths], notes=notes, **options)
    return results, notes


def how(outcome) -> str:
    if outcome.status != "ok":
        return outcome.status
    return "unchanged" if outcome.unchanged_since is not None else "hashed"


def remembered(*entries: Path) -> list:
    """First run hashes and records, second judges unchanged: the stat walk is what is tested."""
    first, _ = verify(list(entries))
    assert [how(o) for o in first] == ["hashed"] * len(entries), first
    second, _ = verify(list(entries))
    assert [how(o) for o in second] == ["unchanged"] * len(entries), second
    tick_past(entries[0])
    return second


# --- each kind of tampering ------------------------------------------------------------------


def _rewrite_in_place(e: Path) -> None:
    f = e / "lib" / "deep" / "mod.py"
    with unlocked(e, f):
        data = f.read_bytes()
        with open(f, "r+b") as out:
            out.write(b"y" + data[1:])  # the same size; the mtime is put back


def _replace_by_rename(e: Path) -> None:
    f = e / "README"
    st = f.stat()
    with unlocked(e):
        new = e / "README.new"
        new.write_bytes(b"HELLO\n")  # the same size, mode and mtime
        os.chmod(new, st.st_mode)
        os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.rename(new, f)


def _mode_change(e: Path) -> None:
    f = e / "README"
    os.chmod(f, f.stat().st_mode | 0o111)


def _added_in_subdir(e: Path) -> None:
    d = e / "lib" / "deep"
    with unlocked(e):
        (d / "planted.py").write_text("import os\n")


def _removed_in_subdir(e: Path) -> None:
    with unlocked(e):
        (e / "lib" / "deep" / "mod.py").unlink()


def _symlink_retargeted(e: Path) -> None:
    with unlocked(e):
        tmp = e / "current.new"
        tmp.symlink_to("README")
        os.rename(tmp, e / "current")


def _manifest_edited(e: Path) -> None:
    m = e / ".manifest"
    with unlocked(e, m):
        data = m.read_bytes()
        i = data.index(b" README")
        with open(m, "r+b") as out:
            out.write(data[: i - 1] + b"0" + data[i:])  # the size's last digit: same length


def _swapped_for_copy(e: Path) -> None:
    copy = e.parent / "copy"
    shutil.copytree(e, copy, symlinks=True, copy_function=shutil.copy2)
    f = copy / "lib" / "deep" / "mod.py"
    with unlocked(copy, f):
        f.write_bytes(b"z" + f.read_bytes()[1:])
    shutil.copystat(e, copy)
    os.rename(e, e.parent / "old")
    os.rename(copy, e)


TAMPERING: dict[str, Callable[[Path], None]] = {
    "in-place rewrite, old size and mtime restored": _rewrite_in_place,
    "file replaced by rename": _replace_by_rename,
    "mode change": _mode_change,
    "file added in a subdirectory": _added_in_subdir,
    "file removed in a subdirectory": _removed_in_subdir,
    "symlink retargeted": _symlink_retargeted,
    ".manifest edited": _manifest_edited,
    "entry directory swapped for a copy": _swapped_for_copy,
}


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_tampering_is_never_kept_as_ok(store: Path, kind: str) -> None:
    entry = add_entry(store, FILES)
    other = add_entry(store, {"a": "unrelated\n"})
    remembered(entry, other)
    TAMPERING[kind](entry)
    after, _ = verify([entry, other])
    assert after[0].status == "corrupt", (kind, after[0])
    assert after[0].unchanged_since is None
    assert how(after[1]) == "unchanged"  # the neighbour is still judged by its keys
    # The corrupt entry lost its record: it is hashed again next time, and still corrupt.
    again, _ = verify([entry])
    assert again[0].status == "corrupt" and again[0].unchanged_since is None


def test_same_verdicts_through_the_command_line(store: Path) -> None:
    entry = add_entry(store, FILES)
    remembered(entry)
    _rewrite_in_place(entry)
    proc = run_cli("verify", "--store", str(store), "--json", text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["status"] == "corrupt" and row["checked"] == "hashed"
    assert [c["path"] for c in row["changes"]] == ["/lib/deep/mod.py"]


def test_a_change_that_keeps_the_contents_is_hashed_again_and_ok(store: Path) -> None:
    entry = add_entry(store, FILES)
    remembered(entry)
    os.chmod(entry / "README", 0o644)  # u+w: no manifest difference, but a key changed
    after, _ = verify([entry])
    assert how(after[0]) == "hashed"
    assert after[0].status == "ok"


def test_a_hard_link_changed_through_another_entry_invalidates_both(store: Path) -> None:
    shared = {"common.txt": "the same text in both\n" * 20}
    a = add_entry(store, {**shared, "a": "only in a\n"})
    b = add_entry(store, {**shared, "b": "only in b\n"})
    # As `optimise` leaves them: one inode, linked from both entries.
    os.chmod(a, 0o755)
    os.unlink(a / "common.txt")
    os.link(b / "common.txt", a / "common.txt")
    os.chmod(a, 0o555)
    first, _ = verify([a, b])
    assert [how(o) for o in first] == ["hashed", "hashed"]
    assert [how(o) for o in verify([a, b])[0]] == ["unchanged", "unchanged"]
    tick_past(a)
    # Changed in place through b's name only: a's file is the same inode.
    f = b / "common.txt"
    with unlocked(b, f), open(f, "r+b") as out:
        out.write(b"T")
    after, _ = verify([a, b])
    assert [o.status for o in after] == ["corrupt", "corrupt"]
    assert after[0].changes[0].path == "/common.txt"


def test_an_inode_replaced_in_one_entry_leaves_the_other_linked_one_unchanged(store: Path) -> None:
    shared = {"common.txt": "the same text in both\n" * 20}
    a = add_entry(store, {**shared, "a": "only in a\n"})
    b = add_entry(store, {**shared, "b": "only in b\n"})
    os.chmod(a, 0o755)
    os.unlink(a / "common.txt")
    os.link(b / "common.txt", a / "common.txt")
    os.chmod(a, 0o555)
    verify([a, b])
    verify([a, b])
    tick_past(a)
    _replace_by_rename_named(b, "common.txt", b"T" + (b / "common.txt").read_bytes()[1:])
    after, _ = verify([a, b])
    # The link count of a's inode changed (b's name went away), so a is hashed too: still OK.
    assert how(after[0]) == "hashed" and after[0].status == "ok"
    assert after[1].status == "corrupt"


def _replace_by_rename_named(e: Path, name: str, data: bytes) -> None:
    f = e / name
    st = f.stat()
    with unlocked(e):
        new = e / (name + ".new")
        new.write_bytes(data)
        os.chmod(new, st.st_mode)
        os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.rename(new, f)


# --- racy keys, unstable inodes -------------------------------------------------------------------


def test_racy_keys_are_not_recorded_so_the_entry_is_hashed_again(store: Path) -> None:
    entry = add_entry(store, FILES)
    # A margin of an hour makes every key of this just-made entry "too close to the record".
    first, _ = verify([entry], racy_ns=3600 * 10**9)
    assert how(first[0]) == "hashed"
    second, _ = verify([entry], racy_ns=3600 * 10**9)
    assert how(second[0]) == "hashed"
    # Once the keys are old enough, the record is kept.
    verify([entry])
    assert how(verify([entry])[0][0]) == "unchanged"


def test_default_margin_covers_an_entry_made_a_moment_ago(store: Path) -> None:
    entry = add_entry(store, FILES)
    verify([entry], racy_ns=records.RACY_NS)
    second, _ = verify([entry], racy_ns=records.RACY_NS)
    # Made well under two seconds ago: not recorded (unless this machine is very slow).
    made = max(os.lstat(p).st_ctime_ns for p in [entry, entry / "README", entry / ".manifest"])
    recorded_at = second[0].unchanged_since
    if recorded_at is None:
        assert how(second[0]) == "hashed"
    else:
        assert recorded_at * 1e9 - made >= records.RACY_NS


def test_unstable_inode_numbers_mean_full_verification_said_once(
    store: Path, where: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = add_entry(store, FILES)
    mountinfo = tmp_path / "mountinfo"
    point = str(store.parent).replace(" ", "\\040")
    mountinfo.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        f"99 27 0:77 / {point} rw,relatime - overlay overlay "
        "rw,lowerdir=/l,upperdir=/u,workdir=/w\n"
    )
    monkeypatch.setenv(records.ENV_MOUNTINFO, str(mountinfo))
    for _ in range(2):
        results, notes = verify([entry])
        assert how(results[0]) == "hashed"
        assert len(notes) == 1 and "overlayfs without xino=on" in notes[0], notes
    assert not where.exists() or not list(where.iterdir())  # nothing recorded


@pytest.mark.parametrize(
    ("fstype", "options", "stable"),
    [
        ("ext4", "rw", True),
        ("overlay", "rw,lowerdir=/a,xino=on", True),
        ("overlay", "rw,lowerdir=/a,xino=auto", False),
        ("fuse.sshfs", "rw", False),
        ("nfs4", "rw,vers=4.2", False),
        ("tmpfs", "rw", True),
    ],
)
def test_inode_stability_from_mountinfo(
    tmp_path: Path, fstype: str, options: str, stable: bool
) -> None:
    mountinfo = tmp_path / "mountinfo"
    inner = tmp_path / "a dir"
    inner.mkdir()
    mountinfo.write_text(
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
        f"40 27 0:50 / {str(inner).replace(' ', chr(92) + '040')} rw - {fstype} src {options}\n"
    )
    got, why = records.inode_stability(str(inner / "store"), str(mountinfo))
    assert got is stable
    assert bool(why) is not stable
    # A sibling that only shares a prefix of the name is on the root mount.
    assert records.inode_stability(str(tmp_path / "a dirt"), str(mountinfo))[0] is True


# --- the record file ------------------------------------------------------------------------------


def record_file(where: Path) -> Path:
    (f,) = list(where.iterdir())
    return f


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda f: f.write_bytes(f.read_bytes()[:-30]),
    "a byte flipped": lambda f: f.write_bytes(f.read_bytes().replace(b'"entries"', b'"entriez"')),
    "another version": lambda f: f.write_bytes(
        f.read_bytes().replace(b"records 1\n", b"records 9\n", 1)
    ),
    "not ours at all": lambda f: f.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100)),
    "empty": lambda f: f.write_bytes(b""),
    "writable by others": lambda f: os.chmod(f, 0o666),
    "owned by someone else": lambda f: os.chown(f, 65534, 65534),
    "a symlink": lambda f: (f.rename(f.with_suffix(".x")), f.symlink_to(f.with_suffix(".x"))),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_or_foreign_records_are_ignored_with_a_warning(
    store: Path, where: Path, damage: str
) -> None:
    entry = add_entry(store, FILES)
    remembered(entry)
    DAMAGE[damage](record_file(where))
    results, notes = verify([entry])
    assert how(results[0]) == "hashed"
    assert len(notes) == 1 and "were ignored" in notes[0] or "could not be read" in notes[0], notes
    # Written anew (as root, or by the owner), then trusted again.
    for f in where.iterdir():
        if f.suffix == ".x":
            f.unlink()
    results, notes = verify([entry])
    assert how(results[0]) == "unchanged" and notes == []


def test_records_for_another_store_are_not_used(store: Path, where: Path, tmp_path: Path) -> None:
    entry = add_entry(store, FILES)
    remembered(entry)
    other = tmp_path / "other" / "implementations"
    other.mkdir(parents=True)
    os.rename(entry, other / entry.name)  # the same entry, in another store: its own file
    shutil.copy(record_file(where), records._file_for(str(other), str(where)))
    results, notes = verify([other / entry.name])
    assert how(results[0]) == "hashed"
    assert any("another store" in n for n in notes), notes


def test_record_file_is_compact(tmp_path: Path, where: Path) -> None:
    book = records.StoreRecords(str(tmp_path), str(where / "f.records"), False, True)
    for i in range(10_000):
        name = format_digest("sha256new", f"{i:052d}")
        book.remember(name, records.Record(1.8e9 + i, f"{i:040x}", True))
    assert records.save(book) == ""
    size = (where / "f.records").stat().st_size
    assert size < 2 << 20, size  # 10,000 entries (40,000 files and more) in under 2 MB
    decoded = records._decode((where / "f.records").read_bytes(), str(tmp_path))
    assert {n: tuple(v) for n, v in decoded.items()} == {
        n: tuple(r) for n, r in book.entries.items()
    }


def test_full_and_max_age(store: Path) -> None:
    entry = add_entry(store, FILES)
    remembered(entry)
    assert how(verify([entry], full=True)[0][0]) == "hashed"
    assert how(verify([entry])[0][0]) == "unchanged"
    assert how(verify([entry], max_age_days=0)[0][0]) == "hashed"
    assert how(verify([entry], max_age_days=1)[0][0]) == "unchanged"


def test_cli_flags_and_json(store: Path) -> None:
    entry = add_entry(store, FILES)
    remembered(entry)

    def checked(*extra: str) -> str:
        proc = run_cli("verify", "--store", str(store), "--json", *extra, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        (row,) = json.loads(proc.stdout)
        return row["checked"]

    assert checked().startswith("unchanged since 20")
    assert checked("--max-age", "2.5").startswith("unchanged since")
    assert checked("--max-age", "0") == "hashed"
    assert checked("--full") == "hashed"
    for bad in ("-1", "x", "nan", "inf"):
        proc = run_cli("verify", "--store", str(store), "--json", "--max-age", bad, text=True)
        assert proc.returncode == 2 and "--max-age" in proc.stderr


# --- the keys themselves -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha1", "sha1new", "sha256new"])
def test_stat_walk_takes_the_same_keys_as_the_hashing_walk(tmp_path: Path, algorithm: str) -> None:
    root = write_tree(tmp_path / "tree", FILES)
    (root / ".manifest").write_text("x")
    fd, st = open_entry(bytes(root))
    try:
        walk = ManifestWalk(bytes(root), algorithm)
        walk.keys = [records.key_of(b"", "", st)]
        walk.run(fd)
        by_stat = records.stat_keys(fd, st)
    finally:
        os.close(fd)
    assert sorted(walk.keys) == sorted(by_stat)
    assert records.keys_digest(list(walk.keys)) == records.keys_digest(list(by_stat))
    names = {(k[0], k[1]) for k in by_stat}
    assert (b"", ".manifest") in names and (b"/lib/deep", "mod.py") in names
    assert next(k for k in by_stat if k[1] == "current")[8] == b"lib/deep/mod.py"
    assert stat.S_ISDIR(next(k for k in by_stat if k[1] == "deep")[7])


def test_big_entries_split_over_workers_are_recorded_whole(store: Path) -> None:
    files: dict[str, bytes | str] = {}
    for d in range(12):
        files[f"d{d}/"] = ""
        for f in range(30):
            files[f"d{d}/f{f}"] = os.urandom(3000)
    entry = add_entry(store, files)
    small = [add_entry(store, {"x": f"{i}\n"}) for i in range(3)]
    first, _ = verify([entry, *small], jobs=3)
    assert all(how(o) == "hashed" for o in first)
    second, _ = verify([entry, *small], jobs=3)
    assert all(how(o) == "unchanged" for o in second)


@pytest.mark.parametrize("algorithm", ["sha1new", "sha256new"])
def test_keys_of_an_entry_walked_in_many_handed_over_parts_are_the_stat_walks(
    store: Path, algorithm: str
) -> None:
    """Every directory handed over to another worker (the busiest sharing): the keys that come
    back from all the parts are exactly those a stat walk of the whole entry takes."""
    from core.verify import verify_unit

    files: dict[str, bytes | str] = {
        f"d{i}/e{j}/f{k}": f"{i}{j}{k}" * (k + 1)
        for i in range(3)
        for j in range(3)
        for k in range(2)
    }
    files |= {"top": "t", "d1/link": "@../top", "d2/e1/g/h/i": "deep", "zz/": ""}
    entry = add_entry(store, files, algorithm)
    root = bytes(entry)
    value = entry.name.partition("_" if "_" in entry.name else "=")[2]
    extra = (algorithm, value, "", 0)

    class Executor:
        walk = None

        def __init__(self) -> None:
            self.given: list = []

        def tick(self) -> int:
            return 1  # others are idle: hand over half of what waits, every time

        def give(self, subtrees: list) -> None:
            self.given.extend(subtrees)

    ex = Executor()
    results = [verify_unit((0, root, b"", 0, 0, 0, (), extra), ex)]
    while ex.given:
        rel, dev, ino, mtime = ex.given.pop()
        results.append(verify_unit((0, root, rel, dev, ino, mtime, (), extra), ex))
    assert len(results) > 5 and all(r[0] == "s" for r in results)
    keys = [k for r in results for k in r[5]]
    fd, st = open_entry(root)
    try:
        expected = records.stat_keys(fd, st)
    finally:
        os.close(fd)
    assert sorted(keys) == sorted(expected)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_user_reads_roots_records_of_a_system_store_but_does_not_write_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    from tests.test_verify import as_nobody

    base = Path(tempfile.mkdtemp(prefix="zia-records-"))
    try:
        base.chmod(0o755)
        store = base / "cache" / "implementations"
        store.mkdir(parents=True)
        for p in (store, store.parent):
            p.chmod(0o755)
        place = base / "records"
        monkeypatch.setenv(records.ENV_DIR, str(place))
        entry = add_entry(store, FILES)
        remembered(entry)  # as root: recorded, root's file
        (record,) = list(place.iterdir())
        before = record.stat()
        with as_nobody():
            results, notes = verify([entry], jobs=1)
        assert how(results[0]) == "unchanged"
        assert len(notes) == 1 and "read but not updated" in notes[0], notes
        os.chmod(entry / "README", 0o644)  # a key changes: hashed, and still not written
        with as_nobody():
            results, notes = verify([entry], jobs=1)
        assert how(results[0]) == "hashed" and "read but not updated" in notes[0]
        after = record.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    finally:
        for dirpath, _dirs, _files in os.walk(base):
            os.chmod(dirpath, 0o755)
        shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_where_records_live(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from tests.test_verify import as_nobody

    monkeypatch.delenv(records.ENV_DIR)
    env = {"XDG_STATE_HOME": "/home/u/.state", "HOME": "/home/u"}
    tmp_path = Path(tempfile.mkdtemp(prefix="zia-where-"))  # reachable by nobody
    tmp_path.chmod(0o755)
    mine = tmp_path / "mine"
    mine.mkdir()
    os.chown(mine, 65534, 65534)
    roots = tmp_path / "roots"
    roots.mkdir()
    with as_nobody():
        assert records.location(str(mine), env)[1:] == (False, True)
        assert records.location(str(mine), env)[0].startswith(
            "/home/u/.state/zeroinstall-admin/verified/"
        )
        path, shared, writable = records.location(str(roots), env)
        assert path.startswith("/var/lib/zeroinstall-admin/verified/") and shared and not writable
    # Root keeps every store's records, its own included, under /var/lib.
    assert records.location(str(mine), env)[1:] == (True, True)
    assert records.location(str(roots), env)[0].startswith("/var/lib/zeroinstall-admin/verified/")
    shutil.rmtree(tmp_path)  # (nothing was written elsewhere: location() only says where)
