"""The command line's ``clean``, ``pin``, ``unpin``, ``delete``, ``optimise``: cleaning the caches.

    zeroinstall-admin clean [--store DIR]... [--older-than DAYS] [--keep N] [--dry-run] [--yes]
                            [--json]
    zeroinstall-admin pin|unpin NAME|PROGRAM
    zeroinstall-admin delete [--store DIR]... [--yes] NAME...
    zeroinstall-admin optimise [--store DIR]... [--dry-run] [--json]

Without ``--yes``, ``clean`` and ``delete`` ask on a terminal and refuse otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import IO, Any

from core.cli_common import (
    PROG,
    CommandError,
    Progress,
    UsageError,
    confirm,
    iso,
    named_stores,
    note,
    select_entries,
    stores_for,
    table,
    warn,
    write_json,
)
from core.cli_common import name as _name
from core.cli_common import text as _text
from core.display import display_path, display_text, safe_text
from core.units import size_text


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this group's subcommands to ``sub`` (argparse subparsers); each sets ``func``."""
    p = sub.add_parser(
        "clean",
        help="remove implementations nobody uses any more (shows why; asks first)",
        description="Find cache entries no app, pin or running program uses and that were not used "
        "for DAYS days, leftover tmp-* directories, and suspicious entries (quarantined, not "
        "deleted); then remove them. Every removal goes to the action log.",
    )
    store_option(p)
    p.add_argument(
        "--older-than",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="only entries not used for this many days (default 30; 0: any age)",
    )
    p.add_argument(
        "--keep",
        type=int,
        default=0,
        metavar="N",
        help="keep the N newest cached versions of every program, whatever their age",
    )
    p.add_argument("--dry-run", action="store_true", help="list the candidates, change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask before removing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_clean)

    for verb, text in (
        ("pin", "keep an entry, or every version of a program, forever"),
        ("unpin", "undo a pin"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument(
            "target",
            metavar="NAME|PROGRAM",
            help="an entry's digest, or a program's name or feed URL",
        )
        p.set_defaults(func=cmd_pin, pin=verb == "pin")

    p = sub.add_parser("delete", help="delete chosen entries (with the same checks as clean)")
    store_option(p)
    p.add_argument("--yes", action="store_true", help="do not ask before removing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("names", nargs="+", metavar="NAME", help="digests or entry paths")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "optimise",
        aliases=["optimize"],
        help="hard-link identical files across implementations (saves space)",
    )
    store_option(p)
    p.add_argument("--dry-run", action="store_true", help="say what would be saved, change nothing")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_optimise)


# --- helpers --------------------------------------------------------------------------------------


def _verdict_json(v) -> dict:

    fp = v.footprint
    return {
        "store": _name(v.entry.store.path),
        "name": _name(v.entry.name),
        "path": _name(v.entry.path),
        "program": _text(v.entry.program),
        "version": _text(v.entry.version) or None,
        "kind": v.entry.kind,
        "action": v.action,
        "size": fp.size if fp else None,
        "disk": fp.disk if fp else None,
        "last_used": iso(v.last_used),
        "reasons": [_text(r) for r in v.reasons],
        "doubt": _text(v.doubt) or None,
    }


NOT_ON_A_TERMINAL = "nothing was removed: check with --dry-run, then add --yes"


def _survey(args: argparse.Namespace, policy, err: IO[str]):
    from core import clean, pins

    chosen = named_stores(args.store)  # checked before anything is read
    progress = Progress(err)
    try:
        result = clean.survey(chosen, policy=policy, on_progress=progress.show)
    except pins.PinError as exc:
        raise CommandError(str(exc)) from None
    finally:
        progress.clear()
    for line in result.caveats():
        note(line, err)
    return result


def _entry_line(entry) -> str:
    """An entry as the lines of clean and delete show it: store, name, program and version."""

    what = f"  {display_text(entry.program)} {display_text(entry.version)}".rstrip()
    return f"{display_path(entry.store.path)}  {display_path(entry.name)}{what}"


def _remove(chosen, recheck, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import clean

    progress = Progress(err)

    def on_progress(done: int, total: int, outcome) -> None:
        progress.show(f"[{done} / {total}] {display_path(outcome.verdict.entry.name)}")

    try:
        outcomes = clean.remove(chosen, recheck, on_progress=on_progress)
    finally:
        progress.clear()
    freed, quarantined = clean.totals(outcomes)
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        write_json(
            {
                "results": [
                    {
                        **_verdict_json(o.verdict),
                        "outcome": o.action,
                        "detail": _text(o.message),
                        "freed": o.size,
                        "quarantined": o.moved,
                    }
                    for o in outcomes
                ],
                "freed": freed,
                "quarantined": quarantined,
            },
            out,
        )
    else:
        lines = []
        for o in outcomes:
            detail = f": {safe_text(o.message)}" if o.message else ""
            lines.append(f"{o.action.upper():<12} {_entry_line(o.verdict.entry)}{detail}\n")
        lines.append(f"\n{clean.result_text(outcomes)}; recorded in the action log\n")
        out.write("".join(lines))
    return 1 if failed else 0


# --- commands -------------------------------------------------------------------------------------


def cmd_clean(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:

    from core import clean

    if not math.isfinite(args.older_than) or args.older_than < 0:
        raise UsageError("--older-than must be 0 or more days")
    if args.keep < 0:
        raise UsageError("--keep must be 0 or more")
    policy = clean.Policy(older_than_days=args.older_than, keep=args.keep)
    result = _survey(args, policy, err)
    chosen = [v for v in result.candidates if not v.doubt]
    doubtful = [v for v in result.candidates if v.doubt]
    removing = [v for v in chosen if v.action != "quarantine"]
    size, disk = clean.reclaimable(v.footprint for v in removing if v.footprint)
    if args.dry_run or not chosen:
        if args.json:
            write_json(
                {
                    "candidates": [_verdict_json(v) for v in chosen],
                    "left_alone": [_verdict_json(v) for v in doubtful],
                    "kept": [_verdict_json(v) for v in result.verdicts if not v.candidate],
                    "total": {
                        "entries": len(chosen),
                        "size": size,
                        "disk": disk,
                        "quarantine_disk": clean.plan(chosen)[3],
                    },
                    "notes": [_text(n) for n in result.caveats()],
                },
                out,
            )
        else:
            _print_candidates(chosen, out)
            out.write(
                f"\n{len(chosen)} candidates: {clean.plan_text(chosen)}"
                f"{' (dry run: nothing removed)' if args.dry_run and chosen else ''}\n"
            )
            _print_left(result, doubtful, out)
        return 0
    if not args.json:
        _print_candidates(chosen, out)
        _print_left(result, doubtful, out)
        out.flush()
    plan = clean.plan_text(chosen)
    if not confirm(f"{plan[:1].upper()}{plan[1:]}?", args.yes, err, NOT_ON_A_TERMINAL):
        err.write("Nothing removed.\n")
        return 1
    return _remove(chosen, clean.recheck_for(result.stores, result.entries), args, out, err)


def _print_left(result, doubtful, out: IO[str]) -> None:
    kept = sum(1 for v in result.verdicts if not v.candidate)
    if kept:
        out.write(f"{kept} {'entry' if kept == 1 else 'entries'} kept (--json says why)\n")
    if doubtful:
        out.write(
            f"{len(doubtful)} unused entries of shared stores left alone: other users' apps could "
            "not all be read (run as root, or delete them by name)\n"
        )


def _print_candidates(chosen, out: IO[str]) -> None:
    if not chosen:
        out.write("Nothing to clean.\n")
        return

    rows = [["STORE", "NAME", "SIZE", "ACTION", "REASON"]]
    for v in chosen:
        fp = v.footprint
        what = f"{v.entry.program} {v.entry.version}: " if v.entry.feed is not None else ""
        rows.append(
            [
                v.entry.store.path,
                v.entry.name,
                size_text(fp.disk if fp else None),
                v.action,
                what + "; ".join(v.reasons),
            ]
        )
    table(rows, out)


def cmd_pin(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import cache, pins

    try:
        scan = cache.scan()
        known = {(e.feed.feed_url, e.feed.feed_name) for e in scan.entries if e.feed is not None}
        kind, value = pins.classify(args.target, known)
        current, changed = pins.set_pinned([(kind, value)], args.pin)
    except pins.PinError as exc:
        raise CommandError(str(exc)) from None
    shown = display_text(value)
    what = f"entry {shown}" if kind == "entry" else f"every version of {shown}"
    if args.pin:
        already = f"{what[:1].upper()}{what[1:]} was pinned already\n"
        out.write(f"Pinned {what}\n" if changed else already)
    else:
        if not changed:
            raise CommandError(f"{what} is not pinned (pins are in {display_path(current.path)})")
        out.write(f"Unpinned {what}\n")
    return 0


def cmd_delete(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import cache, delete, pins
    from core.measure import measure_all

    chosen_stores = named_stores(args.store)  # checked before anything is read
    progress = Progress(err)
    try:
        progress.show("Reading the stores…")
        scan = cache.scan(chosen_stores)
        chosen, missing = select_entries(scan.entries, args.names)

        def measured(entry, usage) -> None:
            entry.usage = usage

        measure_all(chosen, measured)  # for their last use
        progress.show("Looking for what is in use…")
        plan = delete.check(chosen)
    except pins.PinError as exc:
        raise CommandError(str(exc)) from None
    finally:
        progress.clear()
    for line in [*scan.problems, *plan.caveats]:
        note(line, err)
    from core.root_helper import removal_origin

    # An entry whose removal was killed part way is renamed aside already (tmp-remove-...).
    leftovers = {removal_origin(e.name): e for e in scan.entries}
    for name in missing:
        left = leftovers.get(os.path.basename(name.rstrip("/")))
        if left is None:
            err.write(f"{PROG}: '{display_text(name)}' is not in any store\n")
        else:
            err.write(
                f"{PROG}: '{display_text(name)}' is not in any store: an interrupted removal "
                f"left it as {display_path(left.path)}; delete that to finish the removal\n"
            )
    for entry, reasons in plan.kept:
        why = safe_text("; ".join(reasons))
        err.write(f"{PROG}: {display_path(entry.name)} is kept: {why}\n")
    if not plan.allowed:
        raise CommandError("nothing to delete")
    if not confirm(plan.question(), args.yes, err, "nothing was removed: add --yes"):
        err.write("Nothing removed.\n")
        return 1
    status = _remove(plan.allowed, plan.recheck, args, out, err)
    return 1 if status or missing or plan.kept else 0


def cmd_optimise(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import optimise

    found, problems = stores_for(args)  # --store: each checked (exit 1 or 2 before anything)
    warn(problems, err)
    chosen = [s for s in found if s.problem is None]
    progress = Progress(err)
    results = []
    try:
        for store in chosen:

            def shown(done: int, total: int, path: str = store.path) -> None:
                progress.show(f"{display_path(path)}: {done} / {total} groups of identical files")

            results.append(optimise.optimise_store(store, dry_run=args.dry_run, on_progress=shown))
    finally:
        progress.clear()
    if args.json:
        write_json(
            [
                {
                    **r.__dict__,
                    "store": _name(r.store),
                    "affected": [_name(a) for a in r.affected],
                    "skipped": [_text(x) for x in r.skipped],
                    "problems": [_text(x) for x in r.problems],
                    "not_verified": [_text(x) for x in r.not_verified],
                }
                for r in results
            ],
            out,
        )
    bad = False
    for r in results:
        where = display_path(r.store)
        for problem in r.problems:
            err.write(f"{PROG}: {safe_text(problem)}\n")
        for line in r.not_verified:
            err.write(f"{PROG}: after optimising, {where}/{safe_text(line)}\n")
        bad = bad or bool(r.not_verified) or bool(r.problems and args.store) or r.refused
        if args.json or r.refused:
            continue
        verb = "would save" if r.dry_run else "saved"
        linked = "would be linked" if r.dry_run else "linked"
        out.write(
            f"{where}: {verb} {size_text(r.saved)}: {r.linked} files {linked} in "
            f"{len(r.affected)} implementations ({r.groups} sets of identical files)\n"
        )
        if not r.dry_run and r.affected and not r.not_verified:
            out.write(f"{where}: every changed implementation still verifies\n")
        if r.skipped:
            out.write(
                f"{where}: {len(r.skipped)} files left alone, e.g. {safe_text(r.skipped[0])}\n"
            )
    failure = optimise.record(results)
    if failure:
        err.write(f"{PROG}: {safe_text(failure)}\n")
    return 1 if bad else 0
