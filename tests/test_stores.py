"""Store discovery, checked against the real ``0install store list`` in isolated environments."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core import stores
from core.stores import SHARED_SYSTEM_STORE, Store
from tests.conftest import run_0install

pytestmark = pytest.mark.needs_0install

_LINE = re.compile(r"(User store \(writable\)|System store) *: (.*)")


def zeroinstall_store_list(env: dict[str, str]) -> list[tuple[str, str]]:
    """(kind, path) for each line of the real ``0install store list``, paths kept byte-exact."""
    out = run_0install("store", "list", env=env)
    result = []
    for line in out.split("\n")[:-1]:  # not splitlines(): a configured path may end in "\r"
        if line == "No system stores.":
            continue
        m = _LINE.fullmatch(line)
        assert m, f"unexpected line from 0install store list: {line!r}"
        result.append(("user" if m.group(1).startswith("User") else "system", m.group(2)))
    return result


def write_impl_dirs(config_dir: str, text: str) -> Path:
    path = Path(config_dir) / "0install.net" / "injector" / "implementation-dirs"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


@pytest.fixture
def layered_env(tmp_path: Path, zi_env: dict[str, str]) -> dict[str, str]:
    """implementation-dirs files in XDG_CONFIG_HOME and in both XDG_CONFIG_DIRS, with comments,
    blank lines, a stale line, trailing white space, duplicates and a regular file."""
    env = dict(zi_env)
    etc1, etc2 = tmp_path / "etc1", tmp_path / "etc2"
    env["XDG_CONFIG_DIRS"] = f"{etc1}:{etc2}"
    env["XDG_CACHE_DIRS"] = f"{tmp_path / 'vc1'}::{tmp_path / 'vc2'}:"
    for name in ("a", "b", "c", "d"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").write_text("not a store")
    user_store = Path(env["XDG_CACHE_HOME"]) / "0install.net" / "implementations"
    user_store.mkdir(parents=True)
    write_impl_dirs(
        env["XDG_CONFIG_HOME"],
        f"# my extra stores\n{tmp_path}/a\n\n{tmp_path}/stale-drive\n{tmp_path}/b \n",
    )
    # No newline after the last line.
    write_impl_dirs(str(etc1), f"{tmp_path}/c\n#{tmp_path}/commented\n{tmp_path}/file")
    write_impl_dirs(str(etc2), f"{tmp_path}/d\n{tmp_path}/a\n{tmp_path}/a/\n{user_store}\n")
    return env


def test_configured_paths_match_0install_store_list(layered_env: dict[str, str]) -> None:
    reference = zeroinstall_store_list(layered_env)
    assert stores.configured_store_paths(layered_env) and [
        p for p, _ in stores.configured_store_paths(layered_env)
    ] == [p for _, p in reference]
    # Sanity: the reference really has the interesting cases in it.
    paths = [p for _, p in reference]
    assert any(p.endswith("/b ") for p in paths)  # verbatim, trailing space kept
    assert any(p.endswith("/stale-drive") for p in paths)
    assert paths.count(paths[0]) == 2  # the user store, listed again by etc2


def test_discovery_keeps_0install_order_without_duplicates(
    layered_env: dict[str, str], tmp_path: Path
) -> None:
    reference = zeroinstall_store_list(layered_env)
    found = stores.discover_stores(layered_env)
    # Same order as 0install; a directory listed again (same text, or "a/" for "a") is dropped.
    expected: list[str] = []
    seen: set[str] = set()
    for _, path in reference:
        key = os.path.normpath(path)
        if os.path.isdir(path):
            key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            expected.append(path)
    assert [s.path for s in found] == expected
    assert [s.kind for s in found] == ["user"] + ["system"] * (len(found) - 1)
    assert reference[0][0] == "user"

    by_path = {s.path: s for s in found}
    relative = "0install.net/injector/implementation-dirs"
    home_file = str(Path(layered_env["XDG_CONFIG_HOME"]) / relative)
    etc1_file = str(tmp_path / "etc1" / relative)
    # etc2 lists "a" then "a/"; reversed, "a/" comes first and stands for both (and for home's "a").
    assert f"{tmp_path}/a" not in by_path
    assert by_path[f"{tmp_path}/a/"].source == str(tmp_path / "etc2" / relative)
    assert by_path[f"{tmp_path}/stale-drive"].source == home_file
    assert by_path[f"{tmp_path}/stale-drive"].problem == "does not exist"
    assert by_path[f"{tmp_path}/file"].problem == "is not a directory"
    assert by_path[f"{tmp_path}/file"].source == etc1_file
    assert by_path[f"{tmp_path}/c"].problem is None
    spaced = by_path[f"{tmp_path}/b "]
    assert spaced.problem is not None and spaced.problem.startswith("does not exist")
    assert "white space" in spaced.problem
    user = found[0]
    assert user.source == "$XDG_CACHE_HOME" and user.problem is None and user.label == "user"
    vc = [s for s in found if s.source == "$XDG_CACHE_DIRS"]
    assert [s.path for s in vc] == [
        f"{tmp_path}/vc1/0install.net/implementations",
        f"{tmp_path}/vc2/0install.net/implementations",
    ]
    assert all(s.problem == "does not exist" for s in vc)


def test_defaults_when_xdg_variables_are_unset(zi_env: dict[str, str]) -> None:
    env = {k: v for k, v in zi_env.items() if not k.startswith("XDG_")}
    reference = zeroinstall_store_list(env)
    assert [p for p, _ in stores.configured_store_paths(env)] == [p for _, p in reference]
    assert reference[0][1] == os.path.join(env["HOME"], ".cache/0install.net/implementations")
    assert reference[1][1] == SHARED_SYSTEM_STORE
    assert stores.cache_dirs(env) == [
        os.path.join(env["HOME"], ".cache/0install.net"),
        "/var/cache/0install.net",
    ]
    assert stores.config_dirs(env) == [
        os.path.join(env["HOME"], ".config/0install.net"),
        "/etc/xdg/0install.net",
    ]


def test_set_but_empty_variables_are_used_as_they_are(zi_env: dict[str, str]) -> None:
    # 0install takes an empty XDG_CACHE_HOME literally (a relative store) and an empty
    # XDG_CACHE_DIRS as "no system cache dirs".
    env = dict(zi_env, XDG_CACHE_HOME="", XDG_CACHE_DIRS="")
    reference = zeroinstall_store_list(env)
    assert [p for p, _ in stores.configured_store_paths(env)] == [p for _, p in reference]
    assert [p for _, p in reference] == ["0install.net/implementations"]
    store = stores.discover_stores(env)[0]
    if store.problem:
        assert "relative path" in store.problem


def test_portable_base_replaces_the_xdg_dirs(tmp_path: Path, zi_env: dict[str, str]) -> None:
    base = tmp_path / "portable"
    env = dict(zi_env, ZEROINSTALL_PORTABLE_BASE=str(base))
    (base / "config" / "injector").mkdir(parents=True)
    (base / "config" / "injector" / "implementation-dirs").write_text(f"{tmp_path}/extra\n")
    reference = zeroinstall_store_list(env)
    assert [p for p, _ in stores.configured_store_paths(env)] == [p for _, p in reference]
    assert [p for _, p in reference] == [f"{base}/cache/implementations", f"{tmp_path}/extra"]
    assert stores.discover_stores(env)[0].source == "$ZEROINSTALL_PORTABLE_BASE"


def test_unreadable_implementation_dirs_is_reported_not_raised(
    tmp_path: Path, zi_env: dict[str, str]
) -> None:
    # A directory where the file should be: 0install warns and goes on; so do we.
    bad = Path(zi_env["XDG_CONFIG_HOME"]) / "0install.net" / "injector" / "implementation-dirs"
    bad.mkdir(parents=True)
    found = stores.discover_stores(zi_env)
    assert [s.path for s in found] == [p for _, p in zeroinstall_store_list(zi_env)]
    problems = stores.discovery_problems(zi_env)
    assert len(problems) == 1 and str(bad) in problems[0] and "skipped" in problems[0]


def test_store_that_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "locked"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0)
        try:
            assert stores.stores_from_paths([str(target)])[0].problem == (
                "cannot be read: Permission denied"
            )
        finally:
            target.chmod(0o755)
        return
    # root reads everything: make the listing fail the way it does for a normal user.
    real_scandir = os.scandir

    def refusing(path=".", *args, **kwargs):
        if os.fspath(path) == str(target):
            raise PermissionError(13, "Permission denied", str(target))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", refusing)
    assert stores.stores_from_paths([str(target)])[0].problem == "cannot be read: Permission denied"


def test_below_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    store = stores.stores_from_paths([str(tmp_path / "f" / "impls")])[0]
    assert store.problem == "does not exist (a parent is not a directory)"


def test_stores_from_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.chdir(tmp_path)
    found = stores.stores_from_paths(["mine", str(mine) + "/", str(tmp_path / "missing")])
    assert [s.path for s in found] == [str(mine), str(tmp_path / "missing")]
    assert found[0].kind == "user" and found[0].source == "--store" and found[0].problem is None
    assert found[0].owner_uid == os.getuid()
    assert found[1].problem == "does not exist" and found[1].owner_uid is None
    assert found[1].kind == "system"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_store_of_another_user_is_a_system_store(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    os.chown(other, 65534, 65534)
    store = stores.stores_from_paths([str(other)], env=_empty_env(tmp_path))[0]
    assert store.kind == "system" and store.owner_uid == 65534
    # Not a store discovery knows: named by its path, not by its owner.
    assert store.role == "other" and store.label == str(other)
    assert stores.short_path(f"{other}/0install.net/implementations") == str(other)
    assert stores.short_path(os.path.expanduser("~/mirror/implementations")) == "~/mirror"


def _empty_env(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
        "XDG_CACHE_DIRS": str(tmp_path / "var-cache"),
        "XDG_CONFIG_DIRS": str(tmp_path / "etc-xdg"),
    }


def test_labels() -> None:
    assert Store("/x", "user", "$XDG_CACHE_HOME").label == "user"
    assert Store(SHARED_SYSTEM_STORE, "system", "$XDG_CACHE_DIRS").label == "shared"
    assert Store("/mnt/usb/impls", "system", "/etc/xdg").label == "system"
    assert Store("/mnt/usb/impls", "system", "--store", role="other").label == "/mnt/usb/impls"


def test_role_comes_from_discovery_not_owner(tmp_path: Path) -> None:
    """Two root-owned stores given with --store are not both "user": the one discovery calls the
    user store is "user", a system one "system", an unknown one its path; all distinct."""
    env = _empty_env(tmp_path)
    user = Path(env["XDG_CACHE_HOME"]) / "0install.net" / "implementations"
    system = Path(env["XDG_CACHE_DIRS"]) / "0install.net" / "implementations"
    loose = tmp_path / "loose"
    for d in (user, system, loose):
        d.mkdir(parents=True)
    found = stores.stores_from_paths([str(user), str(system), str(loose)], env=env)
    assert [s.role for s in found] == ["user", "system", "other"]
    assert [s.label for s in found] == ["user", "system", str(loose)]
    # Two paths that shorten alike stay distinct.
    twins = [tmp_path / "t", tmp_path / "t" / "implementations"]
    twins[1].mkdir(parents=True)
    assert [s.label for s in stores.stores_from_paths([str(p) for p in twins], env=env)] == [
        str(twins[0]),
        f"{twins[0]} (2)",
    ]
    assert all(s.source == "--store" for s in found)
    # The same owner for all three (this user): owner no longer decides the label.
    assert len({s.owner_uid for s in found}) == 1


def test_several_system_stores_get_distinct_labels(tmp_path: Path) -> None:
    env = _empty_env(tmp_path)
    env["XDG_CACHE_DIRS"] = f"{tmp_path}/a:{tmp_path}/b"
    impl_dirs = write_impl_dirs(env["XDG_CONFIG_HOME"], f"{tmp_path}/c\n")
    assert impl_dirs.exists()
    found = stores.discover_stores(env)
    labels = [s.label for s in found]
    assert labels == ["user", "system 1", "system 2", "system 3"]
    assert [s.description for s in found] == [
        "The user store",
        "System store 1",
        "System store 2",
        "System store 3",
    ]


def test_missing_store_banner_names_its_role(tmp_path: Path) -> None:
    from core.cache import scan

    env = _empty_env(tmp_path)
    missing = tmp_path / "nowhere"
    result = scan(stores.stores_from_paths([str(missing)], env=env), env=env)
    expected = f"Store {missing} (from --store) does not exist"
    assert any(p.startswith(expected) for p in result.problems)
    assert not any("System store" in p for p in result.problems)


def test_list_json_shows_the_same_distinct_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from core.cli import main

    for key, value in _empty_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        (d / ("sha256new_" + "A" * 52)).mkdir(parents=True)
    assert main(["list", "--json", "--store", str(a), "--store", str(b)]) == 0
    data = json.loads(capsys.readouterr().out)
    entries = data["entries"] if isinstance(data, dict) else data
    assert sorted(e["store_label"] for e in entries) == [str(a), str(b)]


def test_list_json_is_in_store_order_then_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stores in the order given, each one's entries by name (as the scan orders them), however
    the entries came back from the workers."""
    import json

    from core.cli import main

    for key, value in _empty_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    a, b = tmp_path / "a", tmp_path / "b"
    names = ["sha256new_" + c * 52 for c in "QDZA"] + ["tmp-x", "Zed", "caf\u00e9", "aa"]
    for d in (a, b):
        for name in names:
            (d / name).mkdir(parents=True)
    assert main(["list", "--json", "--store", str(b), "--store", str(a)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["store"], r["name"]) for r in rows] == [
        (str(d), name) for d in (b, a) for name in sorted(names)
    ]
