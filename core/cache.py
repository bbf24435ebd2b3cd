"""The cache model: what is in each store, what it is, how big it is and when it was last used.

Listing (:func:`list_entries`) looks only at the top level of each store (one ``scandir`` and one
``lstat`` per entry), so thousands of entries list at once. Sizes and access times come afterwards
from measuring (:mod:`core.measure`), which walks inside the entries without ever following a
symlink and reports each entry as soon as it is done.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from core.digests import Digest, DigestError, parse_digest, value_problem
from core.feeds import FeedImpl, FeedIndex, load_app_uses
from core.measure import Usage
from core.stores import Store, _discover, cache_dirs, config_dirs

EntryKind = Literal["implementation", "temporary", "unknown", "suspicious"]

_TEMP_PREFIXES = ("tmp-", "0install-")
_DIGESTISH_PREFIXES = ("sha1=", "sha1new=", "sha256=", "sha256new_", "sha256new=")


Issue = Literal[
    "",
    "planted",  # a symlink named like an implementation
    "not-a-directory",  # a file, FIFO... named like an implementation
    "digest-case",  # a digest in the wrong case: 0install never finds it
    "bad-digest",  # a well-formed prefix with an impossible value
    "foreign-owner",  # owned by someone who is neither the store's owner nor root
    "world-writable",
    "group-writable",
]
"""What makes a suspicious entry suspicious, as a code the window chooses its words by."""

Fingerprint = tuple[int, ...]
"""Identity and change time of an entry and of its ``.manifest``: (dev, ino, ctime_ns, mtime_ns)
of the entry, then the same four of the ``.manifest`` (or nothing when there is none). A quick
first filter only: a file rewritten or chmod-ed inside the entry changes none of these. What
proves an entry unchanged is every one of its change keys (:mod:`core.records`): a rescan in the
window keeps an "OK" only after checking them again."""


class TopStat(NamedTuple):
    """The part of an ``lstat`` that classifying needs: what a measuring worker sends back for an
    entry and its ``.manifest`` (:func:`core.treewalk.stat_fields`), so listing and measuring
    together look at each entry once."""

    st_mode: int
    st_uid: int
    st_gid: int
    st_dev: int
    st_ino: int
    st_ctime_ns: int
    st_mtime_ns: int
    st_mtime: float


top_stat = functools.partial(tuple.__new__, TopStat)
"""TopStat from a tuple of its fields, without the generated Python ``__new__`` (a tenth of the
cost of classifying an entry)."""

Stat = os.stat_result | TopStat


@dataclass(slots=True, eq=False)
class Entry:
    """One top-level entry of a store: what it is, whose program, and (once measured) its size."""

    store: Store
    name: str  # top-level name, os.fsdecode (surrogateescape)
    path: str  # os.path.join(store.path, name)
    kind: EntryKind
    reason: str  # why temporary/unknown/suspicious, one readable sentence; "" for implementations
    digest: Digest | None  # parsed strictly when the name has a valid prefix (even if suspicious)
    owner: str  # user name (or uid as text)
    mode: int  # lstat st_mode of the top-level entry
    added: float  # mtime of its .manifest (0install writes it when it adds the entry), else mtime
    feed: FeedImpl | None  # the program it belongs to, None = "(unowned)"
    used_by: list[str]  # names of 0install apps whose selections reference it
    usage: Usage | None = None  # None until measured
    atime_reliable: bool = True  # False when the store's filesystem does not record access times
    added_from: Literal["manifest", "directory", ""] = ""  # where ``added`` comes from
    issue: Issue = ""  # why a suspicious entry is suspicious ("" for every other kind)
    fingerprint: Fingerprint = ()  # see :data:`Fingerprint`; () when it could not be examined

    @property
    def program(self) -> str:
        """The name its cached feed gives it, whatever else is wrong with it (a suspicious entry
        claims to be that program); else "(unowned)" for a digest name no feed lists,
        "(temporary)" or "(not an implementation)"."""
        if self.feed is not None:
            return self.feed.feed_name
        if self.digest is not None:
            return "(unowned)"
        if self.kind == "temporary":
            return "(temporary)"
        return "(not an implementation)"

    @property
    def version(self) -> str:
        return self.feed.version if self.feed is not None else ""

    @property
    def short_name(self) -> str:
        """The start of the digest (or name), enough to tell entries apart: "sha256new_RZ3A…"."""
        return short_digest(self.name)


def short_digest(name: str, keep: int = 8) -> str:
    """``sha256new_RZ3AB4XW…``: the algorithm and the first ``keep`` characters of the value."""
    for sep in ("=", "_"):
        algorithm, found, value = name.partition(sep)
        if found and algorithm.lower().startswith("sha"):
            if len(value) <= keep + 1:
                return name
            return f"{algorithm}{sep}{value[:keep]}…"
    return name if len(name) <= keep + 12 else name[: keep + 11] + "…"


# --- classification ------------------------------------------------------------------------------


@functools.cache
def _user_name(uid: int) -> str:
    """The user's name, or the uid as text when it has none (looked up once per uid)."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


