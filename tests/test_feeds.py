"""Mapping digests to programs from cached feeds, and to apps from their selections, with the real
0install as the reference for what a feed means."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core import stores
from core.digests import format_digest
from core.feeds import (
    ZI_NAMESPACE,
    FeedImpl,
    FeedIndex,
    load_app_uses,
    parse_selections,
    unescape_feed_filename,
)
from tests.conftest import ZEROINSTALL, RealStore, run_0install

URL = "http://example.com/tools/prog.xml"


def escape(url: str) -> str:
    """0install's Escape.escape: every byte outside [-_.a-zA-Z0-9] as %xx, lower-case hex."""
    return re.sub(rb"[^-_.a-zA-Z0-9]", lambda m: b"%%%02x" % m.group(0)[0], url.encode()).decode()


def interfaces_dir(env: dict[str, str]) -> Path:
    folder = Path(stores.cache_dirs(env)[0]) / "interfaces"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_feed(env: dict[str, str], url: str, xml: str) -> Path:
    path = interfaces_dir(env) / escape(url)
    path.write_text(xml)
    return path


def realistic_feed(old: str, new: str, extra: str) -> str:
    """A feed as 0install publishers write them: nested groups that carry the version and
    version-modifier, implementations named by an id digest or by <manifest-digest>, plus
    elements that must not be mistaken for implementations or for the feed's name."""
    value = new.split("_", 1)[1]
    return f"""<?xml version="1.0" ?>
<?xml-stylesheet type='text/xsl' href='interface.xsl'?>
<interface xmlns="{ZI_NAMESPACE}" uri="{URL}"
           xmlns:compile="http://zero-install.sourceforge.net/2006/namespaces/0compile">
  <name>Prog</name>
  <summary>a program for tests</summary>
  <entry-point command="run"><name>Not the feed name</name></entry-point>
  <group main="hello" license="OSI Approved :: MIT">
    <group version="1.0">
      <requires interface="http://example.com/lib.xml" importance="recommended"/>
      <implementation id="{old}" version-modifier="-pre" released="2020-01-01"/>
    </group>
    <implementation id="build-2" version="2.0">
      <manifest-digest sha256new="{value}" sha1new="{extra}"/>
      <archive href="http://example.com/prog-2.0.tgz" size="100"/>
    </implementation>
    <package-implementation package="prog"/>
  </group>
  <compile:implementation id="sha1new=0000000000000000000000000000000000000000" version="9"/>
</interface>
"""


@pytest.fixture
def feed_setup(real_store: RealStore) -> tuple[RealStore, str, str, str]:
    old = real_store.add("old", {"hello": "!#!/bin/sh\necho old\n"}, algorithm="sha1new")
    new = real_store.add("new", {"hello": "!#!/bin/sh\necho new\n", "lib/x.txt": "x"})
    extra = "1" * 40
    write_feed(real_store.env, URL, realistic_feed(old.name, new.name, extra))
    return real_store, old.name, new.name, extra


@pytest.mark.needs_0install
def test_realistic_feed_matches_0install(feed_setup: tuple[RealStore, str, str, str]) -> None:
    store, old, new, extra = feed_setup
    index = FeedIndex.load(stores.cache_dirs(store.env))
    assert index.problems == []
    assert index.lookup(new) == FeedImpl(URL, "Prog", "2.0")
    assert index.lookup("sha1new=" + extra) == FeedImpl(URL, "Prog", "2.0")
    assert index.lookup(old) == FeedImpl(URL, "Prog", "1.0-pre")
    # Only <implementation>s of 0install's namespace inside the feed or its groups count.
    assert index.lookup("sha1new=" + "0" * 40) is None
    assert len(index) == 3

    # The real 0install reads the same feed the same way: ask it to pick each version offline.
    for before, digest in (("2", old), ("3", new)):
        xml = run_0install("select", "--offline", "--xml", f"--before={before}", URL, env=store.env)
        selected = parse_selections(xml.encode())
        assert digest in selected
        version = re.search(r'<selection [^>]*version="([^"]+)"', xml)
        assert version and index.lookup(digest).version == version.group(1)


