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
import json
import sys
from collections.abc import Callable
from typing import IO, Any

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


def _stores(args: argparse.Namespace):
    from core import stores

    return stores.stores_from_paths(args.store) if getattr(args, "store", None) else None


def _verdict_json(v) -> dict:
    from core.cli import _iso

    fp = v.footprint
    return {
        "store": v.entry.store.path,
        "name": v.entry.name,
        "path": v.entry.path,
        "program": v.entry.program,
        "version": v.entry.version or None,
        "kind": v.entry.kind,
        "action": v.action,
        "size": fp.size if fp else None,
        "disk": fp.disk if fp else None,
        "last_used": _iso(v.last_used),
        "reasons": list(v.reasons),
        "doubt": v.doubt or None,
    }


def _confirm(question: str, args: argparse.Namespace, err: IO[str]) -> bool:
    """True with --yes or a "y" typed on a terminal; refuses (UsageError) off a terminal."""
    from core.cli import UsageError

    if args.yes:
        return True
    if not (sys.stdin.isatty() and err.isatty()):
        raise UsageError(
            "not on a terminal, so nothing was removed: check with --dry-run, then add --yes"
        )
    err.write(f"{question} [y/N] ")
    err.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _survey(args: argparse.Namespace, policy, err: IO[str]):
    from core import clean, pins
    from core.cli import PROG, CommandError, _Progress

    progress = _Progress(err)
    try:
        result = clean.survey(_stores(args), policy=policy, on_progress=progress.show)
    except pins.PinError as exc:
        raise CommandError(str(exc)) from None
    finally:
        progress.clear()
    for note in result.caveats():
        err.write(f"{PROG}: note: {note}\n")
    return result


def _remove(result, chosen, args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import clean

    progress = None
    if err.isatty():
        from core.cli import _Progress

        progress = _Progress(err)

    def on_progress(done: int, total: int, outcome) -> None:
        if progress is not None:
            progress.show(f"[{done} / {total}] {outcome.verdict.entry.name}")

    recheck = clean.recheck_for(result.stores, result.entries)
    try:
        outcomes = clean.remove(chosen, recheck, on_progress=on_progress)
    finally:
        if progress is not None:
            progress.clear()
    freed, quarantined = clean.totals(outcomes)
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        json.dump(
            {
                "results": [
                    {
                        **_verdict_json(o.verdict),
                        "outcome": o.action,
                        "detail": o.message,
                        "freed": o.size,
                        "quarantined": o.moved,
                    }
                    for o in outcomes
                ],
                "freed": freed,
                "quarantined": quarantined,
            },
            out,
            indent=2,
        )
        out.write("\n")
    else:
        for o in outcomes:
            e = o.verdict.entry
            detail = f": {o.message}" if o.message else ""
            out.write(
                f"{o.action.upper():<12} {e.store.path}  {e.name}  {e.program} "
                f"{e.version}{detail}\n".replace("  \n", "\n")
            )
        out.write(f"\n{clean.result_text(outcomes)}; recorded in the action log\n")
    return 1 if failed else 0


# --- commands -------------------------------------------------------------------------------------


def cmd_clean(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import clean
    from core.cli import UsageError

    if args.older_than < 0:
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
            json.dump(
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
                    "notes": result.caveats(),
                },
                out,
                indent=2,
            )
            out.write("\n")
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
    if not _confirm(f"{clean.plan_text(chosen).capitalize()}?", args, err):
        err.write("Nothing removed.\n")
        return 1
    return _remove(result, chosen, args, out, err)


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
    from core.cli import _table

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
    _table(rows, out)


def cmd_pin(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import cache, pins
    from core.cli import CommandError

    try:
        current = pins.load()
        scan = cache.scan()
        known = {(e.feed.feed_url, e.feed.feed_name) for e in scan.entries if e.feed is not None}
        kind, value = pins.classify(args.target, known)
        changed = pins.add(current, kind, value) if args.pin else pins.remove(current, kind, value)
        if changed:
            current.save()
    except pins.PinError as exc:
        raise CommandError(str(exc)) from None
    what = f"entry {value}" if kind == "entry" else f"every version of {value}"
    if args.pin:
        already = f"{what[:1].upper()}{what[1:]} was pinned already\n"
        out.write(f"Pinned {what}\n" if changed else already)
    else:
        if not changed:
            raise CommandError(f"{what} is not pinned (pins are in {current.path})")
        out.write(f"Unpinned {what}\n")
    return 0


def cmd_delete(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import clean
    from core.cli import CommandError, _select

    result = _survey(args, clean.Policy(older_than_days=0), err)
    chosen, missing = _select(result.entries, args.names)
    for name in missing:
        err.write(f"zeroinstall-admin: '{name}' is not in any store\n")
    by_entry = {id(v.entry): v for v in result.verdicts}
    allowed = []
    refused = 0
    for entry in chosen:
        verdict = by_entry[id(entry)]
        reasons = result.evidence.reasons(entry)
        if reasons:
            refused += 1
            err.write(f"zeroinstall-admin: {entry.name} is kept: {'; '.join(reasons)}\n")
            continue
        if verdict.action != "remove":  # delete means delete, suspicious or not
            verdict = clean.Verdict(
                entry,
                "remove",
                ["deleted on request"] + verdict.reasons[:1],
                verdict.last_used,
                verdict.footprint,
            )
        else:
            verdict.reasons = ["deleted on request"] + verdict.reasons
        if verdict.footprint is None:
            verdict.footprint = clean.footprint(entry.path)
        allowed.append(verdict)
    if not allowed:
        raise CommandError("nothing to delete")
    _size_, disk = clean.reclaimable(v.footprint for v in allowed if v.footprint)
    if not _confirm(f"Delete {len(allowed)} entries and reclaim {size_text(disk)}?", args, err):
        err.write("Nothing removed.\n")
        return 1
    status = _remove(result, allowed, args, out, err)
    return 1 if status or missing or refused else 0


def cmd_optimise(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import optimise, stores
    from core.cli import PROG, _Progress

    chosen = _stores(args) or [s for s in stores.discover_stores() if s.problem is None]
    progress = _Progress(err)
    results = []
    try:
        for store in chosen:

            def shown(done: int, total: int, path: str = store.path) -> None:
                progress.show(f"{path}: {done} / {total} groups of identical files")

            results.append(optimise.optimise_store(store, dry_run=args.dry_run, on_progress=shown))
    finally:
        progress.clear()
    if args.json:
        json.dump([r.__dict__ for r in results], out, indent=2)
        out.write("\n")
    bad = False
    for r in results:
        for problem in r.problems:
            err.write(f"{PROG}: {problem}\n")
        for line in r.not_verified:
            err.write(f"{PROG}: after optimising, {r.store}/{line}\n")
        bad = bad or bool(r.not_verified) or bool(r.problems and args.store) or r.refused
        if args.json or r.refused:
            continue
        verb = "would save" if r.dry_run else "saved"
        linked = "would be linked" if r.dry_run else "linked"
        out.write(
            f"{r.store}: {verb} {size_text(r.saved)}: {r.linked} files {linked} in "
            f"{len(r.affected)} implementations ({r.groups} sets of identical files)\n"
        )
        if not r.dry_run and r.affected and not r.not_verified:
            out.write(f"{r.store}: every changed implementation still verifies\n")
        if r.skipped:
            out.write(f"{r.store}: {len(r.skipped)} files left alone, e.g. {r.skipped[0]}\n")
    failure = optimise.record(results)
    if failure:
        err.write(f"{PROG}: {failure}\n")
    return 1 if bad else 0