@functools.cache
def _group_name(gid: int) -> str:
    """The group's name, or the gid as text when it has none (looked up once per gid)."""
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def _describe(path: str, mode: int) -> str:
    """'a directory', 'a regular file', 'a symlink to X'... for reasons."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        try:
            target = os.fsdecode(os.readlink(path))
        except OSError:
            target = "an unreadable target"
        return f"a symlink to {target}"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file"


@dataclass(slots=True)
class _Context:
    """What classifying the entries of one store needs, looked up once per store."""

    store: Store
    store_uid: int | None
    feeds: FeedIndex | None = None
    app_uses: Mapping[str, list[str]] | None = None
    atime_reliable: bool = True


def _foreign_owner(uid: int, ctx: _Context) -> bool:
    """Owned by neither the store's owner nor root (who both legitimately add to stores)."""
    return uid != 0 and ctx.store_uid is not None and uid != ctx.store_uid


_USUAL_NAME = re.compile(r"sha256new_[A-Z2-7]{52}")  # nearly every implementation's name today
_TYPE_AND_WRITABLE = stat.S_IFMT(0o177777) | 0o022  # the file type and write by group or others


def _judge_digest_name(
    path: str, name: str, digest: Digest, st: Stat, ctx: _Context
) -> tuple[EntryKind, str, Issue]:
    mode = st.st_mode
    uid = st.st_uid
    if stat.S_ISLNK(mode):
        return (
            "suspicious",
            (
                f"{_describe(path, mode)} named like an implementation, planted in the store: "
                "0install would run whatever it points at"
            ),
            "planted",
        )
    if not stat.S_ISDIR(mode):
        what = _describe(path, mode)
        crash = " (its own '0install store audit' crashes on it)" if stat.S_ISREG(mode) else ""
        return (
            "suspicious",
            (
                f"{what} named like an implementation: 0install expects a directory there and "
                f"would try to run from it{crash}"
            ),
            "not-a-directory",
        )
    problem = value_problem(digest)
    if problem:
        upper = digest.algorithm == "sha256new"
        fixed = Digest(digest.algorithm, digest.value.upper() if upper else digest.value.lower())
        if value_problem(fixed) is None:
            case = "lower" if upper else "upper"
            return (
                "suspicious",
                (
                    f"the digest in its name is in {case} case: 0install compares digests "
                    "case-sensitively, so it never uses this directory and it can never verify"
                ),
                "digest-case",
            )
        return (
            "suspicious",
            (f"named like an implementation, but {problem}: 0install never makes such a directory"),
            "bad-digest",
        )
    if _foreign_owner(uid, ctx):
        who = _user_name(uid)
        assert ctx.store_uid is not None  # a foreign owner implies a known store owner
        return (
            "suspicious",
            (
                f"owned by {who}, not by the store's owner ({_user_name(ctx.store_uid)}) or root: "
                f"{who} could change what 0install runs as this implementation"
            ),
            "foreign-owner",
        )
    perms = stat.S_IMODE(mode)
    if perms & 0o002:
        return (
            "suspicious",
            (
                f"writable by everyone (mode {perms:04o}): anyone could change what 0install runs "
                "as this implementation"
            ),
            "world-writable",
        )
    if perms & 0o020:
        return (
            "suspicious",
            (
                f"writable by its group {_group_name(st.st_gid)} (mode {perms:04o}): every member "
                "could change what 0install runs as this implementation"
            ),
            "group-writable",
        )
    return "implementation", "", ""


