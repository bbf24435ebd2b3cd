#!/usr/bin/python3 -I
"""The one program of Zero Install Admin that runs as root.

Installed as ``/usr/libexec/zeroinstall-admin/zeroinstall-admin-helper`` and started only as

    pkexec /usr/libexec/zeroinstall-admin/zeroinstall-admin-helper VERB [ARGS...]

(``python3 -I``: no user site, no PYTHON* variables). It is deliberately one file, standard library
only, importing nothing from the project: what runs as root can be read in one sitting. The
unprivileged side imports it to show the admin exactly what will be written (the file contents are
the constants below; the GUI never sends file contents) and, when the app already runs as root,
calls the same functions in-process through :func:`run_verb`.

Rules kept here: fixed verbs, every argument validated before anything happens, no shell, absolute
program paths, a fixed environment, a timeout on every program, each action logged to syslog, every
file written under a temporary name, validated, then renamed into place, and nothing removed by
following a symlink. A fake root (for tests and image builders) is a function parameter only: the
command line has no way to name one.

Verbs (exit 0 done, 1 failed, 2 bad arguments, 3 not root):

    remove-implementation STORE NAME   delete one entry of a system store, safely
    quarantine STORE NAME              move one entry of a system store to a root-only directory
    create-user                        the zeroinst system user (skipped when it exists)
    create-store                       /var/cache/0install.net/implementations, zeroinst, 0755
    install-secure-add-helper          /usr/local/bin/0store-secure-add-helper
    install-sudoers                    /etc/sudoers.d/zeroinstall, validated with visudo
    install-apparmor                   the 0store-secure-add profile, checked, loaded (complain)
    enable                             all of the above enable steps, in order
    disable                            remove the helper script, the sudoers drop-in and the profile
    maintenance-enable SETTINGS...     scheduled maintenance's settings and systemd units, checked
    maintenance-disable                stop and remove every maintenance file this tool wrote
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import stat
import subprocess
import sys
import syslog
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

INSTALLED_PATH = "/usr/libexec/zeroinstall-admin/zeroinstall-admin-helper"
"""Where the Debian package installs this file; the polkit policy's exec.path."""

POLKIT_ACTION_PREFIX = "net.zeroinstall.Admin."
"""A verb's polkit action id is this prefix plus the verb with its dashes removed."""

SHARED_STORE = "/var/cache/0install.net/implementations"
SHARED_CACHE_DIR = "/var/cache/0install.net"
SYSTEM_IMPL_DIRS_FILE = "/etc/xdg/0install.net/injector/implementation-dirs"
"""Root's configured extra stores: the only other stores the store verbs accept."""

SYSTEM_USER = "zeroinst"
NOLOGIN = "/usr/sbin/nologin"
USERADD_ARGS = (
    "--system", "--user-group", "--home-dir", SHARED_CACHE_DIR, "--no-create-home",
    "--shell", NOLOGIN, SYSTEM_USER,
)  # fmt: skip

SECURE_ADD_CANDIDATES = ("/usr/bin/0store-secure-add", "/usr/local/bin/0store-secure-add")
"""0store-secure-add from the Debian package, or a source install; the first that exists wins."""

HELPER_SCRIPT_PATH = "/usr/local/bin/0store-secure-add-helper"
HELPER_SCRIPT_TEMPLATE = '#!/bin/sh\nexec sudo -S -u zeroinst {program} "$@" < /dev/null\n'
HELPER_SCRIPT_MODE = 0o755

SUDOERS_DIR = "/etc/sudoers.d"
SUDOERS_MAIN = "/etc/sudoers"
SUDOERS_DROPIN = "/etc/sudoers.d/zeroinstall"
SUDOERS_TEMPLATE = (
    "# Written by Zero Install Admin: lets every user add verified implementations\n"
    "# to the shared cache as zeroinst ('Sharing downloads between users', 0install docs).\n"
    "Defaults>zeroinst env_reset,always_set_home\n"
    "ALL ALL=(zeroinst) NOPASSWD: {program}\n"
)
SUDOERS_MODE = 0o440

APPARMOR_DIR = "/etc/apparmor.d"
APPARMOR_ENABLED_FILE = "/sys/module/apparmor/parameters/enabled"
APPARMOR_PROFILES_FILE = "/sys/kernel/security/apparmor/profiles"
APPARMOR_PROFILE_NAME = "0store-secure-add"
APPARMOR_TEMPLATE = """\
# Written by Zero Install Admin for today's 0store-secure-add (an OCaml binary).
# It reads anything (it copies from wherever the user unpacked), writes only
# temporary directories in the shared store and renames them to their digest.
# Loaded in complain mode: read the log before enforcing it.
abi <abi/3.0>,
include <tunables/global>
profile 0store-secure-add {program} flags=(complain) {{
  include <abstractions/base>
  {program} mr,
  /etc/gnutls/config r,
  /etc/xdg/0install.net/injector/* r,
  /var/cache/0install.net/.config/0install.net/injector/* r,
  /** r,
  /var/cache/0install.net/implementations/ r,
  /var/cache/0install.net/implementations/tmp-*/ rw,
  /var/cache/0install.net/implementations/tmp-*/** rw,
  /var/cache/0install.net/implementations/sha*/ w,
  include if exists <local/{local_name}>
}}
"""

QUARANTINE_DIR_NAME = "zeroinstall-admin-quarantine"
"""Quarantined entries go to this root-only (0700) sibling of their store (same filesystem)."""

REMOVAL_PREFIX = "tmp-remove-"
"""An entry is renamed to this prefix plus random letters before its tree is deleted."""

DIGEST_RE = re.compile(
    r"^(sha1=[0-9a-f]{40}|sha1new=[0-9a-f]{40}|sha256=[0-9a-f]{64}|sha256new_[A-Z2-7]{52})$"
)

PROGRAM_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
"""The only environment programs started from here get."""
TIMEOUT_S = 120

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_ROOT = 0, 1, 2, 3

_ALLOW_REAL_ROOT = True
"""Tests set this to False: any step that would then act on the real ``/`` raises instead."""


class HelperError(Exception):
    """A step that could not be done; the message is one line naming the thing and what to do."""


class UsageError(HelperError):
    """Bad verb or arguments: nothing was done."""


# --- paths under a root ---------------------------------------------------------------------------


def _real_root(root: str) -> str:
    real = os.path.realpath(root)
    if real == "/" and not _ALLOW_REAL_ROOT:
        raise HelperError("refusing to act on the real / (fake roots only here)")
    return real


def under(root: str, path: str) -> str:
    """``path`` (absolute, as on the target system) inside ``root``; raises if the result would
    leave ``root`` through '..' or a symlink in an existing parent."""
    if not path.startswith("/"):
        raise HelperError(f"'{path}' is not an absolute path")
    base = _real_root(root)
    full = os.path.normpath(base + path) if base != "/" else os.path.normpath(path)
    if full == base:
        return full
    parent = os.path.realpath(os.path.dirname(full))
    if base != "/" and not (parent == base or parent.startswith(base + "/")):
        raise HelperError(f"'{full}' is not inside the root '{base}'")
    return full


# --- store entries: validation --------------------------------------------------------------------


def check_entry_name(name: str) -> str:
    """A single directory entry name: a digest, a temporary ``tmp-*`` name or any other suspicious
    name, but never empty, '.', '..' or anything with a '/' or NUL in it."""
    if not name or name in (".", "..") or "/" in name or "\0" in name or len(name) > 255:
        raise UsageError(f"'{name}' is not a single entry name of a store")
    return name


def check_store_path(store_dir: str) -> str:
    """An absolute, normalised path of an existing directory reached without any symlink."""
    if not store_dir.startswith("/") or os.path.normpath(store_dir) != store_dir:
        raise UsageError(f"'{store_dir}' is not an absolute, normalised store path")
    if os.path.realpath(store_dir) != store_dir:
        raise UsageError(f"'{store_dir}' goes through a symlink: name the real directory")
    if not os.path.isdir(store_dir):
        raise UsageError(f"'{store_dir}' is not a directory")
    return store_dir


