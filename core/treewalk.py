"""Reading inside a cache entry by directory file descriptors: never led out of the store.

A cache can be written by someone who wants root's verification (or measuring, or removal) to read
somewhere else. Opening ``entry/sub/file`` by its full path with ``O_NOFOLLOW`` protects only the
last component: ``sub`` swapped for a symlink to ``/root/.ssh`` or ``/dev`` between listing and
opening is followed. So everything inside an entry is reached from its parent's descriptor:

* a directory with ``openat(parent, name, O_DIRECTORY|O_NOFOLLOW)``, then ``fstat`` to check that
  it is the directory that was listed (same device and inode): :func:`open_dir`;
* a file with ``openat(parent, name, O_NOFOLLOW|O_NONBLOCK)``, ``fstat`` to check it is the regular
  file listed, and never more read than the size seen plus one byte (``core.manifest``);
* a subtree handed to another process by its path inside the entry, opened component by component
  the same way, and checked to be the directory that was listed: :func:`open_beneath`.

This module also holds the measuring walk (sizes, disk use, files, last use), used in-process and by
the worker pool (:mod:`core.pool`); it needs nothing but ``os``, so a worker starts in milliseconds.
"""

from __future__ import annotations

import errno
import os
from collections import namedtuple

# Not typing's TYPE_CHECKING, and no typing.NamedTuple: a measuring worker imports this module, and
# typing would be most of its start-up (7.5 ms of CPU; see core.lifetime).
TYPE_CHECKING = False
if TYPE_CHECKING:  # for annotations only
    from collections.abc import Callable, Iterator
    from typing import Any

    Give = Callable[[list[tuple[bytes, int, int]]], None]

DIR_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
# Never follow a symlink out of the cache, never block on a FIFO swapped in, and never touch access
# times where the kernel lets us: they are the only "last used" record a cache has.
FILE_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
)
NOATIME = getattr(os, "O_NOATIME", 0)

_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000


# --- the walker (kept identical in core/root_helper.py, which imports nothing from the project) ---
#
# One depth-first walk by directory descriptors for every job that goes through a whole tree: it
# never follows a symlink, never enters a mount point of any kind (another filesystem, or a bind
# mount of this one: the mount ID of every directory opened is compared with the top's), keeps at
# most ``keep_open`` + 3 descriptors open whatever the depth (deeper parents are closed and come
# back through '..', checked to be the directory that was left), and yields to its caller, which
# acts (counts, checks, removes). Tests check that both copies are the same text.

_WALK_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_STATX_SYSCALL = {"x86_64": 332, "aarch64": 291, "riscv64": 291, "armv7l": 397, "i686": 383}
_STATX_MNT_ID = 0x1000
_STATX_ATTR_MOUNT_ROOT = 0x2000
_statx_found: list = []  # [the statx function, or None when this kernel or machine has none]


class Replaced(OSError):
    """What was opened is not what was listed: something swapped it meanwhile."""

    def __init__(self) -> None:
        super().__init__(errno.ESTALE, "it was replaced while being read")


class MountPoint(OSError):
    """Something is mounted here: it is never entered, read through, removed or moved."""

    def __init__(self, rel: bytes = b"") -> None:
        super().__init__(errno.EBUSY, "a mount point")
        self.rel = rel


def _load_statx() -> Callable[[int, bytes], tuple[int, int]] | None:
    """statx(2) through ctypes (Python 3.11 has no os.statx): a function (dir_fd, name) ->
    (mount ID, attributes), or None where the machine or kernel (before 5.8) cannot say."""
    try:
        import ctypes
        import platform
        import struct

        number = _STATX_SYSCALL.get(platform.machine())
        if number is None:
            return None
        syscall = ctypes.CDLL(None, use_errno=True).syscall
        head = struct.Struct("=IIQ").unpack_from  # stx_mask, stx_blksize, stx_attributes
        mnt = struct.Struct("=Q").unpack_from  # stx_mnt_id, at 0x90
    except (ImportError, OSError, AttributeError):
        return None

    def statx(dir_fd: int, name: bytes) -> tuple[int, int]:
        buf = ctypes.create_string_buffer(256)
        flags = 0x100 if name else 0x1100  # AT_SYMLINK_NOFOLLOW (| AT_EMPTY_PATH: dir_fd itself)
        if syscall(number, dir_fd, name, flags, _STATX_MNT_ID, buf) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        mask, _size, attributes = head(buf)
        if not mask & _STATX_MNT_ID:
            raise OSError(errno.ENOSYS, "statx gives no mount ID")
        return mnt(buf, 0x90)[0], attributes

    try:
        statx(-100, b"/")  # AT_FDCWD: does this kernel give mount IDs?
    except OSError:
        return None
    return statx


