"""The command line's ``sharing status|enable|disable|self-test|script``: enabling the shared
system cache (issue 9).

    zeroinstall-admin sharing status [--json] [--root PREFIX]   exit 0 when enabled, 1 when not
    zeroinstall-admin sharing enable [--yes] [--root PREFIX]    show, confirm, apply, self-test
    zeroinstall-admin sharing disable [--yes] [--root PREFIX]   remove script, drop-in, profile
    zeroinstall-admin sharing self-test                          prove it as an ordinary user
    zeroinstall-admin sharing script [--ansible]                 steps for other hosts, a fleet

``--root PREFIX`` applies the same steps to files under PREFIX (useradd --prefix, the real
validators, nothing loaded into the kernel): for tests and image builders.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import IO, Any

from core.cli_common import CommandError, action_group, confirm, root_of, root_option


def register(sub: Any, store_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add this group's subcommands to ``sub`` (argparse subparsers); each sets ``func``."""

    actions = action_group(
        sub, "sharing",
        help="enable, check, prove or undo the shared system cache",
        description="Share downloaded programs between the users of this machine through "
        "/var/cache/0install.net (0store-secure-add-helper, a sudoers rule, an AppArmor profile).",
    )  # fmt: skip

    q = actions.add_parser("status", help="each step: done, missing, needs attention or n/a")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    root_option(q)
    q.set_defaults(func=cmd_status)

    q = actions.add_parser("enable", help="show what is missing, then apply it after you confirm")
    q.add_argument("--yes", action="store_true", help="apply without asking")
    root_option(q)
    q.set_defaults(func=cmd_enable)

    q = actions.add_parser(
        "disable", help="remove the helper script, the sudoers drop-in and the AppArmor profile "
        "(not the user, not the cache)",
    )  # fmt: skip
    q.add_argument("--yes", action="store_true", help="remove without asking")
    root_option(q)
    q.set_defaults(func=cmd_disable)

    q = actions.add_parser(
        "self-test", help="add a tiny implementation as an ordinary user, as 0install does"
    )
    q.set_defaults(func=cmd_self_test)

    q = actions.add_parser(
        "script",
        help="print the steps as a POSIX shell script, or an Ansible playbook for a fleet",
    )
    q.add_argument(
        "--ansible",
        action="store_true",
        help="an Ansible playbook instead (builtin modules only): installs the app from a .deb "
        "(-e zia_deb=PATH.deb), shares the system cache on every host as the script does, and "
        "with --tags report -e zia_results=DIR gathers each host's list and verify results into "
        "DIR for 'zeroinstall-admin fleet report DIR'",
    )
    q.set_defaults(func=cmd_script)


REFUSED = "nothing was changed: add --yes to apply"

MARK = {"done": "done", "missing": "MISSING", "needs attention": "ATTENTION",
        "not applicable": "n/a", "unknown": "UNKNOWN"}  # fmt: skip


def _print_steps(steps: list, out: IO[str]) -> None:
    for step in steps:
        out.write(f"  [{MARK.get(step.state, step.state):<9}] {step.title}: {step.detail}\n")


def cmd_status(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import sharing

    root = root_of(args)
    steps = sharing.detect(root)
    verdict = sharing.overall(steps)
    enabled = verdict.state == sharing.ENABLED
    if args.json:
        json.dump(
            {
                "root": root,
                "enabled": enabled,
                "state": verdict.state,
                "summary": verdict.summary,
                "steps": [
                    {"key": s.key, "title": s.title, "state": s.state, "detail": s.detail,
                     "verb": s.verb, "fixable": s.fixable, "target": s.target,
                     "preview": s.preview}
                    for s in steps
                ],
            },
            out, indent=2,
        )  # fmt: skip
        out.write("\n")
    else:
        text = verdict.summary
        if root != "/":
            text = f"{text.rstrip('.')} (root {root})."
        out.write(text + "\n")
        _print_steps(steps, out)
    return 0 if enabled else 1


def cmd_enable(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import elevate, sharing

    root = root_of(args)
    fake = None if root == "/" else root
    steps = sharing.detect(root)
    blockers = sharing.blockers(steps)
    if blockers:
        out.write("These need your hands first (applying cannot fix them):\n")
        _print_steps(blockers, out)
        raise CommandError("nothing was changed: fix the steps above, then run enable again")
    todo = sharing.plan(steps)
    if not todo:
        out.write("Sharing is already enabled: nothing to change.\n")
    else:
        out.write("Enabling sharing will:\n")
        for step in todo:
            out.write(f"\n* {sharing.review_text(step)}: {step.detail}\n")
            for line in step.preview.splitlines():
                out.write(f"    {line}\n")
        out.write("\n")
        if not confirm("Apply these changes?", args.yes, err, REFUSED):
            out.write("Nothing was changed.\n")
            return 1
        for step in todo:
            assert step.verb is not None
            outcome = elevate.run_helper(step.verb, root=fake, terminal=True)
            if not outcome.ok:
                err.write(f"{step.title}: {outcome.message}\n")
                if outcome.status in (elevate.UNAVAILABLE, elevate.NOT_AUTHORISED):
                    err.write(
                        f"Or enable every step at once as root with: {sharing.ALL_STEPS_COMMAND}\n"
                    )
                raise CommandError(f"stopped at '{step.title}'; the steps before it are done")
            out.write(f"{step.title}: {outcome.message}\n")
    after = sharing.detect(root)
    if sharing.overall(after).state not in (sharing.ENABLED, sharing.UNCERTAIN):
        _print_steps(after, out)
        raise CommandError("sharing is still not enabled: see the steps above")
    if fake is not None:
        out.write(f"Sharing is enabled on {root} (the self-test runs on a real system only).\n")
        return 0
    return cmd_self_test(args, out, err)


def cmd_disable(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import elevate, sharing

    root = root_of(args)
    present, kept = sharing.disable_preview(root)
    if kept:
        out.write("Left alone (not written by this app):\n")
        for line in kept:
            out.write(f"  {line}\n")
    if not present:
        out.write("Nothing to remove: this app wrote no helper script, sudoers drop-in or "
                  "profile here.\n")  # fmt: skip
        return 0
    out.write("Disabling sharing removes these files (the zeroinst user and the shared cache "
              "stay):\n")  # fmt: skip
    for path in present:
        out.write(f"  {path}\n")
    if not confirm("Remove them?", args.yes, err, REFUSED):
        out.write("Nothing was changed.\n")
        return 1
    outcome = elevate.run_helper("disable", root=None if root == "/" else root, terminal=True)
    if not outcome.ok:
        raise CommandError(outcome.message)
    for line in outcome.message.split("; "):
        if not line.endswith(": absent") and "left alone" not in line:
            out.write(f"  {line}\n")
    return 0


def cmd_self_test(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import self_test

    def progress(line: str) -> None:
        out.write(f"  {line}\n")
        out.flush()

    out.write("Self-test:\n")
    result = self_test.run_self_test(on_progress=progress)
    out.write(("PASSED: " if result.passed else "FAILED: ") + result.summary + "\n")
    return 0 if result.passed else 1


def cmd_script(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from core import sharing_export

    out.write(sharing_export.ansible_playbook() if args.ansible else sharing_export.posix_script())
    return 0
