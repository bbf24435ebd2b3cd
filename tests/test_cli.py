"""The command line, run as a user runs it: a separate process, compared with the real 0install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_0install, run_cli, write_tree

REPO = Path(__file__).resolve().parent.parent


cli = run_cli  # (tests/conftest.py)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "tree",
        {
            "bin/run": "!#!/bin/sh\n",
            "doc/readme.txt": "hi",
            "link": "@doc/readme.txt",
            "a b": b"\xff\x00",
        },
    )


@pytest.mark.parametrize("alg", ["sha1", "sha1new", "sha256", "sha256new"])
def test_digest_matches_0install(tree: Path, alg: str) -> None:
    ours = cli("digest", "--algorithm", alg, str(tree))
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.decode() == run_0install("digest", f"--algorithm={alg}", str(tree))


def test_digest_defaults_to_sha256new(tree: Path) -> None:
    out = cli("digest", str(tree)).stdout.decode()
    assert out == run_0install("digest", "--algorithm=sha256new", str(tree))


@pytest.mark.parametrize("alg", ["sha1", "sha256new"])
def test_manifest_matches_0install_byte_for_byte(tree: Path, alg: str) -> None:
    (tree / "caf\xe9".encode("latin-1").decode("utf-8", "surrogateescape")).write_text("x")
    ours = cli("manifest", str(tree), alg)
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run(["0install", "store", "manifest", str(tree), alg], capture_output=True)
    assert ours.stdout == theirs.stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    missing = cli("digest", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert missing.stderr.decode().strip().count("\n") == 0
    assert "nope' does not exist" in missing.stderr.decode()
    os.mkfifo(tmp_path / "fifo")
    fifo = cli("manifest", str(tmp_path), "sha256new")
    assert fifo.returncode == 1
    assert b"Traceback" not in fifo.stderr
    assert b"fifo" in fifo.stderr and b"Not a regular file" in fifo.stderr
    usage = cli("manifest", str(tmp_path), "md5")
    assert usage.returncode == 2
    assert b"unknown algorithm 'md5'" in usage.stderr
    assert cli("verify", "--jobs", "0").returncode == 2
    assert cli("verify", "not-a-digest").returncode == 2


def test_command_line_never_imports_qt(tree: Path) -> None:
    code = (
        "import sys, io, contextlib\n"
        "from gui.launch import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): main(['digest', {str(tree)!r}])\n"
        "print([m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'gui.app'))])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "[]", out.stderr


def _damaged_store(real_store) -> tuple[Path, str, str]:
    good = real_store.add("good", {"a.txt": "fine", "bin/tool": "!#!/bin/sh\n"})
    bad = real_store.add("bad", {"data.txt": "original"})
    bad.chmod(0o755)
    (bad / "data.txt").chmod(0o644)
    (bad / "data.txt").write_text("tampered!")
    store = real_store.path
    (store / "tmp-leftover").mkdir()
    (store / ("sha256new_" + "A" * 52)).symlink_to(good)
    return store, good.name, bad.name


def test_list_json_has_every_entry(real_store) -> None:
    store, good, bad = _damaged_store(real_store)
    result = cli("list", "--store", str(store), "--json", env=real_store.env)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {good, bad, "tmp-leftover", "sha256new_" + "A" * 52}
    for key in ("store", "name", "kind", "digest", "size", "files", "last_used", "feed", "version"):
        assert key in rows[good]
    assert rows[good]["kind"] == "implementation"
    # Everything on disk counts (the .manifest 0install wrote, directories), as du counts it.
    assert rows[good]["files"] == 3
    du = subprocess.run(
        ["du", "-sb", str(store / good)], capture_output=True, text=True, check=True
    )
    assert rows[good]["size"] == int(du.stdout.split()[0])
    assert rows["tmp-leftover"]["kind"] == "temporary"
    assert rows["sha256new_" + "A" * 52]["kind"] == "suspicious"


def test_verify_json_and_exit_codes(real_store) -> None:
    store, good, bad = _damaged_store(real_store)
    result = cli("verify", "--store", str(store), "--json", env=real_store.env)
    assert result.returncode == 1, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows[good]["status"] == "ok"
    assert rows[bad]["status"] == "corrupt"
    [change] = rows[bad]["changes"]
    assert (change["change"], change["path"], change["what"][:2]) == (
        "modified",
        "/data.txt",
        ["content", "size 8 -> 9"],
    )
    assert change["text"].startswith("modified /data.txt: content, size 8 -> 9")
    assert rows["tmp-leftover"]["status"] == "skipped"
    assert rows["sha256new_" + "A" * 52]["status"] == "corrupt"
    for row in rows.values():
        assert set(row) >= {"store", "name", "status", "detail"}

    only_good = cli("verify", "--store", str(store), good, env=real_store.env)
    assert only_good.returncode == 0, only_good.stdout
    assert b"Successfully verified implementations: 1" in only_good.stdout

    loose = good.replace("sha256new_", "sha256new=")
    assert (
        cli("verify", "--store", str(store), "--jobs", "1", loose, env=real_store.env).returncode
        == 0
    )

    human = cli("verify", "--store", str(store), env=real_store.env)
    text = human.stdout.decode()
    assert human.returncode == 1
    assert "Corrupted or modified implementations: 2" in text
    assert "data.txt" in text and bad in text

    unknown = cli("verify", "--store", str(store), "sha1new=" + "0" * 40, env=real_store.env)
    assert unknown.returncode == 1
    assert b"not in any store" in unknown.stdout


def test_stores_reports_missing_store(tmp_path: Path) -> None:
    result = cli("stores", "--store", str(tmp_path / "gone"), "--json")
    assert result.returncode == 0
    [store] = json.loads(result.stdout)
    assert store["problem"]


def test_stores_are_named_as_the_window_names_them(zi_env: dict[str, str]) -> None:
    """user / shared / system N, or the path: the same labels as the window and list --json."""
    env = dict(zi_env, XDG_CACHE_DIRS="/var/cache:" + zi_env["XDG_CACHE_DIRS"])
    result = cli("stores", "--json", env=env)
    assert result.returncode == 0
    labels = {s["path"]: s["label"] for s in json.loads(result.stdout)}
    assert labels["/var/cache/0install.net/implementations"] == "shared"
    assert labels[zi_env["XDG_CACHE_HOME"] + "/0install.net/implementations"] == "user"
    text = cli("stores", env=env).stdout.decode()
    assert text.startswith("user ") and "\nshared  /var/cache/0install.net/implementations" in text


def test_installed_command_ends_at_once_with_everything_written(tmp_path: Path) -> None:
    """The installed entry point ends a command without the interpreter's tear-down
    (core.lifetime.exit_now): the output still arrives whole, through a pipe, with the exit code,
    and a reader that stops early gets a broken pipe handled as one, not a traceback."""
    store = tmp_path / "store"
    for i in range(300):
        write_tree(store / f"sha1={i:040x}", {"f": "x" * i})
    code = "import sys; from gui.launch import run; sys.argv[0] = 'zeroinstall-admin'; run()\n"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-c", code, "list", "--json", "--store", str(store)]
    whole = subprocess.run(argv, capture_output=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr
    assert len(json.loads(whole.stdout)) == 300
    missing = subprocess.run(
        [*argv[:4], "--store", str(tmp_path / "nope")], capture_output=True, env=env
    )
    assert missing.returncode == 1 and b"nope" in missing.stderr
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as reader:
        assert reader.stdout is not None and reader.stderr is not None
        reader.stdout.read(10)
        reader.stdout.close()  # stops reading: the rest of the 200 kB cannot be written
        errors = reader.stderr.read()
        assert reader.wait(timeout=300) == 1 and b"Traceback" not in errors, errors


def test_dataclasses_start_without_inspect_and_still_have_it() -> None:
    """A command imports dataclasses without inspect (most of its import time); a dataclass
    without a docstring still gets its signature as one, through the real inspect."""
    script = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from core import lifetime
lifetime.import_dataclasses()
import dataclasses
print("inspect" in sys.modules)
@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.5
print(Point.__doc__)
import inspect
print(inspect.signature(Point), type(sys.modules["inspect"]) is type(sys))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.splitlines() == [
        "False",
        "Point(x: int, y: float = 0.5)",
        "(x: int, y: float = 0.5) -> None True",
    ]


def test_one_registry_names_every_command_its_group_defines() -> None:
    """core.cli.GROUPS is the one list: each group's module registers exactly the commands listed
    for it, a command's own parser is built from its group alone, and the launcher sends every
    one of them (and nothing else) to the command line."""
    import importlib

    from core import cli
    from gui.launch import _is_command

    def names(parser) -> set[str]:
        sub = next(a for a in parser._actions if a.dest == "command")
        return set(sub.choices)

    for group in cli.GROUPS:
        assert names(cli.build_parser(group.commands[0])) == set(group.commands), group.module
        assert callable(importlib.import_module(group.module).register)
    assert names(cli.build_parser()) == cli.COMMANDS
    assert sum(len(g.commands) for g in cli.GROUPS) == len(cli.COMMANDS)  # no name twice
    assert all(_is_command([name, "--help"]) for name in cli.COMMANDS)
    assert not _is_command(["--demo"]) and not _is_command(["optimiser"]) and not _is_command([])