def _statx() -> Callable[[int, bytes], tuple[int, int]] | None:
    if not _statx_found:
        _statx_found.append(_load_statx())
    return _statx_found[0]


def mount_id(fd: int) -> int | None:
    """The mount ID of the file open as ``fd`` (statx, else /proc/self/fdinfo); None if unknown."""
    statx = _statx()
    if statx is not None:
        return statx(fd, b"")[0]
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line[7:])
    except (OSError, ValueError):
        pass
    return None


def is_mount_root(dir_fd: int, name: bytes) -> bool | None:
    """Whether ``name`` in ``dir_fd`` is the root of a mount (something is mounted on it); None
    where the kernel cannot say."""
    statx = _statx()
    if statx is None:
        return None
    return bool(statx(dir_fd, name)[1] & _STATX_ATTR_MOUNT_ROOT)


def _list_dir(fd: int, dev: int) -> tuple[list[tuple[bytes, os.stat_result]], list[bytes]]:
    """(name, lstat) of everything in the directory, and apart the names of mount points: another
    device, or a name whose listed inode is not the one found (what is mounted on it), confirmed
    by statx where it can say."""
    entries = []
    mounts = []
    fsencode = os.fsencode
    with os.scandir(fd) as it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            name = fsencode(e.name)
            if st.st_dev != dev or st.st_ino != e.inode():
                try:
                    mounted = is_mount_root(fd, name) is not False
                except FileNotFoundError:
                    continue
                except OSError:
                    mounted = True  # cannot tell: never entered
                if mounted:
                    mounts.append(name)
                    continue
            entries.append((name, st))
    return entries, mounts


def _open_listed(
    parent_fd: int, name: bytes, listed: os.stat_result, dev: int, mnt: int | None
) -> int:
    """Open the subdirectory ``name`` listed as ``listed``: no symlink, no mount point (raises
    :class:`MountPoint`), the very directory listed (else :class:`Replaced`)."""
    fd = os.open(name, _WALK_DIR_FLAGS, dir_fd=parent_fd)
    try:
        st = os.fstat(fd)
        if st.st_dev != dev or (mnt is not None and mount_id(fd) != mnt):
            raise MountPoint(name)
        if st.st_ino != listed.st_ino or st.st_dev != listed.st_dev:
            raise Replaced
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_parent(fd: int, dev: int, ino: int) -> int:
    """Open '..' of the directory ``fd``, checked to be the directory (dev, ino) left earlier."""
    parent = os.open(b"..", _WALK_DIR_FLAGS, dir_fd=fd)
    st = os.fstat(parent)
    if st.st_ino != ino or st.st_dev != dev:
        os.close(parent)
        raise Replaced
    return parent


