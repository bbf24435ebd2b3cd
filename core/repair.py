"""Repair: a damaged entry is moved aside and the same implementation fetched again by 0install.

0install's own tools can only delete a damaged implementation (Nix has ``store verify
--repair``). For each entry asked for, :func:`repair` does what an admin would do by hand:

1. verify it (an entry that is not corrupt is left alone, and said so);
2. find its feed and version in the cached feeds (an entry no cached feed lists cannot be fetched
   again: that is said, and the entry is left where it is);
3. check that nothing uses it right now, as Delete does (:func:`core.evidence.collect`: running
   processes, VMs sharing its store, this app): a damaged entry a running program uses is not
   moved from under it; what uses it is said, and the entry is left where it is;
4. quarantine it: moved into ``zeroinstall-admin-quarantine`` beside the store (through the
   privileged helper's ``quarantine`` verb for a store this process may not change), kept as
   evidence and out of 0install's reach; recorded in the action log;
5. ``0install download --version=VERSION FEED`` with the store it came from first in 0install's
   view (``XDG_CACHE_DIRS`` for a system store when run as root; the user's own store as it is;
   the shared store through whatever 0install itself uses for it, i.e. 0store-secure-add);
6. verify what arrived. Where 0install put it somewhere else, or did not fetch it, that is said.

The command line (``zeroinstall-admin repair NAME...``) and the window's Repair call
:func:`repair` with the same arguments.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.display import display_path, safe_text

DOWNLOAD_TIMEOUT = 1800.0
"""Seconds one ``0install download`` may take (a big archive on a slow line)."""
IMPLEMENTATIONS = os.path.join("0install.net", "implementations")


@dataclass(slots=True)
class RepairResult:
    """What happened to one entry: ``action`` is "repaired", "failed", "unknown-feed", "in-use",
    "not-damaged" or "skipped"; ``message`` says it in a sentence."""

    store: str
    name: str
    action: str
    message: str
    quarantined_to: str = ""

    @property
    def ok(self) -> bool:
        return self.action in ("repaired", "not-damaged")


def find_zeroinstall() -> str | None:
    return shutil.which("0install") or next(
        (p for p in ("/usr/bin/0install", "/usr/local/bin/0install") if os.access(p, os.X_OK)),
        None,
    )


def download_env(store: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment in which ``0install download`` puts what it fetches into ``store``
    (``X/0install.net/implementations``): as root, ``X`` first in ``XDG_CACHE_DIRS`` (root adds
    to the system store); else, unless it is already the user's, ``XDG_CACHE_HOME=X``."""
    result = dict(env)
    cache = os.path.dirname(os.path.dirname(store.rstrip("/")))
    if os.geteuid() == 0:
        rest = result.get("XDG_CACHE_DIRS", "/var/cache")
        result["XDG_CACHE_DIRS"] = cache + (":" + rest if rest else "")
        return result
    from core.stores import SHARED_SYSTEM_STORE

    if os.path.realpath(store) == os.path.realpath(SHARED_SYSTEM_STORE):
        return result  # 0install adds to the shared store itself (0store-secure-add)
    home = result.get("XDG_CACHE_HOME") or os.path.join(
        result.get("HOME") or os.path.expanduser("~"), ".cache"
    )
    if os.path.realpath(os.path.join(home, IMPLEMENTATIONS)) != os.path.realpath(store):
        result["XDG_CACHE_HOME"] = cache
    return result


def _last_line(text: bytes) -> str:
    lines = [line for line in text.decode("utf-8", "replace").splitlines() if line.strip()]
    return safe_text(lines[-1].strip()) if lines else ""


Quarantine = Callable[[Any], str]
"""Moves an entry (a core.cache.Entry) aside; returns where to, raises on failure."""
InUse = Callable[[Any], list[str]]
"""What uses an entry (a core.cache.Entry) right now, one reason each; [] when nothing does."""


def in_use_now(entry: Any, env: Mapping[str, str] | None = None) -> list[str]:
    """What uses ``entry`` right now (processes, VMs sharing its store, this app), from the
    evidence Delete gathers (:func:`core.evidence.collect`); apps' selections and pins are not
    asked: they keep an entry from being deleted, not from being fetched again."""
    from core import evidence

    found = evidence.collect([entry.store], [entry], pins=None, env=env, homes=[])
    return found.in_use(entry)


