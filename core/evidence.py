"""What says an entry is still in use: the roots a garbage collector would start from.

* **App selections**: every readable ``0install.net/apps/*/selections*.xml`` (the current
  ``selections.xml`` and the dated ones 0install keeps); one's own as a user, every user's home
  as root, with the homes that could not be read named.
* **Pins** the admin set (:mod:`core.pins`).
* **Running processes** whose executable, working directory, open files, memory maps,
  command-line arguments or environment point inside an entry (psutil, as Nix scans ``/proc``);
  processes that could not be inspected are counted, so "not in use" is never claimed blindly.
* **Virtual machines** running with a store shared into them (``core.vbox_vms``, when present).
* **0install itself and this app**: the entry their running code comes from, and the newest
  cached version of 0install's own feed.

Access times and "(unowned)" come from :mod:`core.cache` (``Entry.usage``, ``Entry.feed``);
:func:`atime_mode` says how much the access times of a store's filesystem can be trusted.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.cache import Entry
from core.feeds import AppSelection, read_app_selections
from core.pins import Pins
from core.stores import Store, config_dirs

# 0install's own feeds, old and new: its newest cached version is what `0install self-update`
# and a 0install-run 0install need.
ZEROINSTALL_FEEDS = (
    "https://apps.0install.net/0install/0install.xml",
    "http://0install.net/2007/interfaces/ZeroInstall.xml",
    "https://0install.net/2007/interfaces/ZeroInstall.xml",
)

Key = tuple[str, str]
"""(real path of the store, entry name): how evidence names an entry."""


@dataclass(frozen=True, slots=True)
class ProcessUse:
    pid: int
    name: str
    user: str
    how: str  # "executable", "working directory", "open file", "memory map", "command line"...
    path: str

    def describe(self) -> str:
        return f"in use by process {self.pid} ({self.name}, {self.user}): {self.how} {self.path}"


@dataclass
class Evidence:
    """Everything known about use, for one moment; :meth:`reasons` gives one entry's."""

    app_uses: dict[str, list[AppSelection]] = field(default_factory=dict)
    """Digest name -> the apps' selections files that name it."""
    apps_scope: str = ""  # whose apps were read, one sentence
    every_home_read: bool = False  # True when every user's apps were read (as root)
    unreadable_homes: list[str] = field(default_factory=list)  # "home: why"
    pins: Pins | None = None
    processes: dict[Key, list[ProcessUse]] = field(default_factory=dict)
    processes_seen: int = 0
    processes_hidden: int = 0  # could not be inspected in full (other users' as non-root)
    vm_shares: dict[str, list[str]] = field(default_factory=dict)  # real shared path -> VM names
    own: dict[Key, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def in_use(self, entry: Entry) -> list[str]:
        """Reasons the entry is in use right now (processes, VMs, this app): never removable."""
        key = entry_key(entry)
        reasons = list(self.own.get(key, ()))
        reasons += [use.describe() for use in self.processes.get(key, ())]
        store = _real(entry.store.path)
        for shared, vms in self.vm_shares.items():
            if _under(store, shared) or _under(shared, os.path.join(store, entry.name)):
                names = ", ".join(vms)
                reasons.append(f"its store {shared} is shared with the running VM {names}")
        return reasons

    def rooted(self, entry: Entry) -> list[str]:
        """Reasons the entry is kept whatever its age: apps' selections and pins."""
        reasons = [use.reason() for use in self.app_uses.get(entry.name, ())]
        if self.pins is not None:
            feed = entry.feed
            why = self.pins.reason(
                entry.name,
                feed.feed_url if feed else None,
                feed.feed_name if feed else None,
            )
            if why:
                reasons.append(why)
        return reasons

    def reasons(self, entry: Entry) -> list[str]:
        return self.in_use(entry) + self.rooted(entry)

    def caveats(self) -> list[str]:
        """What the evidence could not see, for the page and the command line."""
        notes = list(self.problems)
        if self.apps_scope:
            notes.append(self.apps_scope)
        for home in self.unreadable_homes:
            notes.append(f"Apps in {home}; what they use is not known and may be removed.")
        if self.processes_hidden:
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                n = self.processes_hidden
                notes.append(
                    f"{n} running {'process' if n == 1 else 'processes'} could not be fully "
                    "inspected (the system denied access even to root); what "
                    f"{'it uses' if n == 1 else 'they use'} is not known."
                )
            else:
                notes.append(
                    f"{self.processes_hidden} running processes (of other users) could not be "
                    "fully inspected; run as root to see what they use."
                )
        return notes


def entry_key(entry: Entry) -> Key:
    return (_real(entry.store.path), entry.name)


def _real(path: str) -> str:
    return os.path.realpath(path)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


# --- apps' selections -----------------------------------------------------------------------------


def all_homes() -> list[str]:
    """Every user's home directory from the password database (for root)."""
    try:
        import pwd

        return sorted({p.pw_dir for p in pwd.getpwall() if p.pw_dir and p.pw_dir != "/"})
    except ImportError:
        return []


def load_selections(
    configs: Sequence[str], homes: Sequence[str] = ()
) -> tuple[dict[str, list[AppSelection]], list[str], list[str]]:
    """(digest name -> the selections files naming it, unreadable homes "home: why", problems):
    :func:`core.feeds.read_app_selections`, the reader the listing's "Used by" comes from too.

    ``configs``: 0install config dirs (ending in ``0install.net``); ``homes``: other users' homes
    to read too (as root). Dated ``selections-YYYY-MM-DD.xml`` files are roots as well (0install
    keeps them to go back to); their reason names the file and how to let the entry go.
    """
    found = read_app_selections(configs, homes)
    return found.uses, found.unreadable, found.problems


# --- processes ------------------------------------------------------------------------------------


def _store_pattern(stores: Iterable[Store]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """A regex finding "<store>/<name>" in any text, and store spelling -> real store path."""
    spellings: dict[str, str] = {}
    for store in stores:
        if store.problem:
            continue
        real = _real(store.path)
        for spelling in {real, os.path.abspath(store.path)}:
            spellings[spelling.rstrip("/")] = real
    if not spellings:
        return None, spellings
    alternatives = "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))
    return re.compile(f"({alternatives})/+([^/\\s:;\0\"']+)"), spellings


def _matches(text: str, pattern: re.Pattern[str], spellings: Mapping[str, str]) -> list[Key]:
    return [(spellings[m.group(1)], m.group(2)) for m in pattern.finditer(text)]


def scan_processes(
    stores: Iterable[Store], exclude: Iterable[int] = ()
) -> tuple[dict[Key, list[ProcessUse]], int, int]:
    """(entry key -> uses, processes looked at, processes that could not be fully inspected).

    ``exclude``: pids to leave out (this process and its helpers: this app's own command line
    names the entries it is asked to delete).
    """
    import psutil

    pattern, spellings = _store_pattern(stores)
    found: dict[Key, list[ProcessUse]] = {}
    if pattern is None:
        return found, 0, 0
    skip = set(exclude)
    requesters = _ancestors()
    seen = hidden = 0

    def note(proc: Any, how: str, text: str, is_path: bool) -> None:
        for key in _matches(text, pattern, spellings):
            shown = text if is_path else f"{key[0]}/{key[1]}"
            info = proc.info
            use = ProcessUse(
                proc.pid, info.get("name") or "?", info.get("username") or "?", how, shown
            )
            uses = found.setdefault(key, [])
            if use not in uses and len(uses) < 20:
                uses.append(use)

    for proc in psutil.process_iter(["pid", "name", "username"]):
        if proc.pid in skip:
            continue
        seen += 1
        denied = False
        for how, getter, is_path in (
            ("executable", lambda p: [p.exe()], True),
            ("working directory", lambda p: [p.cwd()], True),
            ("open file", lambda p: [f.path for f in p.open_files()], True),
            ("memory map", lambda p: [m.path for m in p.memory_maps(grouped=True)], True),
            ("command-line argument", lambda p: p.cmdline(), False),
            ("environment variable", lambda p: [f"{k}={v}" for k, v in p.environ().items()], False),
        ):
            if how == "command-line argument" and proc.pid in requesters:
                continue
            try:
                values = getter(proc)
            except psutil.AccessDenied:
                denied = True
                continue
            except (psutil.Error, OSError):
                continue  # gone, a zombie, or a kernel thread without this attribute
            for value in values:
                if not value:
                    continue
                if is_path and value.endswith(" (deleted)"):
                    value = value[: -len(" (deleted)")]
                note(proc, how, value, is_path)
        if denied and not _kernel_thread(proc):
            hidden += 1
    return found, seen, hidden


def _ancestors() -> set[int]:
    """The processes that started this one (``sudo``, ``runuser``, a shell's ``-c``): their
    command line is the request to delete an entry, not a use of it. What else they hold (a
    working directory, an open file) still counts."""
    import psutil

    try:
        return {p.pid for p in psutil.Process().parents()}
    except psutil.Error:
        return set()


def _kernel_thread(proc: Any) -> bool:
    try:
        return proc.pid == 2 or proc.ppid() == 2
    except Exception:  # noqa: BLE001
        return False


def own_pids() -> list[int]:
    """This process only: its own command line names the entries it is asked to delete. Its
    child processes are inspected like any other (a verification still reading an entry does
    keep it), which errs on the safe side."""
    return [os.getpid()]


# --- VMs, 0install and this app -------------------------------------------------------------------


def vm_shares() -> tuple[dict[str, list[str]], str | None]:
    """Real path shared with running VMs -> VM names, from ``core.vbox_vms`` when it exists."""
    try:
        from core import vbox_vms

        found = vbox_vms.stores_shared_with_running_vms()
    except (ImportError, AttributeError):
        return {}, None
    except Exception as exc:  # noqa: BLE001 - a VM check failing must not stop clean-up
        return {}, (
            f"Running virtual machines could not be checked ({exc}); stores shared with them "
            "are not known to be in use."
        )
    shares: dict[str, list[str]] = {}
    try:
        for path, names in dict(found).items():
            vms = [names] if isinstance(names, str) else [str(n) for n in names]
            shares.setdefault(_real(str(path)), []).extend(vms)
    except (TypeError, ValueError):
        return {}, "Running virtual machines gave an answer that could not be read."
    return shares, None


def own_paths() -> list[tuple[str, str]]:
    """(what, real path) of the code running 0install and this app."""
    found: list[tuple[str, str]] = []
    zi = shutil.which("0install")
    if zi:
        found.append(("0install itself", _real(zi)))
    found.append(("this app's Python", _real(sys.executable)))
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found.append(("this app", _real(here)))
    return found


def own_entries(entries: Sequence[Entry], paths: Sequence[tuple[str, str]]) -> dict[Key, list[str]]:
    """Entries holding 0install's or this app's running code, and the newest cached 0install."""
    own: dict[Key, list[str]] = {}
    for entry in entries:
        top = os.path.join(_real(entry.store.path), entry.name)
        for what, path in paths:
            if _under(path, top):
                why = f"the implementation of {what} ({path})"
                own.setdefault(entry_key(entry), []).append(why)
    newest: Entry | None = None
    from core.versions import version_key

    for entry in entries:
        if (
            entry.feed is not None
            and entry.feed.feed_url in ZEROINSTALL_FEEDS
            and (newest is None or version_key(entry.version) > version_key(newest.version))
        ):
            newest = entry
    if newest is not None:
        own.setdefault(entry_key(newest), []).append("the newest cached version of 0install itself")
    return own


# --- all of it ------------------------------------------------------------------------------------


def collect(
    stores: Sequence[Store],
    entries: Sequence[Entry],
    *,
    pins: Pins | None,
    env: Mapping[str, str] | None = None,
    homes: Sequence[str] | None = None,
    processes: bool = True,
    exclude_pids: Iterable[int] | None = None,
    vms: Callable[[], tuple[dict[str, list[str]], str | None]] = vm_shares,
) -> Evidence:
    """Gather every kind of evidence for these entries.

    ``homes`` None: every user's home when running as root on the real environment (``env``
    None), none otherwise.
    """
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if homes is None:
        homes = all_homes() if env is None and is_root else []
    app_uses, unreadable, problems = load_selections(config_dirs(env), homes)
    if homes:
        scope = f"Apps of every user were read ({len(homes)} homes)."
    elif is_root:
        # Root, in an environment of its own (the demo, tests): the homes were not looked at.
        scope = (
            "Only the apps of this environment's configuration directories were read: other "
            "users' apps are not known."
        )
    else:
        scope = (
            "Only your own apps were read: other users' apps are not known (run as root to "
            "read every home)."
        )
    ev = Evidence(
        app_uses, scope, bool(homes) and not unreadable, unreadable, pins, problems=problems
    )
    if processes:
        pids = own_pids() if exclude_pids is None else list(exclude_pids)
        try:
            ev.processes, ev.processes_seen, ev.processes_hidden = scan_processes(stores, pids)
        except Exception as exc:  # noqa: BLE001 - psutil missing or /proc unreadable
            ev.problems.append(
                f"Running processes could not be checked ({exc}): nothing is known to be "
                "in use right now."
            )
    ev.vm_shares, vm_problem = vms()
    if vm_problem:
        ev.problems.append(vm_problem)
    ev.own = own_entries(entries, own_paths())
    return ev


def atime_mode(path: str) -> str:
    """How the filesystem holding ``path`` records access times: "noatime", "ro" (never
    written), "relatime" (at most once a day once read after a change), "strictatime", or
    "unknown"."""
    try:
        import psutil

        parts = psutil.disk_partitions(all=True)
    except Exception:  # noqa: BLE001
        return "unknown"
    real = _real(path)
    best: frozenset[str] | None = None
    best_len = -1
    for p in parts:
        mp = p.mountpoint.rstrip("/") or "/"
        if (mp == "/" or _under(real, mp)) and len(mp) >= best_len:
            best, best_len = frozenset(p.opts.split(",")), len(mp)
    if best is None:
        return "unknown"
    for word in ("ro", "noatime", "strictatime", "relatime"):
        if word in best:
            return word
    return "relatime"  # the Linux default since 2.6.30 when none is given