def walk_tree(
    top_fd: int,
    *,
    post: bool = False,
    keep_open: int = 32,
    before_open: Callable[[int, bytes, os.stat_result], None] | None = None,
) -> Iterator[tuple[str, bytes, int, Any]]:
    """Walk the directory open as ``top_fd`` (the caller keeps and closes it), depth first.

    Yields ``(event, rel, fd, what)``; ``rel`` is the path inside the tree (``b""``, ``b"/a/b"``)
    and ``fd`` a descriptor valid until the next step:

    * ``("dir", rel, fd, entries)`` once a directory is listed: ``entries`` is its (name, lstat)
      list, mount points left out; the caller may act in it through ``fd`` and may remove items
      from ``entries``: the directories still in it are visited next;
    * ``("skip", rel, parent_fd, (name, error))`` for a directory not entered: :class:`MountPoint`
      (mount points are reported so, never entered), :class:`Replaced`, or the OSError of opening
      or listing it (ELOOP or ENOTDIR: swapped for a symlink or a file);
    * with ``post``, ``("left", rel, parent_fd, name)`` once a subdirectory and all below it were
      visited (a removal's rmdir).

    ``before_open(parent_fd, name, lstat)`` is called before each subdirectory is opened.
    Raises :class:`Replaced` when a directory left earlier cannot be found again ('..' moved).
    """
    top = os.fstat(top_fd)
    dev = top.st_dev
    mnt = mount_id(top_fd)
    frames: list[list] = []  # [rel, fd or None (closed: too deep), dev, ino, subdirs, next]
    pending: tuple[int, bytes, os.stat_result] | None = (top_fd, b"", top)
    try:
        while True:
            if pending is not None:
                fd, rel, st = pending
                pending = None
                try:
                    entries, mounts = _list_dir(fd, dev)
                except OSError as exc:
                    entries, mounts = [], []
                    yield "skip", rel, fd, (b"", exc)
                for name in mounts:
                    yield "skip", rel + b"/" + name, fd, (name, MountPoint(rel + b"/" + name))
                yield "dir", rel, fd, entries
                subdirs = [(n, s) for n, s in entries if s.st_mode & 0o170000 == 0o040000]
                frames.append([rel, fd, st.st_dev, st.st_ino, subdirs, 0])
                if len(frames) > keep_open:  # bounded: the shallow parents come back through '..'
                    far = frames[-keep_open - 1]
                    if far[1] is not None and far[1] != top_fd:
                        os.close(far[1])
                        far[1] = None
            while frames:
                frame = frames[-1]
                rel, fd, _dev, _ino, subdirs, pos = frame
                if pos < len(subdirs):
                    frame[5] = pos + 1
                    name, listed = subdirs[pos]
                    sub = rel + b"/" + name
                    if before_open is not None:
                        before_open(fd, name, listed)
                    try:
                        child = _open_listed(fd, name, listed, dev, mnt)
                    except MountPoint:
                        yield "skip", sub, fd, (name, MountPoint(sub))
                        continue
                    except OSError as exc:
                        yield "skip", sub, fd, (name, exc)
                        continue
                    pending = (child, sub, listed)
                    break
                frames.pop()
                if frames:
                    parent = frames[-1]
                    if parent[1] is None:
                        parent[1] = open_parent(fd, parent[2], parent[3])
                    if fd != top_fd:
                        os.close(fd)
                    if post:
                        yield "left", rel, parent[1], rel.rsplit(b"/", 1)[1]
                elif fd != top_fd:
                    os.close(fd)
            else:
                if pending is None:
                    break
    finally:
        if pending is not None and pending[0] != top_fd:
            os.close(pending[0])
        for frame in frames:
            if frame[1] is not None and frame[1] != top_fd:
                os.close(frame[1])


# --- the walker (end) -----------------------------------------------------------------------------


def mounts_under(path: str) -> list[str]:
    """The mount points at or below ``path`` (an absolute path without symlinks) that this process
    sees, from ``/proc/self/mountinfo``; [] when it cannot be read."""
    import re

    try:
        with open("/proc/self/mountinfo", "rb") as f:
            data = f.read()
    except OSError:
        return []
    base = path.rstrip("/") + "/"
    found = []
    for line in data.splitlines():
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        # Spaces, tabs, newlines and backslashes in a mount point are written as \ooo.
        raw = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
        point = os.fsdecode(raw)
        if point == path or point.startswith(base):
            found.append(point)
    return found


def file_flags_for(owner_uid: int) -> int:
    """FILE_FLAGS, plus O_NOATIME when the kernel allows it for files of ``owner_uid`` (we are root
    or the owner): deciding once per entry saves a refused open and a retry on every file."""
    euid = os.geteuid()
    if NOATIME and (euid == 0 or euid == owner_uid):
        return FILE_FLAGS | NOATIME
    return FILE_FLAGS


def same_file(st: os.stat_result, listed: os.stat_result) -> bool:
    return st.st_ino == listed.st_ino and st.st_dev == listed.st_dev


def open_dir(parent_fd: int, name: bytes, listed: os.stat_result | None = None) -> int:
    """Open the directory ``name`` of ``parent_fd``, never through a symlink, and check that it is
    the directory that was ``listed``. Raises OSError: ELOOP (now a symlink), ENOTDIR (now
    something else), ENOENT (gone) or :class:`Replaced`."""
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    if listed is not None:
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if not same_file(st, listed):
            os.close(fd)
            raise Replaced
    return fd


