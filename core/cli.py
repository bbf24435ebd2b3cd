"""The ``zeroinstall-admin`` command line.

The console entry point is ``gui.launch:run``: it sends subcommands here and opens the window
otherwise, so this module never loads Qt and works without a display. Errors are one line naming
the path and the problem, never a traceback. The commands are listed once, in :data:`GROUPS`.
Exit codes: 0 success, 1 failure (``verify``: something corrupt or in error), 2 usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import IO, Any

from core.cli_common import EMPTY_STORE as _EMPTY_STORE
from core.cli_common import ENCODER as _ENCODER
from core.cli_common import (
    PROG,
    CommandError,
    Progress,
    Terminated,
    UsageError,
    select_entries,
    store_option,
    stores_for,
    table,
    warn,
    write_json,
)
from core.cli_common import encode_string as _encode_string
from core.cli_common import (
    iso_seconds as _iso_seconds,
)
from core.cli_common import name as _name
from core.cli_common import search_problem as _search_problem
from core.cli_common import text as _text
from core.cli_common import with_problem as _with_problem
from core.digests import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    DigestError,
    format_digest,
)
from core.display import display_path, display_text, json_name, safe_text
from core.units import ago_text, size_text


@dataclass(frozen=True)
class CommandGroup:
    """Subcommands defined together: their names and the module that defines them. The module's
    ``register(sub, store_option)`` adds their parsers to ``sub`` (argparse subparsers), each with
    ``func=handler`` set, where ``handler(args, out, err) -> int``. Heavy imports go inside the
    handlers, so that building a parser (``--help``) stays fast."""

    module: str
    commands: tuple[str, ...]


# The one list of commands: the parser, the dispatch and the launcher (is argv a command, or the
# window?) all read it. In --help's order.
GROUPS: tuple[CommandGroup, ...] = (
    CommandGroup("core.cli", ("digest", "manifest", "stores", "list", "verify")),
    CommandGroup("core.cli_sharing", ("sharing",)),
    CommandGroup("core.cli_clean", ("clean", "pin", "unpin", "delete", "optimise", "optimize")),
    CommandGroup("core.cli_vm", ("vm", "snippet")),
    CommandGroup("core.cli_maintenance", ("maintenance",)),
    CommandGroup("core.cli_repair", ("repair",)),
    CommandGroup("core.fleet", ("fleet",)),
)
COMMANDS = frozenset(name for group in GROUPS for name in group.commands)


def group_of(command: str | None) -> CommandGroup | None:
    """The group that defines ``command`` (None for anything else)."""
    return next((g for g in GROUPS if command in g.commands), None)


# --- formatting helpers ---------------------------------------------------------------------------


def _when(ts: float | None, reliable: bool = True) -> str:
    if ts is None:
        return "never"
    if not reliable:
        return "unknown (noatime)"

    return ago_text(time.time() - ts)


# --- digest / manifest ----------------------------------------------------------------------------


def _check_dir(path: str) -> str:
    """The directory to read: ``path``, or what it points to when it is a symlink to a directory
    (0install reads through one given on its command line; never inside the tree)."""
    shown = display_path(path)
    if not os.path.lexists(path):
        raise CommandError(f"'{shown}' does not exist")
    if not os.path.isdir(path):
        raise CommandError(
            f"'{shown}' is not a directory (archives are not supported: unpack it first)"
        )
    return os.path.realpath(path) if os.path.islink(path) else path


def cmd_digest(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core.manifest import generate_manifest, hash_manifest

    manifest = generate_manifest(_check_dir(args.dir), args.algorithm)
    out.write(format_digest(args.algorithm, hash_manifest(args.algorithm, manifest)) + "\n")
    return 0


def cmd_manifest(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if args.algorithm not in ALGORITHMS:
        raise UsageError(
            f"unknown algorithm '{display_text(args.algorithm)}': "
            f"use one of {', '.join(ALGORITHMS)}"
        )
    from core.manifest import generate_manifest, hash_manifest

    manifest = generate_manifest(_check_dir(args.dir), args.algorithm)
    digest = format_digest(args.algorithm, hash_manifest(args.algorithm, manifest))
    out.flush()
    raw = getattr(out, "buffer", None)
    if raw is not None:
        raw.write(manifest + digest.encode() + b"\n")
        raw.flush()
    else:  # a text-only stream (tests): names that are not UTF-8 come out escaped
        out.write(manifest.decode("utf-8", "backslashreplace") + digest + "\n")
    return 0


# --- stores ---------------------------------------------------------------------------------------


def cmd_stores(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import stores

    if args.store and "" in args.store:
        raise UsageError(_EMPTY_STORE)
    if args.store:
        found = stores.stores_from_paths(args.store)
    else:
        discovery = stores._discover(None)
        found = discovery.stores
        warn(discovery.problems, err)
    for i, store in enumerate(found):
        searchable = None if store.problem else _search_problem(store.path)
        if searchable:
            found[i] = _with_problem(store, searchable)
    if args.json:
        write_json(
            [
                {
                    "path": json_name(s.path),
                    "kind": s.kind,
                    "label": json_name(s.label),
                    "source": json_name(s.source),
                    "problem": _text(s.problem),
                }
                for s in found
            ],
            out,
        )
        return 0
    # The labels the window and list show: user, shared, system N, or the path.
    labels = [display_path(s.label) for s in found]
    width = max((len(label) for label in labels), default=0)
    for s, label in zip(found, labels, strict=True):
        state = f"  ({safe_text(s.problem)})" if s.problem else ""
        out.write(
            f"{label:<{width}}  {display_path(s.path)}{state}\n"
            f"{'':<{width}}  from {display_path(s.source)}\n"
        )
    return 0


# --- list -----------------------------------------------------------------------------------------


def _scan_and_measure(
    args: argparse.Namespace,
    err: IO[str],
    on_entry: Callable[[Any], None] | None = None,
    ordered: bool = True,
):
    """The chosen stores' entries, classified and measured in one pass
    (:func:`core.measure.scan_and_measure`), with a progress line on a terminal; ``on_entry`` is
    called for each as it is done. Returns the scan (its entries sorted unless not ``ordered``)
    and the totals."""
    from core import measure

    chosen, problems = stores_for(args)
    progress = Progress(err)

    def show(done: int, total: int) -> None:
        progress.show(f"Measuring sizes: {done:,} of {total:,} entries")

    try:
        result, totals = measure.scan_and_measure(
            chosen, on_entry, on_progress=show if progress.enabled else None, ordered=ordered
        )
    finally:
        progress.clear()
    warn(list(dict.fromkeys(problems + result.problems)), err)
    return result, totals


_KEYS = (
    "store",
    "store_kind",
    "store_label",
    "name",
    "path",
    "kind",
    "reason",
    "digest",
    "algorithm",
    "program",
    "feed",
    "version",
    "size",
    "disk",
    "files",
    "last_used",
    "last_used_known",
    "added",
    "owner",
    "used_by",
    "error",
)
"""The keys of each entry of ``list --json``, in order (the documented schema)."""

_UNMEASURED = (
    '"size": null, "disk": null, "files": null, "last_used": null, "last_used_known": false'
)


class _EncodedTexts(dict):
    """Free texts (or None) and their JSON, each encoded once, when first looked up."""

    def __missing__(self, value: str | None) -> str:
        encoded = self[value] = "null" if value is None else _encode_string(_text(value) or "")
        return encoded


def _entry_encoder() -> Callable[[Any], str]:
    """A function encoding one entry of ``list --json`` (:data:`_KEYS`): the same text as
    ``json.dumps`` of the dict, at a third of its cost for 10,000 entries. The texts that repeat
    (the store, kinds, programs, owners) are encoded once per run."""
    text = _EncodedTexts()  # text[value]: a dict lookup, the encoding done on the first one
    stores: dict[int, tuple[Any, str]] = {}

    def encode(entry) -> str:
        store = entry.store
        known = stores.get(id(store))
        if known is None or known[0] is not store:
            head = (
                f'{{"store": {_json_name(store.path)}, "store_kind": {text[store.kind]}, '
                f'"store_label": {text[store.label]}, "name": '
            )
            known = stores[id(store)] = (store, head)
        name = entry.name
        quoted = _encode_string(name) if name.isascii() else _json_name(name)
        path = entry.path
        digest = entry.digest
        feed = entry.feed
        usage = entry.usage
        if usage is None:
            measured = _UNMEASURED
        else:
            last = usage.last_used if entry.atime_reliable else None
            last_text = "null" if last is None else f'"{_iso_seconds(int(last))}"'
            known_text = "true" if entry.atime_reliable else "false"
            measured = (
                f'"size": {usage.size}, "disk": {usage.disk}, "files": {usage.files}, '
                f'"last_used": {last_text}, "last_used_known": {known_text}'
            )
        added = "null" if entry.added is None else f'"{_iso_seconds(int(entry.added))}"'
        used_by = _ENCODER.encode([_text(u) for u in entry.used_by]) if entry.used_by else "[]"
        return (
            f"{known[1]}{quoted}, "
            f'"path": {_encode_string(path) if path.isascii() else _json_name(path)}, '
            f'"kind": {text[entry.kind]}, "reason": {text[entry.reason or None]}, '
            f'"digest": {quoted if digest else "null"}, '  # the name, parsed strictly
            f'"algorithm": {text[digest.algorithm] if digest else "null"}, '
            f'"program": {text[entry.program]}, '
            f'"feed": {text[feed.feed_url] if feed else "null"}, '
            f'"version": {text[feed.version or None] if feed else "null"}, {measured}, '
            f'"added": {added}, '
            f'"owner": {text[entry.owner]}, "used_by": {used_by}, '
            f'"error": {text[usage.error] if usage else "null"}}}'
        )

    return encode


def _json_name(value: str | None) -> str:
    name = _name(value)
    return _encode_string(name) if isinstance(name, str) else _ENCODER.encode(name)


def cmd_list(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import pool

    pool.prestart(kind="measure")  # they start while the stores are listed
    if args.json:  # each line as its entry is done, while the workers measure the next ones
        line = _entry_encoder()
        by_store: dict[int, list[tuple[str, bytes]]] = {}  # (name, line) by id(store)

        def encode(entry) -> None:
            lines = by_store.get(id(entry.store))
            if lines is None:
                lines = by_store[id(entry.store)] = []
            lines.append((entry.name, line(entry).encode("utf-8")))

        # In the order of the scan (by name within each store), sorted here with their lines.
        result, totals = _scan_and_measure(args, err, encode, ordered=False)
        ordered: list[bytes] = []
        for store in result.stores:
            lines = by_store.get(id(store), [])
            lines.sort(key=itemgetter(0))  # (a key: comparing the pairs compares names twice)
            ordered += map(itemgetter(1), lines)
        write_json(None, out, ordered)
        return 0
    result, totals = _scan_and_measure(args, err)
    entries = result.entries
    if not entries:
        out.write("No entries in " + ", ".join(display_path(s.path) for s in result.stores) + "\n")
        return 0
    rows = [["PROGRAM", "VERSION", "SIZE", "FILES", "LAST USED", "KIND", "STORE", "NAME"]]
    for e in sorted(entries, key=lambda e: (e.program.lower(), e.version, e.name)):
        u = e.usage
        rows.append(
            [
                e.program,
                e.version or "-",
                size_text(u.size if u else None),
                str(u.files) if u else "?",
                _when(u.last_used if u else None, e.atime_reliable),
                e.kind,
                e.store.label,
                e.name,
            ]
        )
    table(rows, out)
    # Hard links between entries (e.g. after `0install store optimise`) are counted once here.
    out.write(f"\n{len(entries)} entries, {size_text(totals.size)}\n")
    for e in entries:
        if e.kind == "suspicious":
            out.write(f"suspicious: {display_path(e.path)}: {safe_text(e.reason)}\n")
    return 0


# --- verify ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    """A top-level entry to verify: only what verification needs (no classification, no sizes)."""

    store: Any
    name: str
    path: str


def _targets(args: argparse.Namespace, err: IO[str]) -> list[_Target]:
    chosen, problems = stores_for(args)
    warn(problems, err)
    found: list[_Target] = []
    for store in chosen:
        if store.problem:
            continue
        try:
            names = sorted(os.listdir(store.path))
        except OSError as exc:
            why = exc.strerror or exc
            warn([f"Store {display_path(store.path)} cannot be read: {why}; it was skipped."], err)
            continue
        base = os.path.join(store.path, "")
        found.extend([_Target(store, name, base + name) for name in names])
    return found


class _Feeds:
    """Which program an entry belongs to, looked up in the cached feeds only when asked."""

    def __init__(self) -> None:
        self._index: Any = None

    def lookup(self, name: str):
        if self._index is None:
            from core.feeds import FeedIndex
            from core.stores import cache_dirs

            self._index = FeedIndex.load(cache_dirs())
        return self._index.lookup(name)


def _check_jobs(jobs: int | None) -> None:
    from core.pool import MAX_JOBS, default_jobs

    if jobs is not None and not 1 <= jobs <= MAX_JOBS:
        raise UsageError(
            f"--jobs must be between 1 and {MAX_JOBS} (this machine has {default_jobs()} CPUs; "
            "more workers than CPUs do not make it faster)"
        )


ATIME_WARNING = (
    "some files read belong to other users, and the kernel lets only their owner or root read "
    "without updating access times: the 'last used' time of those entries now shows this "
    "verification (run as root or as the store's owner to avoid it)"
)


def cmd_verify(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import verify

    _check_jobs(args.jobs)
    from core import pool

    pool.prestart(args.jobs, kind="verify")  # they start while the stores are listed
    entries, missing = select_entries(_targets(args, err), args.names)
    progress = Progress(err)
    started = time.monotonic()

    def on_progress(p) -> None:
        eta = f", {p.eta:.0f} s left" if p.eta is not None else ""
        progress.show(
            f"[{p.entries_done} / {p.entries_total}] {size_text(p.bytes_done)} of "
            f"{size_text(p.bytes_total)}, "
            f"{size_text(int(p.bytes_per_second))}/s{eta}"
        )

    warned: list[bool] = []
    notes: list[str] = []
    from core.store_lock import StoreBusy, store_lock  # shared with scheduled maintenance

    try:
        lock = store_lock([e.store.path for e in entries], shared=True)
        lock.__enter__()
    except StoreBusy as exc:
        raise CommandError(str(exc)) from None
    try:
        outcomes = verify.verify_remembering(
            [e.path for e in entries],
            full=args.full,
            max_age_days=args.max_age,
            notes=notes,
            jobs=args.jobs,
            on_progress=on_progress if progress.enabled else None,
            report_atime=lambda: warned.append(True),
        )
    finally:
        progress.clear()
        lock.__exit__(None, None, None)
    elapsed = time.monotonic() - started
    if warned:
        err.write(f"{PROG}: warning: {ATIME_WARNING}\n")
    for note in notes:
        err.write(f"{PROG}: warning: {safe_text(note)}\n")

    rows = [
        (entry, outcome)
        for entry, outcome in zip(entries, outcomes, strict=True)
        if outcome is not None
    ]
    feeds = _Feeds()
    if args.json:
        write_json(_verify_json(rows, missing, feeds), out)
    else:
        _print_verify_report(rows, missing, elapsed, out, args.verbose, feeds)

    bad = any(o.status in ("corrupt", "error") for _, o in rows) or bool(missing)
    return 1 if bad else 0


def _verify_json(rows, missing: Sequence[str], feeds: _Feeds) -> list[dict[str, Any]]:
    """``verify --json``: one object per entry checked, and one per name that matched nothing."""
    data = []
    for e, o in rows:
        feed = feeds.lookup(e.name) if o.expected else None
        data.append(
            {
                "store": json_name(e.store.path),
                "name": json_name(e.name),
                "path": json_name(e.path),
                "program": _text(feed.feed_name) if feed else None,
                "version": _text(feed.version) if feed else None,
                "status": o.status,
                "checked": _checked(o),
                "detail": _text(o.detail),
                "expected": json_name(o.expected),
                "actual": o.actual,
                "recorded": o.recorded,
                "changes": [
                    {
                        "change": c.change,
                        "path": json_name(c.path_bytes),
                        "what": [_text(w) for w in c.what],
                        "text": _text(c.describe()),
                    }
                    for c in o.changes
                ],
            }
        )
    data += [
        {
            "store": None,
            "name": json_name(name),
            "path": None,
            "program": None,
            "version": None,
            "status": "error",
            "checked": None,
            "detail": _text(f"'{name}' is not in any store"),
            "expected": None,
            "actual": None,
            "recorded": None,
            "changes": [],
        }
        for name in missing
    ]
    return data


def _checked(outcome: Any) -> str | None:
    """How a verdict was reached, for ``verify --json``: "hashed", "unchanged since <UTC time of
    the last full hash>", or None (skipped, or it could not be read)."""
    if outcome.unchanged_since is not None:
        from core.records import iso_time

        return f"unchanged since {iso_time(outcome.unchanged_since)}"
    return "hashed" if outcome.actual is not None else None


