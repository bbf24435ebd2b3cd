"""Where the implementation stores are: discovered exactly as 0install 2.18 does it.

0install's search path (``src/support/basedir.ml``, ``src/zeroinstall/paths.ml``, ``stores.ml``):

* the cache dirs are ``$XDG_CACHE_HOME`` (``~/.cache`` when unset; an empty value is used as it
  is) followed by ``$XDG_CACHE_DIRS`` split on ``:`` with empty parts dropped (``/var/cache`` when
  unset), each with ``0install.net`` appended; ``$ZEROINSTALL_PORTABLE_BASE`` replaces all of that
  with ``$ZEROINSTALL_PORTABLE_BASE/cache`` (and ``.../config``);
* the stores are ``<cache dir>/implementations`` for every cache dir, then every line of every
  ``<config dir>/injector/implementation-dirs`` file that is not empty and does not start with
  ``#``, taken verbatim (trailing spaces and carriage returns included), the whole list of lines
  reversed, as 0install collects them.

0install lists the same directory as often as it is configured; here the first occurrence wins
(by path text and by device/inode), so no store is scanned twice.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

StoreKind = Literal["user", "system"]
StoreRole = Literal["user", "shared", "system", "other"]
"""What a store is for, from discovery: the user's own (``$XDG_CACHE_HOME``), the machine's shared
one (``/var/cache/0install.net/implementations``, filled by ``0store-secure-add``), another system
store (``$XDG_CACHE_DIRS``, an ``implementation-dirs`` line), or ``other``: a ``--store`` path that
discovery does not know."""

SHARED_SYSTEM_STORE = "/var/cache/0install.net/implementations"
"""The store that 0store-secure-add fills, owned by the ``zeroinst`` user (Linux)."""

_SITE = "0install.net"


@dataclass(frozen=True, slots=True)
class Store:
    """An implementation store 0install uses: where, whose, from which setting, and its state."""

    path: str  # the implementations dir as configured (verbatim; --store paths made absolute)
    kind: StoreKind
    source: str  # "$XDG_CACHE_HOME", "$XDG_CACHE_DIRS", an implementation-dirs file, or "--store"
    problem: str | None = None  # None when listable, else why not, in a few plain words
    role: StoreRole | Literal[""] = ""  # "" = from kind and path (see __post_init__)
    name: str = ""  # the distinct label given by :func:`label_stores`; "" = the role's word

    def __post_init__(self) -> None:
        if not self.role:
            role: StoreRole = (
                "user"
                if self.kind == "user"
                else "shared"
                if self.path == SHARED_SYSTEM_STORE
                else "system"
            )
            object.__setattr__(self, "role", role)

    @property
    def label(self) -> str:
        """Short text naming the store everywhere (table, filter, chart, banner, ``list --json``):
        "user", "shared", "system" (numbered when there are several), or the (shortened, see
        :func:`short_path`) path of a --store directory that discovery does not know."""
        if self.name:
            return self.name
        return _role_label(self)

    @property
    def description(self) -> str:
        """What the store is, for sentences: "The user store", "System store 2", "Store /x"."""
        role = self.role
        if role == "other":
            return f"Store {self.label}"
        if role in ("user", "shared"):
            return f"The {role} store"
        return "System store" + self.label[len("system") :]

    @property
    def owner_uid(self) -> int | None:
        """The uid owning the store directory, None when it cannot be stat'ed."""
        try:
            return os.stat(self.path).st_uid
        except (OSError, ValueError):
            return None


def _role_label(store: Store) -> str:
    if store.role == "other":
        return short_path(store.path)
    return str(store.role)


def short_path(path: str) -> str:
    """A store's path as a label: without the usual ``/0install.net/implementations`` tail and
    with the home directory as ``~`` ("~/mirror", "/srv/cache"), printable."""
    from core.display import display_path

    text = os.path.normpath(path)
    for tail in ("implementations", _SITE):
        head, name = os.path.split(text)
        if name == tail and head not in ("", os.sep):
            text = head
    home = os.path.expanduser("~")
    if home not in ("", os.sep, "~") and (text == home or text.startswith(home + os.sep)):
        text = "~" + text[len(home) :]
    return display_path(text)


