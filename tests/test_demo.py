"""The demo cache must look, to the real 0install, exactly like a cache 0install built itself."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core.demo import build_demo
from core.digests import is_strict_digest_name
from core.feeds import escape_feed_url
from core.verify_entry import Change, verify_directory
from tests.conftest import ZEROINSTALL, run_0install

NS = "{http://zero-install.sourceforge.net/2004/injector/interface}"
DAMAGED_FILE = "/lib/gallery-viewer/decoders.bin"

pytestmark = pytest.mark.needs_0install


class Demo:
    def __init__(self, root: Path):
        self.root = root
        self.env = build_demo(root)
        self.run_env = {**os.environ, **self.env}
        self.user = Path(self.env["XDG_CACHE_HOME"]) / "0install.net" / "implementations"
        self.system = Path(self.env["XDG_CACHE_DIRS"]) / "0install.net" / "implementations"

    def entries(self) -> list[Path]:
        return sorted(self.user.iterdir()) + sorted(self.system.iterdir())

    def implementations(self) -> list[Path]:
        """Real directories with digest names: what 0install counts as implementations."""
        return [p for p in self.entries() if is_strict_digest_name(p.name) and not p.is_symlink()]

    def feeds(self) -> dict[str, ET.Element]:
        folder = Path(self.env["XDG_CACHE_HOME"]) / "0install.net" / "interfaces"
        return {f.name: ET.parse(f).getroot() for f in folder.iterdir()}

    def damaged(self) -> Path:
        [bad] = [p for p in self.implementations() if verify_directory(p).status != "ok"]
        return bad


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One demo shared by the read-only checks: verifying with 0install takes a while."""
    return Demo(tmp_path_factory.mktemp("demo") / "root")


def feed_digests(feed: ET.Element) -> dict[str, str]:
    """Directory name -> version for every implementation of a feed, from its <manifest-digest>."""
    result = {}
    for impl in feed.iter(NS + "implementation"):
        for algorithm, value in impl.find(NS + "manifest-digest").attrib.items():
            sep = "_" if algorithm == "sha256new" else "="
            result[f"{algorithm}{sep}{value}"] = impl.get("version")
    return result


def test_environment_points_inside_root(demo: Demo) -> None:
    for key in ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_DIRS", "XDG_CONFIG_DIRS"):
        assert Path(demo.env[key]).is_relative_to(demo.root), key
        assert Path(demo.env[key]).is_dir(), key


def test_real_0install_lists_both_stores(demo: Demo) -> None:
    out = run_0install("store", "list", env=demo.run_env)
    assert f"User store (writable) : {demo.user}" in out
    assert f"System store          : {demo.system}" in out


def test_about_a_dozen_implementations_in_both_stores_with_several_algorithms(demo: Demo) -> None:
    impls = demo.implementations()
    assert 10 <= len(impls) <= 14
    assert any(p.parent == demo.system for p in impls) and any(p.parent == demo.user for p in impls)
    algorithms = {p.name.split("_")[0].split("=")[0] for p in impls}
    assert {"sha256new", "sha1new", "sha256"} <= algorithms
    sizes = [
        sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        for p in impls
    ]
    assert min(sizes) < 10_000 and max(sizes) > 700_000
    assert 3_000_000 < sum(sizes) < 30_000_000


def test_every_undamaged_implementation_verifies_with_the_real_0install(demo: Demo) -> None:
    damaged = demo.damaged()
    for path in demo.implementations():
        if path == damaged:
            continue
        out = run_0install("store", "verify", str(path), env=demo.run_env)
        assert out.rstrip().endswith("OK"), f"{path.name}: {out}"
        assert (path / ".manifest").is_file()


def test_the_damaged_one_fails_and_its_manifest_names_the_changed_file(demo: Demo) -> None:
    damaged = demo.damaged()
    proc = subprocess.run(
        [ZEROINSTALL, "store", "verify", str(damaged)],
        capture_output=True,
        env=demo.run_env,
        text=True,
    )
    assert proc.returncode != 0
    assert "decoders.bin" in proc.stdout + proc.stderr
    outcome = verify_directory(damaged)
    assert outcome.status == "corrupt"
    assert outcome.recorded == damaged.name  # the .manifest is the original one
    assert outcome.changes == [Change(DAMAGED_FILE, "modified", ("content",))]


def test_read_only_like_0install(demo: Demo) -> None:
    for impl in demo.implementations():
        assert stat.S_IMODE(impl.lstat().st_mode) == 0o555
        for path in impl.rglob("*"):
            mode = stat.S_IMODE(path.lstat().st_mode)
            if path.is_symlink():
                continue
            if path.is_dir():
                assert mode == 0o555, path
            else:
                assert mode in (0o444, 0o555), path
    executables = [
        p
        for impl in demo.implementations()
        for p in impl.rglob("*")
        if p.is_file() and not p.is_symlink() and os.access(p, os.X_OK)
    ]
    assert executables
    assert any(p.is_symlink() for impl in demo.implementations() for p in impl.rglob("*"))
    assert any(p.is_dir() for impl in demo.implementations() for p in (impl / "lib").rglob("*"))


