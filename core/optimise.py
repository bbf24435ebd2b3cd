"""Optimise a store: hard-link identical files across its implementations, as
``0install store optimise`` does.

Two files are identical when their implementations' ``.manifest`` files give them the same type
(``F`` or ``X``), hash, mtime and size. Before linking, each file is checked against its manifest
line (type, size, mtime, executable bit), and the file every other one will point at is hashed
again, so a damaged file never spreads. A file is replaced by linking the kept one under a
temporary name in the same directory and renaming that over it (atomic: the path never goes
missing); the directory's permissions and mtime are put back. Walks go by directory file
descriptors and never follow a symlink. Afterwards every affected implementation is verified.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from core.cache import list_entries
from core.digests import hash_function
from core.display import display_text
from core.manifest import index_manifest, read_stored_manifest
from core.stores import Store

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class OptimiseResult:
    store: str
    dry_run: bool
    groups: int = 0  # sets of identical files found in two or more places
    linked: int = 0  # files replaced by a hard link (or that would be)
    saved: int = 0  # disk bytes freed (or that would be): inodes whose last link went
    saved_size: int = 0  # the same in apparent bytes
    affected: list[str] = field(default_factory=list)  # entry names that changed (or would)
    skipped: list[str] = field(default_factory=list)  # files left alone, with why
    problems: list[str] = field(default_factory=list)  # entries or stores that were not read
    not_verified: list[str] = field(default_factory=list)  # "name: status: detail" after linking
    refused: bool = False  # nothing was looked at (``problems`` says why): no figures to show


@dataclass(frozen=True, slots=True)
class _Place:
    entry: str
    rel: bytes  # "/dir/file" inside the entry, as in the manifest


def _open_parent(store_fd: int, place: _Place) -> tuple[int, bytes]:
    """An fd of the directory holding the file, and its leaf name; no symlink is followed."""
    parts = place.rel.strip(b"/").split(b"/")
    fd = os.open(place.entry, _DIR_FLAGS, dir_fd=store_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _hash_at(store_fd: int, place: _Place, hash_name: str) -> str:
    """The hex hash of a file's content, opened through directory fds, never following a link."""
    import hashlib

    dfd, leaf = _open_parent(store_fd, place)
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(leaf, flags | getattr(os, "O_NOATIME", 0), dir_fd=dfd)
        except PermissionError:
            fd = os.open(leaf, flags, dir_fd=dfd)
    finally:
        os.close(dfd)
    try:
        h = hashlib.new(hash_name)
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def _matches(st: os.stat_result, kind: str, mtime: int, size: int) -> bool:
    if not stat.S_ISREG(st.st_mode) or st.st_size != size or int(st.st_mtime) != mtime:
        return False
    executable = bool(st.st_mode & stat.S_IXUSR)
    return executable == (kind == "X")


