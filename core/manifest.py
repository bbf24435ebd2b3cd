"""The 0install manifest: generation, byte-identical to 0install 2.18, and reading one back.

A manifest lists every directory, file and symlink of an implementation; its hash is the digest that
names the implementation directory. :class:`ManifestWalk` makes it in one pass over the tree, by
directory file descriptors (see :mod:`core.treewalk`: a directory swapped for a symlink mid-walk is
never followed, a file is read at most to the size listed plus one byte), and can hand subtrees to
other workers, whose text is spliced back where it belongs (:func:`splice`).
:func:`generate_manifest` is the simple front door. Paths are bytes throughout, so names that are
not UTF-8 are written exactly as they are, as 0install does. An entry's stored ``.manifest`` is
read by :func:`read_stored_manifest` and parsed by :func:`index_manifest`; judging an entry by
them is :mod:`core.verify_entry`'s.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from core.digests import Digest, encode_value, hash_function
from core.display import PathLike, display_path
from core.records import key_of
from core.treewalk import (
    DIR_FLAGS,
    FILE_FLAGS,
    KEEP_OPEN,
    NOATIME,
    MountPoint,
    Replaced,
    close_far,
    file_flags_for,
    is_mount_root,
    mount_id,
    open_beneath,
    open_parent,
    same_file,
    swapped,
)

CHUNK = 1 << 20
"""Files this big or bigger are read in chunks of this size, checking for cancellation between."""

_HASHERS: dict[str, Callable[..., Any]] = {}


def _hasher(name: str) -> Callable[..., Any]:
    """hashlib's constructor for ``name`` ("sha1" or "sha256"). hashlib (and OpenSSL behind it)
    is loaded on first use: listing a cache never hashes, and loading it cost 3 ms of start-up."""
    new = _HASHERS.get(name)
    if new is None:
        import hashlib

        new = _HASHERS[name] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}[name]
    return new


class ManifestError(Exception):
    """The tree cannot be turned into a manifest.

    ``kind`` is ``"invalid"`` when the tree can never be a valid implementation (a FIFO, a device, a
    newline in a name) and ``"io"`` when reading it failed (permissions, entries vanishing).
    """

    def __init__(self, message: str, path: PathLike, kind: Literal["invalid", "io"]):
        super().__init__(message)
        self.path = os.fsencode(path)
        self.kind = kind


def _io_error(exc: OSError, path: bytes) -> ManifestError:
    shown = display_path(path)
    if exc.errno == errno.ENOENT:
        return ManifestError(f"'{shown}' disappeared while it was being read", path, "io")
    if exc.errno == errno.ELOOP:
        # O_NOFOLLOW refused: something swapped it for a symlink under us.
        return ManifestError(f"'{shown}' turned into a symlink while it was being read", path, "io")
    if isinstance(exc, MountPoint):
        return ManifestError(
            f"'{shown}' is a mount point: verification never reads through one; unmount it "
            f"(umount '{shown}'), then verify again",
            path,
            "io",
        )
    if isinstance(exc, Replaced):
        return ManifestError(f"'{shown}' was replaced while it was being read", path, "io")
    if exc.errno == errno.ENOTDIR:
        return ManifestError(
            f"'{shown}' stopped being a directory while it was being read", path, "io"
        )
    reason = exc.strerror or str(exc)
    return ManifestError(f"Cannot read '{shown}': {reason}", path, "io")


def mtime_seconds(st: os.stat_result) -> int:
    """The integer part of st_mtime, truncated toward zero, from the exact nanosecond value.

    0install (OCaml) truncates the float mtime, and OCaml's float never rounds up into the next
    second; Python's float ``st_mtime`` can, so work from ``st_mtime_ns``.
    """
    ns = st.st_mtime_ns
    seconds, rest = divmod(ns, 1_000_000_000)
    if seconds < 0 and rest:
        seconds += 1
    return seconds


def _newline(name: bytes, path: bytes, what: str) -> ManifestError:
    return ManifestError(
        f"Newline in {what} name '{display_path(path)}': a manifest cannot describe it "
        "(0install forbids it; rename or remove it)",
        path,
        "invalid",
    )


class WalkCancelled(Exception):
    """A walk stopped because its ``tick`` callback said so."""


Subtree = tuple[bytes, int, int, int]
"""A directory handed to another worker: (path inside the entry, st_dev, st_ino, mtime seconds)."""

Segments = list  # of bytes and Subtree placeholders, in manifest order

_Open = tuple[int, bytes, tuple[int, int]]  # a directory to read next: (fd, rel, (dev, ino))

_S_IFMT = 0o170000
_S_IFREG = 0o100000
_REG, _DIR, _LNK, _OTHER = range(4)  # kinds of directory entries, from the listing


class ManifestWalk:
    """One pass over a tree (or a subtree of it) making its manifest, by directory descriptors.

    ``tick()`` is called before each directory is read and between the chunks of a big file:
    0 goes on, 2 stops (:class:`WalkCancelled`), 1 asks to hand half of the directories still
    waiting to ``give`` (as :data:`Subtree` tuples; their text is left out, and a placeholder
    stands where it belongs: :func:`splice` puts it back). After the walk, ``listed`` and
    ``hashed`` count bytes of regular files, and ``touched_atime`` tells whether a file was read
    without O_NOATIME (the kernel refuses it to anyone but the owner and root).
    """

    def __init__(
        self,
        root: bytes,
        algorithm: str,
        flags: int = FILE_FLAGS,
        tick: Callable[[], int] | None = None,
        give: Callable[[list[Subtree]], None] | None = None,
    ):
        self.root = root
        self.algorithm = algorithm
        self.old = algorithm == "sha1"
        self.hash_name = hash_function(algorithm)
        self.new = _hasher(self.hash_name)
        self.flags = flags
        self.tick = tick
        self.give = give
        self.listed = 0
        self.hashed = 0
        self.touched_atime = False
        self.given: dict[bytes, Subtree] = {}  # handed over, by path inside the entry
        self._stack: list[list] = []
        # Change keys (core.records): when a list, the walk appends the key of every file,
        # symlink and subdirectory, each taken before its contents are read.
        self.keys: list | None = None

    # -- the walk ----------------------------------------------------------------------------------

    def run(self, fd: int, rel: bytes = b"", mtime: int = 0) -> Segments:
        """The manifest of the directory open as ``fd`` (the caller closes it): the whole entry when
        ``rel`` is empty, else the subtree ``rel`` with its own ``D`` line first (``mtime`` for
        sha1's)."""
        lines: list[bytes] = []
        segments: Segments = []
        if rel:
            if b"\n" in rel:
                raise _newline(rel, self.root + rel, "directory")
            lines.append(b"D %d %s\n" % (mtime, rel) if self.old else b"D %s\n" % rel)
        # Depth first. Frames: [fd or None, rel, items, next position, (dev, ino)]; at most
        # KEEP_OPEN descriptors are held on the way down (the shallow ones come back through '..').
        stack = self._stack = []
        top = os.fstat(fd)
        pending: _Open | None = (fd, rel, (top.st_dev, top.st_ino))
        try:
            while pending is not None:
                self._enter(fd, *pending)
                pending = None
                while stack:
                    pending = self._write_lines(stack[-1], lines, segments)
                    if pending is not None:
                        break  # into that subdirectory
                    self._leave(fd)
        finally:
            for frame in stack:
                if frame[0] is not None and frame[0] != fd:
                    os.close(frame[0])
            self._stack = []
        segments.append(b"".join(lines))
        return segments

    def _enter(self, top_fd: int, dfd: int, drel: bytes, ident: tuple[int, int]) -> None:
        """Ask ``tick``, then list the directory open as ``dfd`` and push its frame. If that fails,
        ``dfd`` is closed (unless it is ``top_fd``, the caller's)."""
        try:
            if self.tick is not None:
                signal = self.tick()
                if signal == 2:
                    raise WalkCancelled
                if signal == 1 and self.give is not None:
                    self._hand_over()
            items = self._list(dfd, drel)
        except BaseException:
            if dfd != top_fd:
                os.close(dfd)
            raise
        stack = self._stack
        stack.append([dfd, drel, items, 0, ident])
        if len(stack) > KEEP_OPEN and stack[-KEEP_OPEN - 1][0] != top_fd:
            close_far(stack)

    def _write_lines(self, frame: list, lines: list[bytes], segments: Segments) -> _Open | None:
        """Append to ``lines`` the lines of the directory of ``frame``, from where it stopped to
        the next subdirectory to go into (returned open) or to its end (None). A subdirectory
        handed over ends a segment: its placeholder follows it in ``segments``."""
        dfd, drel, items, pos, _ident = frame
        root = self.root
        keys = self.keys
        count = len(items)
        while pos < count:
            name, entry, kind = items[pos]
            pos += 1
            if kind == _REG:  # nearly everything: the shortest way, no call but the hashing
                if not drel and name == b".manifest":
                    if keys is not None:
                        keys.append(key_of(drel, entry.name, _lstat(entry, root + b"/" + name)))
                    continue
                if b"\n" in name:
                    raise _newline(name, root + drel + b"/" + name, "file")
                digest, st = self._hash(dfd, name, entry, drel)
                if keys is not None:
                    keys.append(key_of(drel, entry.name, st))
                ns = st.st_mtime_ns
                lines.append(
                    b"%s %s %d %d %s\n"
                    % (
                        b"X" if st.st_mode & 0o111 else b"F",
                        digest,
                        ns // 1_000_000_000 if ns >= 0 else mtime_seconds(st),
                        st.st_size,
                        name,
                    )
                )
            elif kind == _LNK:
                lines.append(self._symlink_line(dfd, drel, name, entry))
            elif kind == _DIR:
                sub = drel + b"/" + name
                if b"\n" in name:
                    raise _newline(name, root + sub, "directory")
                if sub in self.given:
                    segments.append(b"".join(lines))
                    lines.clear()
                    segments.append(self.given[sub])
                    continue
                try:
                    cfd, st = _open_listed_dir(dfd, name, entry)
                except OSError as exc:
                    raise _io_error(_symlink_now(exc, dfd, name), root + sub) from None
                lines.append(
                    b"D %d %s\n" % (mtime_seconds(st), sub) if self.old else b"D %s\n" % sub
                )
                if keys is not None:
                    keys.append(key_of(drel, entry.name, st))
                frame[3] = pos
                return (cfd, sub, (st.st_dev, st.st_ino))
            else:
                raise _not_allowed(root + drel + b"/" + name, entry)
        frame[3] = pos
        return None

    def _leave(self, top_fd: int) -> None:
        """Pop the directory finished; its parent, if it was closed on the way down, is opened
        again through '..' (checked to be the directory left)."""
        stack = self._stack
        dfd = stack.pop()[0]
        try:
            if stack and stack[-1][0] is None:
                try:
                    stack[-1][0] = open_parent(dfd, *stack[-1][4])
                except OSError as exc:
                    raise _io_error(Replaced(), self.root + stack[-1][1]) from exc
        finally:
            if dfd != top_fd:
                os.close(dfd)

    def _symlink_line(self, dfd: int, drel: bytes, name: bytes, entry: Any) -> bytes:
        """The ``S`` line of the symlink ``name`` of ``dfd`` (read, never followed)."""
        path = self.root + drel + b"/" + name
        if b"\n" in name:
            raise _newline(name, path, "symlink")
        keys = self.keys
        try:
            if keys is not None:
                lst = entry.stat(follow_symlinks=False)
            target = os.readlink(name, dir_fd=dfd)
        except OSError as exc:
            raise _io_error(exc, path) from None
        if keys is not None:
            keys.append(key_of(drel, entry.name, lst, target))
        digest = _hasher(self.hash_name)(target).hexdigest().encode()
        return b"S %s %d %s\n" % (digest, len(target), name)

    def _list(self, dfd: int, drel: bytes) -> list[tuple[bytes, Any, int]]:
        """(name, DirEntry, kind) of each entry of the open directory, in manifest order: bytewise
        sorted; for the new algorithms files and symlinks first, then directories. The kind comes
        from the directory listing (d_type; an lstat only where the filesystem does not say)."""
        fsencode = os.fsencode
        found = []
        try:
            with os.scandir(dfd) as it:
                for e in it:
                    name = fsencode(e.name)
                    try:
                        if e.is_file(follow_symlinks=False):
                            kind = _REG
                        elif e.is_dir(follow_symlinks=False):
                            kind = _DIR
                        elif e.is_symlink():
                            kind = _LNK
                        else:
                            kind = _OTHER
                    except OSError as exc:
                        raise _io_error(exc, self.root + drel + b"/" + name) from None
                    found.append((name, e, kind))
        except OSError as exc:
            raise _io_error(exc, self.root + drel) from None
        found.sort(key=_first)
        if self.old:
            return found
        return [item for item in found if item[2] != _DIR] + [
            item for item in found if item[2] == _DIR
        ]

    def _hash(
        self, dfd: int, name: bytes, listed: Any, drel: bytes
    ) -> tuple[bytes, os.stat_result]:
        """The hex hash and fstat of the regular file ``name`` of ``dfd`` that was ``listed``:
        opened without following a symlink, checked to be that file, read to its size plus at most
        one byte (a file that grew hashes differently, and /dev/zero swapped in is never read)."""
        flags = self.flags
        try:
            fd = os.open(name, flags, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.EPERM and flags & NOATIME:
                # Not ours: the kernel refuses O_NOATIME, and reading will update the access time.
                try:
                    fd = os.open(name, flags & ~NOATIME, dir_fd=dfd)
                except OSError as exc2:
                    raise _io_error(exc2, self.root + drel + b"/" + name) from None
                self.touched_atime = True
            else:
                raise _io_error(exc, self.root + drel + b"/" + name) from None
        else:
            if not flags & NOATIME:
                self.touched_atime = True
        try:
            st = os.fstat(fd)
            if st.st_ino != listed.inode():
                _check_not_mounted(dfd, name, fd, st)
            if (st.st_mode & _S_IFMT) != _S_IFREG:
                raise Replaced
            size = st.st_size
            self.listed += size
            if size < CHUNK:
                data = os.read(fd, size + 1)
                if len(data) != size:
                    parts = [data]
                    got = len(data)
                    while got <= size:
                        more = os.read(fd, size + 1 - got)
                        if not more:
                            break
                        parts.append(more)
                        got += len(more)
                    data = b"".join(parts)
                self.hashed += size
                return self.new(data).hexdigest().encode(), st
            return self._hash_big(fd, size), st
        except OSError as exc:
            raise _io_error(exc, self.root + drel + b"/" + name) from None
        finally:
            os.close(fd)

    def _hash_big(self, fd: int, size: int) -> bytes:
        h = self.new()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        left = size + 1
        credited = 0
        tick = self.tick
        try:
            while left > 0:
                if tick is not None and tick() == 2:
                    raise WalkCancelled
                n = os.readv(fd, [view[: min(CHUNK, left)]])
                if not n:
                    break
                h.update(view[:n])
                left -= n
                step = min(n, size - credited)
                if step > 0:
                    credited += step
                    self.hashed += step
        finally:
            view.release()
        self.hashed += size - credited
        return h.hexdigest().encode()

    def _hand_over(self) -> None:
        """Give half of the directories still waiting, the shallowest first (the biggest
        subtrees), to ``give``; a placeholder takes their place when the walk reaches them."""
        assert self.give is not None
        waiting = []
        for _fd, drel, items, pos, _ident in self._stack:
            for name, entry, kind in items[pos:]:
                if kind != _DIR or b"\n" in name:
                    continue
                sub = drel + b"/" + name
                if sub in self.given:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # it is gone: the walk will say so when it gets there
                waiting.append((sub, st.st_dev, st.st_ino, mtime_seconds(st)))
        if not waiting:
            return
        chosen = waiting[: max(1, len(waiting) // 2)]
        for subtree in chosen:
            self.given[subtree[0]] = subtree
        self.give(chosen)


def _lstat(entry: Any, path: bytes) -> os.stat_result:
    try:
        return entry.stat(follow_symlinks=False)
    except OSError as exc:
        raise _io_error(exc, path) from None


def _same_as_lstat(st: os.stat_result, dfd: int, name: bytes) -> bool:
    try:
        return same_file(st, os.lstat(name, dir_fd=dfd))
    except OSError:
        return False


def _check_not_mounted(dfd: int, name: bytes, fd: int, st: os.stat_result) -> None:
    """What was opened is not the inode the directory listing gave: something is mounted on it
    (raises :class:`MountPoint`: never read through), or it was swapped (:class:`Replaced`).
    Filesystems whose listings give other inode numbers (overlays) pass: statx says no mount
    and the lstat of the name matches."""
    try:
        mounted = is_mount_root(dfd, name)
    except OSError:
        mounted = None
    if mounted is None:
        mounted = mount_id(fd) != mount_id(dfd)
    if mounted:
        raise MountPoint(name)
    if not _same_as_lstat(st, dfd, name):
        raise Replaced


def _open_listed_dir(dfd: int, name: bytes, entry: Any) -> tuple[int, os.stat_result]:
    """Open the subdirectory ``name`` listed as ``entry``, never through a symlink, checked to be
    that directory; its fd and fstat."""
    fd = os.open(name, DIR_FLAGS, dir_fd=dfd)
    try:
        st = os.fstat(fd)
        if st.st_ino != entry.inode():
            _check_not_mounted(dfd, name, fd, st)
    except OSError:
        os.close(fd)
        raise
    return fd, st


def _symlink_now(exc: OSError, dfd: int, name: bytes) -> OSError:
    """Opening a directory with O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a symlink: say ELOOP."""
    if exc.errno == errno.ENOTDIR:
        try:
            if stat.S_ISLNK(os.lstat(name, dir_fd=dfd).st_mode):
                return OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        except OSError:
            pass
    return exc


def _first(item: tuple) -> bytes:
    return item[0]


def splice(segments: Segments, subtrees: dict[bytes, Segments]) -> bytes:
    """The manifest text: ``segments`` with each placeholder replaced by its subtree's segments
    (which may hold placeholders of their own)."""
    out: list[bytes] = []
    todo = [iter(segments)]
    while todo:
        part = next(todo[-1], None)
        if part is None:
            todo.pop()
        elif isinstance(part, bytes):
            out.append(part)
        else:
            todo.append(iter(subtrees[part[0]]))
    return b"".join(out)


def open_entry(root: bytes) -> tuple[int, os.stat_result]:
    """Open the top of an implementation directory (never through a symlink) and fstat it."""
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            shown = display_path(root)
            raise ManifestError(f"'{shown}' is not a directory", root, "invalid") from None
        raise _io_error(exc, root) from None
    try:
        return fd, os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise _io_error(exc, root) from None


def open_subtree(root: bytes, subtree: Subtree) -> int:
    """Open a directory handed over by another worker, checked to be the one it listed."""
    rel, dev, ino, _mtime = subtree
    try:
        return open_beneath(root, rel, dev, ino)
    except OSError as exc:
        if swapped(exc) and not isinstance(exc, Replaced):
            exc = Replaced()
        raise _io_error(exc, root + rel) from None


def _not_allowed(path: bytes, entry: Any) -> ManifestError:
    """The error for what no implementation can contain (a FIFO, a socket, a device), listed as
    ``entry``."""
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        return _io_error(exc, path)
    return ManifestError(
        f"Not a regular file/directory/symlink '{display_path(path)}' "
        f"({_kind_of(mode)}; an implementation cannot contain one)",
        path,
        "invalid",
    )


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return f"file type {stat.S_IFMT(mode):o}"


def generate_manifest(
    root: PathLike, algorithm: str, tick: Callable[[], int] | None = None
) -> bytes:
    """The manifest of ``root``, byte-identical to ``0install store manifest ROOT ALG`` (no digest
    line). ``root`` itself must be a directory (not a symlink to one)."""
    root_b = os.fsencode(root)
    fd, st = open_entry(root_b)
    try:
        walk = ManifestWalk(root_b, algorithm, file_flags_for(st.st_uid), tick)
        return splice(walk.run(fd), {})
    finally:
        os.close(fd)


def hash_manifest(algorithm: str, manifest: bytes) -> str:
    """The digest value (hex, or base32 for sha256new) of a manifest text."""
    raw = _hasher(hash_function(algorithm))(manifest).digest()
    if algorithm == "sha256new":
        return _base32(raw)
    return encode_value(algorithm, raw)


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # two characters for each 10 bits


def _base32(raw: bytes) -> str:
    """RFC 4648 base32 without padding (what encode_value gives for sha256new): one big integer,
    ten bits (two characters) at a time from a table; a 32-byte hash in a few microseconds, a
    quarter of base64.b32encode's time (it is verification's last step for every entry)."""
    bits = len(raw) * 8
    chars = -(-bits // 5)
    pad = chars * 5 - bits
    n = int.from_bytes(raw, "big") << pad
    pairs = _B32_PAIRS
    if chars % 2:
        head = _B32[n >> (chars * 5 - 5)]
        chars -= 1
        n &= (1 << (chars * 5)) - 1
    else:
        head = ""
    return head + "".join([pairs[(n >> shift) & 1023] for shift in range(chars * 5 - 10, -1, -10)])


def manifest_digest(root: PathLike, algorithm: str) -> Digest:
    return Digest(algorithm, hash_manifest(algorithm, generate_manifest(root, algorithm)))


# --- reading a stored manifest back ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestItem:
    """One line of a manifest: a directory, a file, an executable or a symlink."""

    kind: str  # "D", "F", "X" or "S"
    hash: str = ""
    mtime: int | None = None
    size: int | None = None


def _parse_line(line: bytes, old: bool) -> tuple[bytes, ManifestItem]:
    try:
        return _parse_fields(line, old)
    except ValueError:
        raise ValueError(f"malformed manifest line {_short(line)}") from None


def _parse_fields(line: bytes, old: bool) -> tuple[bytes, ManifestItem]:
    kind = line[:1]
    parts_wanted = {b"D": 3 if old else 2, b"S": 4, b"F": 5, b"X": 5}.get(kind)
    if parts_wanted is None:
        raise ValueError
    parts = line.split(b" ", parts_wanted - 1)
    if len(parts) != parts_wanted:
        raise ValueError
    if kind == b"D":
        mtime = int(parts[1]) if old else None
        return parts[-1], ManifestItem("D", mtime=mtime)
    if kind == b"S":
        return parts[3], ManifestItem("S", parts[1].decode(), size=int(parts[2]))
    return parts[4], ManifestItem(
        kind.decode(), parts[1].decode(), mtime=int(parts[2]), size=int(parts[3])
    )


def _short(line: bytes, limit: int = 60) -> str:
    """A line of a manifest for a message: escaped, and cut short (it could be megabytes long)."""
    shown = display_path(line[:limit])
    return f"'{shown}...' ({len(line):,} bytes)" if len(line) > limit else f"'{shown}'"


def index_manifest(manifest: bytes, algorithm: str) -> dict[bytes, ManifestItem]:
    """Map each path (``/dir/name``) in a manifest to what the manifest says of it."""
    old = algorithm == "sha1"
    current = b""
    result: dict[bytes, ManifestItem] = {}
    for line in manifest.split(b"\n"):
        if not line:
            continue
        name, item = _parse_line(line, old)
        if item.kind == "D":
            current = name
            result[name] = item
        else:
            result[current + b"/" + name] = item
    return result


MANIFEST_LIMIT = 64 << 20
"""A stored ``.manifest`` bigger than this is not read: a manifest line is about 100 bytes, so this
is over half a million files, far more than any implementation has."""


def _megabytes(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MB" if n >= 1 << 20 else f"{n:,} bytes"


def read_stored_manifest(root: bytes, root_fd: int | None = None) -> bytes | None:
    """The root ``.manifest`` when it is a regular file; None when absent.

    A ``.manifest`` that is a symlink is not followed (it could point out of the cache); it is
    treated as absent, and it is part of the generated manifest, as in 0install. One bigger than
    :data:`MANIFEST_LIMIT` is not read: :class:`ManifestError` ("invalid") says how big it is.
    ``root_fd``, when given, is the open entry (``root`` then only names it in messages).
    """
    path = root + b"/.manifest"
    own = root_fd is None
    if root_fd is None:
        root_fd, _st = open_entry(root)
    try:
        try:
            fd = os.open(b".manifest", FILE_FLAGS | NOATIME, dir_fd=root_fd)
        except PermissionError:
            fd = os.open(b".manifest", FILE_FLAGS, dir_fd=root_fd)
    except OSError as exc:
        if own:
            os.close(root_fd)
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return None
        raise _io_error(exc, path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size <= MANIFEST_LIMIT:
            data = os.read(fd, st.st_size + 1)
            if len(data) == st.st_size:
                return data  # the size fstat saw: the whole file, no read to see the end
            while len(data) <= MANIFEST_LIMIT and (
                more := os.read(fd, MANIFEST_LIMIT + 1 - len(data))
            ):
                data += more
            if len(data) <= MANIFEST_LIMIT:
                return data
        raise ManifestError(
            f"The .manifest is {_megabytes(max(st.st_size, MANIFEST_LIMIT + 1))}, far larger than "
            f"any implementation's manifest (at most {_megabytes(MANIFEST_LIMIT)}): it was not "
            "read. Remove this entry and fetch it again.",
            path,
            "invalid",
        )
    except OSError as exc:
        raise _io_error(exc, path) from None
    finally:
        os.close(fd)
        if own:
            os.close(root_fd)
