"""The command line's ``maintenance``: scheduled verification and clean-up of the shared store
(issue 23).

    zeroinstall-admin maintenance status [--json] [--root PREFIX]    exit 0 when enabled, 1 when not
    zeroinstall-admin maintenance enable [SETTINGS] [--yes] [--root PREFIX]
    zeroinstall-admin maintenance disable [--yes] [--root PREFIX]
    zeroinstall-admin maintenance run verify|clean|watch [--root PREFIX] [--follow [--interval S]]

``enable`` and ``disable`` go through the privileged helper's ``maintenance-enable`` and
``maintenance-disable`` verbs; ``run`` is what the services start (as root), and can be run by
hand. ``--root PREFIX`` works on files under PREFIX: for tests and image builders.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from typing import IO, Any

from core.cli_common import CommandError, UsageError, action_group, confirm, root_of, root_option


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this group's subcommands to ``sub`` (argparse subparsers); each sets ``func``."""

    actions = action_group(
        sub, "maintenance",
        help="scheduled verification and clean-up of the shared cache, and a watch on it",
        description="Verify the shared cache daily and clean it weekly with systemd timers, "
        "verify each new entry as it appears, and free space when the disk runs low.",
    )  # fmt: skip

    q = actions.add_parser("status", help="whether it is enabled, its settings, the last runs")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    root_option(q)
    q.set_defaults(func=cmd_status)

    q = actions.add_parser("enable", help="show the units, then install them after you confirm")
    settings_options(q)
    q.add_argument("--yes", action="store_true", help="apply without asking")
    root_option(q)
    q.set_defaults(func=cmd_enable)

    q = actions.add_parser("disable", help="stop and remove every file enable wrote")
    q.add_argument("--yes", action="store_true", help="remove without asking")
    root_option(q)
    q.set_defaults(func=cmd_disable)

    q = actions.add_parser(
        "script", help="the same as a POSIX shell script (or an Ansible playbook) for other "
        "machines; takes enable's settings",
    )  # fmt: skip
    q.add_argument("--ansible", action="store_true", help="an Ansible playbook instead")
    settings_options(q)
    q.set_defaults(func=cmd_script)

    q = actions.add_parser("run", help="one run now, as the services do (as root)")
    q.add_argument("job", choices=("verify", "clean", "watch"), metavar="verify|clean|watch")
    q.add_argument(
        "--follow",
        action="store_true",
        help="watch only: keep polling for new entries (for NFS, where inotify sees "
        "nothing) until interrupted",
    )
    q.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between two looks with --follow (default 2)",
    )
    root_option(q)
    q.set_defaults(func=cmd_run)


SETTINGS_OPTIONS = (
    ("--verify-when", "CALENDAR", "when to verify, a systemd calendar spec (default daily)"),
    ("--clean-when", "CALENDAR", "when to clean up (default weekly)"),
    ("--older-than", "DAYS", "clean entries not used for DAYS days (default 30)"),
    ("--keep", "N", "keep the N newest versions of every program"),
    ("--grace", "DAYS", "the free-space trigger never removes entries used or added within DAYS "
     "days (default 2)"),
    ("--min-free", "LIMIT", "free space below which entries are removed: 10%%,5G (the smaller; "
     "default), 10%%, 5G or off"),
    ("--max-free", "LIMIT", "remove until this much is free (default 20%%,10G)"),
)  # fmt: skip
"""enable's settings that take a value: (option, metavar, help)."""


def settings_options(q: argparse.ArgumentParser) -> None:
    """enable's settings (script takes them too)."""
    for option, metavar, text in SETTINGS_OPTIONS:
        q.add_argument(option, metavar=metavar, help=text)
    q.add_argument("--no-watch", action="store_true", help="no watch on new entries")
    q.add_argument("--watch", action="store_true", help="watch new entries (the default)")
    q.add_argument(
        "--mail",
        action="store_true",
        help="mail root through sendmail after runs that found or removed something",
    )
    q.add_argument("--no-mail", action="store_true", help="no mail (the default)")


def _confirm(question: str, args: argparse.Namespace, err: IO[str]) -> bool:
    """The one confirmation of every command (core.cli_common): asked on the terminal, a usage
    error off one without --yes."""

    return confirm(question, args.yes, err, "nothing was changed: add --yes to apply")