def label_stores(stores: Sequence[Store]) -> list[Store]:
    """The same stores, each with a distinct short :attr:`Store.label`: "user", "shared",
    "system" or "system 1", "system 2"... in order when there are several, and the path of the
    others."""
    systems = sum(1 for s in stores if s.role == "system")
    result: list[Store] = []
    seen: set[str] = set()
    n = 0
    for store in stores:
        name = _role_label(store)
        if store.role == "system" and systems > 1:
            n += 1
            name = f"system {n}"
        base, i = name, 2
        while name in seen:  # two "user" stores from two --store paths, say
            name = f"{base} ({i})"
            i += 1
        seen.add(name)
        result.append(replace(store, name=name))
    return result


@dataclass(slots=True)
class _Discovery:
    """The stores found, and the problems met finding them."""

    stores: list[Store] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _concat(base: str, rel: str) -> str:
    """0install's ``+/`` for a relative ``rel``: OCaml's Filename.concat, which os.path.join matches
    for these inputs (``"" + x`` is ``x``; no doubled separator after a trailing one)."""
    return os.path.join(base, rel)


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _unix_home(env: Mapping[str, str]) -> str:
    """$HOME as 0install uses it: "/root" when unset, and root's real home when running as root
    with a $HOME that root does not own (so root never fills a user's home with its files)."""
    home = env.get("HOME", "/root")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        try:
            owner = os.stat(home).st_uid
        except (OSError, ValueError):
            return home
        if owner != 0:
            try:
                import pwd

                return pwd.getpwuid(0).pw_dir
            except (KeyError, ImportError):
                return "/"
    return home


def _xdg(env: Mapping[str, str], home_var: str, dirs_var: str, defaults: list[str]) -> list[str]:
    """The user dir then the system dirs, as 0install's ``Basedir.get_path``: a set variable is
    used even when empty; the dirs list drops empty parts."""
    user = env[home_var] if home_var in env else defaults[0]
    system = [p for p in env[dirs_var].split(os.pathsep) if p] if dirs_var in env else defaults[1:]
    return [user, *system]


def _base_dirs(env: Mapping[str, str], which: Literal["cache", "config"]) -> list[str]:
    portable = env.get("ZEROINSTALL_PORTABLE_BASE")
    if portable is not None:
        return [_concat(portable, which)]
    if os.name == "nt":
        appdata = env.get("APPDATA", "")
        common = env.get("PROGRAMDATA", "")
        user_default = env.get("LOCALAPPDATA", "") if which == "cache" else appdata
        defaults = [user_default, common]
    else:
        home = _unix_home(env)
        if which == "cache":
            defaults = [_concat(home, ".cache"), "/var/cache"]
        else:
            defaults = [_concat(home, ".config"), "/etc/xdg"]
    if which == "cache":
        dirs = _xdg(env, "XDG_CACHE_HOME", "XDG_CACHE_DIRS", defaults)
    else:
        dirs = _xdg(env, "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", defaults)
    return [_concat(d, _SITE) for d in dirs]


def cache_dirs(env: Mapping[str, str] | None = None) -> list[str]:
    """Every cache dir 0install uses, with ``/0install.net`` appended, user's first."""
    return _base_dirs(_environ(env), "cache")


def config_dirs(env: Mapping[str, str] | None = None) -> list[str]:
    """Every config dir 0install uses, with ``/0install.net`` appended, user's first."""
    return _base_dirs(_environ(env), "config")


def _read_impl_dirs(path: str, problems: list[str]) -> list[str]:
    """The store lines of one implementation-dirs file, in file order, verbatim.

    0install reads it with ``input_line`` and keeps each line matching ``^[^#].*$``: anything
    non-empty not starting with '#', with no trimming at all.
    """
    try:
        # Non-blocking and only if regular: a FIFO put there would hang the read (0install hangs).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(0, "it is not a regular file")
            data = f.read()
    except OSError as exc:
        problems.append(
            f"Cannot read {path}: {exc.strerror or exc}; the stores it lists were skipped "
            "(0install skips them too)."
        )
        return []
    return [os.fsdecode(line) for line in data.split(b"\n") if line and not line.startswith(b"#")]


