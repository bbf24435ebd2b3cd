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
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import subprocess
import sys
import syslog
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

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
INCLUDEDIR_RE = re.compile(r"^\s*[@#]includedir\s+/etc/sudoers\.d\s*$", re.MULTILINE)

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


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir_at(name: str, dir_fd: int | None) -> int:
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _rename_aside(store_fd: int, name: str) -> str:
    for _ in range(20):
        temp = REMOVAL_PREFIX + secrets.token_hex(6)
        try:
            os.lstat(temp, dir_fd=store_fd)
        except FileNotFoundError:
            os.rename(name, temp, src_dir_fd=store_fd, dst_dir_fd=store_fd)
            return temp
    raise HelperError("could not find a free temporary name in the store")


def _unlink_not_dir(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _remove_tree_at(
    parent_fd: int, name: str, device: int, on_step: Callable[[str, str], None] | None
) -> int:
    """Delete the directory ``name`` in ``parent_fd`` and everything in it, walking by directory
    file descriptors: a symlink (even one swapped in for a directory mid-way) is unlinked, never
    followed, and no other filesystem is entered. Returns the number of items deleted."""
    count = 0
    # Each frame: (fd of this directory, name in its parent, the parent's fd, remaining names)
    stack: list[tuple[int, str, int, list[str]]] = []

    def enter(pfd: int, child: str) -> bool:
        """Open ``child`` as a directory to descend into; False if it is not one (then unlinked)."""
        nonlocal count
        if on_step:
            on_step("enter", child)
        try:
            fd = _open_dir_at(child, pfd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                _unlink_not_dir(child, pfd)  # swapped for a symlink or file: drop the link only
                count += 1
                return False
            if exc.errno == errno.ENOENT:
                return False
            raise
        st = os.fstat(fd)
        if st.st_dev != device:
            os.close(fd)
            raise HelperError(f"'{child}' is on another filesystem (a mount point?): not removed")
        if stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
            os.chmod(fd, stat.S_IMODE(st.st_mode) | 0o700)  # read-only trees: 0555 dirs
        stack.append((fd, child, pfd, sorted(os.listdir(fd))))
        return True

    enter(parent_fd, name)
    try:
        while stack:
            fd, dname, pfd, names = stack[-1]
            if names:
                child = names.pop()
                try:
                    st = os.lstat(child, dir_fd=fd)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    enter(fd, child)
                else:
                    if on_step:
                        on_step("unlink", child)
                    _unlink_not_dir(child, fd)
                    count += 1
                continue
            stack.pop()
            os.close(fd)
            if on_step:
                on_step("rmdir", dname)
            try:
                os.rmdir(dname, dir_fd=pfd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:  # swapped for a symlink after we left it
                    _unlink_not_dir(dname, pfd)
                elif exc.errno != errno.ENOENT:
                    raise
            count += 1
    finally:
        for fd, _, _, _ in stack:
            os.close(fd)
    return count


def remove_implementation(
    store_dir: str,
    name: str,
    *,
    on_step: Callable[[str, str], None] | None = None,
) -> Removal:
    """Delete the entry ``name`` of the store ``store_dir`` (any store: the unprivileged app uses it
    for the user's own store; the verb allows only system stores).

    The entry is first renamed to ``tmp-remove-XXXXXXXXXXXX`` in the same store, so an interrupted
    removal never leaves a partial tree under a digest name (0install would use it); then its
    directories are made writable and it is deleted walking by directory file descriptors. A
    top-level symlink or file is unlinked; its target is never touched. An entry already named
    ``tmp-remove-*`` (a removal interrupted earlier) is deleted where it is.
    ``on_step(event, name)`` is called before each unlink/rmdir/descent (progress, and tests that interrupt).
    """
    check_entry_name(name)
    check_store_path(store_dir)
    store_fd = _open_dir_at(store_dir, None)
    try:
        try:
            st = os.lstat(name, dir_fd=store_fd)
        except FileNotFoundError:
            return Removal(store_dir, name, False, 0)
        temp = name if name.startswith(REMOVAL_PREFIX) else _rename_aside(store_fd, name)
        if on_step:
            on_step("renamed", temp)
        if not stat.S_ISDIR(st.st_mode):
            _unlink_not_dir(temp, store_fd)
            return Removal(store_dir, name, True, 1)
        items = _remove_tree_at(store_fd, temp, os.fstat(store_fd).st_dev, on_step)
        return Removal(store_dir, name, True, items)
    finally:
        os.close(store_fd)


def quarantine_dir_for(store_dir: str) -> str:
    """Where :func:`quarantine_entry` puts entries of ``store_dir`` when run as the verb."""
    return os.path.join(os.path.dirname(store_dir), QUARANTINE_DIR_NAME)


def quarantine_entry(store_dir: str, name: str, quarantine_dir: str) -> Removal:
    """Move the entry ``name`` out of ``store_dir`` into ``quarantine_dir`` (created 0700 when
    missing, it must be on the same filesystem), as ``NAME.YYYYmmddTHHMMSS``: out of 0install's
    reach but kept as evidence. A symlink entry is moved as the link itself."""
    check_entry_name(name)
    check_store_path(store_dir)
    parent = os.path.dirname(quarantine_dir)
    check_store_path(parent)
    if os.path.basename(quarantine_dir) in ("", ".", ".."):
        raise UsageError(f"'{quarantine_dir}' is not a usable quarantine directory")
    store_fd = _open_dir_at(store_dir, None)
    parent_fd = _open_dir_at(parent, None)
    try:
        try:
            os.lstat(name, dir_fd=store_fd)
        except FileNotFoundError:
            return Removal(store_dir, name, False, 0)
        qname = os.path.basename(quarantine_dir)
        try:
            os.mkdir(qname, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
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
                target += "-" + secrets.token_hex(2)
            os.rename(name, target, src_dir_fd=store_fd, dst_dir_fd=q_fd)
        finally:
            os.close(q_fd)
        return Removal(store_dir, name, True, 1, os.path.join(quarantine_dir, target))
    finally:
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
        temp = f".{name}.{secrets.token_hex(4)}"
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
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
        return "written"
    finally:
        os.close(dir_fd)


def remove_file(root: str, path: str, contents: Sequence[str]) -> str:
    """Remove target ``path`` if it holds one of ``contents`` (what this tool writes): "removed",
    "absent", or "left alone" for a file someone else wrote."""
    full = under(root, path)
    if os.path.islink(full):
        return "left alone (a symlink, not written by this tool)"
    mine = ours(full, contents)
    if mine is None:
        return "absent"
    if not mine:
        return "left alone (not written by this tool: remove it by hand if you mean to)"
    os.unlink(full)
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


def sudoers_includes_dropins(root: str = "/") -> bool | None:
    """Whether /etc/sudoers reads /etc/sudoers.d; None when this user may not read it."""
    try:
        with open(under(root, SUDOERS_MAIN), encoding="utf-8", errors="replace") as f:
            return bool(INCLUDEDIR_RE.search(f.read()))
    except PermissionError:
        return None
    except OSError:
        return False


def step_install_sudoers(root: str = "/") -> str:
    program = _program(root)
    find_program("visudo")  # before anything is written
    if not sudoers_includes_dropins(root):
        raise HelperError(
            f"{SUDOERS_MAIN} does not read {SUDOERS_DIR}: add '@includedir {SUDOERS_DIR}' at its "
            "end with visudo, then try again; nothing was changed"
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


def disable(root: str = "/") -> list[str]:
    """Remove the helper script, the sudoers drop-in and the AppArmor profile this tool writes; the
    user and the shared cache (everyone's programs) stay; files someone else wrote are left
    alone."""
    done = []
    for path, contents in (
        (HELPER_SCRIPT_PATH, [helper_script_content(p) for p in SECURE_ADD_CANDIDATES]),
        (SUDOERS_DROPIN, [sudoers_content(p) for p in SECURE_ADD_CANDIDATES]),
    ):
        done.append(f"{path}: {remove_file(root, path, contents)}")
    for program in SECURE_ADD_CANDIDATES:
        profile = apparmor_profile_path(program)
        full = under(root, profile)
        if not os.path.lexists(full):
            continue
        mine = [apparmor_content(program)]
        if ours(full, mine) and _real_root(root) == "/" and apparmor_enabled(root):
            run_program("apparmor_parser", ["-R", full])  # unload first; "not loaded" is fine
        done.append(f"{profile}: {remove_file(root, profile, mine)}")
    return done


# --- verbs ----------------------------------------------------------------------------------------


def _log(message: str, priority: int = syslog.LOG_INFO) -> None:
    syslog.openlog("zeroinstall-admin-helper", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
    # Entry names need not be UTF-8 (argv arrives surrogate-escaped): log them escaped, never fail.
    safe = message.encode("utf-8", "backslashreplace").decode("utf-8")
    syslog.syslog(priority, safe.replace("\n", "\\n"))


def _verb_remove(args: Sequence[str], root: str) -> str:
    store, name = args
    check_system_store(store, root)
    check_entry_name(name)
    done = remove_implementation(store, name)
    if not done.existed:
        return f"{store}/{name} was already gone"
    return f"removed {store}/{name} ({done.items} items)"


def _verb_quarantine(args: Sequence[str], root: str) -> str:
    store, name = args
    check_system_store(store, root)
    check_entry_name(name)
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


if __name__ == "__main__":
    sys.exit(main())
