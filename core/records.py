"""Verification records: what lets ``verify`` judge an entry unchanged by a stat walk instead of
hashing every byte again, and never keep an "OK" for an entry someone tampered with.

**Change keys.** When an entry is hashed and found OK, the walk that hashes it also takes, for
every directory, file and symlink (the entry itself and its ``.manifest`` included), the key
``(dev, ino, size, ctime_ns, mtime_ns, mode)`` and for a symlink its target, each taken *before*
the thing's contents are read (:class:`core.manifest.ManifestWalk`'s ``keys``). The record keeps
one digest of the sorted keys (:func:`keys_digest`), so it stays small. Re-checking is a stat walk
by directory descriptors (:func:`stat_keys`) and the same digest: equal means that no key changed.
The kernel sets ``ctime`` to the current time on every change of content, mode, owner, name or
links, and no system call lets anyone but root set it back (``utimensat`` sets only atime and
mtime): a change made without root always changes a key. A file changed in place through a hard
link from another entry changes the inode's ctime, so every entry linking it is re-hashed too.

**Racy keys** (as git's racily clean files): a change made within the filesystem's timestamp
granularity of the moment a key was taken could leave the key as it was. An entry in which any
ctime is that close to when its walk started is not recorded, so it is hashed again next time.

**Unstable inode numbers**: overlayfs without ``xino``, FUSE, NFS and other network filesystems may
give a file another inode number (or keep one for another file) between two looks: there the keys
prove nothing, so every entry is hashed in full and no record is written (:func:`inode_stability`
reads ``/proc/self/mountinfo``).

**The record file** (:class:`StoreRecords`): one per store, outside the cache, so that writing an
entry does not let anyone rewrite its record: ``$XDG_STATE_HOME/zeroinstall-admin/verified/`` for a
store the user owns; ``/var/lib/zeroinstall-admin/verified/`` (root's, readable by all) for a store
owned by someone else (the shared and system stores), written only by root. A text header with the
format version, one JSON line, and a SHA-256 of both; written to a temporary file and renamed. A
file that is damaged, of another version, for another store, or not owned as it must be is
ignored with a warning, never trusted. ``$ZEROINSTALL_ADMIN_RECORDS_DIR`` puts every record file
in one directory instead (tests; the ownership rules still apply).
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from core.treewalk import open_dir

APP_DIR = "zeroinstall-admin"
SYSTEM_STATE_DIR = "/var/lib/zeroinstall-admin"
SUBDIR = "verified"
ENV_DIR = "ZEROINSTALL_ADMIN_RECORDS_DIR"
ENV_MOUNTINFO = "ZEROINSTALL_ADMIN_MOUNTINFO"
MAGIC = b"zeroinstall-admin verification records"
VERSION = 1
MAX_FILE = 64 << 20  # far more than 100,000 entries need; a bigger file is not ours

RACY_NS = 2_000_000_000
"""How close to the start of the walk a ctime makes an entry racy. Filesystems with whole-second
timestamps (ext3, ext4 with small inodes) and FAT's two seconds need this much; nanosecond ones
only the kernel's clock tick, but a record taken two seconds after the last change costs nothing."""

Key = tuple
"""(directory inside the entry as bytes, ``/a/b``; name as str, as ``os.scandir`` gives it; dev,
ino, size, ctime_ns, mtime_ns, mode, symlink target as bytes or b"")."""


def key_of(drel: bytes, name: str, st: os.stat_result, target: bytes = b"") -> Key:
    """The change key of one thing in an entry (the entry itself is ``(b"", "")``)."""
    return (
        drel,
        name,
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_ctime_ns,
        st.st_mtime_ns,
        st.st_mode,
        target,
    )


def keys_digest(keys: list[Key]) -> str:
    """One digest of a set of keys, whatever order they were taken in. marshal's version 2 has no
    back-references, so equal keys always give equal bytes."""
    keys.sort()
    return _blake2b(marshal.dumps(keys, 2), digest_size=20).hexdigest()


def _blake2b(data: bytes, digest_size: int) -> Any:
    """hashlib's blake2b, imported on first use (the window and listing never need it)."""
    global _blake2b
    import hashlib

    _blake2b = hashlib.blake2b  # type: ignore[assignment]
    return _blake2b(data, digest_size=digest_size)