def system_stores(root: str = "/") -> list[str]:
    """The shared store and the stores root's configuration adds (``implementation-dirs`` in
    /etc/xdg), as paths under ``root``."""
    stores = [under(root, SHARED_STORE)]
    try:
        with open(under(root, SYSTEM_IMPL_DIRS_FILE), encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line and not line.startswith("#") and line.startswith("/"):
            stores.append(under(root, os.path.normpath(line)))
    return stores


def check_system_store(store_dir: str, root: str = "/") -> str:
    """``store_dir`` if it is one of :func:`system_stores`; raises otherwise."""
    check_store_path(store_dir)
    if store_dir not in system_stores(root):
        raise UsageError(
            f"'{store_dir}' is not a configured system store (only {SHARED_STORE} and the lines "
            f"of {SYSTEM_IMPL_DIRS_FILE})"
        )
    return store_dir


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


# --- store entries: removal -----------------------------------------------------------------------


class Removal(NamedTuple):
    """What :func:`remove_implementation` or :func:`quarantine_entry` did."""

    store: str
    name: str
    existed: bool
    """False: there was nothing under that name (nothing done; removal is idempotent)."""
    items: int
    """Files, links and directories deleted (or moved, for a quarantine: 1)."""
    moved_to: str | None = None
    """For a quarantine: the entry's new path."""
    made_writable: bool = False
    """For a quarantine: the read-only entry was made writable for its owner to move it (and
    its mode put back after)."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir_at(name: str, dir_fd: int | None) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def removal_name(name: str, tag: str) -> str:
    """The temporary name an entry is renamed to before its tree is deleted: the prefix, random
    letters, and the entry's own name when it fits, so that a removal interrupted (a kill, a
    power cut) is finished later under its real name."""
    temp = f"{REMOVAL_PREFIX}{tag}-{name}"
    return temp if len(os.fsencode(temp)) <= 255 else REMOVAL_PREFIX + tag


def removal_origin(temp: str) -> str | None:
    """The entry name a ``tmp-remove-*`` name was made from (:func:`removal_name`), or None."""
    if not temp.startswith(REMOVAL_PREFIX):
        return None
    rest = temp[len(REMOVAL_PREFIX) :]
    tag, dash, name = rest[:12], rest[12:13], rest[13:]
    if dash != "-" or not name or any(c not in "0123456789abcdef" for c in tag):
        return None
    return name


def _rename_aside(store_fd: int, name: str) -> str:
    for _ in range(20):
        temp = removal_name(name, os.urandom(6).hex())
        try:
            os.lstat(temp, dir_fd=store_fd)
        except FileNotFoundError:
            os.rename(name, temp, src_dir_fd=store_fd, dst_dir_fd=store_fd)
            return temp
    raise HelperError("could not find a free temporary name in the store")


def _unlink_not_dir(name: str | bytes, dir_fd: int) -> None:
    # Called for every file removed: a try costs nothing, contextlib.suppress() 0.2 us per call.
    try:  # noqa: SIM105
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _owner_rwx(parent_fd: int, name: bytes, listed: os.stat_result, bits: int = 0o700) -> None:
    """Give the owner ``bits`` (rwx: 0install leaves directories 0555; one without r or x cannot
    even be listed) on the subdirectory ``name`` before it is opened, through an O_PATH
    descriptor checked to be the directory listed: never through a symlink, never on what is
    mounted there. Root needs no permission bits and changes nothing."""
    if os.geteuid() == 0 or listed.st_mode & bits == bits:
        return
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        st = os.fstat(fd)
        if st.st_ino != listed.st_ino or st.st_dev != listed.st_dev:
            raise Replaced
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) | bits)
    finally:
        os.close(fd)


def _owner_rx(parent_fd: int, name: bytes, listed: os.stat_result) -> None:
    """Only what looking inside needs (a quarantined entry is evidence: its modes stay)."""
    _owner_rwx(parent_fd, name, listed, 0o500)


def _shown(path: str) -> str:
    """A path for a one-line message: control characters and bytes that are not UTF-8 (argv's
    surrogate escapes) escaped, a backslash doubled."""
    out = []
    for c in path:
        if "\udc80" <= c <= "\udcff":
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        elif c == "\\" or not c.isprintable():
            out.append(repr(c)[1:-1])
        else:
            out.append(c)
    return "".join(out)


def _umount_advice(path: str) -> str:
    return f"unmount it first (umount '{_shown(path)}'), then try again"


def _check_no_mounts(store_fd: int, name: str, where: str, verb: str) -> None:
    """Raise :class:`HelperError` naming the first mount point in the directory entry ``name``
    (the entry itself or anything below it) before anything is changed; ``where`` is the
    entry's path for the message."""
    fd = os.open(name, _DIR_FLAGS, dir_fd=store_fd)
    try:
        if (
            os.fstat(fd).st_dev != os.fstat(store_fd).st_dev
            or mount_id(fd) != mount_id(store_fd)
            or is_mount_root(store_fd, os.fsencode(name))
        ):
            raise HelperError(
                f"it is itself a mount point: nothing was {verb}; " + _umount_advice(where)
            )
        found: list[bytes] = []
        for event, rel, _fd, what in walk_tree(fd, before_open=_owner_rx):
            if event != "skip":
                continue
            child, exc = what
            if isinstance(exc, MountPoint):
                found.append(rel)
            elif not child or exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                if isinstance(exc, Replaced):
                    continue  # changing under us: the removal itself checks again
                raise HelperError(
                    f"{_shown(where + os.fsdecode(rel))} could not be searched for mount points "
                    f"({exc.strerror or exc}): nothing was {verb}"
                )
    finally:
        os.close(fd)
    if found:
        first = where + os.fsdecode(found[0])
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise HelperError(
            f"{_shown(os.fsdecode(found[0][1:]))} inside it is a mount point{more}: nothing was "
            f"{verb}; " + _umount_advice(first)
        )


def _owner_writable(fd: int) -> None:
    if os.geteuid() != 0:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o700 != 0o700:
            os.chmod(fd, mode | 0o700)


def _remove_tree_at(parent_fd: int, name: str, on_step: Callable[[str, str], None] | None) -> int:
    """Delete the directory ``name`` in ``parent_fd`` and everything in it with :func:`walk_tree`:
    a symlink (even one swapped in for a directory mid-way) is unlinked, never followed, and no
    mount point is entered or removed through (:class:`MountPoint`, with its path inside). Returns
    the number of items deleted."""
    step = on_step or (lambda _event, _name: None)
    count = 0

    def before_open(pfd: int, child: bytes, listed: os.stat_result) -> None:
        step("enter", os.fsdecode(child))
        _owner_rwx(pfd, child, listed)

    step("enter", name)
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        top_mount = mount_id(fd)
        if os.fstat(fd).st_dev != os.fstat(parent_fd).st_dev or top_mount != mount_id(parent_fd):
            raise MountPoint(b"")
        _owner_writable(fd)
        for event, rel, dfd, what in walk_tree(fd, post=True, before_open=before_open):
            if event == "dir":
                _owner_writable(dfd)
                batch = [n for n, s in what if not stat.S_ISDIR(s.st_mode)]
                if batch and mount_id(dfd) != top_mount:  # checked again before each batch
                    raise MountPoint(rel)
                for child in batch:
                    step("unlink", os.fsdecode(child))
                    try:
                        _unlink_not_dir(child, dfd)
                    except OSError as exc:
                        if exc.errno == errno.EBUSY:  # a file bind-mounted since it was listed
                            raise MountPoint(rel + b"/" + child) from None
                        raise
                    count += 1
            elif event == "skip":
                child, error = what
                if isinstance(error, MountPoint) or not child:
                    raise error
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    _unlink_not_dir(child, dfd)  # swapped for a symlink or file: the link only
                    count += 1
                elif error.errno != errno.ENOENT:
                    raise error
            else:  # "left": everything below it is gone
                step("rmdir", os.fsdecode(what))
                try:
                    os.rmdir(what, dir_fd=dfd)
                except OSError as exc:
                    if exc.errno == errno.ENOTDIR:  # swapped for a symlink after we left it
                        _unlink_not_dir(what, dfd)
                    elif exc.errno == errno.EBUSY:
                        raise MountPoint(rel) from None
                    elif exc.errno != errno.ENOENT:
                        raise
                count += 1
    finally:
        os.close(fd)
    step("rmdir", name)
    os.rmdir(name, dir_fd=parent_fd)
    return count + 1