def test_planted_symlink_leftover_and_nothing_else_unusual(demo: Demo) -> None:
    others = [p for p in demo.entries() if p not in demo.implementations()]
    [link] = [p for p in others if p.is_symlink()]
    [leftover] = [p for p in others if not p.is_symlink()]
    assert is_strict_digest_name(link.name)
    target = Path(os.readlink(link))
    assert target.is_dir() and target.is_relative_to(demo.root)
    assert not target.is_relative_to(demo.user) and not target.is_relative_to(demo.system)
    assert leftover.name.startswith("tmp-") and len(leftover.name) == len("tmp-XXXXXX")
    assert leftover.is_dir()


def test_the_real_0install_would_run_the_planted_symlink(demo: Demo) -> None:
    """Why the demo plants it: the feed lists that digest, so 0install takes the link as cached."""
    [link] = [p for p in demo.entries() if p.is_symlink()]
    out = run_0install(
        "select", "--offline", "--xml", "https://demo.example/hello-editor.xml", env=demo.run_env
    )
    chosen = [s.get("id") for s in ET.fromstring(out).iter(NS + "selection")]
    assert link.name in chosen


def test_feeds_are_cached_under_escaped_urls_and_name_the_digests(demo: Demo) -> None:
    feeds = demo.feeds()
    assert "https%3a%2f%2fdemo.example%2fhello-editor.xml" in feeds
    listed: dict[str, str] = {}
    for filename, feed in feeds.items():
        assert feed.tag == NS + "interface"
        assert escape_feed_url(feed.get("uri")) == filename
        assert feed.findtext(NS + "name")
        for impl in feed.iter(NS + "implementation"):
            assert is_strict_digest_name(impl.get("id"))
        listed.update(feed_digests(feed))
    names = {p.name for p in demo.implementations()}
    unowned = names - listed.keys()
    assert len(unowned) == 1, unowned
    # Every digest a feed lists is really the digest of a cached directory (or the planted link).
    [link] = [p.name for p in demo.entries() if p.is_symlink()]
    assert set(listed) == (names - unowned) | {link}
    damaged = demo.damaged().name
    for path in demo.implementations():
        if path.name in listed and path.name != damaged:
            assert verify_directory(path).actual == path.name


def test_real_0install_reads_the_app_and_finds_both_selections_in_the_stores(demo: Demo) -> None:
    app = Path(demo.env["XDG_CONFIG_HOME"]) / "0install.net" / "apps" / "hello-editor"
    selections = ET.parse(app / "selections.xml").getroot()
    chosen = [
        (s.get("id"), s.get("from-feed"), s.find(NS + "manifest-digest").attrib)
        for s in selections.iter(NS + "selection")
    ]
    assert len(chosen) == 2
    impls: dict[str, Path] = {}
    for path in demo.implementations():  # user store first: 0install looks there first
        impls.setdefault(path.name, path)
    for digest_name, feed, _ in chosen:
        assert digest_name in impls and feed.startswith("https://demo.example/")
    out = run_0install("show", "hello-editor", env=demo.run_env)
    paths = [line.split("Path:", 1)[1].strip() for line in out.splitlines() if "Path:" in line]
    assert sorted(paths) == sorted(str(impls[d]) for d, _, _ in chosen)
    assert (app / "selections.xml").stat().st_ino in {
        p.stat().st_ino for p in app.glob("selections-*.xml")
    }


def test_same_digests_every_time_and_varied_times(tmp_path: Path) -> None:
    first, second = Demo(tmp_path / "a"), Demo(tmp_path / "b")
    names = [p.name for p in first.entries()]
    assert names == [p.name for p in second.entries()]
    now = time.time()

    def last_used(impl: Path) -> float:
        # Files and symlinks only, by lstat: listing a directory (as rglob does) moves its atime
        # to now under relatime, and so does following a symlink.
        stats = [p.lstat() for p in impl.rglob("*")]
        return max(st.st_atime for st in stats if not stat.S_ISDIR(st.st_mode))

    ages = [(now - last_used(p)) / 86_400 for p in first.implementations()]
    assert min(ages) < 2  # used yesterday
    assert any(30 < a < 300 for a in ages)  # months ago
    assert sum(a > 365 for a in ages) == 1  # one not used for over a year
    mtimes = {p.lstat().st_mtime for impl in first.implementations() for p in impl.rglob("*")}
    assert len(mtimes) > 5


def test_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        build_demo(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["something"]


def test_the_cache_model_sees_the_demo(tmp_path: Path) -> None:
    """The contract: core.cache.scan(env=...) finds the demo's stores, feeds and app."""
    cache = pytest.importorskip("core.cache")
    env = build_demo(tmp_path / "root")
    result = cache.scan(env=env)
    assert [s.kind for s in result.stores][:2] == ["user", "system"]
    kinds = [e.kind for e in result.entries]
    assert kinds.count("implementation") == 12
    assert kinds.count("temporary") == 1 and kinds.count("suspicious") == 1
    programs = {e.program for e in result.entries if e.kind == "implementation"}
    expected = {"Hello Editor", "Gallery Viewer", "Data Cruncher", "Toolkit Runtime", "(unowned)"}
    assert expected <= programs
    assert sum(bool(e.used_by) for e in result.entries) >= 2
