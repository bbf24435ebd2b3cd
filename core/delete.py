"""Delete chosen entries, with the checks of a clean-up: the one decision behind the command line's
``delete`` and the window's Delete (the Cache page's Del key, menu and toolbar).

:func:`check` gathers fresh evidence (apps, pins, running processes, VMs, this app and 0install
itself) for the chosen entries and decides: an entry something uses or roots is kept, with the
reasons; every other one may go ("delete" means delete: suspicious, unknown and fresh temporary
entries too, which a clean-up would quarantine or leave alone). The :class:`Plan` it returns says
what may go, what is kept and why, the space that comes back and whether an administrator's
password is needed; :func:`core.clean.remove` then acts on ``plan.allowed`` with ``plan.recheck``
(which checks again right before each removal and writes the action log). Callers only present.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.cache import Entry
from core.clean import (
    PASSWORD_NOTE,
    Policy,
    Verdict,
    footprint,
    judge,
    needs_password,
    recheck_for,
    reclaimable,
)
from core.evidence import Evidence
from core.units import count_text, size_text

ON_REQUEST = "deleted on request"


@dataclass
class Plan:
    """What deleting the chosen entries would do."""

    allowed: list[Verdict]  # may go: action "remove", footprint measured
    kept: list[tuple[Entry, list[str]]]  # something uses or roots these: the reasons
    recheck: Callable[[], Evidence]  # fresh evidence, for core.clean.remove
    caveats: list[str]  # what the evidence could not see

    @property
    def disk(self) -> int:
        """Disk bytes that removing ``allowed`` gives back."""
        return reclaimable(v.footprint for v in self.allowed if v.footprint is not None)[1]

    @property
    def needs_password(self) -> bool:
        """True when removing needs the privileged helper (an administrator's password)."""
        return needs_password(self.allowed)

    def question(self) -> str:
        """ "Delete 3 entries, freeing 1.2 MB?" """
        return f"Delete {count_text(len(self.allowed), 'entry')}, freeing {size_text(self.disk)}?"

    def note(self) -> str:
        """What a confirmation says below the lists: what is kept, the checks, the password."""
        notes = []
        if self.kept:
            n = len(self.kept)
            notes.append(
                f"{count_text(n, 'selected entry', 'selected entries')} "
                f"{'is' if n == 1 else 'are'} kept: see why above."
            )
        notes.append(
            "Each entry is checked again right before it is removed; every deletion goes to "
            "the action log."
        )
        if self.needs_password:
            notes.append(PASSWORD_NOTE)
        return " ".join(notes)


def decide(
    entries: Sequence[Entry], evidence: Evidence
) -> tuple[list[Verdict], list[tuple[Entry, list[str]]]]:
    """(the verdicts of the entries that may go, the kept entries with their reasons), in the
    order given. A clean-up's judgement of an entry (suspicious, a leftover...) is kept as the
    second reason; its footprint is measured here."""
    allowed: list[Verdict] = []
    kept: list[tuple[Entry, list[str]]] = []
    for entry, judged in zip(
        entries, judge(entries, evidence, Policy(older_than_days=0)), strict=True
    ):
        reasons = evidence.reasons(entry)
        if reasons:
            kept.append((entry, reasons))
            continue
        why = judged.reasons if judged.action == "remove" else judged.reasons[:1]
        allowed.append(
            Verdict(entry, "remove", [ON_REQUEST, *why], judged.last_used, footprint(entry.path))
        )
    return allowed, kept


def check(
    entries: Sequence[Entry],
    env: Mapping[str, str] | None = None,
    *,
    homes: Sequence[str] | None = None,
    pins_file: str | None = None,
) -> Plan:
    """Gather the evidence for ``entries`` (in their stores) and decide which may go. Raises
    :class:`core.pins.PinError` when the pins cannot be read (deleting without knowing them would
    remove what the admin pinned)."""
    from core import evidence as ev_mod
    from core import pins as pins_mod

    stores = list({id(e.store): e.store for e in entries}.values())
    pins = pins_mod.load(pins_file or pins_mod.pins_path(env))
    evidence = ev_mod.collect(stores, entries, pins=pins, env=env, homes=homes)
    allowed, kept = decide(entries, evidence)
    recheck = recheck_for(stores, entries, env, homes=homes, pins_file=pins_file)
    return Plan(allowed, kept, recheck, evidence.caveats())