def _judge_other_name(path: str, name: str, mode: int) -> tuple[EntryKind, str]:
    if name.startswith(_TEMP_PREFIXES):
        if stat.S_ISDIR(mode):
            if name.startswith("tmp-"):
                return "temporary", (
                    "a temporary directory left by an interrupted download or '0install store "
                    "add'; safe to delete when no 0install is running"
                )
            return "temporary", (
                "a temporary directory left by 0install for Windows (0install-*); safe to "
                "delete when no 0install is running"
            )
        return "temporary", (
            f"{_describe(path, mode)} with a temporary-directory name: not an implementation, "
            "0install never uses it"
        )
    what = _describe(path, mode)
    if name.startswith("sha256new="):
        return "unknown", (
            f"{what} named with 'sha256new=', a form 0install accepts when typed but never stores "
            "under (it uses 'sha256new_'), so 0install never uses it"
        )
    if name.lower().startswith(_DIGESTISH_PREFIXES):
        return "unknown", (
            f"{what} whose digest prefix is in the wrong case: 0install matches names "
            "case-sensitively and never uses it"
        )
    return "unknown", (
        f"{what} whose name is not an implementation digest (sha1=, sha1new=, sha256= or "
        "sha256new_ followed by the hash): 0install never uses it"
    )


_LOOK: Any = object()  # "look for the .manifest": the caller has not seen it


def _added(path: str, st: Stat, m: Stat | None = _LOOK) -> tuple[float, str, Fingerprint]:
    """When the entry was added, where that time comes from, and its fingerprint.

    0install writes the ``.manifest`` as it adds an implementation and never touches it again, so
    its mtime is the time of adding; chmod, chown and mv change the directory's ctime, not that.
    Without one, the directory's own mtime is the best guess. Only a real directory is looked
    into (``lstat``: a ``.manifest`` symlink is not followed). ``m``: the ``.manifest``'s lstat
    as already seen (None: it has none), so it is not looked up again.
    """
    own: Fingerprint = (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns)
    if stat.S_ISDIR(st.st_mode):
        if m is _LOOK:
            try:
                m = os.lstat(os.path.join(path, ".manifest"))
            except (OSError, ValueError):
                m = None
        if m is not None:
            fingerprint = own + (m.st_dev, m.st_ino, m.st_ctime_ns, m.st_mtime_ns)
            if stat.S_ISREG(m.st_mode):
                return m.st_mtime, "manifest", fingerprint
            return st.st_mtime, "directory", fingerprint
    return st.st_mtime, "directory", own


def _classify(
    name: str, path: str, st: Stat, ctx: _Context, manifest: Stat | None = _LOOK
) -> Entry:
    mode = st.st_mode
    uid = st.st_uid
    try:
        digest: Digest | None = parse_digest(name)
    except DigestError:
        digest = None
    issue: Issue = ""
    kind: EntryKind
    if (
        # Nearly every entry: a well-formed sha256new name on a directory only its owner may
        # change, owned by the store's owner or root. The verdict of the checks below, at once.
        mode & _TYPE_AND_WRITABLE == stat.S_IFDIR
        and (uid == 0 or uid == ctx.store_uid or ctx.store_uid is None)
        and _USUAL_NAME.fullmatch(name) is not None
    ):
        kind, reason = "implementation", ""
    elif digest is not None:
        kind, reason, issue = _judge_digest_name(path, name, digest, st, ctx)
    else:
        kind, reason = _judge_other_name(path, name, st.st_mode)
        if _foreign_owner(st.st_uid, ctx):
            # Not a leftover of 0install: someone else can write into this store.
            who = _user_name(st.st_uid)
            kind, reason, issue = (
                "suspicious",
                (
                    f"{_describe(path, st.st_mode)} owned by {who}, not by the store's owner "
                    f"({_user_name(ctx.store_uid or 0)}) or root: {who} can write into this store"
                ),
                "foreign-owner",
            )
    feed = None
    used_by: list[str] = []
    if digest is not None:
        if ctx.feeds is not None:
            feed = ctx.feeds.lookup(name)
        if ctx.app_uses is not None:
            used_by = list(ctx.app_uses.get(name, ()))
    added, added_from, fingerprint = _added(path, st, manifest)
    # By position, in the order of Entry's fields: this runs for every entry of every store.
    return Entry(
        ctx.store,
        name,
        path,
        kind,
        reason,
        digest,
        _user_name(st.st_uid),
        st.st_mode,
        added,
        feed,
        used_by,
        None,
        ctx.atime_reliable,
        added_from,  # type: ignore[arg-type]
        issue,
        fingerprint,
    )


