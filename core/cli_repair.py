"""The ``repair`` command: damaged entries moved aside and fetched again through 0install
(:mod:`core.repair`, which the window's Repair calls too)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import IO, Any

from core.cli_common import PROG, named_stores, select_entries, warn, write_json
from core.display import json_name, safe_text


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "repair",
        help="move damaged entries aside and fetch the same implementations again with 0install",
        description="For each damaged entry named: verify it, move it into the quarantine beside "
        "its store, fetch the same program and version again with '0install download' into that "
        "store, and verify what arrived. An entry that verifies is left alone; one no cached "
        "feed lists cannot be fetched again, and is left as it is.",
    )
    store_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("names", nargs="+", metavar="NAME", help="digests or entry paths")
    p.set_defaults(func=cmd_repair)


def cmd_repair(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import cache, repair

    # --store is checked as every command checks it (exit 2 for '', 1 for a bad directory).
    scan = cache.scan(named_stores(args.store))
    warn(scan.problems, err)
    chosen, missing = select_entries(scan.entries, args.names)
    for name in missing:
        err.write(f"{PROG}: '{safe_text(name)}' is not in any store\n")

    def on_step(entry: Any, text: str) -> None:
        if not args.json:
            err.write(f"{entry.short_name}: {text}...\n")

    results = repair.repair(chosen, on_step=on_step)
    if args.json:
        rows = [
            {
                "store": json_name(r.store),
                "name": json_name(r.name),
                "action": r.action,
                "message": r.message,
                "quarantined_to": json_name(r.quarantined_to) if r.quarantined_to else None,
            }
            for r in results
        ]
        write_json(rows, out)
    else:
        for r in results:
            word = {"repaired": "REPAIRED", "not-damaged": "OK"}.get(r.action, "NOT REPAIRED")
            out.write(f"{word:<13}{safe_text(r.message)}\n")
    return 0 if results and all(r.ok for r in results) and not missing else 1