def remove_implementation(
    store_dir: str,
    name: str,
    *,
    on_step: Callable[[str, str], None] | None = None,
) -> Removal:
    """Delete the entry ``name`` of the store ``store_dir`` (any store: the unprivileged app uses it
    for the user's own store; the verb allows only system stores).

    First the whole entry is searched for mount points: one (of any kind, a bind mount of the same
    filesystem too) means nothing is done (:class:`HelperError` names it and says to unmount it).
    Then the entry is renamed to ``tmp-remove-XXXXXXXXXXXX-NAME`` (:func:`removal_name`) in the
    same store, so an interrupted removal never leaves a partial tree under a digest name (0install
    would use it) and is finished later under its real name; then it is deleted with
    :func:`walk_tree` (directories made writable for their owner first), checking for a mount
    point again before each batch of unlinks. A top-level symlink or file is unlinked; its target
    is never touched. An entry already named ``tmp-remove-*`` is deleted where it is.
    ``on_step(event, name)`` is called before each unlink/rmdir/descent (progress, and tests that
    interrupt).
    """
    check_entry_name(name)
    check_store_path(store_dir)
    store_fd = _open_dir_at(store_dir, None)
    try:
        try:
            st = os.lstat(name, dir_fd=store_fd)
        except FileNotFoundError:
            return Removal(store_dir, name, False, 0)
        where = f"{store_dir}/{name}"
        if stat.S_ISDIR(st.st_mode):
            _check_no_mounts(store_fd, name, where, "removed")
        temp = name if name.startswith(REMOVAL_PREFIX) else _rename_aside(store_fd, name)
        if on_step:
            on_step("renamed", temp)
        if not stat.S_ISDIR(st.st_mode):
            _unlink_not_dir(temp, store_fd)
            return Removal(store_dir, name, True, 1)
        try:
            items = _remove_tree_at(store_fd, temp, on_step)
        except MountPoint as exc:
            path = f"{store_dir}/{temp}{os.fsdecode(exc.rel)}"
            raise HelperError(
                f"{_shown(path)} became a mount point during the removal: it was left alone and "
                f"the rest of the entry stays as {_shown(temp)}; unmount it (umount "
                f"'{_shown(path)}'), then clean up again"
            ) from None
        return Removal(store_dir, name, True, items)
    finally:
        os.close(store_fd)


def quarantine_dir_for(store_dir: str) -> str:
    """Where :func:`quarantine_entry` puts entries of ``store_dir`` when run as the verb."""
    return os.path.join(os.path.dirname(store_dir), QUARANTINE_DIR_NAME)


def quarantine_entry(store_dir: str, name: str, quarantine_dir: str) -> Removal:
    """Move the entry ``name`` out of ``store_dir`` into ``quarantine_dir`` (created 0700 when
    missing, it must be on the same filesystem), as ``NAME.YYYYmmddTHHMMSS``: out of 0install's
    reach but kept as evidence. A symlink entry is moved as the link itself. An entry holding a
    mount point is refused before anything changes. Moving a directory to another parent needs
    write permission on it (its '..' changes) and 0install leaves entries read-only: its owner
    gets it for the move, and the mode is put back after (``made_writable`` says so)."""
    check_entry_name(name)
    check_store_path(store_dir)
    parent = os.path.dirname(quarantine_dir)
    check_store_path(parent)
    if os.path.basename(quarantine_dir) in ("", ".", ".."):
        raise UsageError(f"'{quarantine_dir}' is not a usable quarantine directory")
    store_fd = _open_dir_at(store_dir, None)
    parent_fd = _open_dir_at(parent, None)
    entry_fd = None
    try:
        try:
            st = os.lstat(name, dir_fd=store_fd)
        except FileNotFoundError:
            return Removal(store_dir, name, False, 0)
        if stat.S_ISDIR(st.st_mode):
            _check_no_mounts(store_fd, name, f"{store_dir}/{name}", "moved")
        qname = os.path.basename(quarantine_dir)
        with contextlib.suppress(FileExistsError):
            os.mkdir(qname, 0o700, dir_fd=parent_fd)
        q_fd = _open_dir_at(qname, parent_fd)  # a symlink planted there is refused (ELOOP)
        try:
            if os.fstat(q_fd).st_dev != os.fstat(store_fd).st_dev:
                raise HelperError(
                    f"'{quarantine_dir}' is on another filesystem than '{store_dir}': "
                    "remove the entry instead"
                )
            os.chmod(q_fd, 0o700)
            target = f"{name}.{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
            while True:
                try:
                    os.lstat(target, dir_fd=q_fd)
                except FileNotFoundError:
                    break
                target += "-" + os.urandom(2).hex()
            mode = None
            if stat.S_ISDIR(st.st_mode) and os.geteuid() != 0 and not st.st_mode & 0o200:
                entry_fd = os.open(name, _DIR_FLAGS, dir_fd=store_fd)
                if os.fstat(entry_fd).st_ino != st.st_ino:
                    raise HelperError(f"{store_dir}/{name} changed while being moved: try again")
                mode = stat.S_IMODE(st.st_mode)
                os.chmod(entry_fd, mode | 0o200)
            try:
                os.rename(name, target, src_dir_fd=store_fd, dst_dir_fd=q_fd)
            finally:
                if mode is not None and entry_fd is not None:
                    os.chmod(entry_fd, mode)
        finally:
            os.close(q_fd)
        return Removal(
            store_dir, name, True, 1, os.path.join(quarantine_dir, target), mode is not None
        )
    finally:
        if entry_fd is not None:
            os.close(entry_fd)
        os.close(store_fd)
        os.close(parent_fd)


# --- reading the target system ------------------------------------------------------------------


class Account(NamedTuple):
    name: str
    uid: int
    gid: int
    home: str
    shell: str