def open_beneath(root: bytes, rel: bytes, dev: int, ino: int) -> int:
    """Open the directory ``rel`` (``/a/b``) inside the entry ``root``, one component at a time
    with O_NOFOLLOW, and check that it is the directory (``dev``, ``ino``) seen when it was
    listed. ``root`` itself is opened by its path (its last component never through a symlink)."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for name in rel.split(b"/"):
            if not name:
                continue
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if st.st_ino != ino or st.st_dev != dev:
        os.close(fd)
        raise Replaced
    return fd


def swapped(exc: OSError) -> bool:
    """The error of opening a directory that turned into something else (a symlink, a file)."""
    return isinstance(exc, Replaced) or exc.errno in (errno.ELOOP, errno.ENOTDIR)


# --- measuring ------------------------------------------------------------------------------------


class Measurement(namedtuple("Measurement", "size blocks files newest problems links top")):
    """What :func:`measure_walk` found in one unit (see there); ``top`` only with ``stats``."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return tuple(self)

    @classmethod
    def from_wire(cls, data: tuple) -> Measurement:
        return tuple.__new__(cls, data)  # as _make, less its check of the length: one per entry


class Measured(namedtuple("Measured", "number rel measurement")):
    """A measuring worker's answer to a unit (:class:`core.pool_worker.Unit`): the entry's
    ``number`` and the ``rel`` of the unit, and its :class:`Measurement`."""

    __slots__ = ()

    def to_wire(self) -> tuple:
        return (self.number, self.rel, tuple(self.measurement))

    @classmethod
    def from_wire(cls, data: tuple) -> Measured:
        number, rel, measurement = data
        return cls(number, rel, Measurement.from_wire(measurement))


def _count(problems: dict, key: tuple[str, str]) -> None:
    problems[key] = problems.get(key, 0) + 1


def stat_fields(st: os.stat_result) -> tuple:
    """What classifying a top-level entry needs of its ``lstat`` (or its ``.manifest``'s), as a
    plain tuple a worker can send: (mode, uid, gid, dev, ino, ctime_ns, mtime_ns, mtime)."""
    return (
        st.st_mode,
        st.st_uid,
        st.st_gid,
        st.st_dev,
        st.st_ino,
        st.st_ctime_ns,
        st.st_mtime_ns,
        st.st_mtime,
    )


def _top(root: bytes) -> tuple[Measurement | None, os.stat_result | None]:
    """The measurement of a top-level entry that is not a directory, or its lstat."""
    try:
        st = os.lstat(root)
    except OSError as exc:
        why = (
            "it disappeared before it could be measured"
            if exc.errno == errno.ENOENT
            else "it cannot be examined: " + (exc.strerror or str(exc))
        )
        return Measurement(0, 0, 0, None, {("top", why): 1}, {}, None), None
    kind = st.st_mode & _S_IFMT
    if kind != _S_IFDIR:
        # A top-level symlink or file: the thing itself, never its target. Last use comes from
        # regular files only: reading a symlink moves its atime, and there is no O_NOATIME for
        # readlink.
        counted = kind in (_S_IFREG, _S_IFLNK)
        atime = st.st_atime if kind == _S_IFREG else None
        return Measurement(st.st_size, st.st_blocks, int(counted), atime, {}, {}, None), st
    return None, st