def repair(
    entries: Sequence[Any],
    *,
    env: Mapping[str, str] | None = None,
    zeroinstall: str | None = None,
    quarantine: Quarantine | None = None,
    in_use: InUse | None = None,
    log_path: str | None = None,
    on_step: Callable[[Any, str], None] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> list[RepairResult]:
    """Repair each entry (:class:`core.cache.Entry`, with its feed known from the cached feeds),
    one at a time; never raises for one entry's failure. ``quarantine`` (for tests) replaces the
    usual move aside, ``in_use`` the look at what uses an entry (:func:`in_use_now`);
    ``on_step(entry, text)`` is told what is happening."""
    env = dict(os.environ if env is None else env)
    zeroinstall = zeroinstall or find_zeroinstall()
    step = on_step or (lambda _entry, _text: None)
    users = in_use or (lambda entry: in_use_now(entry, env))
    results: list[RepairResult] = []
    for entry in entries:
        refused, damage = _refusal(entry, zeroinstall, users, step)
        if refused is not None:
            results.append(refused)
            continue
        assert zeroinstall is not None  # _refusal says so when it is missing
        step(entry, "moving aside")
        try:
            moved_to = quarantine(entry) if quarantine else _quarantine(entry, log_path)
        except Exception as exc:  # noqa: BLE001 - reported; the other entries carry on
            results.append(
                RepairResult(
                    entry.store.path,
                    entry.name,
                    "failed",
                    f"{display_path(entry.path)} could not be moved aside: {exc}; not repaired",
                )
            )
            continue
        result = _fetch_again(entry, zeroinstall, env, timeout, moved_to, step)
        results.append(result)
        _record(entry, result, damage, log_path)
    return results


def _refusal(
    entry: Any, zeroinstall: str | None, in_use: InUse, step: Callable[[Any, str], None]
) -> tuple[RepairResult | None, str]:
    """The checks before anything changes: why the entry is not repaired (it is left as it is),
    or None; and what is wrong with it (the first line of its verification's detail)."""
    store, name = entry.store.path, entry.name
    shown = display_path(entry.path)
    if entry.digest is None or entry.kind != "implementation":
        return RepairResult(store, name, "skipped", f"{shown} is not an implementation"), ""
    from core.verify import verify_paths

    step(entry, "verifying")
    (before,) = verify_paths([entry.path], jobs=1)
    if before is None or before.status == "ok":
        return RepairResult(store, name, "not-damaged", f"{shown} verifies: nothing to repair"), ""
    if before.status == "skipped":
        return RepairResult(store, name, "skipped", f"{shown}: {before.detail}"), ""
    damage = before.detail.splitlines()[0] if before.detail else "corrupt"
    if entry.feed is None:
        return RepairResult(
            store,
            name,
            "unknown-feed",
            f"{shown} is damaged, but no cached feed lists it, so which program and "
            "version to fetch again is unknown: it was left as it is (delete it; the "
            "program that needs it will fetch it again)",
        ), damage
    if zeroinstall is None:
        return RepairResult(
            store, name, "failed", "0install is not installed (Debian: 0install-core)"
        ), damage
    if not store.rstrip("/").endswith(IMPLEMENTATIONS):
        return RepairResult(
            store,
            name,
            "failed",
            f"{display_path(store)} is not a 0install.net/implementations directory, so "
            "0install cannot be told to fetch into it; nothing was changed",
        ), damage
    step(entry, "checking that nothing uses it")
    users = in_use(entry)
    if users:
        return RepairResult(
            store,
            name,
            "in-use",
            f"{shown} is damaged, but it was left where it is, as it is in use right now "
            f"({'; '.join(users)}). Stop what uses it (quit the program, shut the VM "
            "down), then repair it again",
        ), damage
    return None, damage


def _fetch_again(
    entry: Any,
    zeroinstall: str,
    env: Mapping[str, str],
    timeout: float,
    moved_to: str,
    step: Callable[[Any, str], None],
) -> RepairResult:
    """``0install download`` the entry's feed and version into its store (the damaged copy is
    aside, in ``moved_to``), and verify what arrived."""
    from core.verify import verify_paths

    store, name, feed = entry.store.path, entry.name, entry.feed
    shown = display_path(entry.path)
    aside = f" (the damaged copy is in {display_path(moved_to)})" if moved_to else ""
    step(entry, f"fetching {feed.feed_name} {feed.version} again")
    failure = _download(zeroinstall, feed, download_env(store, env), timeout)
    if failure:
        return RepairResult(store, name, "failed", failure + aside, moved_to)
    if not os.path.lexists(entry.path):
        return RepairResult(
            store,
            name,
            "failed",
            f"0install fetched {feed.feed_name} {feed.version} but did not put it in "
            f"{display_path(store)} (it may have been cached elsewhere already, or be another "
            f"implementation of that version){aside}",
            moved_to,
        )
    step(entry, "verifying what arrived")
    (after,) = verify_paths([entry.path], jobs=1)
    if after is not None and after.status == "ok":
        return RepairResult(
            store,
            name,
            "repaired",
            f"{shown}: fetched {feed.feed_name} {feed.version} again; it verifies{aside}",
            moved_to,
        )
    detail = after.detail if after is not None else "not verified"
    return RepairResult(
        store,
        name,
        "failed",
        f"{shown}: fetched again, but it does not verify: {detail}{aside}",
        moved_to,
    )


def _download(zeroinstall: str, feed: Any, env: Mapping[str, str], timeout: float) -> str:
    """Run ``0install download --version=VERSION FEED``; why it failed, or "" when it did not."""
    command = [zeroinstall, "download", f"--version={feed.version}", feed.feed_url]
    try:
        proc = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"0install download took more than {timeout:.0f} s and was stopped"
    except OSError as exc:
        return f"0install could not be run: {exc.strerror or exc}"
    if proc.returncode:
        return f"0install download failed: {_last_line(proc.stderr) or f'exit {proc.returncode}'}"
    return ""


def _record(entry: Any, result: RepairResult, damage: str, log_path: str | None) -> None:
    """Put a repair that moved the entry aside in the action log, repaired or not."""
    from core import actionlog

    actionlog.record(
        [
            actionlog.Record(
                action="repaired" if result.action == "repaired" else "repair-failed",
                store=result.store,
                entry=result.name,
                program=entry.feed.feed_name,
                version=entry.feed.version,
                reasons=[damage],
                detail=result.message,
            )
        ],
        log_path,
    )


def _quarantine(entry: Any, log_path: str | None = None) -> str:
    """Move the entry aside as Clean up's quarantine does (here, or through the privileged helper
    for a store this process may not change), recorded in the action log; where it went."""
    from core import clean

    verdict = clean.Verdict(entry, "quarantine", ["damaged: to be fetched again"], None)
    (outcome,) = clean.remove([verdict], None, log_path=log_path)
    if not outcome.ok:
        raise RuntimeError(outcome.message)
    prefix = "moved to "
    return outcome.message[len(prefix) :] if outcome.message.startswith(prefix) else ""