def read_account(name: str, root: str = "/") -> Account | None:
    """``name``'s line in the root's /etc/passwd (the real system also asks NSS, for LDAP users)."""
    try:
        with open(under(root, "/etc/passwd"), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 7 and fields[0] == name:
                    return Account(name, int(fields[2]), int(fields[3]), fields[5], fields[6])
    except (OSError, ValueError):
        pass
    if os.path.realpath(root) == "/":
        import pwd

        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        return Account(name, pw.pw_uid, pw.pw_gid, pw.pw_dir, pw.pw_shell)
    return None


def find_secure_add(root: str = "/") -> str | None:
    """The 0store-secure-add the helper script and sudoers will name (a target path), or None."""
    for candidate in SECURE_ADD_CANDIDATES:
        if os.path.isfile(under(root, candidate)):
            return candidate
    return None


def ownership_problem(path: str, root: str = "/") -> str | None:
    """Why ``path`` (a target path) must not be run as zeroinst, or None when it is root-owned
    and not writable by anyone else, and so is every directory above it."""
    real = os.path.realpath(under(root, path))
    base = os.path.realpath(root)
    current = real
    while True:
        try:
            st = os.lstat(current)
        except OSError as exc:
            return f"'{current}' cannot be checked: {exc.strerror}"
        shown = current if base == "/" else current[len(base) :] or "/"
        if st.st_uid != 0:
            return (
                f"'{shown}' belongs to uid {st.st_uid}, not root: its owner could run code as "
                "zeroinst; install 0install from the Debian package instead"
            )
        if st.st_mode & 0o022:
            return (
                f"'{shown}' is writable by group or others: anyone in it could run code as "
                "zeroinst; fix its permissions"
            )
        if current == base or current == "/":
            return None
        current = os.path.dirname(current)


def apparmor_enabled(root: str = "/") -> bool:
    try:
        with open(under(root, APPARMOR_ENABLED_FILE)) as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def helper_script_content(program: str) -> str:
    return HELPER_SCRIPT_TEMPLATE.format(program=program)


def sudoers_content(program: str) -> str:
    return SUDOERS_TEMPLATE.format(program=program)


def apparmor_profile_path(program: str) -> str:
    return os.path.join(APPARMOR_DIR, program.lstrip("/").replace("/", "."))


def apparmor_content(program: str) -> str:
    return APPARMOR_TEMPLATE.format(
        program=program, local_name=program.lstrip("/").replace("/", ".")
    )


def ours(path: str, contents: Sequence[str]) -> bool | None:
    """True if the file at ``path`` (a real path) holds one of ``contents``; None if missing."""
    try:
        with open(path, "rb") as f:
            data = f.read(65536)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    return data.decode("utf-8", "replace") in contents


# --- running programs -----------------------------------------------------------------------------


PACKAGE_OF = {"visudo": "sudo", "apparmor_parser": "apparmor", "useradd": "passwd"}


def find_program(name: str) -> str:
    for d in PROGRAM_DIRS:
        path = os.path.join(d, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    package = PACKAGE_OF.get(name, name)
    raise HelperError(f"{name} is missing: install the '{package}' package; nothing was changed")


def run_program(name: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a system program by absolute path with the fixed environment, no shell, a timeout."""
    argv = [find_program(name), *args]
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, errors="replace", env=dict(ENVIRONMENT),
            stdin=subprocess.DEVNULL, timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise HelperError(f"{name} did not finish in {TIMEOUT_S} s; nothing was changed") from None


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else "(no message)"


def visudo_check(path: str, *, owner_and_mode: bool = False) -> str | None:
    """None if ``path`` parses as sudoers (and, with ``owner_and_mode``, is root:root 0440), else
    visudo's message."""
    args = ["-c", "-f", path] if not owner_and_mode else ["-c", "-O", "-P", "-f", path]
    proc = run_program("visudo", args)
    if proc.returncode == 0:
        return None
    return _first_line(proc.stderr or proc.stdout)


def apparmor_check(path: str, root: str = "/") -> str | None:
    """None if the profile at ``path`` parses (``apparmor_parser -Q -K``), else its message."""
    args = ["-Q", "-K"]
    base = under(root, APPARMOR_DIR)
    if os.path.isfile(os.path.join(base, "tunables", "global")):
        args += ["--base", base]
    proc = run_program("apparmor_parser", [*args, path])
    if proc.returncode == 0:
        return None
    return _first_line(proc.stderr + proc.stdout)


# --- writing files --------------------------------------------------------------------------------


def _ensure_dirs(root: str, path: str) -> None:
    """Create the missing directories of target ``path`` (root:root 0755), never via symlinks."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    for part in parts:
        current = os.path.join(current, part)
        full = under(root, current)
        try:
            os.mkdir(full, 0o755)
        except FileExistsError:
            if os.path.islink(full) or not os.path.isdir(full):
                raise HelperError(f"'{full}' is not a directory") from None
        else:
            os.chmod(full, 0o755)  # whatever the caller's umask: others must traverse it


def install_file(
    root: str,
    path: str,
    content: str,
    mode: int,
    validate: Callable[[str], str | None] | None = None,
) -> str:
    """Put ``content`` at target ``path`` (root:root, ``mode``): written to a dot-named temporary
    file in the same directory, validated, then renamed into place. Returns "unchanged" when the
    file was already exactly so, else "written". On a validation failure nothing changes."""
    full = under(root, path)
    directory, name = os.path.split(full)
    _ensure_dirs(root, os.path.dirname(path))
    dir_fd = _open_dir_at(directory, None)
    try:
        try:
            st = os.lstat(name, dir_fd=dir_fd)
            same = (
                stat.S_ISREG(st.st_mode)
                and stat.S_IMODE(st.st_mode) == mode
                and (st.st_uid, st.st_gid) == (0, 0)
                and ours(full, [content])
            )
            if same:
                return "unchanged"
        except FileNotFoundError:
            pass
        temp = f".{name}.{os.urandom(4).hex()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)  # fmt: skip
        try:
            try:
                os.write(fd, content.encode())
                if os.geteuid() == 0:
                    os.fchown(fd, 0, 0)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            if validate is not None:
                problem = validate(os.path.join(directory, temp))
                if problem:
                    raise HelperError(f"{path} would not be valid: {problem}; nothing was changed")
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        return "written"
    finally:
        os.close(dir_fd)


REMOVE = "remove"
ABSENT = "absent"
LEFT_ALONE = "left alone (not written by this app)"
LEFT_ALONE_LINK = "left alone (a symlink, not written by this app)"


def file_plan(root: str, path: str, contents: Sequence[str]) -> str:
    """What :func:`remove_file` will do with target ``path``: REMOVE (it holds one of
    ``contents``, what this app writes), ABSENT, or why it is left alone."""
    full = under(root, path)
    if os.path.islink(full):
        return LEFT_ALONE_LINK
    mine = ours(full, contents)
    if mine is None:
        return ABSENT
    return REMOVE if mine else LEFT_ALONE


def remove_file(root: str, path: str, contents: Sequence[str]) -> str:
    """Remove target ``path`` if it holds one of ``contents`` (what this app writes): "removed",
    "absent", or "left alone (...)" for a file someone else wrote."""
    action = file_plan(root, path, contents)
    if action != REMOVE:
        return action
    os.unlink(under(root, path))
    return "removed"


# --- the enable and disable steps -----------------------------------------------------------------


def _program(root: str) -> str:
    program = find_secure_add(root)
    if program is None:
        raise HelperError(
            "0store-secure-add is missing (looked for "
            + " and ".join(SECURE_ADD_CANDIDATES)
            + "): install the '0install-core' package"
        )
    problem = ownership_problem(program, root)
    if problem:
        raise HelperError(f"refusing to name {program}: {problem}")
    return program


def step_create_user(root: str = "/") -> str:
    """The zeroinst system user, made with useradd unless it exists (then left exactly as it is)."""
    if read_account(SYSTEM_USER, root) is not None:
        return f"user {SYSTEM_USER} exists: unchanged"
    real = _real_root(root)
    args = (["--prefix", real] if real != "/" else []) + list(USERADD_ARGS)
    proc = run_program("useradd", args)
    if proc.returncode != 0:
        raise HelperError(f"useradd failed: {_first_line(proc.stderr)}")
    return f"user {SYSTEM_USER} created"


def step_create_store(root: str = "/") -> str:
    """The shared store directory, owned by zeroinst, mode 0755 (its parent root:root 0755)."""
    account = read_account(SYSTEM_USER, root)
    if account is None:
        raise HelperError(f"user {SYSTEM_USER} does not exist: create it first")
    _ensure_dirs(root, SHARED_STORE)
    fd = _open_dir_at(under(root, SHARED_STORE), None)
    try:
        st = os.fstat(fd)
        if (st.st_uid, stat.S_IMODE(st.st_mode)) == (account.uid, 0o755):  # any group will do
            return f"{SHARED_STORE} is {SYSTEM_USER}'s, 0755: unchanged"
        os.fchown(fd, account.uid, account.gid)
        os.fchmod(fd, 0o755)
    finally:
        os.close(fd)
    return f"{SHARED_STORE} now owned by {SYSTEM_USER}, mode 0755"


def step_install_secure_add_helper(root: str = "/") -> str:
    program = _program(root)
    content = helper_script_content(program)
    done = install_file(root, HELPER_SCRIPT_PATH, content, HELPER_SCRIPT_MODE)
    return f"{HELPER_SCRIPT_PATH} (calls {program}): {done}"


# sudo reads /etc/sudoers and the files it names: "@include FILE" / "#include FILE" (a relative
# name from the including file's directory, %h the short host name) and "@includedir DIR" /
# "#includedir DIR" (DIR's files in name order, skipping names ending in '~' or holding a '.'); it
# skips a file not owned by root or writable by others, and stops at 128 levels. The drop-in is
# read when any file sudo reads includes /etc/sudoers.d: core.sudoers (the detection) reads the
# same way with these same pieces.

SUDOERS_INCLUDE_RE = re.compile(r"^[@#](include|includedir)\s+(\"(?:[^\"\\]|\\.)*\"|\S+)\s*$")
SUDOERS_MAX_DEPTH = 128
"""sudo's own limit on nested includes."""


def path_in_root(root: str, path: str) -> str:
    """Where target ``path`` really is under ``root``: on a fake root a symlink is followed as if
    ``root`` were /, never out of it (a link to /etc/shadow means the fake root's)."""
    if os.path.realpath(root) == "/":
        return path
    current = path
    for _ in range(40):
        full = under(root, current)
        if not os.path.islink(full):
            return full
        target = os.readlink(full)
        if not target.startswith("/"):
            target = os.path.join(os.path.dirname(current), target)
        current = os.path.normpath(target)
    raise HelperError(f"{path}: too many levels of symbolic links")


def sudoers_hostname(root: str) -> str:
    try:
        with open(under(root, "/etc/hostname"), encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, HelperError):
        return ""


def sudoers_included_names(names: Sequence[str]) -> list[str]:
    """The names of a directory that @includedir reads, in its order."""
    return sorted(n for n in names if not n.endswith("~") and "." not in n)


def sudoers_include_target(name: str, including: str, host: str) -> str:
    """The path an include line's ``name`` means, read in the file ``including``."""
    if name.startswith('"') and name.endswith('"'):
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    name = name.replace("%h", host.split(".")[0]).replace("%%", "%")
    if not name.startswith("/"):
        name = os.path.join(os.path.dirname(including), name)
    return os.path.normpath(name)


def sudoers_file_skipped(st: os.stat_result, root: str) -> str:
    """Why sudo skips a file with this status ("" when it reads it)."""
    owner = os.stat(under(root, "/")).st_uid  # root's; a fake root's maker on a fake root
    if st.st_uid != owner:
        return f"owned by uid {st.st_uid}, not root"
    if st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != 0):
        return "writable by others"
    return ""


def _include_lines(text: str) -> Iterator[re.Match[str]]:
    """The include lines of a sudoers file (a continued line is never one)."""
    pending = False
    for raw in text.splitlines():
        if not pending:
            m = SUDOERS_INCLUDE_RE.match(raw.strip())
            if m is not None:
                yield m
                continue
        line = raw if pending else raw.lstrip()
        pending = line.endswith("\\") and not line.endswith("\\\\")


def sudoers_includes_dropins(root: str = "/") -> bool | None:
    """Whether sudo reads /etc/sudoers.d: an @includedir of it in /etc/sudoers or in any file
    sudo reads from there. None when it was not found but a file on the way could not be read
    by this user (sudoers files are root's eyes only)."""
    host = sudoers_hostname(root)
    unreadable = False

    def reads(path: str, depth: int, active: frozenset[str]) -> bool:
        nonlocal unreadable
        if depth > SUDOERS_MAX_DEPTH or path in active:
            return False
        try:
            with open(path_in_root(root, path), encoding="utf-8", errors="replace") as f:
                st = os.fstat(f.fileno())
                text = f.read()
        except PermissionError:
            unreadable = True
            return False
        except (OSError, HelperError):
            return False
        if sudoers_file_skipped(st, root):
            return False
        active = active | {path}
        for m in _include_lines(text):
            target = sudoers_include_target(m.group(2), path, host)
            if m.group(1) == "include":
                if reads(target, depth + 1, active):
                    return True
                continue
            if target == SUDOERS_DIR:
                return True
            try:
                names = os.listdir(path_in_root(root, target))
            except PermissionError:
                unreadable = True
                continue
            except (OSError, HelperError):
                continue
            for name in sudoers_included_names(names):
                child = os.path.join(target, name)
                try:
                    if not os.path.isfile(path_in_root(root, child)):
                        continue
                except (OSError, HelperError):
                    continue
                if reads(child, depth + 1, active):
                    return True
        return False

    if reads(SUDOERS_MAIN, 0, frozenset()):
        return True
    return None if unreadable else False


def step_install_sudoers(root: str = "/") -> str:
    program = _program(root)
    find_program("visudo")  # before anything is written
    if not sudoers_includes_dropins(root):
        raise HelperError(
            f"sudo does not read {SUDOERS_DIR} (no '@includedir {SUDOERS_DIR}' in {SUDOERS_MAIN} "
            f"or a file it includes): add that line at the end of {SUDOERS_MAIN} with visudo, "
            "then try again; nothing was changed"
        )
    full = under(root, SUDOERS_DROPIN)
    previous = None
    if os.path.isfile(full) and not os.path.islink(full):
        with open(full, encoding="utf-8", errors="replace") as f:
            previous = f.read()
    done = install_file(
        root, SUDOERS_DROPIN, sudoers_content(program), SUDOERS_MODE,
        validate=lambda tmp: visudo_check(tmp, owner_and_mode=os.geteuid() == 0),
    )  # fmt: skip
    if done == "written" and _real_root(root) == "/":
        problem = visudo_check(SUDOERS_MAIN)
        if problem:  # the whole configuration must still parse, or sudo stops working for everyone
            if previous is None:
                os.unlink(full)
            else:
                install_file(root, SUDOERS_DROPIN, previous, SUDOERS_MODE)
            raise HelperError(f"sudo's whole configuration fails with it: {problem}; put back")
    return f"{SUDOERS_DROPIN}: {done}"


def step_install_apparmor(root: str = "/") -> str:
    if not apparmor_enabled(root):
        return "AppArmor is not enabled: no profile needed"
    program = _program(root)
    find_program("apparmor_parser")  # before anything is written
    path = apparmor_profile_path(program)
    full = under(root, path)
    existed = os.path.exists(full)
    done = install_file(
        root, path, apparmor_content(program), 0o644, validate=lambda tmp: apparmor_check(tmp, root)
    )
    if _real_root(root) != "/":
        return f"{path}: {done} (fake root: not loaded into the kernel)"
    proc = run_program("apparmor_parser", ["-r", full])
    if proc.returncode != 0:
        if done == "written" and not existed:
            os.unlink(full)
        raise HelperError(f"apparmor_parser could not load {path}: {_first_line(proc.stderr)}")
    return f"{path}: {done}, loaded in complain mode"


ENABLE_STEPS: tuple[tuple[str, str, Callable[[str], str]], ...] = (
    ("create-user", "create the zeroinst system user", step_create_user),
    ("create-store", "create the shared cache directory, owned by zeroinst",
     step_create_store),
    ("install-secure-add-helper", f"install {HELPER_SCRIPT_PATH}",
     step_install_secure_add_helper),
    ("install-sudoers", f"install the sudoers drop-in {SUDOERS_DROPIN}", step_install_sudoers),
    ("install-apparmor", "install and load the AppArmor profile of 0store-secure-add",
     step_install_apparmor),
)  # fmt: skip


def enable(root: str = "/") -> list[str]:
    """Every enable step in order (each idempotent); stops at the first that fails."""
    return [step(root) for _, _, step in ENABLE_STEPS]


def _disable_files() -> list[tuple[str, list[str], str | None]]:
    """(target path, the contents this app writes there, the program of an AppArmor profile)."""
    files: list[tuple[str, list[str], str | None]] = [
        (HELPER_SCRIPT_PATH, [helper_script_content(p) for p in SECURE_ADD_CANDIDATES], None),
        (SUDOERS_DROPIN, [sudoers_content(p) for p in SECURE_ADD_CANDIDATES], None),
    ]
    for program in SECURE_ADD_CANDIDATES:
        files.append((apparmor_profile_path(program), [apparmor_content(program)], program))
    return files


def disable_plan(root: str = "/") -> list[tuple[str, str]]:
    """(target path, REMOVE / ABSENT / why it is left alone) for each file :func:`disable` looks
    at: what the confirmation shows is exactly what will go."""
    return [(path, file_plan(root, path, contents)) for path, contents, _ in _disable_files()]


def disable(root: str = "/") -> list[str]:
    """Remove the helper script, the sudoers drop-in and the AppArmor profile this app writes; the
    user and the shared cache (everyone's programs) stay; files someone else wrote are left
    alone."""
    done = []
    for path, contents, program in _disable_files():
        if program is not None:
            if not os.path.lexists(under(root, path)):
                continue
            mine = file_plan(root, path, contents) == REMOVE
            if mine and _real_root(root) == "/" and apparmor_enabled(root):
                run_program("apparmor_parser", ["-R", under(root, path)])  # "not loaded" is fine
        done.append(f"{path}: {remove_file(root, path, contents)}")
    return done


# --- verbs ----------------------------------------------------------------------------------------


# --- the store lock: one run at a time on a store (issue 23) --------------------------------------
#
# Scheduled maintenance, root's commands and the remove/quarantine verbs take this lock, so that
# two never work on one store at once. It is a file in a directory only its owner can open: for
# root (whatever the store) STORE_LOCK_DIR, mode 0700, so no other user can take it and hold it
# forever to keep root's daily verification or clean-up off the shared store (an flock on the
# store directory itself could be taken by anyone who may open the store). A user's own store
# is locked in the user's own state directory; a user never locks a store that is not theirs
# (they cannot change it: removals go through these verbs, which lock as root).

STORE_LOCK_DIR = "/var/lib/zeroinstall-admin/locks"
STORE_LOCK_DIR_ENV = "ZEROINSTALL_ADMIN_LOCK_DIR"
"""Root's lock directory instead of STORE_LOCK_DIR (tests; main() clears the environment)."""
STORE_LOCK_USER_SUBDIR = "locks"
"""A user's lock directory inside the user's state directory
(``~/.local/state/zeroinstall-admin``)."""
STORE_LOCK_WAIT_S = 10.0
"""How long remove-implementation and quarantine wait for another run on the store."""

_held_locks: dict[str, list[int]] = {}  # lock file -> [fd, depth]: nested use in one process
_held_guard = threading.Lock()


def root_lock_dir(root: str = "/") -> str:
    """Root's lock directory (under a fake root for tests and image builders)."""
    chosen = os.environ.get(STORE_LOCK_DIR_ENV)
    if chosen:
        return chosen
    return STORE_LOCK_DIR if root == "/" else under(root, STORE_LOCK_DIR)


def store_lock_file(lock_dir: str, store: str) -> str:
    """The lock file of ``store`` (its real path names it) in ``lock_dir``."""
    key = hashlib.sha256(os.fsencode(os.path.realpath(store))).hexdigest()[:32]
    return os.path.join(lock_dir, f"{key}.lock")


def _open_lock_file(path: str) -> int:
    """Open (creating) a lock file; its directory is made 0700 when missing and must belong to
    this user, and nothing else may open it (no symlink is followed at the last two steps)."""
    directory, name = os.path.split(path)
    parent, base = os.path.split(directory)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    parent_fd = os.open(parent, _DIR_FLAGS)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(base, 0o700, dir_fd=parent_fd)
        dir_fd = os.open(base, _DIR_FLAGS, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)
    try:
        st = os.fstat(dir_fd)
        if st.st_uid != os.geteuid():
            raise PermissionError(
                errno.EPERM, f"owned by uid {st.st_uid}, not this user", directory
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(dir_fd, 0o700)
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)  # fmt: skip
    finally:
        os.close(dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PermissionError(errno.EPERM, "not a regular file", path)
    return fd


def try_store_lock(lock_file: str, *, shared: bool = False) -> bool:
    """Take the lock in ``lock_file`` without waiting: False when another holder has it. One
    this process holds already is taken again (nested; release as often as taken). Raises
    OSError when it cannot be had at all."""
    with _held_guard:
        if lock_file in _held_locks:
            _held_locks[lock_file][1] += 1
            return True
    fd = _open_lock_file(lock_file)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    with _held_guard:
        _held_locks[lock_file] = [fd, 1]
    return True


def release_store_lock(lock_file: str) -> None:
    """Give back one :func:`try_store_lock` that returned True."""
    with _held_guard:
        item = _held_locks[lock_file]
        item[1] -= 1
        if item[1] == 0:
            del _held_locks[lock_file]
            os.close(item[0])


@contextmanager
def _store_locked(store: str, root: str) -> Iterator[None]:
    """Root's lock of ``store`` for a verb: waits up to STORE_LOCK_WAIT_S, then refuses. A lock
    that cannot be had at all (a read-only /var/lib) does not stop the verb."""
    try:
        lock_file: str | None = store_lock_file(root_lock_dir(root), store)
    except HelperError:
        lock_file = None
    deadline = time.monotonic() + STORE_LOCK_WAIT_S
    while lock_file is not None:
        try:
            if try_store_lock(lock_file):
                break
        except OSError:
            lock_file = None
            break
        if time.monotonic() >= deadline:
            raise HelperError(
                f"another run is working on {store} (scheduled maintenance or a command run as "
                "root): try again when it has finished; nothing was changed"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        if lock_file is not None:
            release_store_lock(lock_file)


def _log(message: str, priority: int = syslog.LOG_INFO) -> None:
    syslog.openlog("zeroinstall-admin-helper", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    # Entry names need not be UTF-8 (argv arrives surrogate-escaped): log them escaped, never fail.
    safe = message.encode("utf-8", "backslashreplace").decode("utf-8")
    syslog.syslog(priority, safe.replace("\n", "\\n"))


def _verb_remove(args: Sequence[str], root: str) -> str:
    store, name = args
    check_system_store(store, root)
    check_entry_name(name)
    with _store_locked(store, root):
        done = remove_implementation(store, name)
    if not done.existed:
        return f"{store}/{name} was already gone"
    return f"removed {store}/{name} ({done.items} items)"


def _verb_quarantine(args: Sequence[str], root: str) -> str:
    store, name = args
    check_system_store(store, root)
    check_entry_name(name)
    with _store_locked(store, root):
        done = quarantine_entry(store, name, quarantine_dir_for(store))
    if not done.existed:
        return f"{store}/{name} was already gone"
    return f"moved {store}/{name} to {done.moved_to}"


def _no_args(step: Callable[[str], str]) -> Callable[[Sequence[str], str], str]:
    return lambda _args, root: step(root)


class Verb(NamedTuple):
    name: str
    args: tuple[str, ...]
    """Argument names, for the usage message; the count is checked exactly."""
    summary: str
    run: Callable[[Sequence[str], str], str]


VERBS: dict[str, Verb] = {
    v.name: v
    for v in (
        Verb("remove-implementation", ("STORE", "NAME"), "delete one entry of a system store",
             _verb_remove),
        Verb("quarantine", ("STORE", "NAME"),
             "move one entry of a system store to a root-only quarantine directory",
             _verb_quarantine),
        *(Verb(name, (), summary, _no_args(step)) for name, summary, step in ENABLE_STEPS),
        Verb("enable", (), "all the enable steps, in order",
             lambda _a, root: "; ".join(enable(root))),
        Verb("disable", (), "remove the helper script, the sudoers drop-in and the profile",
             lambda _a, root: "; ".join(disable(root))),
        # Maintenance (issue 23): defined in their own section at the end of this file.
        Verb("maintenance-enable",
             ("VERIFY_WHEN", "CLEAN_WHEN", "OLDER_THAN_DAYS", "KEEP", "GRACE_DAYS", "MIN_FREE",
              "MAX_FREE", "WATCH", "MAIL"),
             "write the maintenance settings, services and timers, and start the timers",
             lambda a, root: "; ".join(maintenance_enable(a, root))),
        Verb("maintenance-disable", (), "stop and remove every maintenance file this tool wrote",
             lambda _a, root: "; ".join(maintenance_disable(root))),
    )
}  # fmt: skip


def polkit_action(verb: str) -> str:
    """The polkit action id that authorises ``verb``."""
    return POLKIT_ACTION_PREFIX + verb.replace("-", "")


def run_verb(verb: str, args: Sequence[str], *, root: str = "/", caller: str | None = None) -> str:
    """Check ``verb`` and its arguments, do it, log it to syslog, and return a one-line summary.

    Raises :class:`UsageError` (nothing done) or :class:`HelperError`. ``root`` is a fake root for
    tests and image builders; the command line always uses "/". ``caller`` is who asked (pkexec's
    ``PKEXEC_UID``), for the log.
    """
    spec = VERBS.get(verb)
    if spec is None:
        raise UsageError(f"unknown verb '{verb}': use one of {', '.join(VERBS)}")
    if len(args) != len(spec.args):
        raise UsageError(f"usage: {verb} {' '.join(spec.args)}".rstrip())
    who = caller or os.environ.get("PKEXEC_UID") or str(os.getuid())
    where = "" if root == "/" else f" (root {root})"
    try:
        summary = spec.run(list(args), root)
    except HelperError as exc:
        _log(f"{verb} {' '.join(args)}{where} for uid {who} failed: {exc}", syslog.LOG_ERR)
        raise
    except OSError as exc:
        what = f"'{exc.filename}': " if exc.filename else ""
        message = f"{what}{exc.strerror or exc}"
        _log(f"{verb} {' '.join(args)}{where} for uid {who} failed: {message}", syslog.LOG_ERR)
        raise HelperError(message) from exc
    _log(f"{verb} {' '.join(args)}{where} for uid {who}: {summary}")
    return summary


_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\udc80-\udcff]"
)


def one_line(text: str) -> str:
    """``text`` as one line the app reads and a terminal shows as it is: control characters
    (newline, ESC...), bidirectional overrides and bytes that are not UTF-8 (the surrogate
    escapes of argv) as ``\\n``, ``\\xNN``, ``\\uNNNN``."""

    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        code = ord(ch)
        if ch == "\n":
            return "\\n"
        if 0xDC80 <= code <= 0xDCFF:
            return f"\\x{code - 0xDC00:02x}"
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE.sub(escape, text)


def _end_with_parent() -> bool:
    """Started by pkexec for the app: be ended (SIGTERM) when the app ends, by Ctrl-C or SIGTERM,
    as its other children are (the app cannot signal a process of root's). False when the app
    has already gone, so nothing is started for a command nobody waits for."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return True
    return os.getppid() != 1


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``VERB ARGS...``; exit 0 done, 1 failed, 2 bad arguments, 3 not root.
    Its summary (stdout) or error (stderr) is one line, whatever the arguments hold."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "zeroinstall-admin-helper"
    if os.geteuid() != 0:
        sys.stderr.write(f"{prog}: must run as root (through pkexec); nothing done\n")
        return EXIT_NOT_ROOT
    os.umask(0o022)
    caller = os.environ.get("PKEXEC_UID")  # read before the environment is replaced
    if caller is not None and not _end_with_parent():
        sys.stderr.write(f"{prog}: the program that asked for this has ended; nothing done\n")
        return EXIT_FAILED
    os.environ.clear()
    os.environ.update(ENVIRONMENT)
    if not argv:
        sys.stderr.write(f"{prog}: usage: VERB ARGS... (verbs: {', '.join(VERBS)})\n")
        return EXIT_USAGE
    try:
        print(one_line(run_verb(argv[0], argv[1:], caller=caller)))
    except UsageError as exc:
        sys.stderr.write(f"{prog}: {one_line(str(exc))}; nothing done\n")
        return EXIT_USAGE
    except HelperError as exc:
        sys.stderr.write(f"{prog}: {one_line(str(exc))}\n")
        return EXIT_FAILED
    return EXIT_OK


# --- maintenance: scheduled verification and clean-up, a watch on the shared store (issue 23) -----
#
# maintenance-enable writes a settings file and six systemd units (a service and a timer for the
# daily verification and the weekly clean-up, a service and a .path unit watching the shared
# store), each checked with `systemd-analyze verify` (calendar specs with `systemd-analyze
# calendar`) before anything is written; the timers and the path unit are enabled with the same
# symlinks `systemctl enable` makes. Every file starts with MAINTENANCE_MARK: maintenance-disable
# removes exactly the files that carry it (and the symlinks pointing at them), nothing else.

MAINTENANCE_PROGRAM = "/usr/bin/zeroinstall-admin"
"""The command the services run (from the Debian package)."""
MAINTENANCE_CONFIG = "/etc/zeroinstall-admin/maintenance.conf"
MAINTENANCE_CONFIG_DIR = "/etc/zeroinstall-admin"
UNIT_DIR = "/etc/systemd/system"
MAINTENANCE_MARK = "# Written by Zero Install Admin (zeroinstall-admin maintenance enable)."
MAINTENANCE_STATE_DIR = "/var/lib/zeroinstall-admin"
MAINTENANCE_LOG_DIR = "/var/log/zeroinstall-admin"
SYSTEMD_RUNNING_DIR = "/run/systemd/system"
MAINTENANCE_RANDOM_DELAY = "1h"
MAINTENANCE_DEFAULTS = {
    "verify": "daily", "clean": "weekly", "older_than_days": "30", "keep": "0",
    "grace_days": "2", "min_free": "10%,5G", "max_free": "20%,10G", "watch": "yes", "mail": "no",
}  # fmt: skip
"""The settings, in the order of the maintenance-enable verb's arguments."""
MAINTENANCE_KEYS = tuple(MAINTENANCE_DEFAULTS)
SENDMAIL = "/usr/sbin/sendmail"
MAIL_SPOOLS = (
    "/var/spool/postfix",
    "/var/spool/exim4",
    "/var/spool/nullmailer",
    "/var/spool/mqueue",
)
"""Made writable (when present) for the services only when mail is on."""

PACKAGE_OF.update({"systemd-analyze": "systemd", "systemctl": "systemd"})

_CALENDAR_RE = re.compile(r"^[A-Za-z0-9*:,./~ -]{1,64}$")
_DAYS_RE = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,2})?$")
_COUNT_RE = re.compile(r"^[0-9]{1,4}$")
_FREE_RE = re.compile(r"^(?:(?P<pct>[0-9]{1,2})%)?,?(?:(?P<size>[0-9]{1,6})(?P<unit>[MGT]))?$")
_SIZE_UNITS = {"M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

_SERVICE_TEMPLATE = """\
{mark}
[Unit]
Description=Zero Install Admin: {what}
ConditionPathIsDirectory={store}
After=local-fs.target{unit_extra}

[Service]
Type=oneshot
ExecStart={program} maintenance run {job}
SyslogIdentifier=zeroinstall-admin-{job}
{priority}
TimeoutStartSec={timeout}
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={store_parent}{spools}
StateDirectory=zeroinstall-admin
LogsDirectory=zeroinstall-admin
LogsDirectoryMode=0700
PrivateNetwork=yes
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
PrivateDevices=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictAddressFamilies=AF_UNIX
SystemCallArchitectures=native
UMask=0022
# Read every user's apps and the store, remove read-only trees, see what processes use.
CapabilityBoundingSet=CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_SYS_PTRACE
"""

_IDLE_PRIORITY = "Nice=19\nCPUSchedulingPolicy=idle\nIOSchedulingClass=idle"
_WATCH_PRIORITY = "Nice=10\nIOSchedulingClass=best-effort\nIOSchedulingPriority=7"

_TIMER_TEMPLATE = """\
{mark}
[Unit]
Description=Zero Install Admin: {what}, {when}

[Timer]
OnCalendar={when}
Persistent=true
RandomizedDelaySec={delay}
Unit=zeroinstall-admin-{job}.service

[Install]
WantedBy=timers.target
"""

_PATH_TEMPLATE = """\
{mark}
[Unit]
Description=Zero Install Admin: watch {store} for new entries

[Path]
PathChanged={store}
Unit=zeroinstall-admin-watch.service
TriggerLimitIntervalSec=10s
TriggerLimitBurst=50

[Install]
WantedBy=paths.target
"""


class MaintenanceFile(NamedTuple):
    path: str
    content: str
    mode: int
    wanted_by: str | None
    """The target whose .wants directory gets a symlink to it (the units to start), else None."""


def free_space_limit(spec: str) -> tuple[int | None, int | None]:
    """(percent, bytes) of a MIN_FREE/MAX_FREE setting such as "10%,5G", "10%" or "5G"; "off" is
    (None, None). The limit is the smaller of the two given. Raises UsageError."""
    if spec == "off":
        return None, None
    m = _FREE_RE.match(spec)
    if not spec or m is None or not (m.group("pct") or m.group("size")):
        raise UsageError(
            f"'{spec}' is not a free-space limit: use a percentage, a size or both, such as "
            "10%,5G (the smaller counts), or off"
        )
    pct = int(m.group("pct")) if m.group("pct") else None
    size = int(m.group("size")) * _SIZE_UNITS[m.group("unit")] if m.group("size") else None
    if pct is not None and not 1 <= pct <= 90:
        raise UsageError(f"'{spec}': the percentage must be between 1 and 90")
    return pct, size


def check_maintenance_settings(args: Sequence[str]) -> dict[str, str]:
    """The verb's arguments as settings, each checked (calendar specs only by their characters:
    :func:`check_calendar` asks systemd). Raises UsageError."""
    if len(args) != len(MAINTENANCE_KEYS):
        raise UsageError(f"maintenance-enable takes {len(MAINTENANCE_KEYS)} arguments")
    settings = dict(zip(MAINTENANCE_KEYS, args, strict=True))
    for key in ("verify", "clean"):
        if not _CALENDAR_RE.match(settings[key]):
            raise UsageError(
                f"'{settings[key]}' is not a calendar spec for {key} (such as daily, weekly or "
                "'Sun *-*-* 03:00'; letters, digits, spaces and *:,./~- only)"
            )
    for key in ("older_than_days", "grace_days"):
        if not _DAYS_RE.match(settings[key]) or float(settings[key]) > 3650:
            raise UsageError(f"'{settings[key]}' is not a number of days (0 to 3650) for {key}")
    if not _COUNT_RE.match(settings["keep"]):
        raise UsageError(f"'{settings['keep']}' is not a count (0 to 9999) for keep")
    low = free_space_limit(settings["min_free"])
    high = free_space_limit(settings["max_free"])
    if (low == (None, None)) != (high == (None, None)):
        raise UsageError("min_free and max_free are both off or both set")
    for a, b in zip(low, high, strict=True):
        if a is not None and b is not None and b < a:
            raise UsageError(
                f"max_free ({settings['max_free']}) must not be below min_free "
                f"({settings['min_free']})"
            )
    for key in ("watch", "mail"):
        if settings[key] not in ("yes", "no"):
            raise UsageError(f"'{settings[key]}' is not yes or no for {key}")
    return settings


def maintenance_config_content(settings: dict[str, str]) -> str:
    lines = [
        MAINTENANCE_MARK,
        "# Read by its maintenance runs; change it with zeroinstall-admin maintenance enable.",
    ]
    lines += [f"{key}={settings[key]}" for key in MAINTENANCE_KEYS]
    return "\n".join(lines) + "\n"


def maintenance_files(settings: dict[str, str]) -> list[MaintenanceFile]:
    """Every file maintenance-enable writes for these (checked) settings, in writing order."""
    spools = ""
    if settings["mail"] == "yes":
        spools = "".join(f" -{p}" for p in MAIL_SPOOLS)  # '-': a missing one is fine
    common = {
        "mark": MAINTENANCE_MARK, "program": MAINTENANCE_PROGRAM, "store": SHARED_STORE,
        "store_parent": SHARED_CACHE_DIR, "spools": spools,
    }  # fmt: skip
    files = [MaintenanceFile(MAINTENANCE_CONFIG, maintenance_config_content(settings), 0o644, None)]
    jobs = (
        ("verify", "verify the shared implementation cache", settings["verify"]),
        ("clean", "clean up the shared implementation cache", settings["clean"]),
    )
    for job, what, when in jobs:
        service = _SERVICE_TEMPLATE.format(
            what=what, job=job, priority=_IDLE_PRIORITY, timeout="12h", unit_extra="", **common
        )
        timer = _TIMER_TEMPLATE.format(
            mark=MAINTENANCE_MARK, what=what, when=when, job=job, delay=MAINTENANCE_RANDOM_DELAY
        )
        base = f"{UNIT_DIR}/zeroinstall-admin-{job}"
        files.append(MaintenanceFile(base + ".service", service, 0o644, None))
        files.append(MaintenanceFile(base + ".timer", timer, 0o644, "timers.target"))
    if settings["watch"] == "yes":
        what = "verify new entries of the shared implementation cache"
        service = _SERVICE_TEMPLATE.format(
            what=what,
            job="watch",
            priority=_WATCH_PRIORITY,
            timeout="1h",
            # Every start counts against systemd's start limit: many entries added in a burst
            # must not stop the watch (its runs are one at a time, each takes every new entry).
            unit_extra="\nStartLimitIntervalSec=0",
            **common,
        )
        path = _PATH_TEMPLATE.format(mark=MAINTENANCE_MARK, store=SHARED_STORE)
        base = f"{UNIT_DIR}/zeroinstall-admin-watch"
        files.append(MaintenanceFile(base + ".service", service, 0o644, None))
        files.append(MaintenanceFile(base + ".path", path, 0o644, "paths.target"))
    return files


MAINTENANCE_UNITS = tuple(
    f"zeroinstall-admin-{name}"
    for name in ("verify.service", "verify.timer", "clean.service", "clean.timer",
                 "watch.service", "watch.path")
)  # fmt: skip
"""Every unit name maintenance may write (disable looks for each)."""
MAINTENANCE_STARTED = ("zeroinstall-admin-verify.timer", "zeroinstall-admin-clean.timer",
                       "zeroinstall-admin-watch.path")  # fmt: skip


def _wants_link(unit_path: str, target: str) -> str:
    return f"{UNIT_DIR}/{target}.wants/{os.path.basename(unit_path)}"


def check_calendar(spec: str) -> str | None:
    """None if systemd accepts ``spec`` as an OnCalendar= value, else its message."""
    proc = run_program("systemd-analyze", ["calendar", spec])
    if proc.returncode == 0:
        return None
    return _first_line(proc.stderr + proc.stdout)


def check_units(files: Sequence[MaintenanceFile], *, fake_root: bool) -> str | None:
    """None if ``systemd-analyze verify`` accepts these units, written under their own names in
    a private temporary directory, without one complaint; else the first complaint. On a fake
    root the service's program need not exist on this machine (it is checked on the real one)."""
    import tempfile

    units = [f for f in files if f.path.startswith(UNIT_DIR + "/")]
    with tempfile.TemporaryDirectory(prefix="zeroinstall-admin-units-") as tmp:
        paths = []
        for f in units:
            path = os.path.join(tmp, os.path.basename(f.path))
            with open(path, "w", encoding="utf-8") as out:
                out.write(f.content)
            paths.append(path)
        proc = run_program("systemd-analyze", ["verify", "--man=no", *paths])
    complaints = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    ignored = False
    if fake_root:
        missing = f"Command {MAINTENANCE_PROGRAM} is not executable"
        ignored = any(missing in c for c in complaints)
        complaints = [c for c in complaints if missing not in c]
    if complaints:
        return complaints[0].replace(tmp + "/", "")
    if proc.returncode != 0 and not ignored:
        return f"systemd-analyze verify failed (exit {proc.returncode})"
    return None


def _marked(full: str) -> bool | None:
    """True if the regular file at ``full`` starts with MAINTENANCE_MARK; None if missing."""
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, len(MAINTENANCE_MARK) + 1) == (MAINTENANCE_MARK + "\n").encode()
    finally:
        os.close(fd)


def _systemctl(root: str, *args: str) -> str | None:
    """Run systemctl on the real system when systemd runs it; None when done or not applicable,
    else its message (the files are in place either way)."""
    if _real_root(root) != "/" or not os.path.isdir(SYSTEMD_RUNNING_DIR):
        return None
    proc = run_program("systemctl", list(args))
    return None if proc.returncode == 0 else _first_line(proc.stderr + proc.stdout)


def maintenance_enable(args: Sequence[str], root: str = "/") -> list[str]:
    """Check the settings, the calendar specs and the units, then write them all, enable the
    timers and the watch, and start them when systemd runs this machine. Idempotent; a unit
    left from an earlier enable that the new settings do not want (the watch) is removed."""
    settings = check_maintenance_settings(args)
    fake = _real_root(root) != "/"
    if not os.path.isdir(under(root, SHARED_STORE)):
        raise HelperError(
            f"{SHARED_STORE} does not exist: enable sharing first (zeroinstall-admin sharing "
            "enable); nothing was changed"
        )
    if not fake and not os.path.isfile(MAINTENANCE_PROGRAM):
        raise HelperError(
            f"{MAINTENANCE_PROGRAM} is missing: the services need the zeroinstall-admin package "
            "installed; nothing was changed"
        )
    if settings["mail"] == "yes" and not os.path.isfile(under(root, SENDMAIL)):
        raise HelperError(
            f"{SENDMAIL} is missing: install a mail transport (such as postfix or nullmailer) "
            "or leave mail off; nothing was changed"
        )
    find_program("systemd-analyze")  # before anything is written
    for key in ("verify", "clean"):
        problem = check_calendar(settings[key])
        if problem:
            raise UsageError(f"'{settings[key]}' is not a calendar spec for {key}: {problem}")
    files = maintenance_files(settings)
    for f in files:  # never overwrite a file someone else wrote under one of our names
        if _marked(under(root, f.path)) is False:
            raise HelperError(
                f"{f.path} exists and was not written by this tool: move it away first; "
                "nothing was changed"
            )
    problem = check_units(files, fake_root=fake)
    if problem:
        raise HelperError(f"systemd-analyze rejects the units: {problem}; nothing was changed")
    done = []
    for f in files:
        state = install_file(root, f.path, f.content, f.mode)
        done.append(f"{f.path}: {state}")
        if f.wanted_by:
            done.append(_link_wanted(root, f.path, f.wanted_by))
    wanted = {f.path for f in files}
    for name in MAINTENANCE_UNITS:  # e.g. the watch, when it is now off
        path = f"{UNIT_DIR}/{name}"
        if path not in wanted:
            done += _remove_unit(root, path)
    problem = _systemctl(root, "daemon-reload")
    started = [os.path.basename(f.path) for f in files if f.wanted_by]
    stopped = [u for u in MAINTENANCE_STARTED if u not in started]
    problem = problem or (stopped and _systemctl(root, "stop", *stopped)) or None
    problem = problem or _systemctl(root, "restart", *started)
    if problem:
        done.append(f"systemctl: {problem} (the units are written; start them by hand)")
    elif not fake and os.path.isdir(SYSTEMD_RUNNING_DIR):
        done.append(f"started {', '.join(started)}")
    return done


def _link_wanted(root: str, unit_path: str, target: str) -> str:
    link = _wants_link(unit_path, target)
    full = under(root, link)
    _ensure_dirs(root, os.path.dirname(link))
    if os.path.islink(full) and os.readlink(full) == unit_path:
        return f"{link}: unchanged"
    if os.path.lexists(full):
        raise HelperError(f"{link} exists and is not this tool's link: move it away first")
    os.symlink(unit_path, full)
    return f"{link}: linked"


def _remove_unit(root: str, path: str) -> list[str]:
    done = []
    for target in ("timers.target", "paths.target"):
        link = _wants_link(path, target)
        full = under(root, link)
        if os.path.islink(full) and os.readlink(full) == path:
            os.unlink(full)
            done.append(f"{link}: removed")
    return done + _remove_if_ours(root, path)


def _remove_if_ours(root: str, path: str) -> list[str]:
    """Remove ``path`` if it carries this tool's mark; what was done, in words."""
    full = under(root, path)
    mine = _marked(full)
    if mine:
        os.unlink(full)
        return [f"{path}: removed"]
    if mine is False:
        return [f"{path}: left alone (not written by this tool)"]
    return []


def _rmdir_if_empty(root: str, path: str) -> None:
    with contextlib.suppress(OSError):  # not empty, missing, or not ours to judge
        os.rmdir(under(root, path))


def maintenance_disable(root: str = "/") -> list[str]:
    """Stop the timers, the watch and any run, then remove every file maintenance-enable wrote
    (the units, their symlinks, the settings); files without this tool's mark are left alone.
    The status file and the action log stay (they are the record)."""
    present = [u for u in MAINTENANCE_UNITS if os.path.lexists(under(root, f"{UNIT_DIR}/{u}"))]
    problem = None
    if present:
        problem = _systemctl(root, "stop", *present)
    done: list[str] = []
    for name in MAINTENANCE_UNITS:
        done += _remove_unit(root, f"{UNIT_DIR}/{name}")
    done += _remove_if_ours(root, MAINTENANCE_CONFIG)
    for directory in (MAINTENANCE_CONFIG_DIR, f"{UNIT_DIR}/timers.target.wants",
                      f"{UNIT_DIR}/paths.target.wants"):  # fmt: skip
        _rmdir_if_empty(root, directory)
    if present:
        problem = problem or _systemctl(root, "daemon-reload")
    if problem:
        done.append(f"systemctl: {problem}")
    return done or ["nothing to remove: maintenance was not enabled"]


if __name__ == "__main__":
    sys.exit(main())
