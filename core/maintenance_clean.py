"""What scheduled maintenance removes: the weekly clean-up with the configured policy (age,
keep-N, pins of root and of every user, every user's apps), and the free-space trigger: below the
lower limit (default the smaller of 10% and 5 GB free), the least recently used entries that
nothing uses, pins or selects and that are past the grace period go, one at a time, until the upper
limit is met. Nothing is removed when a home cannot be read; every removal goes to the action log.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from core import root_helper as rh
from core.display import display_path
from core.maintenance import Place
from core.maintenance_run import INFO, NOTICE, WARNING, Run
from core.maintenance_status import RunResult
from core.store_lock import StoreBusy
from core.units import count_text, size_text


def clean_job(run: Run) -> RunResult:
    """Clean with the configured policy, then the free-space check; nothing is removed unless
    every user's apps could be read."""
    from core import clean, pins

    r = run.result
    settings = run.settings
    policy = clean.Policy(older_than_days=settings.older_than_days, keep=settings.keep)
    try:
        with run.locked():
            result = _survey(run.place, policy, run.cancel)
            problem = _homes_problem(result)
            if problem:
                r.message = problem
                run.say(WARNING, f"clean stopped: {problem}")
            else:
                chosen = [v for v in result.candidates if not v.doubt]
                r.checked = len(result.verdicts)
                _remove(run, result, chosen, None)
                free_space_if_low(run)
    except StoreBusy as exc:
        run.busy(exc)
    except pins.PinError as exc:
        r.message = str(exc)
        run.say(WARNING, f"clean stopped: {exc}")
    run.say(
        INFO,
        f"clean: {count_text(r.removed, 'entry')} removed or quarantined, "
        f"{size_text(r.freed)} freed"
        + (f", {r.failed} failed" if r.failed else "")
    )  # fmt: skip
    return run.finish(mail=True)


# --- the free-space trigger -----------------------------------------------------------------------


def space_limit(spec: str, total: int) -> int | None:
    """The free bytes a MIN_FREE/MAX_FREE setting asks for on a filesystem of ``total`` bytes:
    the smaller of its percentage and its size; None when off."""
    pct, size = rh.free_space_limit(spec)
    limits = [x for x in (pct * total // 100 if pct is not None else None, size) if x is not None]
    return min(limits) if limits else None


def free_space_if_low(run: Run) -> None:
    """The free-space trigger, within a run that holds the lock."""
    try:
        free, total = run.free_space(run.place.store)
    except OSError as exc:
        run.say(WARNING, f"free space of {run.place.store} unknown: {exc.strerror or exc}")
        return
    low = space_limit(run.settings.min_free, total)
    if low is None or free >= low:
        return
    free_space_pass(run)


def free_space_pass(run: Run) -> None:
    """Below the lower limit: remove the least recently used entries that nothing uses, pins or
    selects and that were not used or added within the grace period, one at a time, until the
    upper limit is met. Nothing goes unless every user's apps could be read."""
    from core import clean

    store = run.place.store
    settings, free_space = run.settings, run.free_space
    free, total = free_space(store)
    low = space_limit(settings.min_free, total)
    high = space_limit(settings.max_free, total)
    if low is None or high is None or free >= low:
        return
    run.say(WARNING, f"free space low on {display_path(store)}: {size_text(free)} of "
                     f"{size_text(total)} free (below {size_text(low)}): removing the least "
                     "recently used entries")  # fmt: skip
    policy = clean.Policy(older_than_days=settings.grace_days, keep=0)
    result = _survey(run.place, policy, run.cancel)
    problem = _homes_problem(result)
    if problem:
        run.result.message = problem
        run.say(WARNING, f"free-space clean-up stopped: {problem}")
        return
    chosen = [
        v for v in result.candidates
        if v.action == "remove" and not v.doubt and os.path.lexists(v.entry.path)
    ]  # fmt: skip
    chosen.sort(key=lambda v: v.last_used if v.last_used is not None else v.entry.added)

    def enough() -> bool:
        return free_space(store)[0] >= high

    if chosen:
        _remove(run, result, chosen, enough)
    free = free_space(store)[0]
    if free < high:
        run.result.message = (
            f"free space still below the upper limit ({size_text(free)}, not {size_text(high)}): "
            "nothing else "
            "may be removed (in use, pinned, selected by an app, or within the grace period)"
        )
        run.say(WARNING, run.result.message)
    else:
        run.say(NOTICE, f"free space back to {size_text(free)} (upper limit {size_text(high)})")


# --- surveying and removing -----------------------------------------------------------------------


def _survey(place: Place, policy: Any, cancel: threading.Event | None) -> Any:
    """clean.survey of the store with the pins of root and of every user merged."""
    from core import clean

    result = clean.survey(
        place.stores(), place.env(), policy, homes=place.homes(), pins_file=place.pins_file,
        cancel=cancel,
    )  # fmt: skip
    merged = _all_pins(place)
    result.evidence.pins = merged
    result.verdicts = clean.judge(result.entries, result.evidence, policy,
                                  atime_modes=result.atime_modes)  # fmt: skip
    for v in result.verdicts:
        if v.candidate and v.footprint is None:
            v.footprint = clean.footprint(v.entry.path)
    return result


def _all_pins(place: Place) -> Any:
    """Root's pins plus every user's (``~/.local/state/zeroinstall-admin/pins.json``): an entry a
    user pinned in their window stays. Raises PinError for root's unreadable file."""
    from core import pins

    merged = pins.load(place.pins_file)
    homes = place.homes()
    if homes is None:
        from core.evidence import all_homes

        homes = all_homes()
    for home in homes:
        path = os.path.join(home, ".local", "state", "zeroinstall-admin", pins.PINS_NAME)
        try:
            theirs = pins.load(path)
        except pins.PinError:
            continue  # a user's broken file: theirs to fix; their apps still count
        merged.entries += [e for e in theirs.entries if e not in merged.entries]
        merged.programs += [p for p in theirs.programs if p not in merged.programs]
    return merged


def _recheck(place: Place, result: Any) -> Callable[[], Any]:
    from core import evidence as ev_mod

    def again() -> Any:
        return ev_mod.collect(
            result.stores, result.entries, pins=_all_pins(place), env=place.env(),
            homes=place.homes(),
        )  # fmt: skip

    return again


def _remove(run: Run, result: Any, chosen: Sequence, stop: Callable[[], bool] | None) -> None:
    from core import clean

    r = run.result
    cancel = threading.Event()

    def progress(done: int, total: int, outcome: Any) -> None:
        e = outcome.verdict.entry
        what = f" ({e.program} {e.version})".rstrip() if e.feed is not None else ""
        if outcome.ok:
            r.removed += 1
            r.freed += outcome.size
            run.say(NOTICE, f"{outcome.action}: {display_path(e.path)}{what}: "
                            + "; ".join(outcome.verdict.reasons[:1]))  # fmt: skip
        else:
            r.failed += outcome.action == "failed"
            run.say(WARNING, f"{outcome.action}: {display_path(e.path)}{what}: {outcome.message}")
        if stop is not None and stop():
            cancel.set()

    clean.remove(
        chosen, _recheck(run.place, result), log_path=run.place.action_log,
        on_progress=progress, cancel=cancel,
    )  # fmt: skip


def _homes_problem(result: Any) -> str | None:
    ev = result.evidence
    if ev.every_home_read:
        return None
    why = "; ".join(ev.unreadable_homes) or "no home could be read"
    return (
        f"not every user's apps could be read ({why}): nothing was removed (the service needs "
        "ProtectHome=read-only, never yes)"
    )
