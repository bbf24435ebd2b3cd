"""clean, delete and optimise as a user runs them against bad stores, hostile names, strict locales
and closed or full output (issue 17): the same checks as list and verify, one clear line, the
right exit code, JSON that is strict UTF-8 and lossless, and nothing raw on a terminal."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import cli, elevate
from core import root_helper as rh
from tests.conftest import RealStore, run_cli, write_tree
from tests.test_cli import REPO
from tests.test_cli_hardening import load_everything
from tests.test_verify import as_nobody, open_dir  # noqa: F401 - fixtures

DAY = 86400
ESCAPE = b"tmp-\x1b[2K\rOK"
NEWLINE = b"tmp-line\nbreak"
LATIN = b"tmp-caf\xe9-\xff"
BIDI = "tmp-\u202eevil".encode()
STORE_COMMANDS = [
    ["list"],
    ["verify"],
    ["clean", "--dry-run"],
    ["clean", "--yes"],
    ["delete", "--yes", "sha256new_" + "A" * 52],
    ["optimise", "--dry-run"],
    ["optimise"],
]


def run(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    """The shared runner (tests/conftest.py), in a UTF-8 locale unless the test names one."""
    return run_cli(*args, env={"LC_ALL": "C.UTF-8", **env}, **kwargs)


@pytest.fixture
def env(zi_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    zi_env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return zi_env


def hostile_store(path: Path) -> Path:
    """A store of leftover temporaries (removable by clean) with hostile names, old enough."""
    raw = os.fsencode(path)
    os.makedirs(raw, exist_ok=True)
    old = time.time() - 10 * DAY
    for name in (ESCAPE, NEWLINE, LATIN, BIDI):
        os.mkdir(raw + b"/" + name)
        with open(raw + b"/" + name + b"/f", "wb") as f:
            f.write(b"x")
        os.utime(raw + b"/" + name + b"/f", (old, old))
        os.utime(raw + b"/" + name, (old, old))
    return path


def no_raw_controls(text: str) -> None:
    for bad in ("\x1b", "\r", "\u202e", "line\nbreak"):
        assert bad not in text, text


# --- item 1 and 7: --store is checked the same way by every command ------------------------------


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_every_command_checks_its_store(command: list[str], tmp_path: Path, env) -> None:
    (tmp_path / "afile").write_text("x")
    empty = run(command[0], "--store", "", *command[1:], env=env, cwd=tmp_path)
    assert empty.returncode == 2, empty.stderr
    assert b"usage error: --store needs a directory" in empty.stderr
    for name, message in (("missing", b"does not exist"), ("afile", b"is not a directory")):
        bad = run(command[0], "--store", str(tmp_path / name), *command[1:], env=env)
        assert bad.returncode == 1, bad.stderr
        assert bad.stderr.count(b"\n") == 1 and message in bad.stderr, bad.stderr
        assert str(tmp_path / name).encode() in bad.stderr
        assert b"Nothing to clean" not in bad.stdout and b"saved" not in bad.stdout


def test_delete_with_an_empty_store_never_means_the_current_directory(tmp_path: Path, env) -> None:
    here = tmp_path / "cwd"
    entry = write_tree(here / "tmp-leftover", {"f": "x"})
    result = run("delete", "--yes", "--store", "", "tmp-leftover", env=env, cwd=here)
    assert result.returncode == 2 and entry.exists()
    by_path = run("delete", "--yes", "--store", "", str(entry), env=env, cwd=here)
    assert by_path.returncode == 2 and entry.exists()


def test_unreadable_and_unsearchable_stores_are_refused_by_every_command(
    open_dir: Path,  # noqa: F811 - the fixture imported above
    env,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unreadable = open_dir / "unreadable"
    unsearchable = open_dir / "unsearchable"
    for store in (unreadable, unsearchable):
        write_tree(store / ("sha256new_" + "A" * 52), {"f": "x"})
    unreadable.chmod(0o300)
    unsearchable.chmod(0o644)  # names can be listed, entries not examined
    for key in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "HOME"):
        monkeypatch.setenv(key, str(open_dir / "home"))
    load_everything()
    import importlib

    for module in ("core.cli_clean", "core.clean", "core.evidence", "core.optimise", "core.pins",
                   "core.actionlog", "core.treewalk", "core.versions"):  # fmt: skip
        importlib.import_module(module)  # loaded while root (a clone in /root)

    try:
        with as_nobody():
            for command in STORE_COMMANDS:
                for store, message in (
                    (unreadable, "cannot be read: Permission denied"),
                    (unsearchable, "can be listed but not searched"),
                ):
                    code = cli.main([command[0], "--store", str(store), *command[1:]])
                    out, err = capsys.readouterr()
                    assert code == 1, (command, err)
                    assert message in err and err.count("\n") == 1, (command, err)
                    assert "saved" not in out and "Nothing to clean" not in out
    finally:
        unreadable.chmod(0o755)
        unsearchable.chmod(0o755)


# --- item 3: names in JSON and on the terminal ----------------------------------------------------


def _name_bytes(value) -> bytes:
    return base64.b64decode(value["base64"]) if isinstance(value, dict) else value.encode()


def test_clean_json_names_are_lossless_strict_utf8(tmp_path: Path, env) -> None:
    store = hostile_store(tmp_path / "store")
    dry = run("clean", "--store", str(store), "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    data = json.loads(dry.stdout.decode("utf-8"))  # strict: no lone surrogates
    names = {_name_bytes(c["name"]): c for c in data["candidates"]}
    assert set(names) == {ESCAPE, NEWLINE, LATIN, BIDI}
    assert names[LATIN]["name"] == {
        "base64": base64.b64encode(LATIN).decode(),
        "text": "tmp-caf\\xe9-\\xff",
    }
    assert names[ESCAPE]["name"] == ESCAPE.decode()  # valid UTF-8: a plain string
    assert _name_bytes(names[LATIN]["path"]) == os.fsencode(store) + b"/" + LATIN


def test_delete_json_and_lines_escape_hostile_names(tmp_path: Path, env) -> None:
    store = hostile_store(tmp_path / "store")
    raw = os.fsencode(store)
    done = run("delete", "--yes", "--json", "--store", str(store), os.fsdecode(raw + b"/" + ESCAPE),
               env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout.decode("utf-8"))["results"]
    assert result["name"] == ESCAPE.decode() and result["outcome"] == "removed"
    shown = run(
        "delete", "--yes", "--store", str(store),
        os.fsdecode(raw + b"/" + NEWLINE), os.fsdecode(raw + b"/" + BIDI), env=env,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode("utf-8")
    no_raw_controls(text)
    assert "tmp-line\\nbreak" in text and "tmp-\\u202eevil" in text
    assert not os.path.lexists(raw + b"/" + NEWLINE)
    missing = run("delete", "--yes", "--store", str(store), "/x/\x1b[31mred", env=env)
    assert missing.returncode == 1
    assert b"\x1b" not in missing.stderr and b"\\x1b[31mred" in missing.stderr


def test_clean_table_and_notes_escape_hostile_names(tmp_path: Path, env) -> None:
    store = hostile_store(tmp_path / "store")
    dry = run("clean", "--store", str(store), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    text = dry.stdout.decode("utf-8")
    no_raw_controls(text)
    assert "tmp-\\x1b[2K\\rOK" in text and "tmp-caf\\xe9-\\xff" in text


def iso_8859_1(tmp_path: Path) -> dict[str, str]:
    """An ISO-8859-1 locale of the test's own (LOCPATH), not installed on the machine."""
    if shutil.which("localedef") is None:
        pytest.skip("localedef is not installed (Debian package libc-bin)")
    where = tmp_path / "locales"
    where.mkdir()
    made = subprocess.run(
        ["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(where / "en_US.ISO-8859-1")],
        capture_output=True,
        check=False,
    )
    if not (where / "en_US.ISO-8859-1").exists():
        pytest.skip(f"localedef could not make en_US.ISO-8859-1: {made.stderr[-200:]!r}")
    return {"LOCPATH": str(where), "LC_ALL": "en_US.ISO-8859-1", "LANG": "en_US.ISO-8859-1"}


def test_no_locale_makes_a_command_fail(tmp_path: Path, env) -> None:
    store = hostile_store(tmp_path / "store")
    latin1 = iso_8859_1(tmp_path)
    probe = run("stores", "--json", env={**env, **latin1})
    check = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.getfilesystemencoding())"],
        env={**env, **latin1}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert probe.returncode == 0 and check.stdout.strip() == "iso8859-1", check.stdout
    for locale in ({"LC_ALL": "C", "LANG": "C"}, latin1):
        for command in (
            ["list"], ["list", "--json"], ["verify"], ["verify", "--json"],
            ["clean", "--dry-run"], ["clean", "--dry-run", "--json"],
            ["optimise", "--dry-run"], ["optimise", "--dry-run", "--json"],
        ):  # fmt: skip
            result = run(*command, "--store", str(store), env={**env, **locale})
            assert b"Traceback" not in result.stderr, (locale, command, result.stderr)
            assert result.returncode == 0, result.stderr
            assert b"\x1b" not in result.stdout and b"\x1b" not in result.stderr
            if "--json" in command:
                json.loads(result.stdout.decode("utf-8"))