def _replace_with_link(keep_fd: int, keep_leaf: bytes, dir_fd: int, leaf: bytes) -> None:
    """Make ``leaf`` in ``dir_fd`` a hard link to ``keep_leaf`` in ``keep_fd``, atomically,
    leaving the directory's mode and mtime as they were."""
    before = os.fstat(dir_fd)
    mode = stat.S_IMODE(before.st_mode)
    if mode & 0o300 != 0o300:
        os.chmod(dir_fd, mode | 0o300)
    temp = b".optimise-" + secrets.token_hex(6).encode()
    try:
        os.link(keep_leaf, temp, src_dir_fd=keep_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        try:
            os.rename(temp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:
            os.unlink(temp, dir_fd=dir_fd)
            raise
    finally:
        os.utime(dir_fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        if mode & 0o300 != 0o300:
            os.chmod(dir_fd, mode)


def _may_change(store: Store) -> str | None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return None
    owner = store.owner_uid
    if owner is not None and owner == os.geteuid():
        return None
    return (
        f"{store.path} belongs to another user: optimise it as root "
        f"(sudo zeroinstall-admin optimise --store {store.path})"
    )


def _refusal(store: Store, dry_run: bool) -> str | None:
    """Why this store cannot be optimised at all (then nothing is read), or None."""
    if store.problem:
        return f"{store.path} {store.problem}: nothing to optimise"
    if not os.access(store.path, os.R_OK | os.X_OK):
        return (
            f"{store.path} can be listed but not searched (no 'x' permission): its entries "
            "cannot be read; optimise it as its owner or as root"
        )
    return None if dry_run else _may_change(store)


def _mounts_by_entry(store_path: str) -> dict[str, str]:
    """{entry name: a mount point inside it} for the entries of the store that hold one (read from
    /proc/self/mountinfo, which lists every mount this process sees)."""
    from core.treewalk import mounts_under

    base = os.path.realpath(store_path)
    found: dict[str, str] = {}
    for mount in mounts_under(base):
        rest = mount[len(base) + 1 :]
        if rest:
            found.setdefault(rest.split("/", 1)[0], mount)
    return found


def optimise_store(
    store: Store,
    *,
    dry_run: bool = False,
    verify: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> OptimiseResult:
    """Hard-link identical files across the implementations of one store (see the module doc).

    With ``dry_run`` nothing changes and the result says what would be saved. ``on_progress(done,
    total)`` counts groups of identical files; ``cancel`` stops between groups.
    """
    result = OptimiseResult(store.path, dry_run)
    refused = _refusal(store, dry_run)
    if refused:
        result.problems.append(refused)
        result.refused = True
        return result
    mounted = _mounts_by_entry(store.path)
    for name, mount in sorted(mounted.items()):
        result.problems.append(
            f"{display_text(name)}: it holds a mount point, {display_text(mount)}: left alone "
            f"(unmount it first: umount '{display_text(mount)}')"
        )
    groups: dict[tuple, list[_Place]] = {}
    algorithms: dict[str, str] = {}
    for entry in list_entries([store]):
        if entry.kind != "implementation" or entry.digest is None or entry.name in mounted:
            continue
        try:
            manifest = read_stored_manifest(os.fsencode(entry.path))
            if manifest is None:
                continue  # 0install's optimise needs the .manifest too
            items = index_manifest(manifest, entry.digest.algorithm)
        except Exception as exc:  # noqa: BLE001 - one bad entry must not stop the rest
            result.problems.append(f"{entry.name}: its .manifest could not be read ({exc})")
            continue
        hash_name = hash_function(entry.digest.algorithm)
        algorithms[entry.name] = hash_name
        for rel, item in items.items():
            if item.kind in ("F", "X") and item.mtime is not None and item.size is not None:
                key = (item.kind, hash_name, item.hash, item.mtime, item.size)
                groups.setdefault(key, []).append(_Place(entry.name, rel))
    todo = [(k, v) for k, v in groups.items() if len({(p.entry, p.rel) for p in v}) > 1]
    try:
        store_fd = os.open(store.path, _DIR_FLAGS)
    except OSError as exc:
        result.problems.append(f"{store.path} cannot be opened: {exc.strerror or exc}")
        return result
    affected: set[str] = set()
    try:
        for n, (key, places) in enumerate(todo, 1):
            if cancel is not None and cancel.is_set():
                break
            _one_group(store_fd, key, places, result, affected, dry_run)
            if on_progress is not None:
                on_progress(n, len(todo))
    finally:
        os.close(store_fd)
    result.affected = sorted(affected)
    if verify and not dry_run and result.affected:
        from core.verify import verify_paths

        paths = [os.path.join(store.path, name) for name in result.affected]
        for name, outcome in zip(result.affected, verify_paths(paths, cancel=cancel), strict=True):
            if outcome is not None and outcome.status != "ok":
                result.not_verified.append(f"{name}: {outcome.status}: {outcome.detail}")
    return result


def _one_group(
    store_fd: int,
    key: tuple,
    places: list[_Place],
    result: OptimiseResult,
    affected: set[str],
    dry_run: bool,
) -> None:
    """Link one set of identical files (by their manifests) to one checked copy of them."""
    kind, hash_name, want_hash, mtime, size = key
    checked = _as_in_manifest(store_fd, places, kind, mtime, size, result)
    if len({(s.st_dev, s.st_ino) for _, s in checked}) < 2:
        return
    keeper = _keeper(
        store_fd, _linked_inside(checked, result), hash_name, want_hash, dry_run, result
    )
    if keeper is None:
        return
    result.groups += 1
    keep_place, keep_st = keeper
    # Paths per inode to replace; an inode is freed when all its links are among them.
    replace: dict[tuple[int, int], list[tuple[_Place, os.stat_result]]] = {}
    for place, st in checked:
        inode = (st.st_dev, st.st_ino)
        if inode == (keep_st.st_dev, keep_st.st_ino):
            continue
        if st.st_dev != keep_st.st_dev:
            result.skipped.append(f"{_shown(place)}: on another filesystem")
            continue
        replace.setdefault(inode, []).append((place, st))
    if replace:
        _link_to_keeper(store_fd, keep_place, replace, result, affected, dry_run)


def _shown(place: _Place) -> str:
    return f"{place.entry}{os.fsdecode(place.rel)}"


def _as_in_manifest(
    store_fd: int, places: list[_Place], kind: str, mtime: int, size: int, result: OptimiseResult
) -> list[tuple[_Place, os.stat_result]]:
    """The places whose file is as its manifest line says (type, size, mtime, executable bit),
    with their lstat; the others are named in ``result.skipped``."""
    checked: list[tuple[_Place, os.stat_result]] = []
    for place in places:
        try:
            dfd, leaf = _open_parent(store_fd, place)
            try:
                st = os.lstat(leaf, dir_fd=dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            result.skipped.append(f"{_shown(place)}: {exc.strerror or exc}")
            continue
        if not _matches(st, kind, mtime, size):
            result.skipped.append(f"{_shown(place)}: differs from its manifest line")
            continue
        checked.append((place, st))
    return checked


def _linked_inside(
    checked: list[tuple[_Place, os.stat_result]], result: OptimiseResult
) -> list[tuple[_Place, os.stat_result]]:
    """The files whose every link the manifests account for: only those are linked to.

    A file with links the manifests do not account for (outside the store, or in an entry
    without a .manifest) is never linked to: a change made through that link would reach into
    every implementation linked to it. Replacing such a file only drops its link from here."""
    here: dict[tuple[int, int], int] = {}
    for _place, st in checked:
        here[st.st_dev, st.st_ino] = here.get((st.st_dev, st.st_ino), 0) + 1
    inside = []
    for place, st in checked:
        outside = st.st_nlink - here[st.st_dev, st.st_ino]
        if outside > 0:
            result.skipped.append(
                f"{_shown(place)}: it has {st.st_nlink} links, {outside} outside the store's "
                "manifests: never linked to"
            )
        else:
            inside.append((place, st))
    return inside


def _keeper(
    store_fd: int,
    inside: list[tuple[_Place, os.stat_result]],
    hash_name: str,
    want_hash: str,
    dry_run: bool,
    result: OptimiseResult,
) -> tuple[_Place, os.stat_result] | None:
    """The copy every other one will point at: the one that already has the most links, after
    checking its content (a dry run trusts the manifests: reading the content would move the
    access times, "last used"); None when no copy matches its manifest."""
    for place, st in sorted(inside, key=lambda ps: -ps[1].st_nlink):
        if dry_run:
            return place, st
        try:
            if _hash_at(store_fd, place, hash_name) == want_hash:
                return place, st
        except OSError:
            continue  # unreadable: try the next copy
        result.skipped.append(f"{_shown(place)}: its content does not match its manifest")
    return None


def _link_to_keeper(
    store_fd: int,
    keep_place: _Place,
    replace: dict[tuple[int, int], list[tuple[_Place, os.stat_result]]],
    result: OptimiseResult,
    affected: set[str],
    dry_run: bool,
) -> None:
    """Replace every file of ``replace`` (paths by inode) with a link to the kept one, counting
    the space freed when all of an inode's links went."""
    keep_fd = keep_leaf = None
    if not dry_run:
        try:
            keep_fd, keep_leaf = _open_parent(store_fd, keep_place)
        except OSError as exc:
            result.skipped.append(f"{keep_place.entry}: {exc.strerror or exc}")
            return
    try:
        for links in replace.values():
            done = 0
            for place, st in links:
                if not dry_run:
                    assert keep_fd is not None and keep_leaf is not None
                    if not _link_one(store_fd, keep_fd, keep_leaf, place, st, result):
                        continue
                done += 1
                result.linked += 1
                affected.add(place.entry)
            st0 = links[0][1]
            if done == len(links) and done >= st0.st_nlink:
                result.saved += st0.st_blocks * 512
                result.saved_size += st0.st_size
    finally:
        if keep_fd is not None:
            os.close(keep_fd)


def _link_one(
    store_fd: int,
    keep_fd: int,
    keep_leaf: bytes,
    place: _Place,
    st: os.stat_result,
    result: OptimiseResult,
) -> bool:
    """Replace the file at ``place`` (still the inode of ``st``) with a link to the kept one;
    False, with why in ``result.skipped``, when it was left alone."""
    try:
        dfd, leaf = _open_parent(store_fd, place)
    except OSError as exc:
        result.skipped.append(f"{place.entry}: {exc.strerror or exc}")
        return False
    try:
        now = os.lstat(leaf, dir_fd=dfd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            result.skipped.append(f"{_shown(place)}: changed meanwhile")
            return False
        _replace_with_link(keep_fd, keep_leaf, dfd, leaf)
    except OSError as exc:
        if exc.errno == errno.EMLINK:
            result.skipped.append(f"{place.entry}: too many links to one file")
        else:
            result.skipped.append(f"{_shown(place)}: {exc.strerror or exc}")
        return False
    finally:
        os.close(dfd)
    return True


def record(results: list[OptimiseResult], log_path: str | None = None) -> str | None:
    """Put each store's optimisation in the action log; None, or why it could not be written."""
    from core import actionlog

    records = [
        actionlog.Record(
            "optimised",
            r.store,
            f"{len(r.affected)} implementations",
            size=r.saved,
            detail=f"{r.linked} files hard-linked",
        )
        for r in results
        if r.linked and not r.dry_run
    ]
    return actionlog.record(records, log_path) if records else None
