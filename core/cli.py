"""The ``zeroinstall-admin`` command line.

The console entry point is ``gui.launch:main``: it sends subcommands here and opens the window
otherwise, so this module never loads Qt and works without a display. Errors are one line naming the path and the problem, never a traceback.
Exit codes: 0 success, 1 failure (``verify``: something corrupt or in error), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import IO, Sequence

from core.digests import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    DigestError,
    format_digest,
    parse_user_digest,
)
from core.manifest import ManifestError, display_path, generate_manifest, hash_manifest

PROG = "zeroinstall-admin"

# Command groups beyond the cache commands live in modules of their own. Each has a
# ``register(sub, store_option)`` that adds its subparsers and sets ``func=handler`` on them, where
# ``handler(args, out, err) -> int``; heavy imports go inside the handlers, so --help stays fast.
COMMAND_MODULES = ("core.cli_sharing", "core.cli_clean", "core.cli_vm")

SUBCOMMANDS = (
    "digest",
    "manifest",
    "list",
    "verify",
    "stores",
    # core.cli_sharing
    "sharing",
    # core.cli_clean
    "clean",
    "pin",
    "unpin",
    "delete",
    "optimise",
    # core.cli_vm
    "vm",
    "snippet",
)


class UsageError(Exception):
    """Bad arguments: exit 2."""


class CommandError(Exception):
    """A failure to report as one line: exit 1."""


# --- formatting helpers ---------------------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    import humanize

    return humanize.naturalsize(n)


def _when(ts: float | None, reliable: bool = True) -> str:
    if ts is None:
        return "never"
    if not reliable:
        return "unknown (noatime)"
    import humanize

    return humanize.naturaltime(time.time() - ts)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class _Progress:
    """A single self-overwriting status line on a terminal; silent elsewhere."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.enabled = stream.isatty()
        self.width = 0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        pad = max(0, self.width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


# --- digest / manifest ----------------------------------------------------------------------------


def _check_dir(path: str) -> None:
    if not os.path.lexists(path):
        raise CommandError(f"'{path}' does not exist")
    if not os.path.isdir(path) or os.path.islink(path):
        raise CommandError(
            f"'{path}' is not a directory (archives are not supported: unpack it first)"
        )


def cmd_digest(args: argparse.Namespace, out: IO[str]) -> int:
    _check_dir(args.dir)
    manifest = generate_manifest(args.dir, args.algorithm)
    out.write(format_digest(args.algorithm, hash_manifest(args.algorithm, manifest)) + "\n")
    return 0


def cmd_manifest(args: argparse.Namespace, out: IO[str]) -> int:
    if args.algorithm not in ALGORITHMS:
        raise UsageError(
            f"unknown algorithm '{args.algorithm}': use one of {', '.join(ALGORITHMS)}"
        )
    _check_dir(args.dir)
    manifest = generate_manifest(args.dir, args.algorithm)
    digest = format_digest(args.algorithm, hash_manifest(args.algorithm, manifest))
    out.flush()
    raw = getattr(out, "buffer", None)
    if raw is not None:
        raw.write(manifest + digest.encode() + b"\n")
        raw.flush()
    else:  # a text-only stream (tests): names that are not UTF-8 come out escaped
        out.write(manifest.decode("utf-8", "surrogateescape") + digest + "\n")
    return 0


# --- stores, list, verify -------------------------------------------------------------------------


def _scan(args: argparse.Namespace, err: IO[str]):
    from core import cache, stores

    chosen = stores.stores_from_paths(args.store) if args.store else None
    result = cache.scan(chosen)
    for problem in result.problems:
        err.write(f"{PROG}: warning: {problem}\n")
    return result


def cmd_stores(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import stores

    found = stores.stores_from_paths(args.store) if args.store else stores.discover_stores()
    if args.json:
        json.dump(
            [
                {"path": s.path, "kind": s.kind, "source": s.source, "problem": s.problem}
                for s in found
            ],
            out,
            indent=2,
        )
        out.write("\n")
        return 0
    for s in found:
        state = f"  ({s.problem})" if s.problem else ""
        out.write(f"{s.kind:<7} {s.path}{state}\n        from {s.source}\n")
    return 0


def _measure(entries, err: IO[str]) -> None:
    from core import cache

    progress = _Progress(err)
    done = 0
    lock = threading.Lock()
    total = len(entries)

    def on_result(entry, usage) -> None:
        nonlocal done
        entry.usage = usage
        with lock:
            done += 1
            if done % 64 == 0 or done == total:
                progress.show(f"Measuring sizes: {done} / {total}")

    try:
        cache.measure_all(entries, on_result)
    finally:
        progress.clear()


def _entry_json(entry) -> dict:
    usage = entry.usage
    return {
        "store": entry.store.path,
        "store_kind": entry.store.kind,
        "store_label": entry.store.label,
        "name": entry.name,
        "path": entry.path,
        "kind": entry.kind,
        "reason": entry.reason or None,
        "digest": entry.digest.name if entry.digest else None,
        "algorithm": entry.digest.algorithm if entry.digest else None,
        "program": entry.program,
        "feed": entry.feed.feed_url if entry.feed else None,
        "version": entry.version or None,
        "size": usage.size if usage else None,
        "disk": usage.disk if usage else None,
        "files": usage.files if usage else None,
        "last_used": _iso(usage.last_used) if usage and entry.atime_reliable else None,
        "last_used_known": bool(usage) and entry.atime_reliable,
        "added": _iso(entry.added),
        "owner": entry.owner,
        "used_by": list(entry.used_by),
        "error": usage.error if usage else None,
    }


def _table(rows: list[list[str]], out: IO[str]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1])] + [row[-1]]
        out.write("  ".join(cells).rstrip() + "\n")