def measure_walk(
    root: bytes,
    rel: bytes = b"",
    dev: int = 0,
    ino: int = 0,
    tick: Callable[[], int] | None = None,
    give: Give | None = None,
    skip: frozenset[bytes] | set[bytes] = frozenset(),
    stats: bool = False,
) -> Measurement | None:
    """Measure one unit: the whole entry ``root`` (``rel`` empty) or the contents of its directory
    ``rel`` (``/a/b``, checked to be the directory ``dev``/``ino`` that was listed).

    Returns a :class:`Measurement` ``(size, blocks, files, newest, problems, links, top)``, or
    None when ``tick()`` said stop.
    Files with several hard links go in ``links`` {(dev, ino): (size, blocks, counted)} instead of
    the sums, so the caller counts each once; ``problems`` maps (what, why) to a count.

    ``tick()`` is called before each directory is read: 0 goes on; 1 means others are idle, so
    half of the directories waiting (the shallowest: the biggest subtrees) go to ``give`` as
    (rel, dev, ino) -- their own sizes are counted here already; 2 means stop. Directories whose
    ``rel`` is in ``skip`` are counted but not entered (they were handed over before).

    ``stats`` (a whole entry only): ``top`` is ``(top, manifest)`` (else None), the
    :func:`stat_fields` of the entry itself and of its ``.manifest`` (None if it has none), seen on
    the way, so listing needs no ``lstat`` of its own; None when the entry could not be examined.
    """
    size = blocks = files = 0
    newest = float("-inf")
    problems: dict[tuple[str, str], int] = {}
    links: dict[tuple[int, int], tuple[int, int, bool]] = {}
    root_st: os.stat_result | None = None
    try:
        if rel:
            fd = open_beneath(root, rel, dev, ino)
        else:
            opened = _open_whole(root, stats)
            if isinstance(opened, Measurement):
                return opened  # a top-level file or symlink
            fd, root_st = opened
            size, blocks = root_st.st_size, root_st.st_blocks
            dev, ino = root_st.st_dev, root_st.st_ino
    except OSError as exc:
        return Measurement(0, 0, 0, None, {_open_problem(exc): 1}, links, None)
    # Depth first, holding the descriptors of the directories on the way down, at most KEEP_OPEN
    # (deeper, the shallow ones are closed and come back through '..', checked: bounded at any
    # depth). A frame: [fd or None, rel, subdirectories (name, lstat) waiting, next position,
    # (dev, ino) of the directory].
    stack: list[list] = []
    pending: tuple[int, bytes, tuple[int, int]] | None = (fd, rel, (dev, ino))
    manifest: os.stat_result | None = None
    watch = stats and not rel  # look out for the entry's .manifest (in its first directory only)
    try:
        while pending is not None:
            if tick is not None:
                signal = tick()
                if signal == 2:
                    os.close(pending[0])
                    return None
                if signal and give is not None:
                    _hand_over(stack, give)
            dfd, drel, ident = pending
            subdirs: list[tuple[bytes, os.stat_result]] = []
            stack.append([dfd, drel, subdirs, 0, ident])
            if len(stack) > KEEP_OPEN:
                close_far(stack)
            d_size, d_blocks, d_files, d_newest, found = _count_listing(
                dfd, drel, dev, watch, subdirs, problems, links
            )
            size += d_size
            blocks += d_blocks
            files += d_files
            if d_newest > newest:
                newest = d_newest
            if watch:
                manifest = found
                watch = False
            if not subdirs and len(stack) == 1:  # a flat entry (or unit): nothing more to visit
                stack.pop()
                os.close(dfd)
                break
            pending = _next_dir(stack, skip, problems)
    finally:
        for frame in stack:
            if frame[0] is not None:
                os.close(frame[0])
    seen = None
    if stats and root_st is not None:
        seen = (stat_fields(root_st), None if manifest is None else stat_fields(manifest))
    newest_or_none = newest if newest != float("-inf") else None
    return Measurement(size, blocks, files, newest_or_none, problems, links, seen)


def _open_whole(root: bytes, stats: bool) -> tuple[int, os.stat_result] | Measurement:
    """Open the entry ``root`` and fstat it; or, when it is a file or a symlink, its measurement
    (with ``stats``, its :func:`stat_fields` as ``top``)."""
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
            raise
        top, top_st = _top(root)  # a top-level file or symlink, or gone
        if top is None:
            raise  # a directory again: swapped meanwhile
        if stats and top_st is not None:
            top = top._replace(top=(stat_fields(top_st), None))
        return top
    try:
        return fd, os.fstat(fd)
    except OSError:
        os.close(fd)
        raise


def _open_problem(exc: OSError) -> tuple[str, str]:
    """The problem key of a directory that could not be opened."""
    if exc.errno == errno.ENOENT:
        return ("gone", "")
    if swapped(exc):
        return ("swapped", "")
    return ("dir", exc.strerror or str(exc))