def racy(keys: list[Key], started_ns: int, margin_ns: int = RACY_NS) -> bool:
    """Whether a key was changed too close to ``started_ns`` (when the walk taking them began)."""
    limit = started_ns - margin_ns
    return any(k[5] >= limit for k in keys)


class _Changed(Exception):
    pass


def stat_keys(fd: int, root_st: os.stat_result, tick: Callable[[], int] | None = None) -> list:
    """The keys of the entry open as ``fd`` (``root_st`` its fstat), by a walk of directory
    descriptors that reads no file: every directory listed, everything in it ``lstat``-ed, each
    subdirectory opened without following a symlink and checked to be the one listed. Raises
    OSError when something cannot be looked at or changed under the walk (then the entry is hashed
    and that walk says what is wrong); ``tick() == 2`` stops it (:class:`_Changed`)."""
    keys: list[Key] = [key_of(b"", "", root_st)]
    subdirs = _listing(fd, b"", keys)
    if not subdirs:
        return keys  # a flat entry: most of them
    # Depth first, holding one descriptor per level: [fd, path inside, subdirectories, next].
    stack: list[list] = [[fd, b"", subdirs, 0]]
    try:
        while stack:
            frame = stack[-1]
            dfd, drel, subdirs, pos = frame
            if pos >= len(subdirs):
                stack.pop()
                if dfd != fd:
                    os.close(dfd)
                continue
            frame[3] = pos + 1
            if tick is not None and tick() == 2:
                raise _Changed
            name, st = subdirs[pos]
            cfd = open_dir(dfd, name, st)
            sub = drel + b"/" + os.fsencode(name)
            stack.append([cfd, sub, [], 0])
            stack[-1][2] = _listing(cfd, sub, keys)
    finally:
        for frame in stack:
            if frame[0] != fd:
                os.close(frame[0])
    return keys


def _listing(dfd: int, drel: bytes, keys: list) -> list:
    """Append the keys of everything in the open directory; its subdirectories (name, lstat)."""
    subdirs = []
    append = keys.append
    with os.scandir(dfd) as it:
        for e in it:
            st = e.stat(follow_symlinks=False)
            mode = st.st_mode
            kind = mode & 0o170000
            if kind == 0o100000:  # a regular file: nearly everything
                append((drel, e.name, st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns,
                        st.st_mtime_ns, mode, b""))  # fmt: skip
                continue
            target = b""
            if kind == 0o120000:  # a symlink
                target = os.readlink(os.fsencode(e.name), dir_fd=dfd)
            elif kind == 0o040000:
                subdirs.append((e.name, st))
            append((drel, e.name, st.st_dev, st.st_ino, st.st_size, st.st_ctime_ns,
                    st.st_mtime_ns, mode, target))  # fmt: skip
    return subdirs


# --- where inode numbers can be trusted -----------------------------------------------------------

_UNSTABLE = {
    "nfs": "NFS",
    "nfs4": "NFS",
    "cifs": "SMB (cifs)",
    "smb3": "SMB",
    "9p": "9p",
    "vboxsf": "a VirtualBox shared folder",
    "virtiofs": "virtiofs",
    "ceph": "CephFS",
    "afs": "AFS",
}


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    if "\\" not in field_:
        return field_
    out = []
    i = 0
    while i < len(field_):
        if field_[i] == "\\" and i + 3 < len(field_) and field_[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def inode_stability(path: str, mountinfo: str | None = None) -> tuple[bool, str]:
    """Whether inode numbers under ``path`` are stable, and if not, why (one sentence).

    The mount holding ``path`` is the one with the longest mount point that contains its real
    path (``mountinfo``: another file to read instead of ``/proc/self/mountinfo``, for tests; also
    ``$ZEROINSTALL_ADMIN_MOUNTINFO``). overlayfs is stable only with ``xino=on`` among its options;
    FUSE and network filesystems never are. When the mounts cannot be read, they are taken as
    stable only if ``/proc`` does not exist at all (not Linux)."""
    source = mountinfo or os.environ.get(ENV_MOUNTINFO) or "/proc/self/mountinfo"
    try:
        with open(source, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        if source == "/proc/self/mountinfo" and not os.path.isdir("/proc"):
            return True, ""
        return False, "the mounts could not be read, so whether inode numbers are stable is unknown"
    real = os.path.realpath(path)
    best: tuple[int, str, str] | None = None
    for line in lines:
        left, sep, right = line.partition(" - ")
        parts = left.split()
        rest = right.split()
        if not sep or len(parts) < 5 or len(rest) < 2:
            continue
        point = _unescape(parts[4])
        inside = real == point or real.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= best[0]):
            options = rest[2] if len(rest) > 2 else ""
            best = (len(point), rest[0], options)
    if best is None:
        return False, "its mount was not found, so whether inode numbers are stable is unknown"
    _length, fstype, options = best
    if fstype == "overlay":
        if "xino=on" in options.split(","):
            return True, ""
        return False, "it is on overlayfs without xino=on, where inode numbers are not stable"
    if fstype == "fuse" or fstype.startswith(("fuse.", "fuseblk")):
        return False, f"it is on a FUSE filesystem ({fstype}), whose inode numbers are not stable"
    if fstype in _UNSTABLE:
        return False, f"it is on {_UNSTABLE[fstype]}, whose inode numbers are not stable"
    return True, ""


# --- the record file ------------------------------------------------------------------------------


class Record(NamedTuple):
    """An entry found OK by hashing: when (seconds since the epoch), the digest of its keys, and
    whether it had a ``.manifest`` then."""

    hashed_at: float
    keys: str
    manifest: bool = True


def _is_root() -> bool:
    return os.geteuid() == 0


def _state_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_STATE_HOME")
    if base and os.path.isabs(base):
        return os.path.join(base, APP_DIR)
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "state", APP_DIR)


