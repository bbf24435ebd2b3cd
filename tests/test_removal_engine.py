"""The removal engine as an attacker and an impatient admin would try it: mount points inside an
entry (bind mounts of the same filesystem too, made in a private mount namespace), trees deeper
than the descriptor limit, names that are not UTF-8, a kill in the middle of a removal, a
read-only entry quarantined by its owner.

The one walker exists twice (core.treewalk, and core.root_helper which imports nothing from the
project): the walker tests run against both, and a test checks the two copies are the same text.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from core import actionlog, clean, treewalk
from core import root_helper as rh
from core.cache import scan
from core.stores import stores_from_paths
from tests.test_root_helper import DIGEST, DIGEST2, NOBODY, make_entry

REPO = Path(__file__).resolve().parent.parent
WALKERS = [treewalk, rh]
MARK_BEGIN = "# --- the walker (kept identical"
MARK_END = "# --- the walker (end)"


pytestmark = pytest.mark.usefixtures("no_real_root")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    s = tmp_path / "store"
    s.mkdir()
    return s


def _block(path: Path) -> str:
    text = path.read_text()
    return text[text.index(MARK_BEGIN) : text.index(MARK_END)]


def test_the_helper_keeps_an_identical_copy_of_the_walker():
    assert _block(REPO / "core" / "treewalk.py") == _block(REPO / "core" / "root_helper.py")


def _run(code: str, *, namespace: bool = False, nofile: int | None = None, **kw):
    """Run ``code`` in a child Python (this repository importable), in a private mount namespace
    when asked, with a low descriptor limit when asked. The code goes in a file: paths in a
    command line would count as a process using the entry."""
    fd, script = tempfile.mkstemp(suffix=".py", dir="/tmp")
    with os.fdopen(fd, "w") as f:
        f.write(code)
    kw.setdefault("cwd", "/")
    try:
        return _run_file(script, namespace=namespace, nofile=nofile, **kw)
    finally:
        os.unlink(script)


def _run_file(path: str, *, namespace: bool, nofile: int | None, **kw):
    argv = [sys.executable, path]
    if namespace:
        argv = ["unshare", "-m", "--propagation", "private", *argv]

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    env = {**os.environ, "PYTHONPATH": str(REPO), **kw.pop("env", {})}
    return subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env=env,
        **kw,
    )


def _namespace_or_skip() -> None:
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "--bind", "/tmp", "/mnt"],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"this kernel refuses private mount namespaces here: {proc.stderr.strip()}")


@pytest.fixture
def deep_dir(tmp_path: Path):
    """A directory that may hold a tree too deep for pytest's own clean-up (shutil.rmtree
    recurses): whatever is left in it is removed with the helper's walker."""
    base = tmp_path / "deep"
    base.mkdir()
    yield base
    for name in os.listdir(base):
        rh.remove_implementation(str(base), name)


