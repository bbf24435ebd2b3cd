"""The command line against hostile names, unusable stores, absurd arguments, closed streams and
Ctrl-C: one clear line and the right exit code, never a traceback."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli, cli_common
from tests.conftest import RealStore, run_0install, run_cli, write_tree
from tests.test_cli import REPO
from tests.test_verify import as_nobody, open_dir, writable  # noqa: F401 - fixtures

UTF8_ENV = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PYTHONIOENCODING": ""}


def load_everything() -> None:
    """Import what the commands import lazily, while still root: the user the tests switch to
    may not be able to read this checkout (a clone in /root)."""
    import importlib

    cli.build_parser()
    for module in (
        "core.cache",
        "core.feeds",
        "core.measure",
        "core.pool",
        "core.stores",
        "core.verify",
        "humanize",
    ):
        importlib.import_module(module)


def run(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """The shared runner (tests/conftest.py), in a UTF-8 locale unless a test says otherwise."""
    return run_cli(*args, env={**(env or os.environ), **UTF8_ENV}, timeout=120, **kwargs)


# --- names are data -------------------------------------------------------------------------------


@pytest.fixture
def odd_store(real_store: RealStore) -> tuple[Path, bytes, bytes]:
    """A store with an entry whose name is not UTF-8 and one whose name is terminal commands, and a
    damaged implementation with a file whose name is not UTF-8 either."""
    store = os.fsencode(real_store.path)
    os.makedirs(store, exist_ok=True)
    latin = b"caf\xe9-\xff"
    escape = b"tmp-\x1b[2K\rOK"
    for name in (latin, escape):
        os.mkdir(store + b"/" + name)
    impl = real_store.add("odd", {"plain": "p"})
    writable(impl)
    with open(os.fsencode(impl) + b"/bad\xff\x1b[2K", "wb") as f:
        f.write(b"planted")
    return real_store.path, latin, escape


def test_list_verify_stores_with_names_that_are_not_utf8(odd_store) -> None:
    store, latin, escape = odd_store
    for command in (["list"], ["verify", "-v"], ["stores"]):
        result = run(*command, "--store", str(store))
        assert b"Traceback" not in result.stderr, result.stderr
        text = result.stdout.decode("utf-8")  # strict: the output is UTF-8
        assert "\x1b" not in text and "\r" not in text
        if command[0] != "stores":
            assert "caf\\xe9-\\xff" in text
            assert "tmp-\\x1b[2K\\rOK" in text
    verify = run("verify", "--store", str(store))
    assert verify.returncode == 1
    assert "added /bad\\xff\\x1b[2K" in verify.stdout.decode(), verify.stdout.decode()


def test_json_names_are_lossless_and_strict_utf8(odd_store) -> None:
    store, latin, escape = odd_store
    rows = json.loads(run("list", "--store", str(store), "--json").stdout.decode("utf-8"))
    names = {}
    for row in rows:
        name = row["name"]
        raw = base64.b64decode(name["base64"]) if isinstance(name, dict) else name.encode()
        names[raw] = row
    assert latin in names and escape in names
    expected = {"base64": base64.b64encode(latin).decode(), "text": "caf\\xe9-\\xff"}
    assert names[latin]["name"] == expected
    assert names[escape]["name"] == escape.decode()  # valid UTF-8: a plain string, exactly
    verdicts = json.loads(run("verify", "--store", str(store), "--json").stdout.decode("utf-8"))
    [corrupt] = [v for v in verdicts if v["status"] == "corrupt"]
    [change] = corrupt["changes"]
    assert change["change"] == "added"
    assert base64.b64decode(change["path"]["base64"]) == b"/bad\xff\x1b[2K"


# --- stores that cannot be used -------------------------------------------------------------------


def test_store_named_on_the_command_line_must_be_usable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for command in ("verify", "list"):
        missing = run(command, "--store", str(tmp_path / "missing"))
        assert missing.returncode == 1 and b"does not exist" in missing.stderr
        assert b"Checked 0 items" not in missing.stdout
        afile = run(command, "--store", str(tmp_path / "file"))
        assert afile.returncode == 1 and b"is not a directory" in afile.stderr
        empty = run(command, "--store", "")
        assert empty.returncode == 2 and b"--store needs a directory" in empty.stderr


def test_unreadable_and_unsearchable_stores(
    open_dir: Path,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture,
) -> None:
    unreadable = open_dir / "unreadable"
    unsearchable = open_dir / "unsearchable"
    for store in (unreadable, unsearchable):
        write_tree(store / ("sha256new_" + "A" * 52), {"f": "x"})
    unreadable.chmod(0o300)
    unsearchable.chmod(0o644)  # names can be listed, entries not examined
    load_everything()
    try:
        with as_nobody():
            assert cli.main(["verify", "--store", str(unreadable)]) == 1
            assert "cannot be read: Permission denied" in capsys.readouterr().err
            assert cli.main(["verify", "--store", str(unsearchable)]) == 1
            assert "can be listed but not searched" in capsys.readouterr().err
            assert cli.main(["stores", "--store", str(unsearchable)]) == 0
            assert "can be listed but not searched" in capsys.readouterr().out
    finally:
        unreadable.chmod(0o755)
        unsearchable.chmod(0o755)


def test_implementation_dirs_fifo_does_not_hang(zi_env: dict[str, str]) -> None:
    config = Path(zi_env["XDG_CONFIG_HOME"]) / "0install.net" / "injector"
    config.mkdir(parents=True)
    os.mkfifo(config / "implementation-dirs")
    result = run("stores", env=zi_env)  # the timeout fails the test if it hangs
    assert result.returncode == 0
    assert b"is not a regular file" in result.stderr or b"is not a regular file" in result.stdout


# --- arguments and streams ------------------------------------------------------------------------


def test_absurd_jobs_are_refused(tmp_path: Path) -> None:
    result = run("verify", "--store", str(tmp_path), "--jobs", "99999999999")
    assert result.returncode == 2
    assert b"--jobs must be between 1 and 64" in result.stderr


def test_closed_stdout_is_one_line(tmp_path: Path) -> None:
    for command in (["stores"], ["verify", "--store", str(tmp_path)], ["digest", str(tmp_path)]):
        result = run(
            *command,
            stdout=None,
            stdin=subprocess.DEVNULL,
            pass_fds=(),
            close_fds=True,
            preexec_fn=lambda: os.close(1),
        )
        assert b"Traceback" not in result.stderr, result.stderr
        assert result.returncode == 1
        assert result.stderr.count(b"\n") == 1 and b"standard output is closed" in result.stderr


@pytest.mark.parametrize(
    "argv, target",
    [
        (["digest", "{tree}"], "core.manifest.generate_manifest"),
        (["manifest", "{tree}", "sha1"], "core.manifest.generate_manifest"),
        (["stores"], "core.stores._discover"),
        (["list", "--store", "{store}"], "core.measure.measure_paths"),
        (["verify", "--store", "{store}"], "core.verify.verify_paths"),
    ],
)
def test_ctrl_c_exits_130_in_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, argv: list[str], target: str
) -> None:
    tree = write_tree(tmp_path / "tree", {"f": "x"})
    store = tmp_path / "store"
    write_tree(store / ("sha256new_" + "A" * 52), {"f": "x"})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    module, name = target.rsplit(".", 1)
    import importlib

    monkeypatch.setattr(importlib.import_module(module), name, interrupted)
    code = cli.main([a.format(tree=tree, store=store) for a in argv])
    assert code == 130
    assert capsys.readouterr().err.endswith("interrupted\n")


def test_ctrl_c_during_verify_of_a_real_process(real_store: RealStore, tmp_path: Path) -> None:
    """A real SIGINT while the file is being hashed: exit 130, one line, no worker left behind."""
    import signal

    import psutil

    impl = real_store.path / ("sha256new_" + "B" * 52)
    impl.mkdir(parents=True)
    huge = impl / "huge"
    with open(huge, "wb") as f:
        f.truncate(64 << 30)  # sparse: hashing it would take minutes
    env = dict(os.environ, **UTF8_ENV, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "verify", "--store", str(real_store.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        # As from a terminal: a suite started in the background by a shell (`... &`, CI runners)
        # inherits SIGINT ignored, and Python then rightly leaves Ctrl-C ignored in its children.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        main = psutil.Process(proc.pid)

        def hashing() -> list[psutil.Process]:
            """The processes (this verify or its workers) that have the huge file open."""
            found = []
            for p in [main, *main.children()]:
                try:
                    if any(f.path == str(huge) for f in p.open_files()):
                        found.append(p)
                except psutil.NoSuchProcess:
                    pass
            return found

        # The event waited for: the file is open, so the hashing has begun (however busy the
        # machine is). The loop ends by itself if verify exits instead.
        while not hashing():
            assert proc.poll() is None, proc.communicate()
            psutil.wait_procs([main], timeout=0.02)
        kids = main.children()
        proc.send_signal(signal.SIGINT)
        # A guard against a hang only: verify ends as soon as it sees the signal.
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.decode().strip().endswith("interrupted") and b"Traceback" not in err

    def gone(p: psutil.Process) -> bool:
        try:
            return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    assert all(gone(k) for k in kids)


# --- smaller ones ---------------------------------------------------------------------------------


def test_digest_of_a_symlink_to_a_directory_digests_the_target(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", {"a": "x", "d/b": "y"})
    (tmp_path / "link").symlink_to(tree)
    ours = run("digest", str(tmp_path / "link"))
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.decode() == run_0install(
        "digest", "--algorithm=sha256new", str(tmp_path / "link")
    )


def test_list_total_counts_hard_links_between_entries_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    one = write_tree(store / ("sha256new_" + "C" * 52), {"big": "z" * 3_000_000})
    two = store / ("sha256new_" + "D" * 52)
    two.mkdir()
    os.link(one / "big", two / "big")  # as `0install store optimise` leaves them
    text = run("list", "--store", str(store)).stdout.decode()
    assert "2 entries, 3.0 MB" in text  # not 6.0 MB


def test_atime_warning_is_given_once(
    good: list[Path],
    open_dir: Path,  # noqa: F811 - the fixture imported above
    capsys,
) -> None:
    """Files of another owner cannot be read with O_NOATIME: say so, once."""
    from tests.test_verify import copy_impl

    store = open_dir / "store"
    store.mkdir()
    for impl in good[:3]:
        copy_impl(impl, store / impl.name)
    for dirpath, _dirs, _files in os.walk(open_dir):
        os.chmod(dirpath, 0o755)
    load_everything()
    with as_nobody():
        code = cli.main(["verify", "--jobs", "1", "--store", str(store)])
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("warning: some files read belong to other users") == 1


def test_no_warning_when_access_times_are_left_alone(good: list[Path], capsys) -> None:
    assert cli.main(["verify", "--store", str(good[0].parent)]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.fixture
def good(real_store: RealStore) -> list[Path]:
    from tests.test_verify import FILES

    return [real_store.add(f"impl{i}", FILES | {"n": str(i)}) for i in range(3)]


def _reference_row(entry) -> dict:
    """An entry of ``list --json`` as the documented schema says, built the plain way."""
    import time

    from core.display import json_name

    def iso(ts):
        return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts)))

    text = cli._text
    usage = entry.usage
    known = bool(usage and entry.atime_reliable)
    return {
        "store": json_name(entry.store.path),
        "store_kind": entry.store.kind,
        "store_label": text(entry.store.label),
        "name": json_name(entry.name),
        "path": json_name(entry.path),
        "kind": entry.kind,
        "reason": text(entry.reason) or None,
        "digest": json_name(entry.name) if entry.digest else None,
        "algorithm": entry.digest.algorithm if entry.digest else None,
        "program": text(entry.program),
        "feed": text(entry.feed.feed_url) if entry.feed else None,
        "version": text(entry.version) or None,
        "size": usage.size if usage else None,
        "disk": usage.disk if usage else None,
        "files": usage.files if usage else None,
        "last_used": iso(usage.last_used) if known else None,
        "last_used_known": known,
        "added": iso(entry.added),
        "owner": text(entry.owner),
        "used_by": [text(u) for u in entry.used_by],
        "error": text(usage.error) if usage else None,
    }


def test_list_json_lines_are_exactly_what_json_dumps_writes(odd_store, tmp_path: Path) -> None:
    """The hand-made encoder of ``list --json`` writes byte for byte what ``json.dumps`` of the
    documented row would: odd names, reasons, unmeasured entries, apps and errors included."""
    import dataclasses

    from core import measure, stores
    from core.feeds import FeedImpl
    from core.measure import Usage

    store, _latin, _escape = odd_store
    (store / ("sha256=" + "c" * 64)).mkdir()
    os.chmod(store / ("sha256=" + "c" * 64), 0o777)  # suspicious: a reason to encode
    result, _totals = measure.scan_and_measure(stores.stores_from_paths([str(store)]), jobs=1)
    entries = list(result.entries)
    assert len(entries) == 4
    first = entries[0]
    entries += [
        dataclasses.replace(first, usage=None),
        dataclasses.replace(first, atime_reliable=False, used_by=["tool", "caf\udce9"]),
        dataclasses.replace(
            first, owner="jos\u00e9", usage=Usage(1, 4096, 1, None, "2 directories unreadable")
        ),
        dataclasses.replace(first, feed=FeedImpl("http://x.org/\u00e9.xml", "Caf\u00e9", "1.0")),
        dataclasses.replace(first, feed=FeedImpl("http://x.org/a.xml", "A", "")),
    ]
    encode = cli._entry_encoder()
    for entry in entries:
        line = encode(entry)
        expected = _reference_row(entry)
        assert json.loads(line) == expected
        assert line == json.dumps(expected, ensure_ascii=False)
        assert line.encode("utf-8")  # strict UTF-8: no lone surrogates
    assert {e.kind for e in entries} >= {"implementation", "temporary", "suspicious", "unknown"}


def test_json_written_whole_when_the_kernel_takes_it_bit_by_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """list --json writes its lines with writev; a write that stops part way (a slow pipe, a
    signal) goes on from where it stopped, so nothing is lost or written twice."""
    real_write = os.write
    calls = []

    def dribble(fd: int, buffers) -> int:
        calls.append(len(buffers))
        return real_write(fd, b"".join(bytes(b) for b in buffers)[:777])

    monkeypatch.setattr(os, "writev", dribble)
    rows = [{"name": f"entry {i}", "text": "\u00e9" * (i % 50)} for i in range(3000)]
    with open(tmp_path / "out.json", "w", encoding="utf-8") as out:
        cli_common.write_json(rows, out)
    assert json.loads((tmp_path / "out.json").read_text("utf-8")) == rows
    assert len(calls) > 100 and max(calls) <= 1024
