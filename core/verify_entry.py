"""Verifying one cache entry: the manifest of its contents against the digest in its name and its
stored ``.manifest``, with what changed, path by path (:class:`Change`), in a verdict
(:class:`VerifyOutcome`) that travels between our processes. :func:`verify_directory` does it all
in this thread; :mod:`core.verify` runs many entries on the worker pool, with the same verdicts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core.digests import Digest, DigestError, parse_digest
from core.display import PathLike, display_path
from core.manifest import (
    ManifestError,
    ManifestItem,
    ManifestWalk,
    hash_manifest,
    index_manifest,
    open_entry,
    read_stored_manifest,
    splice,
)
from core.treewalk import file_flags_for

_TYPE_WORDS = {"D": "directory", "F": "file", "X": "executable file", "S": "symlink"}


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the recorded manifest and the actual tree."""

    path: str
    change: Literal["added", "removed", "modified"]
    what: tuple[str, ...] = ()  # for "modified": e.g. "content", "mtime 30 -> 31", "size 11 -> 12"
    raw: bytes = field(default=b"", compare=False)  # the path's bytes (``path`` is display_path's)

    @property
    def path_bytes(self) -> bytes:
        return self.raw or os.fsencode(self.path)

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
        return [Change("/.manifest", "modified", (f"unreadable: {exc}",), b"/.manifest")]
    after = index_manifest(actual, algorithm)
    changes = []
    for path in sorted(before.keys() | after.keys()):
        shown = display_path(path)
        a, b = before.get(path), after.get(path)
        if a == b:
            continue
        if b is None:
            assert a is not None  # the path came from one of the two
            changes.append(Change(shown, "removed", (_TYPE_WORDS[a.kind],), path))
        elif a is None:
            changes.append(Change(shown, "added", (_TYPE_WORDS[b.kind],), path))
        else:
            changes.append(Change(shown, "modified", _what_differs(a, b), path))
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
    # When the verdict is "unchanged since the last full hash" (core.records): that hash's time.
    unchanged_since: float | None = None

    def to_wire(self) -> list[Any]:
        """This verdict as plain values, for another of our processes (through :mod:`marshal`
        or JSON alike): ``[status, detail, expected, actual, recorded, changes, since]``, each
        change ``[path, change, what, path bytes as text with surrogate escapes]``."""
        return [
            self.status,
            self.detail,
            self.expected,
            self.actual,
            self.recorded,
            [[c.path, c.change, list(c.what), os.fsdecode(c.path_bytes)] for c in self.changes],
            self.unchanged_since,
        ]

    @classmethod
    def from_wire(cls, data: Sequence[Any]) -> VerifyOutcome:
        """The verdict :meth:`to_wire` made ``data`` of."""
        status, detail, expected, actual, recorded, changes, since = data
        return cls(
            status,
            detail,
            expected,
            actual,
            recorded,
            [
                Change(path, change, tuple(what), os.fsencode(raw))
                for path, change, what, raw in changes
            ],
            since,
        )


def compare(digest: Digest, actual_manifest: bytes, stored_manifest: bytes | None) -> VerifyOutcome:
    """Judge an implementation as 0install's ``verify`` does, with a readable explanation."""
    alg = digest.algorithm
    actual_value = hash_manifest(alg, actual_manifest)
    if stored_manifest is None:
        stored_value = None
    elif stored_manifest == actual_manifest:
        stored_value = actual_value  # the usual case: no second hash
    else:
        stored_value = hash_manifest(alg, stored_manifest)
    expected = digest.name
    prefix = expected[: len(expected) - len(digest.value)]
    actual = prefix + actual_value
    recorded = None if stored_value is None else prefix + stored_value
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
            "Contents do not match the digest, but they match the .manifest file: both were "
            "replaced (planted or renamed entry)."
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


def outcome_for_error(exc: ManifestError) -> VerifyOutcome:
    """A verdict for a tree that could not be read or cannot be an implementation."""
    if exc.kind == "invalid":
        return VerifyOutcome("corrupt", str(exc))
    return VerifyOutcome("error", str(exc))


def verify_directory(path: PathLike, digest: Digest | None = None) -> VerifyOutcome:
    """Verify one implementation directory in this thread (:mod:`core.verify` spreads many over
    worker processes, with the same verdicts). ``digest`` defaults to the one in the directory's
    name."""
    root = os.fsencode(path)
    if digest is None:
        name = os.path.basename(root.rstrip(b"/")).decode("utf-8", "replace")
        try:
            digest = parse_digest(name)
        except DigestError as exc:
            return VerifyOutcome("skipped", f"not an implementation: {exc}")
    try:
        fd, st = open_entry(root)
        try:
            walk = ManifestWalk(root, digest.algorithm, file_flags_for(st.st_uid))
            manifest = splice(walk.run(fd), {})
            stored = read_stored_manifest(root, fd)
        finally:
            os.close(fd)
    except ManifestError as exc:
        result = outcome_for_error(exc)
        result.expected = digest.name
        return result
    return compare(digest, manifest, stored)