def cmd_list(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    result = _scan(args, err)
    entries = result.entries
    _measure(entries, err)
    if args.json:
        json.dump([_entry_json(e) for e in entries], out, indent=2)
        out.write("\n")
        return 0
    if not entries:
        out.write("No entries in " + ", ".join(s.path for s in result.stores) + "\n")
        return 0
    rows = [["PROGRAM", "VERSION", "SIZE", "FILES", "LAST USED", "KIND", "STORE", "NAME"]]
    for e in sorted(entries, key=lambda e: (e.program.lower(), e.version, e.name)):
        u = e.usage
        rows.append(
            [
                e.program,
                e.version or "-",
                _size(u.size if u else None),
                str(u.files) if u else "?",
                _when(u.last_used if u else None, e.atime_reliable),
                e.kind,
                e.store.label,
                e.name,
            ]
        )
    _table(rows, out)
    total = sum(e.usage.size for e in entries if e.usage)
    out.write(f"\n{len(entries)} entries, {_size(total)}\n")
    for e in entries:
        if e.kind == "suspicious":
            out.write(f"suspicious: {e.path}: {e.reason}\n")
    return 0


def _select(entries, names: Sequence[str]):
    """The entries the user named (digests, loosely, or paths), and the names that matched nothing."""
    if not names:
        return list(entries), []
    wanted: dict[str, str] = {}
    paths: dict[str, str] = {}
    for name in names:
        if "/" in name:
            paths[os.path.abspath(name.rstrip("/"))] = name
            continue
        try:
            wanted[parse_user_digest(name).name] = name
        except DigestError as exc:
            raise UsageError(f"{name}: {exc}") from None
    chosen = [e for e in entries if e.name in wanted or os.path.abspath(e.path) in paths]
    found = {e.name for e in chosen} | {os.path.abspath(e.path) for e in chosen}
    missing = [orig for key, orig in {**wanted, **paths}.items() if key not in found]
    return chosen, missing


def cmd_verify(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import verify

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    result = _scan(args, err)
    entries, missing = _select(result.entries, args.names)
    progress = _Progress(err)
    started = time.monotonic()

    def on_progress(p) -> None:
        eta = f", {p.eta:.0f} s left" if p.eta is not None else ""
        progress.show(
            f"[{p.entries_done} / {p.entries_total}] {_size(p.bytes_done)} of {_size(p.bytes_total)}, "
            f"{_size(int(p.bytes_per_second))}/s{eta}"
        )

    cancel = threading.Event()
    try:
        outcomes = verify.verify_paths(
            [e.path for e in entries], jobs=args.jobs, on_progress=on_progress, cancel=cancel
        )
    except KeyboardInterrupt:
        cancel.set()
        progress.clear()
        raise CommandError("interrupted") from None
    finally:
        progress.clear()
    elapsed = time.monotonic() - started

    rows = []
    for entry, outcome in zip(entries, outcomes):
        if outcome is None:
            continue
        rows.append((entry, outcome))
    errors = [("(none)", name) for name in missing]

    if args.json:
        data = [
            {
                "store": e.store.path,
                "name": e.name,
                "path": e.path,
                "program": e.program,
                "version": e.version or None,
                "status": o.status,
                "detail": o.detail,
                "expected": o.expected,
                "actual": o.actual,
                "recorded": o.recorded,
                "changes": [c.describe() for c in o.changes],
            }
            for e, o in rows
        ]
        data += [
            {"store": None, "name": name, "path": None, "program": None, "version": None,
             "status": "error", "detail": f"'{name}' is not in any store", "expected": None,
             "actual": None, "recorded": None, "changes": []}
            for _, name in errors
        ]
        json.dump(data, out, indent=2)
        out.write("\n")
    else:
        _print_verify_report(rows, missing, elapsed, out, args.verbose)

    bad = any(o.status in ("corrupt", "error") for _, o in rows) or bool(missing)
    return 1 if bad else 0


def _print_verify_report(rows, missing, elapsed: float, out: IO[str], verbose: bool) -> None:
    counts = {"ok": 0, "corrupt": 0, "error": 0, "skipped": 0}
    for entry, outcome in rows:
        counts[outcome.status] += 1
        if outcome.status == "skipped" and not verbose:
            continue
        if outcome.status == "ok":
            if verbose:
                out.write(f"OK       {entry.path}\n")
            continue
        label = outcome.status.upper().ljust(8)
        program = f"  ({entry.feed.feed_name} {entry.version})" if entry.feed else ""
        out.write(f"{label} {entry.path}{program}\n")
        for line in outcome.detail.splitlines():
            out.write(f"         {line}\n")
        for change in outcome.changes[:50]:
            out.write(f"         - {change.describe()}\n")
        if len(outcome.changes) > 50:
            out.write(f"         ... and {len(outcome.changes) - 50} more changes\n")
    for name in missing:
        out.write(f"ERROR    {name}: not in any store\n")
        counts["error"] += 1
    checked = sum(counts.values())
    out.write(f"\nChecked {checked} items in {elapsed:.1f} s\n")
    out.write(f"Successfully verified implementations: {counts['ok']}\n")
    out.write(f"Corrupted or modified implementations: {counts['corrupt']}\n")
    if counts["error"]:
        out.write(f"Could not be checked (errors): {counts['error']}\n")
    if counts["skipped"]:
        out.write(f"Skipped (not implementations): {counts['skipped']}\n")
    corrupt = [e.path for e, o in rows if o.status == "corrupt"]
    if corrupt:
        out.write("\nList of corrupted or modified implementations:\n")
        for path in corrupt:
            out.write(path + "\n")


# --- argument parsing -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Administer Zero Install implementation caches. "
        "With no command, open the window.",
        epilog="Window: zeroinstall-admin [--store DIR]... [--demo] [--screenshot FILE.png "
        "[--verify]]. --demo opens a demo cache built on the fly; --screenshot renders the window "
        "once scanning (and with --verify, verification) has finished, and exits.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("digest", help="print the digest of a directory (like 0install digest)")
    p.add_argument(
        "--algorithm",
        default=DEFAULT_ALGORITHM,
        choices=ALGORITHMS,
        help=f"manifest algorithm (default {DEFAULT_ALGORITHM})",
    )
    p.add_argument("dir", metavar="DIR")

    p = sub.add_parser("manifest", help="print a directory's manifest (like 0install store manifest)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("algorithm", metavar="ALG", help="one of " + ", ".join(ALGORITHMS))

    def store_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--store",
            action="append",
            metavar="DIR",
            help="an implementation store to use instead of the discovered ones (repeatable)",
        )

    p = sub.add_parser("stores", help="show the stores 0install uses and their state")
    store_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("list", help="list every cache entry with its program, size and last use")
    store_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("verify", help="verify cache entries against their digests, in parallel")
    store_option(p)
    p.add_argument("--jobs", type=int, metavar="N", help="worker threads (default: CPU count)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="store_true", help="also list OK and skipped entries")
    p.add_argument("names", nargs="*", metavar="NAME", help="digests or entry paths (default: all)")

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, store_option)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    try:
        args = build_parser().parse_args(argv)
        if args.command == "digest":
            return cmd_digest(args, out)
        if args.command == "manifest":
            return cmd_manifest(args, out)
        if args.command == "stores":
            return cmd_stores(args, out, err)
        if args.command == "list":
            return cmd_list(args, out, err)
        if args.command == "verify":
            return cmd_verify(args, out, err)
        if getattr(args, "func", None) is not None:
            return int(args.func(args, out, err))
        build_parser().print_help(err)
        return 2
    except UsageError as exc:
        err.write(f"{PROG}: usage error: {exc}\n(see '{PROG} --help')\n")
        return 2
    except (CommandError, ManifestError, DigestError) as exc:
        err.write(f"{PROG}: {exc}\n")
        return 1
    except BrokenPipeError:
        return 1
    except OSError as exc:
        where = f"'{display_path(exc.filename)}': " if exc.filename else ""
        err.write(f"{PROG}: {where}{exc.strerror or exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130


if __name__ == "__main__":
    # Run as ``python -m core.cli``, this module is ``__main__``; the command modules import
    # ``core.cli`` for UsageError/CommandError, so dispatch through that copy, or their errors
    # would not be caught here.
    from core import cli as _cli

    sys.exit(_cli.main())