@pytest.mark.parametrize("command", [["clean", "--dry-run"], ["list"], ["optimise", "--dry-run"]])
def test_closed_or_full_stdout(command: list[str], tmp_path: Path, env) -> None:
    """Closed: one line, exit 1. A full pipe left non-blocking by the parent: the output waits
    for the reader and arrives whole (Python's own writer would drop it and exit 0)."""
    store = hostile_store(tmp_path / "store")
    closed = run(*command, "--store", str(store), env=env, stdout=None, capture_output=False,
                 stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))  # fmt: skip
    assert closed.returncode == 1 and b"standard output is closed" in closed.stderr
    expected = run(*command, "--store", str(store), env=env).stdout
    assert expected
    read_end, write_end = os.pipe()
    filler = b""
    try:
        fcntl.fcntl(write_end, fcntl.F_SETFL, fcntl.fcntl(write_end, fcntl.F_GETFL) | os.O_NONBLOCK)
        try:
            while True:
                filler += b"x" * os.write(write_end, b"x" * 65536)
        except BlockingIOError:
            pass  # full: a write now fails with EAGAIN instead of waiting
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", *command, "--store", str(store)],
            env={**env, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"},
            stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(write_end)
        write_end = -1
        # Read only once it has written what fits (none: the pipe is full) and now waits for the
        # reader, or has ended: as a reader that comes late.
        syscall = Path(f"/proc/{proc.pid}/syscall")  # "1 ..." while in write (x86-64), "20" writev
        writes = {"1", "20"} if os.uname().machine == "x86_64" else {"64", "66"}  # else arm64
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if syscall.read_text().split()[0] in writes:
                    break
            except (OSError, IndexError):
                pass
            time.sleep(0.02)
        with os.fdopen(read_end, "rb") as reader:
            read_end = -1
            got = reader.read()  # to the end: the command has closed its copy
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    assert b"Traceback" not in err
    assert got == filler + expected


# --- item 4: the helper's output is one line ------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="the helper runs as root only")
def test_helper_prints_one_line_whatever_its_arguments_hold() -> None:
    """The helper as pkexec starts it: its error is one line, names escaped."""
    result = subprocess.run(
        [sys.executable, "-I", rh.__file__, "remove-implementation", b"/nowhere/a\nb",
         b"sha256new_x\x1b[2K\xff"],
        capture_output=True, check=False, env={"PKEXEC_UID": "0"},
    )  # fmt: skip
    assert result.returncode != 0 and result.stdout == b""
    err = result.stderr.decode("utf-8")
    assert err.count("\n") == 1 and "\x1b" not in err, err
    assert "/nowhere/a\\nb" in err or "sha256new_x\\x1b[2K\\xff" in err, err
    assert rh.one_line("a\nb\x1b\udcff\u202e\\") == "a\\nb\\x1b\\xff\\u202e\\"


def test_reader_takes_the_whole_summary_and_error() -> None:
    ok = elevate.interpret("remove-implementation", ("s", "n"), 0, "removed s/a\nb\n", "")
    assert ok.ok and ok.message == "removed s/a\\nb"
    failed = elevate.interpret(
        "remove-implementation", ("s", "n"), 1, "",
        "pkexec: something\nzeroinstall-admin-helper: cannot remove 'a\nb': busy\n",
    )  # fmt: skip
    assert not failed.ok and failed.message == "cannot remove 'a\\nb': busy"


def test_helper_asks_to_end_with_the_app() -> None:
    probe = (
        f"import ctypes, signal, sys; sys.path.insert(0, {str(REPO)!r});"
        "from core import root_helper as rh;"
        "ok = rh._end_with_parent(); got = ctypes.c_int();"
        "ctypes.CDLL(None).prctl(2, ctypes.byref(got), 0, 0, 0);"  # PR_GET_PDEATHSIG
        "print(ok, got.value == signal.SIGTERM)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == ["True", "True"], result.stderr


# --- item 6: dated selections ---------------------------------------------------------------------


def test_an_older_selections_file_is_named_and_how_to_drop_it(real_store: RealStore, env) -> None:
    from tests.test_clean import files, write_app

    real_store.add("old", files("old"))
    real_store.add("new", files("new"))
    d = real_store.digests
    write_app(env, "tool", d["old"], "selections-2024-03-01.xml")
    write_app(env, "tool", d["new"], "selections-2024-05-01.xml")
    apps = Path(env["XDG_CONFIG_HOME"]) / "0install.net" / "apps" / "tool"
    os.link(apps / "selections-2024-05-01.xml", apps / "selections.xml")  # as 0install does
    listed = json.loads(run("list", "--json", "--store", str(real_store.path), env=env).stdout)
    used_by = {row["name"]: row["used_by"] for row in listed}
    assert used_by[d["old"]] == ["tool (older selections of 2024-03-01)"]
    assert used_by[d["new"]] == ["tool"]  # the dated file that is selections.xml is the current
    refused = run("delete", "--yes", "--store", str(real_store.path), d["old"], env=env)
    assert refused.returncode == 1
    err = refused.stderr.decode()
    assert f"{d['old']} is kept: named by an older selections file of the 0install app tool" in err
    assert str(apps / "selections-2024-03-01.xml") in err and "delete that file" in err
    (apps / "selections-2024-03-01.xml").unlink()
    done = run("delete", "--yes", "--store", str(real_store.path), d["old"], env=env)
    assert done.returncode == 0, done.stderr
    assert not (real_store.path / d["old"]).exists()


def test_progress_line_shows_names_escaped_and_within_the_terminal() -> None:
    import io

    from core.cli_common import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = Progress(screen)
    progress.show("[1 / 2] tmp-\x1b[2K\rOK\n\u202e" + "x" * 200)
    shown = screen.getvalue()
    assert shown.startswith("\r[1 / 2] tmp-\\x1b[2K\\rOK\\n\\u202e")
    assert shown.count("\r") == 1 and "\x1b" not in shown and "\n" not in shown
    assert len(shown) <= progress.columns  # one line: "\r" and at most columns - 1 characters
    progress.clear()
    assert screen.getvalue().endswith("\r")