def classify(store: Store, name: str) -> Entry:
    """Examine one top-level entry of a store (``lstat`` only: a symlink is never followed)."""
    path = os.path.join(store.path, name)
    ctx = _Context(store, store.owner_uid)
    try:
        st = os.lstat(path)
    except OSError as exc:
        reason = (
            "it disappeared before it could be examined"
            if exc.errno == errno.ENOENT
            else f"it cannot be examined: {exc.strerror or exc}"
        )
        try:
            digest: Digest | None = parse_digest(name)
        except DigestError:
            digest = None
        return Entry(store, name, path, "unknown", reason, digest, "?", 0, 0.0, None, [])
    return _classify(name, path, st, ctx)


def list_entries(
    stores: Sequence[Store],
    feeds: FeedIndex | None = None,
    app_uses: Mapping[str, list[str]] | None = None,
) -> list[Entry]:
    """Every top-level entry of every store, classified, sorted by name within each store.

    Looks at nothing inside the entries, so it stays instant for thousands of them. Stores with a
    problem are skipped; entries vanishing while listed are left out.
    """
    return _list_with(Listing(list(stores), [], feeds, app_uses, _partitions()))


def _list_with(listing: Listing) -> list[Entry]:
    result: list[Entry] = []
    for store in listing.stores:
        if store.problem:
            continue
        ctx = listing.context(store)
        found = []
        try:
            with os.scandir(store.path) as it:
                for de in it:
                    try:
                        st = de.stat(follow_symlinks=False)
                    except OSError:
                        continue  # vanished between readdir and lstat
                    found.append(_classify(de.name, de.path, st, ctx))
        except OSError:
            continue  # the store went away since discovery; nothing to list
        found.sort(key=lambda e: e.name)
        result.extend(found)
    return result


# --- access times -------------------------------------------------------------------------------


def _mount_table() -> list[tuple[str, str]]:
    """(mount point, options) of every mount, in mount order, from /proc/self/mountinfo: the
    mount's own options and its filesystem's, as /proc/mounts shows them (read directly: importing
    psutil for this cost more start-up than listing a store of 10,000 entries)."""
    import re

    with open("/proc/self/mountinfo", "rb") as f:
        data = f.read()
    octal = re.compile(rb"\\([0-7]{3})")
    table = []
    for line in data.splitlines():
        fields = line.split(b" ")
        try:
            sep = fields.index(b"-", 6)
        except ValueError:
            continue
        mountpoint = octal.sub(lambda m: bytes([int(m.group(1), 8)]), fields[4])
        options = fields[5] + (b"," + fields[sep + 3] if len(fields) > sep + 3 else b"")
        table.append((os.fsdecode(mountpoint), os.fsdecode(options)))
    return table


def _partitions() -> list[tuple[str, frozenset[str]]] | None:
    try:
        return [(mountpoint, frozenset(opts.split(","))) for mountpoint, opts in _mount_table()]
    except OSError:  # no /proc: assume access times are fine
        return None


def _atime_reliable_on(path: str, partitions: list[tuple[str, frozenset[str]]] | None) -> bool:
    if not partitions:
        return True
    real = os.path.realpath(path)
    best: frozenset[str] | None = None
    best_len = -1
    for mountpoint, opts in partitions:
        mp = mountpoint.rstrip("/") or "/"
        under = mp == "/" or real == mp or real.startswith(mp + "/")
        # Longest prefix wins; among equals the later mount is the one on top.
        if under and len(mp) >= best_len:
            best, best_len = opts, len(mp)
    if best is None:
        return True
    # noatime: never updated. ro: nothing is ever written, access times included.
    return not ({"noatime", "ro"} & best)


