"""The 0install manifest: generation, byte-identical to 0install 2.18, and comparison.

A manifest lists every directory, file and symlink of an implementation; its hash is the digest that
names the implementation directory. Generation is split in two so the verification engine can spread
file hashing over threads:

* :func:`plan_tree` walks the tree once (``lstat`` only) and returns a :class:`TreePlan` whose file
  lines still lack their content hash, plus the list of files to hash;
* :func:`hash_file` hashes one file (anywhere, on any thread);
* :meth:`TreePlan.assemble` puts the hashes in and returns the manifest bytes.

:func:`generate_manifest` does all three in sequence. Paths are bytes throughout, so names that are
not UTF-8 are written exactly as they are, as 0install does.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal

from core.digests import (
    Digest,
    DigestError,
    encode_value,
    format_digest,
    hash_function,
    parse_digest,
)

PathLike = str | bytes | os.PathLike

_READ_CHUNK = 1 << 20
# Never follow a symlink out of the cache, never block on a FIFO swapped in, and never touch access
# times: they are the only "last used" record a cache has, and verifying must not reset them.
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


def open_flags_for(owner_uid: int) -> int:
    """OPEN_FLAGS, plus O_NOATIME when the kernel will allow it for files of ``owner_uid`` (we are
    root or the owner): deciding once per tree saves the refused open and retry on every file."""
    euid = os.geteuid()
    if _NOATIME and (euid == 0 or euid == owner_uid):
        return OPEN_FLAGS | _NOATIME
    return OPEN_FLAGS


def open_for_reading(path: bytes) -> int:
    """Open a cache file read-only without following symlinks and, where allowed, without updating its
    access time (O_NOATIME needs the file's owner or root; others fall back to a normal open)."""
    if _NOATIME:
        try:
            return os.open(path, OPEN_FLAGS | _NOATIME)
        except PermissionError:
            pass
    return os.open(path, OPEN_FLAGS)


def display_path(path: PathLike) -> str:
    """A path as text for messages: undecodable bytes shown as ``\\xNN``, newlines as ``\\n``."""
    raw = os.fsencode(path)
    text = raw.decode("utf-8", errors="backslashreplace")
    return text.replace("\n", "\\n")


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
    if exc.errno == errno.ENOENT:
        return ManifestError(f"'{display_path(path)}' disappeared while it was being read", path, "io")
    if exc.errno == errno.ELOOP:
        # O_NOFOLLOW refused: something swapped a file for a symlink under us.
        return ManifestError(
            f"'{display_path(path)}' turned into a symlink while it was being read", path, "io"
        )
    reason = exc.strerror or str(exc)
    return ManifestError(f"Cannot read '{display_path(path)}': {reason}", path, "io")


def mtime_seconds(st: os.stat_result) -> int:
    """The integer part of st_mtime, truncated toward zero, from the exact nanosecond value.

    0install (OCaml) truncates the float mtime, and OCaml's float never rounds up into the next second;
    Python's float ``st_mtime`` can, so work from ``st_mtime_ns``.
    """
    ns = st.st_mtime_ns
    seconds, rest = divmod(ns, 1_000_000_000)
    if seconds < 0 and rest:
        seconds += 1
    return seconds


@dataclass(slots=True)
class FileToHash:
    """One regular file a plan needs the content hash of."""

    path: bytes
    size: int
    line: int  # index in TreePlan.lines


@dataclass(slots=True)
class TreePlan:
    """A manifest with the content hashes of regular files still missing."""

    root: bytes
    algorithm: str
    lines: list[bytes] = field(default_factory=list)
    files: list[FileToHash] = field(default_factory=list)
    # For each entry of ``files``: the line's prefix type (b"F" or b"X") and the rest after the hash.
    _tails: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def hash_name(self) -> str:
        return hash_function(self.algorithm)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def assemble(self, hashes: Iterable[str]) -> bytes:
        """The manifest text, given the hex hash of each file in ``files`` order."""
        lines = list(self.lines)
        count = 0
        for job, (kind, tail), hexhash in zip(self.files, self._tails, hashes):
            lines[job.line] = kind + b" " + hexhash.encode("ascii") + tail
            count += 1
        if count != len(self.files):
            raise ValueError(f"assemble() got {count} hashes for {len(self.files)} files")
        return b"".join(lines)


def _check_name(name: bytes, path: bytes, what: str) -> None:
    if b"\n" in name:
        raise ManifestError(
            f"Newline in {what} name '{display_path(path)}': a manifest cannot describe it "
            "(0install forbids it; rename or remove it)",
            path,
            "invalid",
        )


class WalkCancelled(Exception):
    """plan_tree stopped because its ``cancelled`` callback said so."""


def plan_tree(
    root: PathLike, algorithm: str, cancelled: Callable[[], bool] | None = None
) -> TreePlan:
    """Walk ``root`` as 0install's ``generate_manifest`` does, without hashing file contents.

    Raises :class:`ManifestError` naming the path for anything 0install rejects, and for a newline in
    any name (0install 2.18 accepts one in a file or symlink name and writes an ambiguous manifest).
    ``cancelled`` is asked before each directory is read; when it returns True the walk stops with
    :class:`WalkCancelled`, so even a huge tree can be abandoned at once.
    """
    root_b = os.fsencode(root)
    hash_name = hash_function(algorithm)
    old = algorithm == "sha1"
    plan = TreePlan(root_b, algorithm)
    lines = plan.lines
    try:
        root_st = os.lstat(root_b)
    except OSError as exc:
        raise _io_error(exc, root_b) from None
    if not stat.S_ISDIR(root_st.st_mode):
        raise ManifestError(f"'{display_path(root_b)}' is not a directory", root_b, "invalid")

    def entries(rel: bytes) -> list[tuple[bytes, bytes, os.stat_result]]:
        """(name, full path, lstat) of every entry of the directory ``rel``, sorted bytewise."""
        full_dir = root_b + rel if rel else root_b
        if cancelled is not None and cancelled():
            raise WalkCancelled
        try:
            names = os.listdir(full_dir)
        except OSError as exc:
            raise _io_error(exc, full_dir) from None
        names.sort()
        result = []
        for name in names:
            path = full_dir + b"/" + name
            try:
                st = os.lstat(path)
            except OSError as exc:
                raise _io_error(exc, path) from None
            result.append((name, path, st))
        return result

    def leaf_line(rel: bytes, name: bytes, path: bytes, st: os.stat_result) -> bool:
        """Add the line for a file or symlink; False when the entry is a directory."""
        mode = st.st_mode
        if stat.S_ISREG(mode):
            if name == b".manifest" and not rel:
                return True
            _check_name(name, path, "file")
            kind = b"X" if mode & 0o111 else b"F"
            tail = b" %d %d %s\n" % (mtime_seconds(st), st.st_size, name)
            plan.files.append(FileToHash(path, st.st_size, len(lines)))
            plan._tails.append((kind, tail))
            lines.append(b"")
            return True
        if stat.S_ISLNK(mode):
            _check_name(name, path, "symlink")
            try:
                target = os.readlink(path)
            except OSError as exc:
                raise _io_error(exc, path) from None
            target_hash = hashlib.new(hash_name, target).hexdigest().encode("ascii")
            lines.append(b"S %s %d %s\n" % (target_hash, len(target), name))
            return True
        if stat.S_ISDIR(mode):
            return False
        raise ManifestError(
            f"Not a regular file/directory/symlink '{display_path(path)}' "
            f"({_kind_of(mode)}; an implementation cannot contain one)",
            path,
            "invalid",
        )

    def dir_line(sub: bytes, path: bytes, st: os.stat_result) -> None:
        _check_name(sub, path, "directory")
        if old:
            lines.append(b"D %d %s\n" % (mtime_seconds(st), sub))
        else:
            lines.append(b"D %s\n" % sub)

    if old:
        # Everything in a directory sorted together; each subdirectory expanded where it falls.
        stack = [iter(entries(b""))]
        rels = [b""]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                rels.pop()
                continue
            rel = rels[-1]
            name, path, st = item
            if not leaf_line(rel, name, path, st):
                sub = rel + b"/" + name
                dir_line(sub, path, st)
                stack.append(iter(entries(sub)))
                rels.append(sub)
    else:
        # Files and symlinks first, then each subdirectory, depth first. An explicit stack, not
        # recursion, so that arbitrarily deep trees work.
        todo: list[bytes] = [b""]
        while todo:
            rel = todo.pop()
            if rel:
                dir_line(rel, root_b + rel, root_st)
            subdirs = []
            for name, path, st in entries(rel):
                if not leaf_line(rel, name, path, st):
                    subdirs.append(rel + b"/" + name)
            todo.extend(reversed(subdirs))
    return plan


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


def hash_file(path: bytes, hash_name: str) -> str:
    """Hex hash of a regular file's contents, never following a symlink."""
    try:
        fd = open_for_reading(path)
    except OSError as exc:
        raise _io_error(exc, path) from None
    try:
        data = os.read(fd, _READ_CHUNK)
        h = hashlib.new(hash_name, data)
        while len(data) == _READ_CHUNK:
            data = os.read(fd, _READ_CHUNK)
            h.update(data)
        if data:
            # A short read is usually EOF, but only an empty read proves it.
            while data := os.read(fd, _READ_CHUNK):
                h.update(data)
        return h.hexdigest()
    except OSError as exc:
        raise _io_error(exc, path) from None
    finally:
        os.close(fd)


def generate_manifest(root: PathLike, algorithm: str) -> bytes:
    """The manifest of ``root``, byte-identical to ``0install store manifest ROOT ALG`` (no digest line)."""
    plan = plan_tree(root, algorithm)
    hash_name = plan.hash_name
    return plan.assemble(hash_file(f.path, hash_name) for f in plan.files)


def hash_manifest(algorithm: str, manifest: bytes) -> str:
    """The digest value (hex, or base32 for sha256new) of a manifest text."""
    return encode_value(algorithm, hashlib.new(hash_function(algorithm), manifest).digest())


def manifest_digest(root: PathLike, algorithm: str) -> Digest:
    return Digest(algorithm, hash_manifest(algorithm, generate_manifest(root, algorithm)))


# --- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestItem:
    kind: str  # "D", "F", "X" or "S"
    hash: str = ""
    mtime: int | None = None
    size: int | None = None


def _parse_line(line: bytes, old: bool) -> tuple[bytes, ManifestItem]:
    kind = line[:1]
    parts_wanted = {b"D": 3 if old else 2, b"S": 4, b"F": 5, b"X": 5}.get(kind)
    if parts_wanted is None:
        raise ValueError(f"malformed manifest line {line!r}")
    parts = line.split(b" ", parts_wanted - 1)
    if len(parts) != parts_wanted:
        raise ValueError(f"malformed manifest line {line!r}")
    if kind == b"D":
        mtime = int(parts[1]) if old else None
        return parts[-1], ManifestItem("D", mtime=mtime)
    if kind == b"S":
        return parts[3], ManifestItem("S", parts[1].decode(), size=int(parts[2]))
    return parts[4], ManifestItem(
        kind.decode(), parts[1].decode(), mtime=int(parts[2]), size=int(parts[3])
    )


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


_TYPE_WORDS = {"D": "directory", "F": "file", "X": "executable file", "S": "symlink"}


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the recorded manifest and the actual tree."""

    path: str
    change: Literal["added", "removed", "modified"]
    what: tuple[str, ...] = ()  # for "modified": e.g. "content", "mtime 30 -> 31", "size 11 -> 12"

    def describe(self) -> str:
        if self.change == "modified":
            return f"modified {self.path}: {', '.join(self.what)}"
        kind = f" ({self.what[0]})" if self.what else ""
        return f"{self.change} {self.path}{kind}"


def diff_manifests(recorded: bytes, actual: bytes, algorithm: str) -> list[Change]:
    """What differs between two manifests of the same algorithm, path by path, sorted by path."""
    try:
        before = index_manifest(recorded, algorithm)
    except ValueError as exc:
        return [Change("/.manifest", "modified", (f"unreadable: {exc}",))]
    after = index_manifest(actual, algorithm)
    changes = []
    for path in sorted(before.keys() | after.keys()):
        shown = display_path(path)
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        if b is None:
            assert a is not None  # the path came from one of the two
            changes.append(Change(shown, "removed", (_TYPE_WORDS[a.kind],)))
        elif a is None:
            changes.append(Change(shown, "added", (_TYPE_WORDS[b.kind],)))
        else:
            changes.append(Change(shown, "modified", _what_differs(a, b)))
    return changes


def _what_differs(a: ManifestItem, b: ManifestItem) -> tuple[str, ...]:
    files = ("F", "X")
    if a.kind != b.kind and not (a.kind in files and b.kind in files):
        return (f"was a {_TYPE_WORDS[a.kind]}, now a {_TYPE_WORDS[b.kind]}",)
    what = []
    if a.kind == "S":
        what.append("symlink target")
        return tuple(what)
    if a.kind != b.kind:
        what.append("executable bit " + ("set" if b.kind == "X" else "cleared"))
    if a.hash != b.hash:
        what.append("content")
    if a.size != b.size:
        what.append(f"size {a.size} -> {b.size}")
    if a.mtime != b.mtime:
        what.append(f"mtime {a.mtime} -> {b.mtime}")
    return tuple(what)


Status = Literal["ok", "corrupt", "skipped", "error"]


@dataclass(slots=True)
class VerifyOutcome:
    """The verdict on one cache entry."""

    status: Status
    detail: str
    expected: str | None = None  # the digest in the directory name
    actual: str | None = None  # the digest of the actual contents
    recorded: str | None = None  # the digest of the .manifest file, when there is one
    changes: list[Change] = field(default_factory=list)


def compare(digest: Digest, actual_manifest: bytes, stored_manifest: bytes | None) -> VerifyOutcome:
    """Judge an implementation as 0install's ``verify`` does, with a readable explanation."""
    alg = digest.algorithm
    actual_value = hash_manifest(alg, actual_manifest)
    stored_value = None if stored_manifest is None else hash_manifest(alg, stored_manifest)
    expected = digest.name
    actual = format_digest(alg, actual_value)
    recorded = None if stored_value is None else format_digest(alg, stored_value)
    result = VerifyOutcome("corrupt", "", expected, actual, recorded)
    if actual_value == digest.value and stored_value in (None, actual_value):
        result.status = "ok"
        result.detail = "contents match the digest" + (
            " and the .manifest file" if stored_value is not None else " (no .manifest file)"
        )
        return result
    if stored_value is None:
        result.detail = (
            "Contents do not match the digest. There is no .manifest file, so which files changed "
            "cannot be told."
        )
    elif stored_value == actual_value:
        result.detail = (
            "Contents do not match the digest, but they match the .manifest file: both were replaced "
            "(planted or renamed entry)."
        )
    elif stored_value == digest.value:
        result.changes = diff_manifests(stored_manifest or b"", actual_manifest, alg)
        result.detail = f"Contents changed since it was added ({_count_changes(result.changes)})."
    elif actual_value == digest.value:
        result.detail = "The directory contents are correct, but the .manifest file is wrong."
        result.changes = diff_manifests(stored_manifest or b"", actual_manifest, alg)
    else:
        result.detail = "Neither the contents nor the .manifest file match the digest."
        result.changes = diff_manifests(stored_manifest or b"", actual_manifest, alg)
    return result


def _count_changes(changes: list[Change]) -> str:
    counts = {k: sum(1 for c in changes if c.change == k) for k in ("added", "removed", "modified")}
    parts = [f"{n} {k}" for k, n in counts.items() if n]
    return ", ".join(parts) if parts else "no file-level difference"


def read_stored_manifest(root: bytes) -> bytes | None:
    """The root ``.manifest`` when it is a regular file; None when absent.

    A ``.manifest`` that is a symlink is not followed (it could point out of the cache); it is treated
    as absent, and it is part of the generated manifest, as in 0install.
    """
    path = root + b"/.manifest"
    try:
        fd = open_for_reading(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return None
        raise _io_error(exc, path) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _io_error(exc, path) from None
    finally:
        os.close(fd)


def outcome_for_error(exc: ManifestError) -> VerifyOutcome:
    """A verdict for a tree that could not be read or cannot be an implementation."""
    if exc.kind == "invalid":
        return VerifyOutcome("corrupt", str(exc))
    return VerifyOutcome("error", str(exc))


def verify_directory(
    path: PathLike,
    digest: Digest | None = None,
    hasher: Callable[[bytes, str], str] = hash_file,
) -> VerifyOutcome:
    """Verify one implementation directory sequentially (the engine in ``core.verify`` is parallel).

    ``digest`` defaults to the one in the directory's name.
    """
    root = os.fsencode(path)
    if digest is None:
        name = os.path.basename(root.rstrip(b"/")).decode("utf-8", "replace")
        try:
            digest = parse_digest(name)
        except DigestError as exc:
            return VerifyOutcome("skipped", f"not an implementation: {exc}")
    try:
        plan = plan_tree(root, digest.algorithm)
        manifest = plan.assemble(hasher(f.path, plan.hash_name) for f in plan.files)
        stored = read_stored_manifest(root)
    except ManifestError as exc:
        result = outcome_for_error(exc)
        result.expected = digest.name
        return result
    return compare(digest, manifest, stored)