@dataclass(slots=True)
class StoreRecords:
    """The records of one store: where they live, whether this process may write them, and the
    warnings met reading them."""

    store: str
    file: str
    shared: bool  # kept by root for everyone (the store is not this user's)
    writable: bool
    # name -> Record, or the [hashed_at, keys, manifest] read from the file until asked for
    entries: dict[str, Record | list] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    changed: bool = False

    @property
    def note(self) -> str:
        """Why nothing will be remembered, or ""."""
        if self.writable:
            return ""
        return (
            f"verification records of {self.store} are kept by root in "
            f"{os.path.dirname(self.file)}: "
            "they were read but not updated (run as root to update them)"
        )

    def get(self, name: str) -> Record | None:
        """The record of ``name``; None when there is none or it is malformed (checked here, on
        first use, rather than for all of them as the file is read)."""
        found = self.entries.get(name)
        if found is None or type(found) is Record:
            return found
        try:
            hashed_at, keys, manifest = found
            record = Record(float(hashed_at), keys, bool(manifest))
            if type(keys) is not str or not hashed_at >= 0:
                raise ValueError
        except (TypeError, ValueError):
            del self.entries[name]
            return None
        self.entries[name] = record
        return record

    def remember(self, name: str, record: Record) -> None:
        self.entries[name] = record
        self.changed = True

    def forget(self, name: str) -> None:
        if self.entries.pop(name, None) is not None:
            self.changed = True


def _file_for(store: str, directory: str) -> str:
    import hashlib

    key = hashlib.sha256(os.fsencode(os.path.abspath(store))).hexdigest()[:32]
    return os.path.join(directory, f"{key}.records")


def location(store: str, env: Mapping[str, str] | None = None) -> tuple[str, bool, bool]:
    """(record file, shared, writable) for ``store``: see the module docstring."""
    env = os.environ if env is None else env
    euid = os.geteuid()
    try:
        owner = os.stat(store).st_uid
    except OSError:
        owner = -1
    shared = owner != euid or euid == 0
    chosen = env.get(ENV_DIR)
    if chosen:
        directory = chosen
    elif shared:
        directory = os.path.join(SYSTEM_STATE_DIR, SUBDIR)
    else:
        directory = os.path.join(_state_dir(env), SUBDIR)
    return _file_for(store, directory), shared, (not shared) or euid == 0


def _trust_problem(st: os.stat_result, shared: bool, what: str) -> str:
    want = 0 if shared else os.geteuid()
    if st.st_uid != want:
        who = "root" if want == 0 else "you"
        return f"{what} is owned by uid {st.st_uid}, not {who}"
    if st.st_mode & 0o022:
        return f"{what} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return ""