@pytest.mark.needs_0install
def test_apps_selections_written_by_0install(feed_setup: tuple[RealStore, str, str, str]) -> None:
    store, old, new, _ = feed_setup
    # `0install add` also writes a launcher into the first writable directory of $PATH: keep it
    # in the test's own directory.
    launchers = store.home / "bin"
    launchers.mkdir()
    env = dict(store.env, PATH=f"{launchers}:{os.path.dirname(ZEROINSTALL)}:/bin")
    run_0install("add", "--offline", "myprog", URL, env=env)
    run_0install("add", "--offline", "--before=2", "oldprog", URL, env=env)
    assert sorted(p.name for p in launchers.iterdir()) == ["myprog", "oldprog"]
    uses = load_app_uses(stores.config_dirs(store.env))
    assert uses[new] == ["myprog"]
    assert uses[old] == ["oldprog"]


def test_app_selections_rules(tmp_path: Path) -> None:
    config = tmp_path / "config" / "0install.net"
    digest = "sha256new_" + "A" * 52

    def app(folder: Path, name: str, body: str) -> None:
        (folder / "apps" / name).mkdir(parents=True)
        (folder / "apps" / name / "selections.xml").write_text(
            f'<?xml version="1.0"?><selections xmlns="{ZI_NAMESPACE}" interface="{URL}">'
            f"{body}</selections>"
        )

    app(
        config,
        "editor",
        f"""
        <selection id="x" interface="{URL}" version="1"><manifest-digest sha256new="{"A" * 52}"/>
        </selection>
        <selection id="sha1new={"2" * 40}" interface="http://example.com/lib.xml" version="3"/>
        <selection id="/opt/local" local-path="/opt/local" interface="http://example.com/l.xml"/>
        <selection id="package:deb:python3:3.11" interface="http://example.com/python.xml"/>""",
    )
    app(
        config,
        "viewer",
        f'<selection id="{digest}"><manifest-digest sha256new="{"A" * 52}"/></selection>',
    )
    app(config, ".hidden", f'<selection id="sha1new={"3" * 40}"/>')  # not an app name 0install uses
    app(config, "broken", "<selection")
    home = tmp_path / "home" / "alice"
    app(home / ".config" / "0install.net", "game", f'<selection id="sha1={"4" * 40}"/>')
    problems: list[str] = []
    uses = load_app_uses([str(config)], [str(home)], problems)
    assert uses == {
        digest: ["editor", "viewer"],
        "sha1new=" + "2" * 40: ["editor"],
        "sha1=" + "4" * 40: [f"game ({_owner(home)})"],
    }
    assert len(problems) == 1 and "broken" in problems[0] and "not well-formed" in problems[0]


def _owner(path: Path) -> str:
    import pwd

    return pwd.getpwuid(path.stat().st_uid).pw_name


