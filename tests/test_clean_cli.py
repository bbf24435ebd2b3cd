"""clean, pin, unpin, delete and optimise as a user runs them: a separate process, real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import RealStore, run_cli
from tests.test_clean import files, set_atime, write_feed

REPO = Path(__file__).resolve().parent.parent
DAY = 86400


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The shared runner (tests/conftest.py), with text output."""
    return run_cli(*args, env=env, text=True)


@pytest.fixture
def env(zi_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    zi_env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return zi_env


@pytest.fixture
def store(real_store: RealStore, env) -> RealStore:
    now = time.time()
    for label, age in (("old", 50), ("older", 80), ("new", 1)):
        set_atime(real_store.add(label, files(label)), now - age * DAY)
    d = real_store.digests
    write_feed(env, {d["old"]: "1.0", d["older"]: "0.9", d["new"]: "2.0"})
    return real_store


def test_dry_run_lists_candidates_and_total(store: RealStore, env) -> None:
    out = cli("clean", "--store", str(store.path), "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["STORE", "NAME", "SIZE", "ACTION", "REASON"]
    names = {line.split()[1] for line in lines[1:] if line.startswith(str(store.path))}
    assert names == {store.digests["old"], store.digests["older"]}
    assert "2 candidates" in lines[-2] and "freeing" in lines[-2]
    assert lines[-1] == "1 entry kept (--json says why)"
    assert all((store.path / n).exists() for n in store.digests.values())

    js = json.loads(
        cli(
            "clean", "--store", str(store.path), "--dry-run", "--json", "--keep", "2", env=env
        ).stdout
    )
    assert [c["name"] for c in js["candidates"]] == [store.digests["older"]]
    assert js["total"]["entries"] == 1 and js["total"]["disk"] == js["candidates"][0]["disk"] > 0
    kept = {k["name"]: k["reasons"] for k in js["kept"]}
    assert "newest cached versions" in kept[store.digests["old"]][0]


def test_clean_refuses_off_a_terminal_then_removes_with_yes(store: RealStore, env) -> None:
    out = cli("clean", "--store", str(store.path), env=env)
    assert out.returncode == 2 and "add --yes" in out.stderr
    assert (store.path / store.digests["old"]).exists()
    out = cli("clean", "--store", str(store.path), "--yes", env=env)
    assert out.returncode == 0, out.stderr
    assert not (store.path / store.digests["old"]).exists()
    assert (store.path / store.digests["new"]).exists()
    log = Path(env["XDG_STATE_HOME"]) / "zeroinstall-admin" / "actions.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["entry"] for r in records} == {store.digests["old"], store.digests["older"]}
    assert [r["action"] for r in records] == ["removing", "removed"] * 2  # intent, then outcome
    assert all(r["program"] == "Hello" for r in records)
    assert any(r["version"] == "0.9" for r in records)


def test_pin_unpin_and_delete(store: RealStore, env) -> None:
    old = store.digests["old"]
    assert cli("pin", "hello", env=env).returncode == 0  # the program, by its name
    out = cli("clean", "--store", str(store.path), "--dry-run", env=env)
    assert "Nothing to clean" in out.stdout
    out = cli("delete", "--store", str(store.path), "--yes", old, env=env)
    assert out.returncode == 1 and "pinned (every version of Hello)" in out.stderr
    assert (store.path / old).exists()
    assert cli("unpin", "Hello", env=env).returncode == 0
    assert cli("unpin", "Hello", env=env).returncode == 1
    bad = cli("pin", "no-such-program", env=env)
    assert bad.returncode == 1 and "neither a digest" in bad.stderr
    out = cli("delete", "--store", str(store.path), "--yes", str(store.path / old), env=env)
    assert out.returncode == 0, out.stderr
    assert not (store.path / old).exists()
    assert "REMOVED" in out.stdout


def test_delete_by_path_through_a_wrapper_that_names_it(store: RealStore, env) -> None:
    """``sudo zeroinstall-admin delete PATH``: sudo's command line names the entry, and was taken
    for a process using it ("kept: in use by process ... (sudo)")."""
    old = store.digests["old"]
    path = str(store.path / old)
    wrapper = 'PYTHONPATH="$0" "$1" -m core.cli delete --yes --store "$2" "$3"; exit $?'
    out = subprocess.run(
        ["sh", "-c", wrapper, str(REPO), sys.executable, str(store.path), path],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "REMOVED" in out.stdout and not (store.path / old).exists()


def test_delete_after_a_killed_removal_points_at_its_leftover(store: RealStore, env) -> None:
    """kill -9 during a removal leaves the entry renamed aside: deleting it by digest again says
    where it is, rather than only that it is not in any store."""
    old = store.digests["old"]
    aside = store.path / f"tmp-remove-0123456789ab-{old}"
    (store.path / old).rename(aside)
    out = cli("delete", "--store", str(store.path), "--yes", old, env=env)
    assert out.returncode == 1
    assert f"an interrupted removal left it as {aside}; delete that" in out.stderr
    out = cli("delete", "--store", str(store.path), "--yes", str(aside), env=env)
    assert out.returncode == 0, out.stderr
    assert not aside.exists()


def test_optimise_dry_run_json(store: RealStore, env) -> None:
    out = cli("optimise", "--store", str(store.path), "--dry-run", "--json", env=env)
    assert out.returncode == 0, out.stderr
    [result] = json.loads(out.stdout)
    assert result["dry_run"] and result["linked"] == 2 and result["saved"] > 0
    before = os.lstat(store.path / store.digests["old"] / "README").st_nlink
    assert before == 1
    out = cli("optimise", "--store", str(store.path), env=env)
    assert out.returncode == 0 and "still verifies" in out.stdout
    assert os.lstat(store.path / store.digests["old"] / "README").st_nlink == 3


def test_usage_errors(env) -> None:
    assert cli("clean", "--older-than", "-1", "--dry-run", env=env).returncode == 2
    assert cli("clean", "--keep", "-3", "--dry-run", env=env).returncode == 2
