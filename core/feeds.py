"""Which program an implementation belongs to: cached feeds and 0install apps' selections.

Cached feeds live in ``<cache dir>/interfaces/<escaped URL>`` (0install.net appended to every XDG
cache dir); apps in ``<config dir>/apps/<name>/selections.xml``. Both are XML in 0install's
namespace. They are parsed with expat directly, streaming, with every DOCTYPE refused: feeds never
declare one, and refusing it rules out entity expansion bombs and external entities at once.
Cached feeds are not signature-checked here (0install does not check them when loading either),
so what they say is a hint for display, never a reason to trust an implementation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from core.digests import ALGORITHMS, format_digest

ZI_NAMESPACE = "http://zero-install.sourceforge.net/2004/injector/interface"
_NS = ZI_NAMESPACE + " "  # expat joins namespace and local name with the separator we pass

# 0install's own rule for app names (src/zeroinstall/apps.ml).
_APP_NAME = re.compile(r"[^./\\:=;'\"][^/\\:=;'\"]*")
_ESCAPED = re.compile(rb"#|%[0-9a-fA-F]{2}")
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_MAX_XML_BYTES = 64 << 20  # no real feed is near this; stops a runaway file from eating memory


@dataclass(frozen=True, slots=True)
class FeedImpl:
    """The program an implementation belongs to, as a cached feed names it."""

    feed_url: str
    feed_name: str  # the feed's <name>
    version: str


class _Refused(Exception):
    """The document is refused for safety or is not what we expect; the message says why."""


def escape_feed_url(url: str) -> str:
    """The file name 0install caches a feed under: bytes outside [-_.a-zA-Z0-9] become ``%xx``."""
    safe = b"-_.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(chr(b) if b in safe else f"%{b:02x}" for b in url.encode("utf-8"))


def unescape_feed_filename(leaf: str) -> str:
    """The feed URL a cache file name stands for (0install's ``Escape.unescape``:
    ``%xx`` is that byte, ``#`` is ``/``)."""

    def one(m: re.Match[bytes]) -> bytes:
        s = m.group(0)
        return b"/" if s == b"#" else bytes([int(s[1:], 16)])

    raw = _ESCAPED.sub(one, os.fsencode(leaf))
    return raw.decode("utf-8", "surrogateescape")


def _digest_names(elem_id: str | None, manifest_attrs: list[dict[str, str]]) -> list[str]:
    """The store directory names an <implementation> or <selection> can be found under, as
    0install's ``Stores.get_digests``: the id when it is ``sha1=``/``sha1new=``/``sha256=``
    something, plus every plain attribute of its <manifest-digest> children (known algorithms)."""
    names: list[str] = []
    if elem_id:
        alg, sep, value = elem_id.partition("=")
        if sep and alg in ("sha1", "sha1new", "sha256"):
            names.append(format_digest(alg, value))
    for attrs in manifest_attrs:
        for alg, value in attrs.items():
            if alg in ALGORITHMS:
                name = format_digest(alg, value)
                if name not in names:
                    names.append(name)
    return names


def _read_limited(path: str) -> bytes:
    """The bytes of a regular file; refuses FIFOs and devices (which could block or never end)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Refused("it is not a regular file")
        chunks = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > _MAX_XML_BYTES:
                raise _Refused(f"it is larger than {_MAX_XML_BYTES >> 20} MB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _new_parser(
    start: Callable[[str, dict[str, str]], None],
    end: Callable[[str], None],
    text: Callable[[str], None] | None = None,
) -> expat.XMLParserType:
    parser = expat.ParserCreate(namespace_separator=" ")

    def refuse_doctype(*_args: object) -> None:
        raise _Refused("it has a DOCTYPE declaration, which feeds never have (refused for safety)")

    def refuse_entity(*_args: object) -> int:
        raise _Refused("it declares or references external entities (refused for safety)")

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    if text is not None:
        parser.CharacterDataHandler = text
    parser.buffer_text = True
    return parser


def _plain(attrs: dict[str, str]) -> dict[str, str]:
    """Only the attributes without a namespace (expat writes namespaced ones as "ns local")."""
    return {k: v for k, v in attrs.items() if " " not in k}


@dataclass(slots=True)
class _ParsedFeed:
    """What one cached feed says: its URI, name and the digests of its implementations."""

    uri: str | None
    name: str | None
    impls: list[tuple[list[str], str]]  # (digest names, version)


def _parse_feed(data: bytes) -> _ParsedFeed:
    """Parse a feed's XML for its uri, <name> and implementations' digests and versions.

    Follows 0install's ``Feed.parse``: implementations sit in the <interface> (or <feed>) element
    or in nested <group>s, each inheriting every plain attribute of the groups around it (so
    ``version``); ``version-modifier`` is appended to the version. Raises :class:`_Refused` or
    ``expat.ExpatError``.
    """
    # Each open element: (role, inherited plain attributes). Roles: root, group, impl, md, name,
    # other. Only groups and implementations directly inside the root or a group count.
    stack: list[tuple[str, dict[str, str]]] = []
    uri: str | None = None
    name_parts: list[str] | None = None
    name: str | None = None
    impls: list[tuple[list[str], str]] = []
    current: dict[str, Any] = {}

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal uri, name_parts
        if not stack:
            if tag not in (_NS + "interface", _NS + "feed"):
                raise _Refused(
                    f"its root element is <{_show_tag(tag)}>, not a Zero Install <interface>"
                )
            uri = attrs.get("uri")
            stack.append(("root", {}))
            return
        role, inherited = stack[-1]
        if role in ("root", "group") and tag == _NS + "group":
            stack.append(("group", {**inherited, **_plain(attrs)}))
        elif role in ("root", "group") and tag == _NS + "implementation":
            merged = {**inherited, **_plain(attrs)}
            current.clear()
            # The id is the element's own (0install's Element.id), never a group's.
            current.update(attrs=merged, id=attrs.get("id"), md=[])
            stack.append(("impl", merged))
        elif role == "impl" and tag == _NS + "manifest-digest":
            current["md"].append(_plain(attrs))
            stack.append(("md", {}))
        elif role == "root" and tag == _NS + "name":  # 0install keeps the last one
            name_parts = []
            stack.append(("name", {}))
        else:
            stack.append(("other", {}))

    def end(_tag: str) -> None:
        nonlocal name_parts, name
        role, _ = stack.pop()
        if role == "impl":
            attrs: dict[str, str] = current["attrs"]  # type: ignore[assignment]
            version = attrs.get("version", "") + attrs.get("version-modifier", "")
            digests = _digest_names(current["id"], current["md"])  # type: ignore[arg-type]
            if digests:
                impls.append((digests, version))
        elif role == "name" and name_parts is not None:
            name = "".join(name_parts).strip()
            name_parts = None

    def text(data: str) -> None:
        if name_parts is not None and stack and stack[-1][0] == "name":
            name_parts.append(data)

    parser = _new_parser(start, end, text)
    parser.Parse(data, True)
    return _ParsedFeed(uri, name, impls)


def _show_tag(tag: str) -> str:
    ns, _, local = tag.rpartition(" ")
    return f"{local} xmlns='{ns}'" if ns else local


def _reason(exc: BaseException) -> str:
    if isinstance(exc, expat.ExpatError):
        return f"it is not well-formed XML ({exc})"
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            return "it disappeared while being read"
        return f"it cannot be read: {exc.strerror or exc}"
    return str(exc)


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


class FeedIndex:
    """Digest directory name -> the program (feed) that lists it, from the cached feeds."""

    def __init__(self) -> None:
        self._by_digest: dict[str, FeedImpl] = {}
        self.problems: list[str] = []
        self.feed_count = 0

    @classmethod
    def load(cls, cache_dirs: Sequence[str]) -> FeedIndex:
        """Parse every cached feed in ``<cache dir>/interfaces/``; never raises.

        Names starting with '.' are not feeds (0install skips them too). A feed that cannot be
        parsed, or whose ``uri`` does not match its file name (0install rejects those), is put in
        ``problems``. When two feeds list the same digest, the first (cache dir order, then file
        name order) wins.
        """
        index = cls()
        for cache in cache_dirs:
            folder = os.path.join(cache, "interfaces")
            for leaf in _listdir(folder):
                if leaf.startswith("."):
                    continue
                index._load_one(os.path.join(folder, leaf), unescape_feed_filename(leaf))
        return index

    def _load_one(self, path: str, expected_url: str) -> None:
        try:
            if stat.S_ISDIR(os.stat(path).st_mode):
                return
            feed = _parse_feed(_read_limited(path))
            if feed.uri is None:
                raise _Refused("its <interface> has no uri attribute")
            if feed.uri != expected_url:
                raise _Refused(
                    f"it says it is {feed.uri!r}, but its file name is for {expected_url!r}"
                )
            if feed.name is None:
                raise _Refused("it has no <name>")
        except (OSError, ValueError, expat.ExpatError, _Refused) as exc:
            self.problems.append(
                f"Cached feed {path} was ignored: {_reason(exc)}. "
                "Implementations only it lists are shown as (unowned)."
            )
            return
        self.feed_count += 1
        for digests, version in feed.impls:
            impl = FeedImpl(feed.uri, feed.name, version)
            for digest in digests:
                self._by_digest.setdefault(digest, impl)

    def lookup(self, digest_name: str) -> FeedImpl | None:
        """The implementation a cached feed lists under this strict directory name, if any."""
        return self._by_digest.get(digest_name)

    def __len__(self) -> int:
        return len(self._by_digest)


def parse_selections(data: bytes) -> list[str]:
    """The digest directory names a selections document needs (cached selections only: local
    paths and distribution packages are left out)."""
    found: list[str] = []
    depth = 0
    current: dict[str, Any] | None = None

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth, current
        depth += 1
        if depth == 1:
            if tag != _NS + "selections":
                raise _Refused(f"its root element is <{_show_tag(tag)}>, not <selections>")
        elif depth == 2 and tag == _NS + "selection":
            current = {"attrs": attrs, "md": []}
        elif depth == 3 and current is not None and tag == _NS + "manifest-digest":
            current["md"].append(_plain(attrs))

    def end(_tag: str) -> None:
        nonlocal depth, current
        if depth == 2 and current is not None:
            attrs: dict[str, str] = current["attrs"]  # type: ignore[assignment]
            sel_id = attrs.get("id", "")
            if "local-path" not in attrs and not sel_id.startswith(("/", "package:")):
                for name in _digest_names(sel_id, current["md"]):  # type: ignore[arg-type]
                    if name not in found:
                        found.append(name)
            current = None
        depth -= 1

    _new_parser(start, end).Parse(data, True)
    return found


_SELECTIONS_FILE = re.compile(r"selections(?:-(\d{4}-\d{2}-\d{2}))?\.xml")


@dataclass(frozen=True, slots=True)
class AppSelection:
    """One selections file of a 0install app that names an implementation."""

    app: str
    """The app's name; "app (user)" when found through another user's home."""
    path: str
    """The selections file."""
    date: str | None = None
    """``YYYY-MM-DD`` for an older selections file 0install kept (``selections-DATE.xml`` that
    is not the current ``selections.xml``), else None."""

    @property
    def label(self) -> str:
        """How the window's "Used by" column, ``list --json``'s ``used_by`` and clean-up's
        reasons name it: "editor", or "editor (older selections of 2024-03-01)"."""
        return self.app if self.date is None else f"{self.app} (older selections of {self.date})"

    def reason(self) -> str:
        """Why clean-up and Delete keep the implementation, and for an older selections file
        what to do to let it go (0install has no command that drops one: it keeps them for
        ``0install whatchanged``)."""
        if self.date is None:
            return f"selected by the 0install app {self.app}"
        return (
            f"named by an older selections file of the 0install app {self.app} ({self.path}, "
            f"of {self.date}), kept by 0install only for `0install whatchanged`; to let this "
            "implementation go, delete that file"
        )


@dataclass
class AppSelections:
    """What every app's selections name: digest directory name -> the files naming it."""

    uses: dict[str, list[AppSelection]]
    unreadable: list[str]
    """Homes whose apps could not be listed: "home (user) could not be read (why)"."""
    problems: list[str]
    """Apps folders of one's own that could not be listed, and selections that were ignored."""

    def labels(self) -> dict[str, list[str]]:
        """Digest directory name -> the sorted labels of what names it
        (:attr:`AppSelection.label`)."""
        return {d: sorted({use.label for use in uses}) for d, uses in self.uses.items()}


def read_app_selections(config_dirs: Sequence[str], homes: Sequence[str] = ()) -> AppSelections:
    """Every app's selections: ``<config dir>/apps/*/selections*.xml`` for each config dir (already
    ending in ``0install.net``), then ``<home>/.config/0install.net/apps`` for each of ``homes``
    (for root, who can see every user's apps). The current ``selections.xml`` and the dated
    ``selections-YYYY-MM-DD.xml`` files 0install keeps are all read: an implementation an older
    one names is still what that app goes back to. A dated file that is the current one (0install
    makes ``selections.xml`` a hard link to the newest) counts as the current one.

    The one reader of apps' selections: the listing's "Used by" and clean-up's evidence agree."""
    uses: dict[str, list[AppSelection]] = {}
    unreadable: list[str] = []
    problems: list[str] = []
    folders: list[tuple[str, str | None, str | None]] = [
        (os.path.join(c, "apps"), None, None) for c in config_dirs
    ]
    for user_home in homes:
        folder = os.path.join(user_home, ".config", "0install.net", "apps")
        folders.append((folder, _owner_name(user_home), user_home))
    seen_dirs: set[str] = set()
    for folder, owner, home in folders:
        real = os.path.realpath(folder)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            apps = sorted(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            why = exc.strerror or str(exc)
            if home is not None:
                unreadable.append(f"{home} ({owner}) could not be read ({why})")
            else:
                problems.append(f"The apps in {folder} could not be read ({why}).")
            continue
        for app in apps:
            if not _APP_NAME.fullmatch(app):
                continue
            label = app if owner is None else f"{app} ({owner})"
            _read_app(os.path.join(folder, app), app, label, uses, problems)
    return AppSelections(uses, unreadable, problems)


def _read_app(
    app_dir: str,
    app: str,
    label: str,
    uses: dict[str, list[AppSelection]],
    problems: list[str],
) -> None:
    try:
        leaves = sorted(os.listdir(app_dir))
    except OSError:
        return
    current = None
    if "selections.xml" in leaves:
        with contextlib.suppress(OSError):
            current = os.stat(os.path.join(app_dir, "selections.xml"))
    for leaf in leaves:
        m = _SELECTIONS_FILE.fullmatch(leaf)
        if not m:
            continue
        path = os.path.join(app_dir, leaf)
        date = m.group(1)
        if date is not None:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if current is not None and (st.st_dev, st.st_ino) == (current.st_dev, current.st_ino):
                continue  # the current selections.xml, read under that name
        try:
            digests = parse_selections(_read_limited(path))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, expat.ExpatError, _Refused) as exc:
            problems.append(f"Selections of app {app!r} ({path}) were ignored: {_reason(exc)}.")
            continue
        use = AppSelection(label, path, date)
        for digest in digests:
            found = uses.setdefault(digest, [])
            if use not in found:
                found.append(use)


def load_app_uses(
    config_dirs: Sequence[str],
    homes: Sequence[str] = (),
    problems: list[str] | None = None,
) -> dict[str, list[str]]:
    """Digest directory name -> sorted labels of the 0install apps whose selections name it
    (:func:`read_app_selections`: "editor", "game (alice)", "editor (older selections of
    2024-03-01)"). Unreadable files are skipped, with a message appended to ``problems`` when
    given."""
    found = read_app_selections(config_dirs, homes)
    if problems is not None:
        problems.extend(found.problems)
    return found.labels()


def used_by_text(labels: Sequence[str]) -> str:
    """An entry's "Used by" as the window and the command line show it: the labels of the apps'
    selections that name it, or "" when none does."""
    return ", ".join(labels)


def _owner_name(path: str) -> str:
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return "?"
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)
