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

TYPE_CHECKING = False  # (not typing's: a measuring worker imports nothing it does not need)
if TYPE_CHECKING:  # for annotations only
    from collections.abc import Callable

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


class Replaced(OSError):
    """What was opened is not what was listed: something swapped it meanwhile."""

    def __init__(self) -> None:
        super().__init__(errno.ESTALE, "it was replaced while being read")


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

Result = list  # [size, blocks, files, newest, problems, links(, top)]; see measure_walk


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


def _top(root: bytes) -> tuple[Result | None, os.stat_result | None]:
    """The measurement of a top-level entry that is not a directory, or its lstat."""
    try:
        st = os.lstat(root)
    except OSError as exc:
        why = (
            "it disappeared before it could be measured"
            if exc.errno == errno.ENOENT
            else "it cannot be examined: " + (exc.strerror or str(exc))
        )
        return [0, 0, 0, None, {("top", why): 1}, {}], None
    kind = st.st_mode & _S_IFMT
    if kind != _S_IFDIR:
        # A top-level symlink or file: the thing itself, never its target. Last use comes from
        # regular files only: reading a symlink moves its atime, and there is no O_NOATIME for
        # readlink.
        counted = kind in (_S_IFREG, _S_IFLNK)
        atime = st.st_atime if kind == _S_IFREG else None
        return [st.st_size, st.st_blocks, int(counted), atime, {}, {}], st
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
) -> Result | None:
    """Measure one unit: the whole entry ``root`` (``rel`` empty) or the contents of its directory
    ``rel`` (``/a/b``, checked to be the directory ``dev``/``ino`` that was listed).

    Returns ``[size, blocks, files, newest, problems, links]``, or None when ``tick()`` said stop.
    Files with several hard links go in ``links`` {(dev, ino): (size, blocks, counted)} instead of
    the sums, so the caller counts each once; ``problems`` maps (what, why) to a count.

    ``tick()`` is called before each directory is read: 0 goes on; 1 means others are idle, so
    half of the directories waiting (the shallowest: the biggest subtrees) go to ``give`` as
    (rel, dev, ino) -- their own sizes are counted here already; 2 means stop. Directories whose
    ``rel`` is in ``skip`` are counted but not entered (they were handed over before).

    ``stats`` (a whole entry only): the result has a seventh item, ``(top, manifest)``, the
    :func:`stat_fields` of the entry itself and of its ``.manifest`` (None if it has none), seen on
    the way, so listing needs no ``lstat`` of its own; None when the entry could not be examined.
    """
    size = blocks = files = 0
    newest = float("-inf")
    problems: dict[tuple[str, str], int] = {}
    links: dict[tuple[int, int], tuple[int, int, bool]] = {}
    root_st: os.stat_result | None = None
    try:
        if not rel:
            try:
                fd = os.open(root, DIR_FLAGS)
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                    raise
                top, top_st = _top(root)  # a top-level file or symlink, or gone
                if top is not None:
                    if stats:
                        top.append(None if top_st is None else (stat_fields(top_st), None))
                    return top
                raise  # a directory again: swapped meanwhile
            try:
                st = os.fstat(fd)
            except OSError:
                os.close(fd)
                raise
            size, blocks = st.st_size, st.st_blocks
            if stats:
                root_st = st
        else:
            fd = open_beneath(root, rel, dev, ino)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            key = ("gone", "")
        elif swapped(exc):
            key = ("swapped", "")
        else:
            key = ("dir", exc.strerror or str(exc))
        failed: Result = [size, blocks, files, None, {key: 1}, links]
        if stats:
            failed.append(None)
        return failed
    # Depth first, holding the descriptors of the directories on the way down (one per level).
    # A frame: [fd, rel, subdirectories (name, lstat) waiting, next position].
    stack: list[list] = []
    scandir = os.scandir
    fsencode = os.fsencode
    pending: tuple[int, bytes] | None = (fd, rel)
    manifest: os.stat_result | None = None
    watch = stats and not rel  # look out for the entry's .manifest (in its first directory only)
    try:
        while True:
            if pending is not None:
                if tick is not None:
                    signal = tick()
                    if signal == 2:
                        os.close(pending[0])
                        return None
                    if signal and give is not None:
                        _hand_over(stack, give)
                dfd, drel = pending
                pending = None
                subdirs: list[tuple[bytes, os.stat_result]] = []
                stack.append([dfd, drel, subdirs, 0])
                try:
                    with scandir(dfd) as it:
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
                            if watch and e.name == ".manifest":
                                manifest = st
                            kind = st.st_mode & _S_IFMT
                            if kind == _S_IFREG:  # nearly everything: the shortest way
                                atime = st.st_atime  # last use comes from regular files only
                                if atime > newest:
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
                watch = False
                if not subdirs and len(stack) == 1:  # a flat entry (or unit): nothing more to visit
                    stack.pop()
                    os.close(dfd)
                    break
            # The next directory: the next waiting one of the deepest frame that has one.
            while stack:
                frame = stack[-1]
                fd_, frel, subdirs, pos = frame
                if pos < len(subdirs):
                    frame[3] = pos + 1
                    name, st = subdirs[pos]
                    sub = frel + b"/" + name
                    if sub in skip or name is _GIVEN:
                        continue
                    try:
                        pending = (open_dir(fd_, name, st), sub)
                    except OSError as exc:
                        if exc.errno == errno.ENOENT:
                            _count(problems, ("gone", ""))
                        elif swapped(exc):
                            _count(problems, ("swapped", ""))
                        else:
                            _count(problems, ("dir", exc.strerror or str(exc)))
                        continue
                    break
                stack.pop()
                os.close(fd_)
            else:
                if pending is None:
                    break
    finally:
        for frame in stack:
            os.close(frame[0])
    result: Result = [
        size,
        blocks,
        files,
        newest if newest != float("-inf") else None,
        problems,
        links,
    ]
    if stats:
        result.append(
            None
            if root_st is None
            else (stat_fields(root_st), None if manifest is None else stat_fields(manifest))
        )
    return result


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