def _count_listing(
    dfd: int,
    drel: bytes,
    dev: int,
    watch: bool,
    subdirs: list[tuple[bytes, os.stat_result]],
    problems: dict,
    links: dict,
) -> tuple[int, int, int, float, os.stat_result | None]:
    """List the directory open as ``dfd`` (``drel`` in the unit, on the device ``dev``) and count
    what is in it: (size, blocks, files, newest atime, and with ``watch`` the lstat of its
    ``.manifest`` or None). Its subdirectories are counted and go into ``subdirs``, to be visited;
    files with several links go into ``links``, what cannot be examined into ``problems``. A
    listing that fails part way counts what it saw."""
    size = blocks = files = 0
    newest = float("-inf")
    manifest = None
    fsencode = os.fsencode
    try:
        with os.scandir(dfd) as it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError as exc:
                    _count(
                        problems,
                        ("gone", "")
                        if exc.errno == errno.ENOENT
                        else ("entry", exc.strerror or str(exc)),
                    )
                    continue
                if st.st_ino != e.inode() and _mounted(dfd, e.name, st, dev):
                    _count(problems, ("mount", ""))
                    continue
                if watch and e.name == ".manifest":
                    manifest = st
                kind = st.st_mode & _S_IFMT
                if kind == _S_IFREG:  # nearly everything: the shortest way
                    atime = st.st_atime  # last use comes from regular files only
                    if atime > newest and (drel or e.name != ".manifest"):
                        # (0install never reads the .manifest to run a program; this
                        # app, its optimise and 0install's verify may, as anyone)
                        newest = atime
                    if st.st_nlink == 1:
                        size += st.st_size
                        blocks += st.st_blocks
                        files += 1
                    else:
                        links[st.st_dev, st.st_ino] = (st.st_size, st.st_blocks, True)
                elif kind == _S_IFDIR:  # from lstat: a symlink never is one
                    size += st.st_size
                    blocks += st.st_blocks
                    subdirs.append((fsencode(e.name), st))
                elif st.st_nlink > 1:
                    counted = kind == _S_IFLNK
                    links[st.st_dev, st.st_ino] = (st.st_size, st.st_blocks, counted)
                else:
                    size += st.st_size
                    blocks += st.st_blocks
                    if kind == _S_IFLNK:
                        files += 1
    except OSError as exc:  # listing failed (part way)
        _count(problems, ("dir", exc.strerror or str(exc)))
    return size, blocks, files, newest, manifest


def _next_dir(
    stack: list[list], skip: frozenset[bytes] | set[bytes], problems: dict
) -> tuple[int, bytes, tuple[int, int]] | None:
    """The next directory to read, opened: the next waiting subdirectory of the deepest frame that
    has one. Frames finished on the way are popped and closed (a parent closed on the way down
    comes back through '..'). None when the walk is over."""
    while stack:
        frame = stack[-1]
        fd, frel, subdirs, pos, _ident = frame
        if pos < len(subdirs):
            frame[3] = pos + 1
            name, st = subdirs[pos]
            sub = frel + b"/" + name
            if sub in skip or name is _GIVEN:
                continue
            try:
                return (open_dir(fd, name, st), sub, (st.st_dev, st.st_ino))
            except OSError as exc:
                _count(problems, _open_problem(exc))
                continue
        stack.pop()
        try:
            if stack and stack[-1][0] is None:
                stack[-1][0] = open_parent(fd, *stack[-1][4])
        except OSError:  # moved away meanwhile: what is left is not measured
            _count(problems, ("swapped", ""))
            while stack:
                left = stack.pop()[0]
                if left is not None:
                    os.close(left)
        finally:
            os.close(fd)
    return None


KEEP_OPEN = 32
"""Directories a walk keeps open on its way down; deeper, the shallowest are closed."""


def close_far(stack: list[list]) -> None:
    """Close the descriptor of the directory KEEP_OPEN levels up (it comes back through '..')."""
    far = stack[-KEEP_OPEN - 1]
    if far[0] is not None:
        os.close(far[0])
        far[0] = None


def _mounted(dfd: int, name: str, st: os.stat_result, dev: int) -> bool:
    """Whether ``name``, whose listed inode differs from its lstat's, is a mount point (never
    measured or entered), rather than an entry of a filesystem whose listings give other inode
    numbers (an overlay)."""
    if st.st_dev != dev:
        return True
    try:
        return is_mount_root(dfd, os.fsencode(name)) is not False
    except OSError:
        return True


_GIVEN = b"\0"  # a name no directory can have: marks a waiting directory handed over


def _hand_over(stack: list[list], give: Give) -> None:
    """Give half of the waiting directories, shallowest first, to another worker."""
    waiting = [
        (frame, i)
        for frame in stack
        for i in range(frame[3], len(frame[2]))
        if frame[2][i][0] is not _GIVEN
    ]
    if not waiting:
        return
    chosen = waiting[: max(1, len(waiting) // 2)]
    given = []
    for frame, i in chosen:
        name, st = frame[2][i]
        given.append((frame[1] + b"/" + name, st.st_dev, st.st_ino))
        frame[2][i] = (_GIVEN, st)
    give(given)