def _deep(base: Path, depth: int) -> None:
    """A chain of ``depth`` directories ``d/d/d/...`` with a file every 100 levels (made by
    descriptors: the path is far longer than PATH_MAX)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            if i % 100 == 0:
                os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o444, dir_fd=fd))
            os.chmod(fd, 0o555)
    finally:
        os.close(fd)


# --- the walker, both copies ------------------------------------------------------------------


@pytest.mark.parametrize("module", WALKERS, ids=lambda m: m.__name__)
def test_walker_goes_2000_deep_under_a_low_descriptor_limit(module, deep_dir: Path):
    tmp_path = deep_dir / "tree"
    tmp_path.mkdir()
    _deep(tmp_path, 2000)
    code = textwrap.dedent(f"""
        import os
        from {module.__name__} import walk_tree
        fd = os.open({str(tmp_path)!r}, os.O_RDONLY | os.O_DIRECTORY)
        dirs = files = left = most = 0
        for event, rel, dfd, what in walk_tree(fd, post=True):
            if event == "dir":
                dirs += 1
                files += sum(1 for n, s in what if n == b"f")
                most = max(most, len(os.listdir("/proc/self/fd")))
            elif event == "left":
                left += 1
            else:
                raise SystemExit(f"skipped {{rel[-20:]}}: {{what[1]}}")
        print(dirs, files, left, most)
    """)
    proc = _run(code, nofile=64)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    dirs, files, left, most = map(int, proc.stdout.split())
    assert (dirs, files, left) == (2001, 20, 2000)
    assert most <= 50  # bounded whatever the depth


@pytest.mark.parametrize("statx", [True, False], ids=["statx", "fdinfo"])
@pytest.mark.parametrize("module", WALKERS, ids=lambda m: m.__name__)
def test_walker_never_enters_a_bind_mount_of_the_same_filesystem(
    module, statx: bool, tmp_path: Path
):
    _namespace_or_skip()
    tree = tmp_path / "tree"
    (tree / "mnt").mkdir(parents=True)
    (tree / "file").write_text("mine")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("outside")
    (outside / "secret").write_text("outside")
    code = textwrap.dedent(f"""
        import os, subprocess
        from {module.__name__} import MountPoint, walk_tree, _statx_found
        if not {statx!r}:  # a kernel without statx's mount IDs: /proc/self/fdinfo instead
            _statx_found.append(None)
        subprocess.run(["mount", "--bind", {str(outside)!r}, {str(tree / "mnt")!r}], check=True)
        subprocess.run(["mount", "--bind", {str(outside / "secret")!r}, {str(tree / "file")!r}],
                       check=True)
        fd = os.open({str(tree)!r}, os.O_RDONLY | os.O_DIRECTORY)
        seen, mounts = [], []
        for event, rel, dfd, what in walk_tree(fd):
            if event == "dir":
                seen += [rel + b"/" + n for n, s in what]
            elif isinstance(what[1], MountPoint):
                mounts.append(rel)
        print(sorted(seen), sorted(mounts))
    """)
    proc = _run(code, namespace=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] [b'/file', b'/mnt']"


# --- removal and quarantine refuse an entry holding a mount point -----------------------------


def _bind_script(outside: Path, target: Path, action: str) -> str:
    return textwrap.dedent(f"""
        import os, subprocess
        from core import root_helper as rh
        subprocess.run(["mount", "--bind", {str(outside)!r}, {str(target)!r}], check=True)
        try:
            {action}
            print("DONE")
        except rh.HelperError as exc:
            print("REFUSED", exc)
    """)


@pytest.mark.parametrize("what", ["remove", "quarantine", "verb", "file"])
def test_an_entry_holding_a_bind_mount_is_left_whole(what: str, tmp_path: Path):
    _namespace_or_skip()
    root = tmp_path / "root"
    store = root / "var/cache/0install.net/implementations"
    store.mkdir(parents=True)
    entry = make_entry(store, DIGEST, readonly=True)
    outside = tmp_path / "outside"
    (outside / "locked").mkdir(parents=True)
    (outside / "locked" / "canary").write_text("must survive")
    (outside / "locked").chmod(0o555)
    before = sorted(str(p) for p in entry.rglob("*"))
    target = entry / "bin" / "deep" / "er"
    if what == "file":
        outside = outside / "locked" / "canary"
        target = entry / "bin" / "tool"
    action = {
        "remove": f"rh.remove_implementation({str(store)!r}, {DIGEST!r})",
        "file": f"rh.remove_implementation({str(store)!r}, {DIGEST!r})",
        "quarantine": f"rh.quarantine_entry({str(store)!r}, {DIGEST!r}, {str(root / 'q')!r})",
        "verb": "rh._ALLOW_REAL_ROOT = False; rh.run_verb('remove-implementation', "
        f"[{str(store)!r}, {DIGEST!r}], root={str(root)!r})",
    }[what]
    proc = _run(_bind_script(outside, target, action), namespace=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("REFUSED "), proc.stdout
    line = proc.stdout.strip()
    assert "\n" not in line and f"umount '{target}'" in line and "nothing was" in line
    # Nothing below it touched: the entry under its name, whole; the outside tree unchanged.
    assert os.listdir(store) == [DIGEST]
    assert sorted(str(p) for p in entry.rglob("*")) == before
    assert (tmp_path / "outside" / "locked" / "canary").read_text() == "must survive"
    assert (tmp_path / "outside" / "locked").stat().st_mode & 0o777 == 0o555


def test_a_mount_added_during_the_removal_is_never_crossed(tmp_path: Path, store: Path):
    _namespace_or_skip()
    entry = make_entry(store, DIGEST, readonly=False)
    (entry / "zz").mkdir()
    (entry / "zz" / "mine").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("must survive")
    code = textwrap.dedent(f"""
        import glob, os, subprocess
        from core import root_helper as rh
        done = []
        def step(event, name):
            # The first descent: mount something on every directory not visited yet.
            if event == "enter" and name != {DIGEST!r} and not done and not name.startswith("tmp"):
                for d in glob.glob({str(store)!r} + "/tmp-remove-*/*/"):
                    if not d.rstrip("/").endswith("/" + name):
                        subprocess.run(["mount", "--bind", {str(outside)!r}, d], check=True)
                        done.append(d)
        try:
            rh.remove_implementation({str(store)!r}, {DIGEST!r}, on_step=step)
            print("DONE", done)
        except rh.HelperError as exc:
            print("REFUSED", exc)
    """)
    proc = _run(code, namespace=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("REFUSED "), proc.stdout
    assert "became a mount point during the removal" in proc.stdout and "umount" in proc.stdout
    assert (outside / "canary").read_text() == "must survive"
    left = os.listdir(store)
    assert len(left) == 1 and rh.removal_origin(left[0]) == DIGEST  # no digest-named half entry


def test_delete_on_the_command_line_refuses_a_bind_mount(tmp_path: Path, store: Path, zi_env):
    _namespace_or_skip()
    entry = make_entry(store, DIGEST, readonly=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("must survive")
    code = textwrap.dedent(f"""
        import subprocess, sys
        subprocess.run(["mount", "--bind", {str(outside)!r}, {str(entry / "bin")!r}], check=True)
        proc = subprocess.run([sys.executable, "-m", "core.cli", "delete", "--yes", "--store",
                               {str(store)!r}, {DIGEST!r}], capture_output=True, text=True)
        sys.stdout.write(proc.stdout + "\\n--\\n" + proc.stderr)
        sys.exit(proc.returncode)
    """)
    proc = _run(code, namespace=True, env={**zi_env, "XDG_STATE_HOME": str(tmp_path / "state")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
    assert len(failed) == 1 and f"umount '{entry / 'bin'}'" in failed[0], proc.stdout
    assert (outside / "canary").read_text() == "must survive"
    assert os.listdir(store) == [DIGEST]


# --- depth, names, interruptions, quarantine ----------------------------------------------------


def test_a_2000_deep_entry_is_removed_whole_under_a_low_descriptor_limit(deep_dir: Path):
    store = deep_dir
    (store / DIGEST).mkdir()
    _deep(store / DIGEST, 2000)
    (store / DIGEST).chmod(0o555)
    code = (
        "from core import root_helper as rh\n"
        f"print(rh.remove_implementation({str(store)!r}, {DIGEST!r}).items)"
    )
    proc = _run(code, nofile=64)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == 2001 + 20 and os.listdir(store) == []


def _verdict(store: Path, name: str, action: str = "remove") -> clean.Verdict:
    entries = {e.name: e for e in scan(stores_from_paths([str(store)]), {}).entries}
    return clean.Verdict(entries[name], action, ["test"])  # type: ignore[arg-type]


def test_names_that_are_not_utf8_are_removed_and_logged_losslessly(tmp_path: Path, store: Path):
    name = os.fsdecode(b"sha256new_\xff\x1b[31mevil")
    entry = store / name
    (entry / "sub").mkdir(parents=True)
    (entry / "sub" / os.fsdecode(b"\xfe\xfd")).write_text("x")
    log = tmp_path / "log.jsonl"
    [outcome] = clean.remove([_verdict(store, name)], None, log_path=str(log))
    assert outcome.action == "removed", outcome.message
    assert os.listdir(store) == []
    lines = log.read_bytes().decode("utf-8").splitlines()  # strict UTF-8
    records = [json.loads(line) for line in lines]
    assert [r["action"] for r in records] == ["removing", "removed"]
    assert records[1]["entry"]["base64"] and "\\x1b" in records[1]["entry"]["text"]
    assert [r.entry for r in actionlog.read(str(log))] == [name, name]  # read back exactly
    assert "\\xff\\x1b" in actionlog.read(str(log))[1].describe()


def test_syslog_gets_names_escaped(monkeypatch):
    sent: list[str] = []
    import syslog

    monkeypatch.setattr(syslog, "syslog", lambda _prio, text: sent.append(text))
    actionlog._syslog(actionlog.Record("removed", "/s", os.fsdecode(b"a\xffb\nFAKE line")))
    assert sent == ["removed /s/a\\xffb\\nFAKE line ( , 0 bytes) by : "]


def test_a_removal_killed_midway_is_finished_under_its_real_name(tmp_path: Path, store: Path):
    make_entry(store, DIGEST, readonly=True)
    make_entry(store, DIGEST2, readonly=True)
    log = tmp_path / "log.jsonl"
    code = textwrap.dedent(f"""
        import os, signal
        from core import clean, root_helper as rh
        from core.cache import scan
        from core.stores import stores_from_paths
        n = [0]
        def step(event, name):
            n[0] += 1
            if event == "unlink" and n[0] > 4:
                os.kill(os.getpid(), signal.SIGKILL)
        def here(v):
            rh.remove_implementation(os.path.realpath(v.entry.store.path), v.entry.name,
                                     on_step=step)
            return ""
        entries = {{e.name: e for e in scan(stores_from_paths([{str(store)!r}]), {{}}).entries}}
        v = clean.Verdict(entries[{DIGEST!r}], "remove", ["not used for 90 days"])
        clean.remove([v], None, log_path={str(log)!r}, here=here)
    """)
    proc = _run(code)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    [temp] = [n for n in os.listdir(store) if n != DIGEST2]
    assert rh.removal_origin(temp) == DIGEST
    # The next clean-up offers the rest, and logs it under the entry's real name.
    entries = {e.name: e for e in scan(stores_from_paths([str(store)]), {}).entries}
    [verdict] = [
        v
        for v in clean.judge(list(entries.values()), _no_evidence())
        if v.entry.name == temp and v.action == "remove"
    ]
    assert DIGEST in verdict.reasons[0]
    [outcome] = clean.remove([verdict], None, log_path=str(log))
    assert outcome.ok and sorted(os.listdir(store)) == [DIGEST2]
    records = actionlog.read(str(log))
    assert [(r.action, r.entry) for r in records] == [
        ("removing", DIGEST),  # the intent, before the kill
        ("removing", DIGEST),  # the rest
        ("removed", DIGEST),
    ]
    assert "not used for 90 days" in records[-1].reasons
    assert temp in records[-1].detail and "interrupted" in records[-1].detail


def _no_evidence():
    from core.evidence import Evidence

    return Evidence()


def test_the_owner_quarantines_a_read_only_entry(code_for_other_users):
    base = tempfile.mkdtemp(prefix="zia-quarantine-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        store = Path(base) / "implementations"
        store.mkdir()
        entry = make_entry(store, DIGEST, readonly=True)
        for p in [store, *store.rglob("*")]:
            os.lchown(p, NOBODY, NOBODY)
        os.chown(base, NOBODY, NOBODY)
        code = code_for_other_users.prelude() + textwrap.dedent(f"""
            from core import clean
            from core.cache import scan
            from core.stores import stores_from_paths
            entries = {{e.name: e for e in scan(stores_from_paths([{str(store)!r}]), {{}}).entries}}
            v = clean.Verdict(entries[{DIGEST!r}], "quarantine", ["suspicious"])
            [o] = clean.remove([v], None, log_path={base!r} + "/log")
            print(o.action, "|", o.message, "|", o.size, o.moved)
        """)
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             code_for_other_users.python, "-I", "-c", code],
            check=False, capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        action, message, sizes = proc.stdout.strip().split(" | ")
        assert action == "quarantined", message
        assert "made writable for its owner to move it, then put back" in message
        assert sizes.startswith("0 ") and int(sizes.split()[1]) > 0  # moved, not freed
        assert not entry.exists()
        [moved] = (Path(base) / rh.QUARANTINE_DIR_NAME).iterdir()
        assert moved.stat().st_mode & 0o777 == 0o555  # its mode put back
        assert (moved / "bin" / "deep").stat().st_mode & 0o777 == 0o555  # and nothing inside
    finally:
        subprocess.run(["chmod", "-R", "u+w", base], check=False)
        shutil.rmtree(base)


def test_failures_name_the_entry_once_and_say_what_to_do(tmp_path: Path, store: Path):
    make_entry(store, DIGEST, readonly=True)
    verdict = _verdict(store, DIGEST)

    def denied(_v: clean.Verdict) -> str:
        raise PermissionError(13, "Permission denied", DIGEST)

    [outcome] = clean.remove([verdict], None, log_path=str(tmp_path / "l"), here=denied)
    assert outcome.action == "failed"
    assert DIGEST not in outcome.message and "run the same command as root" in outcome.message
    assert outcome.describe().count(DIGEST) == 1


def test_a_file_read_while_the_prompt_waits_keeps_the_entry(tmp_path: Path, store: Path):
    entry = make_entry(store, DIGEST, readonly=False)
    old = 1_600_000_000
    for p in entry.rglob("*"):
        if not p.is_symlink():
            os.utime(p, (old, old))
    entries = scan(stores_from_paths([str(store)]), {}).entries
    from core.measure import measure_all

    measure_all(entries, lambda e, u: setattr(e, "usage", u))
    [verdict] = [v for v in clean.judge(entries, _no_evidence()) if v.entry.name == DIGEST]
    assert verdict.action == "remove"
    (entry / "README").read_text()  # someone runs it meanwhile (atime > mtime: relatime too)
    [outcome] = clean.remove([verdict], None, log_path=str(tmp_path / "l"))
    assert outcome.action == "skipped" and "used just now" in outcome.message
    assert entry.exists()


def test_measuring_and_verifying_never_read_through_a_mount_point(tmp_path: Path, store: Path):
    _namespace_or_skip()
    entry = make_entry(store, DIGEST, readonly=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"x" * 1_000_000)
    (outside / "secret").write_text("outside")
    code = textwrap.dedent(f"""
        import os, subprocess
        from core.measure import measure
        from core.verify_entry import verify_directory
        from core.treewalk import measure_walk
        subprocess.run(["mount", "--bind", {str(outside)!r}, {str(entry / "bin" / "deep")!r}],
                       check=True)
        subprocess.run(["mount", "--bind", {str(outside / "secret")!r},
                        {str(entry / "README")!r}], check=True)
        size, blocks, files, newest, problems, links, _top = measure_walk({str(entry)!r}.encode())
        print(size < 100_000, problems)
        outcome = verify_directory({str(entry)!r})
        print(outcome.status, "|", outcome.detail)
    """)
    proc = _run(code, namespace=True)
    assert proc.returncode == 0, proc.stderr
    measured, verified = proc.stdout.splitlines()
    assert measured == "True {('mount', ''): 2}"
    status, detail = verified.split(" | ")
    assert status == "error" and "is a mount point" in detail and "umount" in detail


def test_the_window_is_told_before_verifying_other_users_entries(store: Path, monkeypatch):
    from core import verify

    make_entry(store, DIGEST, readonly=False)
    entries = scan(stores_from_paths([str(store)]), {}).entries
    assert verify.atime_notice(entries) is None  # root reads without touching access times
    monkeypatch.setattr(os, "geteuid", lambda: 12345)
    notice = verify.atime_notice(entries)
    assert notice and notice.startswith("1 of these entries belong to other users")
    entries[0].atime_reliable = False  # noatime: nothing to lose
    assert verify.atime_notice(entries) is None


def test_optimise_leaves_an_entry_holding_a_mount_point_alone(tmp_path: Path, store: Path):
    _namespace_or_skip()
    entry = make_entry(store, DIGEST, readonly=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    code = textwrap.dedent(f"""
        import subprocess
        from core.optimise import optimise_store
        from core.stores import stores_from_paths
        subprocess.run(["mount", "--bind", {str(outside)!r}, {str(entry / "bin")!r}], check=True)
        result = optimise_store(stores_from_paths([{str(store)!r}])[0], dry_run=True)
        print(result.problems)
    """)
    proc = _run(code, namespace=True)
    assert proc.returncode == 0, proc.stderr
    assert "it holds a mount point" in proc.stdout and f"umount '{entry / 'bin'}'" in proc.stdout


def test_measuring_and_verifying_go_2000_deep_under_a_low_descriptor_limit(deep_dir: Path):
    tree = deep_dir / "tree"
    tree.mkdir()
    _deep(tree, 2000)
    code = textwrap.dedent(f"""
        import hashlib
        from core.manifest import generate_manifest
        from core.treewalk import measure_walk
        size, blocks, files, newest, problems, links, _top = measure_walk({str(tree)!r}.encode())
        manifest = generate_manifest({str(tree)!r}, "sha256new")
        print(size, files, problems, hashlib.sha256(manifest).hexdigest(), len(manifest))
    """)
    limited = _run(code, nofile=64)
    unlimited = _run(code)
    assert limited.returncode == 0, limited.stderr
    size, files, problems, _hash, _length = limited.stdout.split(" ", 4)
    assert (int(files), problems) == (20, "{}")
    assert limited.stdout == unlimited.stdout  # the same figures and manifest as without a limit
    du = subprocess.run(["du", "-s", "--apparent-size", "--block-size=1", str(tree)],
                        capture_output=True, text=True, check=True)  # fmt: skip
    assert int(size) == int(du.stdout.split()[0])


def test_an_ordinary_user_removes_and_logs_a_name_that_is_not_utf8(code_for_other_users):
    base = tempfile.mkdtemp(prefix="zia-names-", dir="/tmp")
    try:
        os.chmod(base, 0o755)
        store = Path(base) / "implementations"
        name = os.fsdecode(b"sha256new_\xff\x1b[31mevil")
        (store / name / "sub").mkdir(parents=True)
        (store / name / "sub" / os.fsdecode(b"\xfe")).write_text("x")
        for p in [Path(base), store, *store.rglob("*")]:
            os.lchown(p, NOBODY, NOBODY)
        log = f"{base}/state/actions.jsonl"
        code = code_for_other_users.prelude() + textwrap.dedent(f"""
            import os
            from core import clean
            from core.cache import scan
            from core.stores import stores_from_paths
            [entry] = scan(stores_from_paths([{str(store)!r}]), {{}}).entries
            [o] = clean.remove([clean.Verdict(entry, "remove", ["test"])], None, log_path={log!r})
            print(o.action, o.message)
        """)
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "env", "-i", "LANG=C", code_for_other_users.python, "-I", "-c", code],
            capture_output=True, text=True, timeout=60, cwd="/", check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "removed", proc.stdout
        assert os.listdir(store) == []
        records = [json.loads(x) for x in Path(log).read_bytes().decode("utf-8").splitlines()]
        assert [r["action"] for r in records] == ["removing", "removed"]
        assert all(r["entry"]["text"] == "sha256new_\\xff\\x1b[31mevil" for r in records)
    finally:
        shutil.rmtree(base)
