"""Manifest digest names: parsing, formatting and validation.

A digest names an implementation directory: ``sha1=<hex>``, ``sha1new=<hex>``, ``sha256=<hex>`` or
``sha256new_<base32>``. Strict parsing (directory names) accepts exactly those four prefixes, as
0install does; loose parsing (what a user types) also accepts ``sha256new=``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

ALGORITHMS: tuple[str, ...] = ("sha1", "sha1new", "sha256", "sha256new")
"""All manifest algorithms, oldest first."""

DEFAULT_ALGORITHM = "sha256new"
"""The algorithm 0install prefers today."""

PREFERENCE: tuple[str, ...] = ("sha256new", "sha256", "sha1new", "sha1")
"""Best first, as 0install chooses when a feed gives several digests."""

_STRICT_PREFIXES = ("sha1=", "sha1new=", "sha256=", "sha256new_")
_LOOSE_PREFIXES = ("sha256new=",) + _STRICT_PREFIXES

_VALUE_RE = {
    "sha1": re.compile(r"[0-9a-f]{40}"),
    "sha1new": re.compile(r"[0-9a-f]{40}"),
    "sha256": re.compile(r"[0-9a-f]{64}"),
    "sha256new": re.compile(r"[A-Z2-7]{52}"),
}


class DigestError(ValueError):
    """A string that is not a usable digest; the message says why and names it."""


class Digest(NamedTuple):
    algorithm: str
    value: str

    @property
    def name(self) -> str:
        """The directory name 0install stores this digest under."""
        return format_digest(self.algorithm, self.value)

    def __str__(self) -> str:
        return self.name


_digest = functools.partial(tuple.__new__, Digest)
"""Digest((algorithm, value)) without the generated Python ``__new__``: parsing the names of
10,000 entries spent a tenth of its time there."""


def hash_function(algorithm: str) -> str:
    """The hashlib name behind a manifest algorithm."""
    if algorithm in ("sha1", "sha1new"):
        return "sha1"
    if algorithm in ("sha256", "sha256new"):
        return "sha256"
    raise DigestError(
        f"Unknown manifest algorithm '{algorithm}': use one of {', '.join(ALGORITHMS)}"
    )


def format_digest(algorithm: str, value: str) -> str:
    hash_function(algorithm)  # validates the algorithm
    sep = "_" if algorithm == "sha256new" else "="
    return f"{algorithm}{sep}{value}"


def encode_value(algorithm: str, raw_digest: bytes) -> str:
    """The textual digest value for a raw hash of the whole manifest."""
    if algorithm == "sha256new":
        import base64

        return base64.b32encode(raw_digest).decode("ascii").rstrip("=")
    return raw_digest.hex()


def parse_digest(name: str, *, loose: bool = False) -> Digest:
    """Split a digest name into algorithm and value.

    Strict (the default) is what 0install applies to directory names; it checks only the prefix,
    like 0install. ``loose=True`` also accepts ``sha256new=`` and surrounding white space, for user
    input. Use :func:`value_problem` to check the value's shape.
    """
    if loose:
        name = name.strip()
    elif name.startswith("sha256new_"):  # nearly every name in a cache: the shortest way
        return _digest(("sha256new", name[10:]))
    for prefix in _LOOSE_PREFIXES if loose else _STRICT_PREFIXES:
        if name.startswith(prefix):
            return _digest((prefix[:-1], name[len(prefix) :]))
    raise DigestError(
        f"Unknown digest type '{name}': expected sha1=, sha1new=, sha256= or sha256new_ "
        "followed by the digest value"
    )


def value_problem(digest: Digest) -> str | None:
    """Why the digest's value cannot be a real hash (wrong length or alphabet), or None if it
    can."""
    pattern = _VALUE_RE[digest.algorithm]
    if pattern.fullmatch(digest.value):
        return None
    if digest.algorithm == "sha256new":
        return f"the value of '{digest.name}' is not 52 characters of upper-case base32 (A-Z, 2-7)"
    length = 40 if digest.algorithm in ("sha1", "sha1new") else 64
    return f"the value of '{digest.name}' is not {length} lower-case hex digits"


def parse_user_digest(text: str) -> Digest:
    """Parse a digest typed by a user: loose prefix, and the value must be well-formed."""
    digest = parse_digest(text, loose=True)
    problem = value_problem(digest)
    if problem:
        raise DigestError(problem[0].upper() + problem[1:])
    return digest


def is_strict_digest_name(name: str) -> bool:
    """True when ``name`` has a strict prefix and a well-formed value: a real implementation
    name."""
    try:
        digest = parse_digest(name)
    except DigestError:
        return False
    return value_problem(digest) is None


def new_hasher(algorithm: str) -> Any:
    """A new hashlib object for the algorithm's hash (hashlib is loaded on first use)."""
    import hashlib

    return hashlib.new(hash_function(algorithm))