def _encode(store: str, entries: Mapping[str, Record | list]) -> bytes:
    import hashlib
    import json

    body = json.dumps(
        {
            "store": store,
            "written": time.time(),
            "entries": {n: [r[0], r[1], int(r[2])] for n, r in entries.items()},
        },
        separators=(",", ":"),
    ).encode()
    head = MAGIC + b" %d\n" % VERSION + body + b"\n"
    return head + b"sha256 " + hashlib.sha256(head).hexdigest().encode() + b"\n"


def _decode(data: bytes, store: str) -> dict[str, Record | list]:
    """The entries of a record file; ValueError saying what is wrong with it."""
    import hashlib
    import json

    first = data.partition(b"\n")[0]
    if not first.startswith(MAGIC + b" "):
        raise ValueError("it is not a verification record file")
    version = first[len(MAGIC) + 1 :]
    if version != b"%d" % VERSION:
        raise ValueError(f"it has format version {version[:20]!r}, this program reads {VERSION}")
    head, sep, tail = data[:-1].rpartition(b"\nsha256 ")
    if not sep or not data.endswith(b"\n"):
        raise ValueError("it is incomplete (no checksum at its end)")
    if hashlib.sha256(head + b"\n").hexdigest().encode() != tail:
        raise ValueError("its checksum does not match its contents (damaged)")
    try:
        doc = json.loads(head.split(b"\n", 1)[1])
        if doc["store"] != store:
            raise ValueError(f"it is for another store ({doc['store']!r})")
        entries = doc["entries"]
        if not isinstance(entries, dict):
            raise TypeError
        return entries  # each checked when it is used (StoreRecords.get)
    except (KeyError, TypeError, IndexError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"its contents are malformed ({type(exc).__name__})") from None


def load(store: str, env: Mapping[str, str] | None = None) -> StoreRecords:
    """The records of ``store`` (an empty set, with a warning, when the file cannot be trusted)."""
    store = os.path.abspath(store)
    path, shared, writable = location(store, env)
    records = StoreRecords(store, path, shared, writable)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            records.warnings.append(
                f"the verification records {path} could not be read ({exc.strerror}): "
                "every entry is hashed"
            )
        return records
    try:
        st = os.fstat(fd)
        problem = ""
        if not stat.S_ISREG(st.st_mode):
            problem = "it is not a regular file"
        elif st.st_size > MAX_FILE:
            problem = f"it is {st.st_size:,} bytes, far more than records take"
        else:
            problem = _trust_problem(st, shared, "it") or _trust_problem(
                os.stat(os.path.dirname(path)), shared, "its directory"
            )
        if not problem:
            data = os.read(fd, st.st_size + 1)
            try:
                records.entries = _decode(data, store)
            except ValueError as exc:
                problem = str(exc)
    except OSError as exc:
        problem = f"it could not be read ({exc.strerror})"
    finally:
        os.close(fd)
    if problem:
        records.entries = {}
        records.warnings.append(
            f"the verification records {path} were ignored: {problem}; every entry is hashed"
            + (" and the file is written anew" if writable else "")
        )
        records.changed = writable
    return records


def save(records: StoreRecords) -> str:
    """Write the records if they changed and may be written; "" or why they could not be."""
    if not records.changed or not records.writable:
        return ""
    directory = os.path.dirname(records.file)
    data = _encode(records.store, records.entries)
    tmp = f"{records.file}.tmp-{os.getpid()}"
    try:
        os.makedirs(directory, mode=0o755 if records.shared else 0o700, exist_ok=True)
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # No fsync: a file cut short by a crash fails its checksum and is ignored (everything
            # is hashed once more), and a sync of a few MB after every verify costs more than that.
        finally:
            os.close(fd)
        os.replace(tmp, records.file)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return (
            f"the verification records {records.file} could not be written: {exc.strerror or exc}"
        )
    records.changed = False
    return ""


def since_text(since: float, now: float | None = None) -> str:
    """ "3 Dec" ("3 Dec 2025" in another year; "14:05" today), local time."""
    when = time.localtime(since)
    today = time.localtime(now)
    if when.tm_year != today.tm_year:
        return f"{when.tm_mday} {time.strftime('%b %Y', when)}"
    if when.tm_yday == today.tm_yday:
        return time.strftime("%H:%M", when)
    return f"{when.tm_mday} {time.strftime('%b', when)}"


def unchanged_text(since: float, now: float | None = None) -> str:
    """ "unchanged since 3 Dec" (see :func:`since_text`)."""
    return f"unchanged since {since_text(since, now)}"


def iso_time(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