def test_hostile_and_broken_feeds_are_problems_not_crashes(
    tmp_path: Path, zi_env: dict[str, str]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    head = f'<interface xmlns="{ZI_NAMESPACE}" uri="URL"><name>&x;</name></interface>'
    feeds = {
        "http://example.com/xxe.xml": (
            f'<?xml version="1.0"?><!DOCTYPE interface [<!ENTITY x SYSTEM "file://{secret}">]>'
            + head.replace("URL", "http://example.com/xxe.xml")
        ),
        "http://example.com/laughs.xml": (
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;">'
            '<!ENTITY x "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            + head.replace("URL", "http://example.com/laughs.xml")
        ),
        "http://example.com/undefined.xml": head.replace("URL", "http://example.com/undefined.xml"),
        "http://example.com/truncated.xml": f'<interface xmlns="{ZI_NAMESPACE}" uri="',
        "http://example.com/wrong-uri.xml": (
            f'<interface xmlns="{ZI_NAMESPACE}" uri="http://evil.example.com/other.xml">'
            f'<name>Other</name><implementation id="sha1new={"5" * 40}" version="1"/></interface>'
        ),
        "http://example.com/no-ns.xml": (
            '<interface uri="http://example.com/no-ns.xml"><name>N</name></interface>'
        ),
        "http://example.com/no-name.xml": (
            f'<interface xmlns="{ZI_NAMESPACE}" uri="http://example.com/no-name.xml">'
            f'<implementation id="sha1new={"6" * 40}" version="1"/></interface>'
        ),
        "http://example.com/binary.xml": "\x00\x01\x02 not xml",
    }
    for url, xml in feeds.items():
        write_feed(zi_env, url, xml)
    folder = interfaces_dir(zi_env)
    (folder / ".hidden-not-a-feed").write_text("<<<")
    (folder / "last-check-attempt").mkdir()  # a directory is not a feed either
    os.mkfifo(folder / escape("http://example.com/fifo.xml"))  # must not block the scan

    index = FeedIndex.load(stores.cache_dirs(zi_env))
    assert len(index) == 0
    text = "\n".join(index.problems)
    assert "TOP-SECRET" not in text
    assert len(index.problems) == len(feeds) + 1, text
    for url in feeds:
        assert any(escape(url) in p for p in index.problems), url
    assert "DOCTYPE" in next(p for p in index.problems if "xxe" in p)
    assert "DOCTYPE" in next(p for p in index.problems if "laughs" in p)
    assert "not a regular file" in next(p for p in index.problems if "fifo" in p)
    wrong_uri = next(p for p in index.problems if "wrong-uri" in p)
    assert "http://evil.example.com/other.xml" in wrong_uri
    assert "no <name>" in next(p for p in index.problems if "no-name" in p)
    assert "hidden" not in text


def test_unescape_feed_filename() -> None:
    plain = "http%3a%2f%2fexample.com%2ftest.xml"
    assert unescape_feed_filename(plain) == "http://example.com/test.xml"
    upper = "http%3A%2F%2Fexample.com%2Fa%20b.xml"
    assert unescape_feed_filename(upper) == "http://example.com/a b.xml"
    assert unescape_feed_filename("http:##example.com#x.xml") == "http://example.com/x.xml"
    assert unescape_feed_filename(escape("http://example.com/caf\u00e9.xml")) == (
        "http://example.com/caf\u00e9.xml"
    )


def test_first_feed_wins_and_cache_dirs_are_all_read(zi_env: dict[str, str]) -> None:
    digest = "sha1new=" + "7" * 40
    system_cache = Path(stores.cache_dirs(zi_env)[1]) / "interfaces"
    system_cache.mkdir(parents=True)

    def feed(url: str, name: str, version: str) -> str:
        return (
            f'<interface xmlns="{ZI_NAMESPACE}" uri="{url}"><name>{name}</name>'
            f'<implementation id="{digest}" version="{version}"/></interface>'
        )

    url1 = "http://a.example.com/one.xml"
    write_feed(zi_env, url1, feed(url1, "One", "1"))
    url2 = "http://b.example.com/two.xml"
    (system_cache / escape(url2)).write_text(feed(url2, "Two", "2"))
    other = "sha256=" + "8" * 64
    url3 = "http://c.example.com/three.xml"
    (system_cache / escape(url3)).write_text(
        f'<interface xmlns="{ZI_NAMESPACE}" uri="{url3}"><name> Three </name>'
        f'<group version="3"><implementation id="{other}"/></group></interface>'
    )
    index = FeedIndex.load(stores.cache_dirs(zi_env))
    assert index.problems == []
    assert index.lookup(digest) == FeedImpl(url1, "One", "1")
    assert index.lookup(other) == FeedImpl(url3, "Three", "3")
    assert index.lookup(format_digest("sha1new", "9" * 40)) is None


def test_missing_cache_dirs_are_fine(tmp_path: Path) -> None:
    index = FeedIndex.load([str(tmp_path / "nowhere")])
    assert len(index) == 0 and index.problems == []
    assert load_app_uses([str(tmp_path / "nowhere")]) == {}