def _max_age(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not days >= 0 or days == float("inf"):
        raise argparse.ArgumentTypeError(f"a number of days from 0 up is needed, not {text!r}")
    return days


def _print_verify_report(rows, missing, elapsed: float, out: IO[str], verbose: bool, feeds) -> None:
    counts = {"ok": 0, "corrupt": 0, "error": 0, "skipped": 0}
    unchanged = 0
    lines: list[str] = []
    write = lines.append
    for entry, outcome in rows:
        counts[outcome.status] += 1
        if outcome.status == "skipped" and not verbose:
            continue
        if outcome.status == "ok":
            if outcome.unchanged_since is not None:
                unchanged += 1
            if verbose:
                shown = display_path(entry.path)
                how = ""
                if outcome.unchanged_since is not None:
                    from core.records import unchanged_text

                    how = f"  ({unchanged_text(outcome.unchanged_since)})"
                write(f"OK       {shown}{how}\n")
            continue
        shown = display_path(entry.path)
        label = outcome.status.upper().ljust(8)
        feed = feeds.lookup(entry.name) if outcome.expected else None
        program = f"  ({display_text(feed.feed_name)} {display_text(feed.version)})" if feed else ""
        write(f"{label} {shown}{program}\n")
        for line in outcome.detail.splitlines():
            write(f"         {safe_text(line)}\n")
        for change in outcome.changes[:50]:
            write(f"         - {safe_text(change.describe())}\n")
        if len(outcome.changes) > 50:
            write(f"         ... and {len(outcome.changes) - 50} more changes\n")
    for name in missing:
        write(f"ERROR    {display_text(name)}: not in any store\n")
        counts["error"] += 1
    checked = sum(counts.values())
    write(f"\nChecked {checked} items in {elapsed:.1f} s\n")
    write(f"Successfully verified implementations: {counts['ok']}\n")
    if unchanged:
        write(
            f"  of which unchanged since they were last hashed: {unchanged} "
            "(every file's change keys match; --full hashes them too)\n"
        )
    write(f"Corrupted or modified implementations: {counts['corrupt']}\n")
    if counts["error"]:
        write(f"Could not be checked (errors): {counts['error']}\n")
    if counts["skipped"]:
        write(f"Skipped (not implementations): {counts['skipped']}\n")
    corrupt = [e.path for e, o in rows if o.status == "corrupt"]
    if corrupt:
        write("\nList of corrupted or modified implementations:\n")
        for path in corrupt:
            write(display_path(path) + "\n")
    out.write("".join(lines))


# --- argument parsing -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; for a ``command`` of :data:`GROUPS`, only its group's:
    building them all takes longer than parsing (the sharing, clean, vm... parsers take six
    times as long to build as this module's own)."""
    parser = _Parser(
        prog=PROG,
        description="Administer Zero Install implementation caches. "
        "With no command, open the window.",
        epilog="Window: zeroinstall-admin [--store DIR]... [--demo] [--screenshot FILE.png "
        "[--verify]]. --demo opens a demo cache built on the fly; --screenshot renders the window "
        "once scanning (and with --verify, verification) has finished, and exits.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    only = group_of(command)
    import importlib

    for group in GROUPS if only is None else (only,):
        importlib.import_module(group.module).register(sub, store_option)
    return parser


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """This module's own group: digest, manifest, stores, list, verify (see
    :class:`CommandGroup`)."""
    p = sub.add_parser("digest", help="print the digest of a directory (like 0install digest)")
    p.add_argument(
        "--algorithm",
        default=DEFAULT_ALGORITHM,
        choices=ALGORITHMS,
        help=f"manifest algorithm (default {DEFAULT_ALGORITHM})",
    )
    p.add_argument("dir", metavar="DIR")
    p.set_defaults(func=cmd_digest)

    p = sub.add_parser(
        "manifest", help="print a directory's manifest (like 0install store manifest)"
    )
    p.add_argument("dir", metavar="DIR")
    p.add_argument("algorithm", metavar="ALG", help="one of " + ", ".join(ALGORITHMS))
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("stores", help="show the stores 0install uses and their state")
    store_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_stores)

    p = sub.add_parser("list", help="list every cache entry with its program, size and last use")
    store_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("verify", help="verify cache entries against their digests, in parallel")
    store_option(p)
    p.add_argument(
        "--jobs", type=int, metavar="N", help="worker processes, 1 to 64 (default: CPU count)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--full",
        action="store_true",
        help="hash every entry, even those whose files are unchanged since they were last hashed",
    )
    p.add_argument(
        "--max-age",
        type=_max_age,
        metavar="DAYS",
        help="hash entries last hashed more than DAYS days ago, even if unchanged",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also list OK and skipped entries")
    p.add_argument("names", nargs="*", metavar="NAME", help="digests or entry paths (default: all)")
    p.set_defaults(func=cmd_verify)


def _say(err: IO[str], line: str) -> None:
    """The last line of a command that fails: lost, not a traceback, when stderr is gone too."""
    try:
        err.write(line)
        err.flush()
    except (OSError, ValueError):
        pass


def _discard_stdout() -> None:
    """After a broken pipe: let the interpreter's last flush go nowhere instead of complaining."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (130 after Ctrl-C, for every command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    err = sys.stderr if sys.stderr is not None else open(os.devnull, "w")  # noqa: SIM115
    if sys.stdout is None:  # started with stdout closed (>&-)
        err.write(
            f"{PROG}: standard output is closed, so nothing could be shown "
            "(redirect it to /dev/null to discard the output)\n"
        )
        return 1
    out = sys.stdout
    for stream in (out, err):
        # Output to a descriptor left non-blocking (a parent's pipe) would be dropped without a
        # word when the pipe is full (Python's buffered writer loses it): wait for the reader.
        try:
            if not os.get_blocking(stream.fileno()):
                os.set_blocking(stream.fileno(), True)
        except (AttributeError, ValueError, OSError):
            pass
        # Names are escaped before they are printed; this only stops a missed one from ending
        # the command with a traceback under a strict locale.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")
    previous = _on_sigterm()
    try:
        return _run(argv, out, err)
    finally:
        if previous is not None:
            import signal

            signal.signal(signal.SIGTERM, previous)


def _on_sigterm() -> Any:
    """Make SIGTERM unwind the command as Ctrl-C does (exit 143): the workers, the privileged
    helper and every other child are stopped on the way instead of being left running. Returns
    the handler it replaced (None when it could not be set: not the main thread)."""
    import signal

    def terminated(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, terminated)
    except ValueError:
        return None


def _run(argv: list[str], out: IO[str], err: IO[str]) -> int:
    try:
        args = build_parser(argv[0] if argv else None).parse_args(argv)
        if getattr(args, "func", None) is not None:
            return int(args.func(args, out, err))
        build_parser().print_help(err)
        return 2
    except UsageError as exc:
        err.write(f"{PROG}: usage error: {safe_text(str(exc))}\n(see '{PROG} --help')\n")
        return 2
    except (CommandError, DigestError) as exc:
        err.write(f"{PROG}: {safe_text(str(exc))}\n")
        return 1
    except BrokenPipeError:
        _discard_stdout()
        return 1
    except OSError as exc:
        where = f"'{display_path(exc.filename)}': " if exc.filename else ""
        _say(err, f"{PROG}: {where}{safe_text(exc.strerror or str(exc))}\n")
        return 1
    except Terminated:
        _say(err, f"{PROG}: terminated\n")
        return 143
    except KeyboardInterrupt:
        _say(err, f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:
        # A tree that cannot be a manifest. The manifest engine is loaded only by the commands
        # that use it (listing never does), so its error is looked up only if it was.
        manifest = sys.modules.get("core.manifest")
        if manifest is None or not isinstance(exc, manifest.ManifestError):
            raise
        err.write(f"{PROG}: {safe_text(str(exc))}\n")
        return 1


if __name__ == "__main__":
    # Run as ``python -m core.cli``, this module is ``__main__``: dispatch through the one copy
    # the command modules see (``core.cli``), so there is only one of each of its globals.
    from core import cli as _cli  # noqa: PLW0406 - the copy the command modules see
    from core.lifetime import exit_now, without_collector

    without_collector()
    exit_now(_cli.main())
