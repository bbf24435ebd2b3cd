"""What every command of the command line shares: the errors and exit codes, a group's ACTION,
the ``--store`` option and the one check of the stores it names, ``--root`` and its check, the
question before a change, the progress line, tables and JSON output.

Imported by :mod:`core.cli` and by each command group (:mod:`core.cli_clean`,
:mod:`core.cli_sharing`, :mod:`core.cli_maintenance`, :mod:`core.cli_vm`), so a store, a root, a
prompt or a name is handled the same way by every command. Start-up matters (``list`` runs in a
fraction of a second): this module imports only what is already loaded, and the rest inside the
functions that need it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import IO, Any

from core.display import display_path, json_name, safe_text

PROG = "zeroinstall-admin"


class UsageError(Exception):
    """Bad arguments: exit 2."""


class CommandError(Exception):
    """A failure to report as one line: exit 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C (workers and helpers are stopped on the way), exit 143."""


# --- command groups ------------------------------------------------------------------------------


def action_group(sub: Any, name: str, **kwargs: Any) -> Any:
    """A command group that takes an ACTION (``sharing status``, ``maintenance run``): its parser,
    added to ``sub`` (argparse subparsers) with ``kwargs`` (help, description); returns the
    subparsers its actions are added to. Without an action, a usage error names them."""
    group = sub.add_parser(name, **kwargs)
    actions = group.add_subparsers(
        dest=f"{name}_command", metavar="ACTION", parser_class=type(group)
    )

    def missing_action(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
        *rest, last = actions.choices
        listed = f"{', '.join(rest)} or {last}" if rest else last
        raise UsageError(f"{name} needs an action: {listed}")

    group.set_defaults(func=missing_action)
    return actions


# --- the stores a command works on ----------------------------------------------------------------


def store_option(p: argparse.ArgumentParser) -> None:
    """``--store DIR`` (repeatable), checked by :func:`stores_for`."""
    p.add_argument(
        "--store",
        action="append",
        metavar="DIR",
        help="an implementation store to use instead of the discovered ones (repeatable)",
    )


def root_option(p: argparse.ArgumentParser) -> None:
    """``--root PREFIX`` of the groups that change the system (sharing, maintenance), checked by
    :func:`root_of`."""
    p.add_argument(
        "--root",
        metavar="PREFIX",
        help="act on a fake root (files under PREFIX; for tests and image builders)",
    )


def root_of(args: argparse.Namespace) -> str:
    """The root a command acts on: "/" without ``--root``, else the real path of PREFIX; a usage
    error for one that is not a directory, or that is the real system."""
    root = getattr(args, "root", None)
    if root is None:
        return "/"
    if not os.path.isdir(root):
        raise UsageError(f"--root '{root}' is not a directory")
    real = os.path.realpath(root)
    if real == "/":
        raise UsageError("--root / is the real system: leave --root out instead")
    return real


EMPTY_STORE = "--store needs a directory (an empty path would mean the current directory)"


def search_problem(path: str) -> str | None:
    """Why the entries of a listable store cannot be examined (no search permission), or None.
    Listing names needs read permission, looking at each one needs search (x) permission: without
    it the store would look empty."""
    import errno

    try:
        with os.scandir(path) as it:
            first = next(it, None)
            if first is None:
                return None
            first.stat(follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return (
                "can be listed but not searched (no x permission): its entries cannot be "
                "examined; run as a user who may, or fix its permissions"
            )
        return None
    return None


def with_problem(store: Any, problem: str) -> Any:
    from dataclasses import replace

    return replace(store, problem=problem)


def named_stores(paths: Sequence[str] | None) -> list | None:
    """The stores named with ``--store``, each checked: a usage error (exit 2) for an empty path,
    a :class:`CommandError` (exit 1) naming the store and the problem when one is missing, not a
    directory, unreadable or not searchable. None when no ``--store`` was given."""
    if not paths:
        return None
    if any(raw == "" for raw in paths):
        raise UsageError(EMPTY_STORE)
    from core import stores

    chosen = stores.stores_from_paths(list(paths))
    for store in chosen:
        problem = store.problem or search_problem(store.path)
        if problem:
            raise CommandError(f"store '{display_path(store.path)}' {problem}")
    return chosen


def stores_for(args: argparse.Namespace) -> tuple[list, list[str]]:
    """The stores a command works on, and the problems to warn about: those named with
    ``--store`` (see :func:`named_stores`), or the discovered ones (each with its problem, if
    any: a store that cannot be searched has that as its problem)."""
    chosen = named_stores(getattr(args, "store", None))
    if chosen is not None:
        return chosen, []
    from core import stores
    from core.cache import _store_problem_text

    found = stores._discover(None)
    problems = list(found.problems)
    result = []
    for store in found.stores:
        if store.problem is None:
            searchable = search_problem(store.path)
            if searchable:
                store = with_problem(store, searchable)
                problems.append(_store_problem_text(store))
            result.append(store)
            continue
        usual = store.source.startswith("$") and store.problem.startswith("does not exist")
        if not usual:
            problems.append(_store_problem_text(store))
        result.append(store)
    return result, problems


def warn(problems: Sequence[str], err: IO[str]) -> None:
    for problem in problems:
        err.write(f"{PROG}: warning: {safe_text(problem)}\n")


def note(text: str, err: IO[str]) -> None:
    err.write(f"{PROG}: note: {safe_text(text)}\n")


# --- choosing entries -----------------------------------------------------------------------------


def select_entries(entries, names: Sequence[str]) -> tuple[list, list[str]]:
    """The entries the user named (digests, loosely, or paths), and the names that matched
    nothing (as given). An empty name, or one that is neither, is a usage error."""
    if not names:
        return list(entries), []
    from core.digests import DigestError, parse_user_digest
    from core.display import display_text

    wanted: dict[str, str] = {}
    paths: dict[str, str] = {}
    for name in names:
        if name == "":
            raise UsageError("an empty NAME: give a digest or the path of an entry")
        if "/" in name:
            paths[os.path.abspath(name.rstrip("/") or "/")] = name
            continue
        try:
            wanted[parse_user_digest(name).name] = name
        except DigestError as exc:
            raise UsageError(f"{display_text(name)}: {exc}") from None
    chosen = [e for e in entries if e.name in wanted or os.path.abspath(e.path) in paths]
    found = {e.name for e in chosen} | {os.path.abspath(e.path) for e in chosen}
    missing = [orig for key, orig in {**wanted, **paths}.items() if key not in found]
    return chosen, missing


# --- asking ---------------------------------------------------------------------------------------


def confirm(question: str, yes: bool, err: IO[str], refused: str) -> bool:
    """True with ``--yes`` or a "y" typed on a terminal. The question goes to ``err`` (standard
    output stays the command's result); off a terminal nothing is asked and a usage error says
    ``refused`` ("nothing was removed: check with --dry-run, then add --yes")."""
    if yes:
        return True
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty() and err.isatty()
    except (AttributeError, ValueError, OSError):
        interactive = False
    if not interactive:
        raise UsageError(f"not on a terminal, so {refused}")
    err.write(f"{safe_text(question)} [y/N] ")
    err.flush()
    answer = sys.stdin.readline()
    if not answer.endswith("\n"):
        err.write("\n")  # Ctrl-D: the next line starts on a line of its own
    return answer.strip().lower() in ("y", "yes")


# --- progress -------------------------------------------------------------------------------------


class Progress:
    """A single self-overwriting status line on a terminal; silent elsewhere. What it shows is
    escaped (a name cannot move the cursor) and cut to the terminal's width (a wrapped line could
    not be overwritten)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        try:
            self.enabled = stream.isatty()
        except (AttributeError, ValueError, OSError):
            self.enabled = False
        self.width = 0
        self.columns = 0
        if self.enabled:
            try:
                self.columns = os.get_terminal_size(stream.fileno()).columns
            except (AttributeError, ValueError, OSError):
                self.columns = 80

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        text = safe_text(text)
        if self.columns > 1 and len(text) > self.columns - 1:
            text = text[: self.columns - 2] + "…"
        pad = max(0, self.width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


# --- tables ---------------------------------------------------------------------------------------


def table(rows: list[list[str]], out: IO[str]) -> None:
    """Rows as aligned columns, every cell escaped (names are shown, never obeyed)."""
    from core.display import display_text

    rows = [[display_text(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=False)] + [row[-1]]
        out.write("  ".join(cells).rstrip() + "\n")


# --- JSON -----------------------------------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    """A time for JSON: ISO 8601 in UTC, to the second."""
    return None if ts is None else iso_seconds(int(ts))


@functools.lru_cache(maxsize=4096)
def iso_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def text(value: str | None) -> str | None:
    """Free text for JSON (reasons, details): bytes that are not UTF-8 (surrogate escapes from
    names) as ``\\xNN``, so the output is strict UTF-8. Names go through :func:`name`."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def name(value: str | bytes | None) -> str | dict[str, str] | None:
    """A file name or path in JSON (:func:`core.display.json_name`), at once for the usual
    ASCII name."""
    if isinstance(value, str) and value.isascii():
        return value
    return json_name(value)


# One instance: json.dumps with options makes a new encoder for every call.
ENCODER = json.JSONEncoder(ensure_ascii=False)
encode_string = json.encoder.encode_basestring  # type: ignore[attr-defined] # the C one


def write_json(data: Any, out: IO[str], encoded: list[bytes] | None = None) -> None:
    """JSON as strict UTF-8, whatever the locale; an array with one element per line (the C
    encoder does each line; ``indent`` would take the slow pure-Python one). ``encoded``: the
    lines of an array already encoded, as UTF-8. Lines go out as they are, never copied into one
    text (:func:`write_all`). Text that is not UTF-8 (a name not given through :func:`name`)
    comes out as ``\\xNN``, never as a lone surrogate."""
    if encoded is None and not isinstance(data, list):
        pieces = [_utf8(ENCODER.encode(data) + "\n")]
    else:
        lines = encoded if encoded is not None else [_utf8(ENCODER.encode(x)) for x in data]
        if lines:
            pieces = [b",\n"] * (2 * len(lines) + 1)  # [, line, comma, line, ..., line, ]
            pieces[0] = b"[\n"
            pieces[1::2] = lines
            pieces[-1] = b"\n]\n"
        else:
            pieces = [b"[]\n"]
    write_all(out, pieces)


def _utf8(encoded: str) -> bytes:
    try:
        return encoded.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: a byte of a name that is not UTF-8
        return (
            encoded.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").encode()
        )


def write_all(out: IO[str], pieces: list[Any]) -> None:
    """Write ``pieces`` (UTF-8 bytes) to ``out`` in order: straight to its file descriptor with
    ``writev``, a thousand at a time (7 MB of 10,000 lines in a dozen system calls, with no copy
    of its own), or joined when ``out`` has none."""
    out.flush()
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        out.write(b"".join(pieces).decode("utf-8"))
        return
    at_most = 1024  # IOV_MAX on Linux; anything less only means more calls
    start = 0
    while start < len(pieces):
        batch: list[Any] = pieces[start : start + at_most]
        written = os.writev(fd, batch)
        if written == sum(map(len, batch)):  # nearly always: all of it
            start += len(batch)
            continue
        # A write may stop part way (a pipe's reader slow, a signal): go on from there.
        for piece in batch:
            if written < len(piece):
                pieces[start] = memoryview(piece)[written:]
                break
            written -= len(piece)
            start += 1