def atime_reliable(path: str) -> bool:
    """False when ``path`` is on a filesystem mounted ``noatime`` (or read-only), where access
    times say nothing about use. The mount is the one with the longest mountpoint prefix among
    all mounts (/proc/self/mountinfo)."""
    return _atime_reliable_on(path, _partitions())


# --- everything at once --------------------------------------------------------------------------


@dataclass
class Scan:
    """Stores, their entries and every problem found on the way, for the CLI and the GUI."""

    stores: list[Store]
    entries: list[Entry]
    problems: list[str] = field(default_factory=list)


def _store_problem_text(store: Store) -> str:
    from core.display import display_path

    where = "" if store.role == "other" else f" {display_path(store.path)}"
    return f"{store.description}{where} (from {store.source}) {store.problem}; it was skipped."


def _all_homes() -> list[str]:
    try:
        import pwd

        return sorted({p.pw_dir for p in pwd.getpwall() if p.pw_dir and os.path.isdir(p.pw_dir)})
    except ImportError:
        return []


@dataclass
class Listing:
    """What classifying the entries of some stores needs, loaded once: the stores, the cached
    feeds, the apps' selections, the mount table, and every problem found loading them."""

    stores: list[Store]
    problems: list[str]
    feeds: FeedIndex | None
    app_uses: Mapping[str, list[str]] | None
    partitions: list[tuple[str, frozenset[str]]] | None

    def context(self, store: Store) -> _Context:
        reliable = _atime_reliable_on(store.path, self.partitions)
        return _Context(store, store.owner_uid, self.feeds, self.app_uses, reliable)


def prepare_listing(
    stores: Sequence[Store] | None = None, env: Mapping[str, str] | None = None
) -> Listing:
    """Discover the stores (unless given) and load what classifying their entries needs.

    Problems come back as readable sentences: unreadable configuration, stores that cannot be
    read (a missing store is only reported when it was configured explicitly, in an
    implementation-dirs file or with --store: the default XDG locations often do not exist), and
    cached feeds or selections that could not be parsed. Running as root on the real
    environment, every user's apps are read too.
    """
    problems: list[str] = []
    if stores is None:
        found = _discover(env)
        chosen = found.stores
        problems.extend(found.problems)
    else:
        chosen = list(stores)
    for store in chosen:
        if store.problem is None:
            continue
        # The XDG locations often do not exist (0install makes them when it first needs them).
        usual = store.source.startswith("$") and store.problem.startswith("does not exist")
        if not usual:
            problems.append(_store_problem_text(store))
    feeds = FeedIndex.load(cache_dirs(env))
    problems.extend(feeds.problems)
    homes: list[str] = []
    if env is None and hasattr(os, "geteuid") and os.geteuid() == 0:
        homes = _all_homes()
    app_uses = load_app_uses(config_dirs(env), homes, problems)
    return Listing(chosen, problems, feeds, app_uses, _partitions())


def classify_seen(
    ctx: _Context, name: str, path: str, top: TopStat, manifest: TopStat | None
) -> Entry:
    """Classify an entry from what a walk of it saw (:class:`TopStat` of the entry and of its
    ``.manifest``, None when it has none): no system call of its own."""
    return _classify(name, path, top, ctx, manifest)


def classify_in(ctx: _Context, name: str, path: str) -> Entry | None:
    """Classify an entry by its own ``lstat``; None when that fails (it has gone), as
    :func:`list_entries` leaves it out."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return _classify(name, path, st, ctx)


def scan(stores: Sequence[Store] | None = None, env: Mapping[str, str] | None = None) -> Scan:
    """Discover the stores (unless given), load cached feeds and apps' selections, list entries
    (see :func:`prepare_listing` for the problems reported)."""
    listing = prepare_listing(stores, env)
    entries = _list_with(listing)
    return Scan(listing.stores, entries, listing.problems)