def configured_store_paths(env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(path, source) of every store in 0install's order, duplicates included: what
    ``0install store list`` prints. :func:`discover_stores` is the de-duplicated, checked form."""
    return _configured(_environ(env), [])


def _configured(env: Mapping[str, str], problems: list[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    caches = _base_dirs(env, "cache")
    portable = "ZEROINSTALL_PORTABLE_BASE" in env
    for i, cache in enumerate(caches):
        if portable:
            source = "$ZEROINSTALL_PORTABLE_BASE"
        else:
            source = "$XDG_CACHE_HOME" if i == 0 else "$XDG_CACHE_DIRS"
        found.append((_concat(cache, "implementations"), source))
    extra: list[tuple[str, str]] = []
    for config in _base_dirs(env, "config"):
        impl_dirs = _concat(config, "injector/implementation-dirs")
        # 0install checks existence (following symlinks) before reading.
        if os.path.exists(impl_dirs):
            extra.extend((line, impl_dirs) for line in _read_impl_dirs(impl_dirs, problems))
    # 0install prepends each line to one list, so the lines of all files come out reversed.
    extra.reverse()
    return found + extra


def _problem(path: str) -> str | None:
    """None when the store can be listed, else a few words saying why not."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        why = "does not exist"
    except NotADirectoryError:
        why = "does not exist (a parent is not a directory)"
    except (OSError, ValueError) as exc:
        why = f"cannot be read: {getattr(exc, 'strerror', None) or exc}"
    else:
        if not stat.S_ISDIR(st.st_mode):
            why = "is not a directory"
        else:
            try:
                with os.scandir(path) as it:
                    next(it, None)
                return None
            except OSError as exc:
                why = f"cannot be read: {exc.strerror or exc}"
    if path != path.strip():
        why += (
            " (its configured line has trailing white space or a carriage return, "
            "which 0install keeps)"
        )
    elif not os.path.isabs(path):
        why += " (it is a relative path, so it depends on the current directory)"
    return why


def _dedup_key(path: str) -> tuple:
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return ("inode", st.st_dev, st.st_ino)
    except (OSError, ValueError):
        pass
    return ("path", os.path.normpath(os.path.abspath(path)))


def _discover(env: Mapping[str, str] | None) -> _Discovery:
    result = _Discovery()
    seen: set[tuple] = set()
    for path, source in _configured(_environ(env), result.problems):
        key = _dedup_key(path)
        if key in seen:
            continue
        seen.add(key)
        kind: StoreKind = "user" if not result.stores else "system"
        result.stores.append(Store(path, kind, source, _problem(path)))
    result.stores = label_stores(result.stores)
    return result


def discover_stores(env: Mapping[str, str] | None = None) -> list[Store]:
    """The stores 0install uses, in its order, first one "user", others "system", each with a
    distinct :attr:`Store.label`.

    ``env`` defaults to ``os.environ``. A store configured twice (same text after normalising, or
    the same directory through another path) is kept once, where it first appears. Missing or
    unreadable stores are returned with ``problem`` set, never raised.
    """
    return _discover(env).stores


def discovery_problems(env: Mapping[str, str] | None = None) -> list[str]:
    """Readable messages about configuration that could not be read during discovery."""
    return _discover(env).problems


def stores_from_paths(paths: Sequence[str], env: Mapping[str, str] | None = None) -> list[Store]:
    """Stores named on the command line (``--store DIR``): made absolute, de-duplicated.

    A directory that discovery (with ``env``, default ``os.environ``) also finds keeps the role
    it has there (the user store, the shared store, a system store); any other is "other",
    labelled by its path. ``kind`` stays "user" for a directory the current user owns, else
    "system", as before.
    """
    known: dict[tuple, Store] = {}
    for found in _discover(env).stores:
        known.setdefault(_dedup_key(found.path), found)
    stores: list[Store] = []
    seen: set[tuple] = set()
    uid = os.getuid() if hasattr(os, "getuid") else None
    for raw in paths:
        path = os.path.abspath(os.fsdecode(raw))
        key = _dedup_key(path)
        if key in seen:
            continue
        seen.add(key)
        try:
            owner = os.stat(path).st_uid
        except (OSError, ValueError):
            owner = None
        kind: StoreKind = "user" if owner is not None and owner == uid else "system"
        same = known.get(key)
        role: StoreRole = same.role if same is not None else "other"  # type: ignore[assignment]
        stores.append(Store(path, kind, "--store", _problem(path), role))
    return label_stores(stores)
