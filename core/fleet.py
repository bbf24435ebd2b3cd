"""``zeroinstall-admin fleet report RESULTS_DIR``: one table of many hosts' caches.

The playbook's ``report`` play (``zeroinstall-admin sharing script --ansible``) runs
``zeroinstall-admin list --json`` and ``verify --json`` on every host and writes one
``HOST.json`` per host into RESULTS_DIR on the controller::

    {"host": "lab-01", "list": {"rc": 0, "stdout": "[...]", "stderr": "", "msg": ""},
     "verify": {"rc": 1, "stdout": "[...]", "stderr": "", "msg": ""}}

This module reads them back: entries, total size and problems per host. A file that cannot be
read, a command that did not run and output that is not JSON are problems of that host, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from core.cli_common import CommandError, UsageError, action_group
from core.display import display_path, safe_text
from core.units import size_text

OK_STATUSES = ("ok", "skipped")


@dataclass
class HostReport:
    host: str
    entries: int | None = None
    """Entries listed (None when the list could not be read)."""
    size: int | None = None
    """Their total size in bytes."""
    verified: int | None = None
    problems: list[str] = field(default_factory=list)


def _command_rows(name: str, result: Any, problems: list[str]) -> list[dict[str, Any]] | None:
    """The rows the host's ``name --json`` printed, or None with why in ``problems`` (the command
    did not run, or its output is not a JSON list of entries)."""
    if not isinstance(result, dict):
        problems.append(f"no {name} result")
        return None
    rc = result.get("rc")
    if rc is None or rc not in (0, 1):
        said = str(result.get("stderr") or result.get("msg") or "").strip().splitlines()
        reason = said[-1] if said else f"exit code {rc}"
        problems.append(f"{name} did not run: {reason}")
        return None
    try:
        rows = json.loads(result.get("stdout") or "")
    except ValueError:
        problems.append(f"{name} --json gave no JSON")
        return None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        problems.append(f"{name} --json gave something other than a list of entries")
        return None
    return rows


def _entry_name(row: dict[str, Any]) -> str:
    name = row.get("name")
    if isinstance(name, dict):  # a name that is not UTF-8: {"base64": ..., "text": ...}
        name = name.get("text")
    return str(name)


def host_report(host: str, data: Any) -> HostReport:
    """What one host's results file says."""
    report = HostReport(host)
    if not isinstance(data, dict):
        report.problems.append("the results file is not a JSON object")
        return report
    rows = _command_rows("list", data.get("list"), report.problems)
    if rows is not None:
        report.entries = len(rows)
        report.size = sum(r["size"] for r in rows if isinstance(r.get("size"), int))
    rows = _command_rows("verify", data.get("verify"), report.problems)
    if rows is not None:
        report.verified = len(rows)
        for row in rows:
            status = row.get("status")
            if status not in OK_STATUSES:
                detail = row.get("detail") or ""
                report.problems.append(
                    f"{status}: {_entry_name(row)}" + (f" ({detail})" if detail else "")
                )
    return report


def read_results(directory: str) -> list[HostReport]:
    """Every ``*.json`` of ``directory``, by host name. Raises OSError if the directory cannot
    be listed."""
    reports = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json") or name.startswith("."):
            continue
        host = name[: -len(".json")]
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            reports.append(HostReport(host, problems=[f"{name} cannot be read: {exc}"]))
            continue
        if isinstance(data, dict) and isinstance(data.get("host"), str):
            host = data["host"]
        reports.append(host_report(host, data))
    return reports


# --- the command line -----------------------------------------------------------------------------


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``fleet report`` to ``sub`` (argparse subparsers)."""
    actions = action_group(sub, "fleet", help="many machines: the results the playbook gathered")
    p = actions.add_parser(
        "report",
        help="one table of hosts: entries, size, problems",
        description="Read the HOST.json files the playbook's report play gathered "
        "('ansible-playbook --tags report -e zia_results=DIR zeroinstall-admin.yml', the "
        "playbook from 'zeroinstall-admin sharing script --ansible') and print one row per "
        "host. Exit 1 when a host has a problem.",
    )
    p.add_argument("results", metavar="RESULTS_DIR", help="the directory given as zia_results")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:

    if not args.results:
        raise UsageError("fleet report needs the results directory")
    try:
        reports = read_results(args.results)
    except OSError as exc:
        raise CommandError(
            f"'{display_path(args.results)}': {exc.strerror or exc}: give the directory the "
            "report play wrote (-e zia_results=DIR)"
        ) from None
    if not reports:
        raise CommandError(
            f"'{display_path(args.results)}' has no HOST.json: run the playbook's report play "
            "first (--tags report -e zia_results=DIR)"
        )
    if args.json:
        json.dump([asdict(r) for r in reports], out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        rows = [("HOST", "ENTRIES", "SIZE", "PROBLEMS")]
        for r in reports:
            rows.append(
                (
                    safe_text(r.host),
                    "?" if r.entries is None else str(r.entries),
                    "?" if r.size is None else size_text(r.size),
                    safe_text("; ".join(r.problems)) if r.problems else "none",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            out.write(
                f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}\n"
            )
        troubled = sum(1 for r in reports if r.problems)
        out.write(
            f"{len(reports)} hosts, {sum(r.entries or 0 for r in reports)} entries, "
            f"{size_text(sum(r.size or 0 for r in reports))}; "
            + (f"{troubled} with problems\n" if troubled else "no problems\n")
        )
    return 1 if any(r.problems for r in reports) else 0