def cmd_status(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import maintenance_installed as installed
    from core import maintenance_status as status_file
    from core import root_helper as rh

    root = root_of(args)
    state = installed.installed(root)
    status = status_file.read_status(root)
    units = {}
    if root == "/":
        for unit in rh.MAINTENANCE_STARTED:
            units[unit] = installed.systemctl_state(unit)
    findings = status_file.current_findings(status)
    if args.json:
        s = state.settings
        json.dump(
            {
                "root": root,
                "enabled": state.enabled,
                "files": state.files,
                "foreign": state.foreign,
                "settings": None if s is None else dict(zip(rh.MAINTENANCE_KEYS, s.as_args(),
                                                            strict=True)),
                "settings_problem": state.settings_problem or None,
                "units": units,
                "last_check": status_file.last_check_text(status),
                "findings": [f.to_json() for f in findings],
                "runs": {job: status.get(job) for job in status_file.JOB_NAMES},
            },
            out, indent=2, ensure_ascii=False,
        )  # fmt: skip
        out.write("\n")
        return 0 if state.enabled else 1
    where = "" if root == "/" else f" (root {root})"
    out.write(f"Maintenance is {'enabled' if state.enabled else 'not enabled'}{where}\n")
    if state.settings_problem:
        out.write(f"  settings: {state.settings_problem}\n")
    if state.settings is not None:
        s = state.settings
        out.write(
            f"  verify: {s.verify}; clean: {s.clean} (not used for {s.older_than_days:g} days, "
            f"keep {s.keep}); free space: below {s.min_free} remove down to {s.max_free}, "
            f"grace {s.grace_days:g} days; watch: {'on' if s.watch else 'off'}; "
            f"mail: {'on' if s.mail else 'off'}\n"
        )
    for path in state.files:
        out.write(f"  {path}\n")
    for path in state.foreign:
        out.write(f"  {path}: not written by this tool (left alone)\n")
    for unit, active in units.items():
        if active is not None:
            out.write(f"  {unit}: {active}\n")
    line = status_file.last_check_text(status)
    out.write(f"{line or 'No check has run yet.'}\n")
    for f in findings:
        out.write(f"  {f.line()}\n")
    for line in status_file.run_summaries(status):
        out.write(line + "\n")
    return 0 if state.enabled else 1


def _settings(args: argparse.Namespace, root: str, *, current: bool = True):
    """enable's settings: those given, the rest from this machine's (``current``) or defaults."""
    from core import maintenance
    from core import root_helper as rh
    from core.maintenance_installed import calendar_problem

    base = maintenance.Settings()
    if current:
        with contextlib.suppress(maintenance.MaintenanceError):  # unreadable: the defaults
            base = maintenance.load_settings(root) or base
    raw = dict(zip(rh.MAINTENANCE_KEYS, base.as_args(), strict=True))
    for key, value in (
        ("verify", args.verify_when), ("clean", args.clean_when),
        ("older_than_days", args.older_than), ("keep", args.keep),
        ("grace_days", args.grace), ("min_free", args.min_free), ("max_free", args.max_free),
    ):  # fmt: skip
        if value is not None:
            raw[key] = value
    if args.watch and args.no_watch or args.mail and args.no_mail:
        raise UsageError("choose one of --watch and --no-watch, and of --mail and --no-mail")
    if args.no_watch or args.watch:
        raw["watch"] = "no" if args.no_watch else "yes"
    if args.mail or args.no_mail:
        raw["mail"] = "yes" if args.mail else "no"
    try:
        settings = maintenance.Settings.from_mapping(raw)
    except rh.UsageError as exc:
        raise UsageError(str(exc)) from None
    try:
        problem = calendar_problem(settings)
    except maintenance.MaintenanceError as exc:
        raise CommandError(str(exc)) from None
    if problem:
        raise UsageError(problem)
    return settings


def cmd_enable(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import elevate
    from core.maintenance_installed import enable_preview

    root = root_of(args)
    settings = _settings(args, root)
    out.write("Enabling maintenance writes (each checked with systemd-analyze first):\n")
    for path, content in enable_preview(settings):
        out.write(f"\n* {path}\n")
        for line in content.splitlines():
            out.write(f"    {line}\n")
    out.write("\n")
    if not _confirm("Apply these changes?", args, err):
        out.write("Nothing was changed.\n")
        return 1
    outcome = elevate.run_helper(
        "maintenance-enable", *settings.as_args(), root=None if root == "/" else root,
        terminal=True,
    )  # fmt: skip
    if not outcome.ok:
        raise CommandError(outcome.message)
    for line in outcome.message.split("; "):
        out.write(f"  {line}\n")
    out.write("Maintenance is enabled.\n")
    return 0


def cmd_disable(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import elevate
    from core.maintenance_installed import installed

    root = root_of(args)
    state = installed(root)
    if not state.files:
        out.write("Nothing to remove: maintenance is not enabled.\n")
        return 0
    out.write("Disabling maintenance stops its timers and removes (the status file and the "
              "action log stay):\n")  # fmt: skip
    for path in state.files:
        out.write(f"  {path}\n")
    if not _confirm("Remove them?", args, err):
        out.write("Nothing was changed.\n")
        return 1
    outcome = elevate.run_helper("maintenance-disable", root=None if root == "/" else root,
                                 terminal=True)  # fmt: skip
    if not outcome.ok:
        raise CommandError(outcome.message)
    for line in outcome.message.split("; "):
        out.write(f"  {line}\n")
    return 0


def cmd_script(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import maintenance_export

    settings = _settings(args, "/", current=False)
    if args.ansible:
        out.write(maintenance_export.ansible_playbook(settings))
    else:
        out.write(maintenance_export.posix_script(settings))
    return 0


def cmd_run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import maintenance
    from core.maintenance_jobs import follow, run_job
    from core.maintenance_run import journal_writer

    root = root_of(args)
    place = maintenance.Place(root)
    if args.follow and args.job != "watch":
        raise UsageError("--follow goes with 'run watch' only")
    if not 0.1 <= args.interval <= 3600:
        raise UsageError("--interval must be between 0.1 and 3600 seconds")
    emit = journal_writer(err)
    try:
        settings = maintenance.load_settings(root) or maintenance.Settings()
        if args.follow:
            follow(place, emit, interval=args.interval, settings=settings)
            return 0
        result = run_job(args.job, place, emit, settings=settings)
    except maintenance.MaintenanceError as exc:
        raise CommandError(str(exc)) from None
    return result.exit_code
