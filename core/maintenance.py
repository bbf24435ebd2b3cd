"""Scheduled maintenance's settings and places (issue 23): what the admin chose
(``/etc/zeroinstall-admin/maintenance.conf``, :class:`Settings`) and where a run finds the store,
its state and its logs, on this machine or under a fake root (:class:`Place`).

The privileged helper (:mod:`core.root_helper`, verbs ``maintenance-enable``/``-disable``) writes
the settings file and the systemd units; those run ``zeroinstall-admin maintenance run JOB`` as
root, in a sandbox, which lands in :func:`core.maintenance_jobs.run_job`. The rest of the idea:
:mod:`core.maintenance_run` (one run's frame: lock, journal lines, status file, mail),
:mod:`core.maintenance_clean` (the clean-up and the free-space trigger),
:mod:`core.maintenance_watch` (new entries verified as they appear),
:mod:`core.maintenance_status` (the status file and the texts the window and ``maintenance
status`` show), :mod:`core.maintenance_installed` (what is installed now, and what enabling would
write).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core import root_helper as rh

STATUS_NAME = "maintenance-status.json"
WATCH_SEEN_NAME = "maintenance-watch-seen.json"
ACTIONS_NAME = "actions.jsonl"


# --- settings -------------------------------------------------------------------------------------


@dataclass
class Settings:
    """The maintenance settings (``/etc/zeroinstall-admin/maintenance.conf``), checked."""

    verify: str = rh.MAINTENANCE_DEFAULTS["verify"]
    clean: str = rh.MAINTENANCE_DEFAULTS["clean"]
    older_than_days: float = float(rh.MAINTENANCE_DEFAULTS["older_than_days"])
    keep: int = int(rh.MAINTENANCE_DEFAULTS["keep"])
    grace_days: float = float(rh.MAINTENANCE_DEFAULTS["grace_days"])
    min_free: str = rh.MAINTENANCE_DEFAULTS["min_free"]
    max_free: str = rh.MAINTENANCE_DEFAULTS["max_free"]
    watch: bool = True
    mail: bool = False

    def as_args(self) -> list[str]:
        """The helper verb's arguments, in its order."""
        values = {
            "verify": self.verify, "clean": self.clean,
            "older_than_days": f"{self.older_than_days:g}", "keep": str(self.keep),
            "grace_days": f"{self.grace_days:g}", "min_free": self.min_free,
            "max_free": self.max_free, "watch": "yes" if self.watch else "no",
            "mail": "yes" if self.mail else "no",
        }  # fmt: skip
        return [values[k] for k in rh.MAINTENANCE_KEYS]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str]) -> Settings:
        """Settings from text values (missing ones take the defaults); raises
        :class:`core.root_helper.UsageError` naming the bad one."""
        values = {k: raw.get(k, v) for k, v in rh.MAINTENANCE_DEFAULTS.items()}
        checked = rh.check_maintenance_settings([values[k] for k in rh.MAINTENANCE_KEYS])
        return cls(
            verify=checked["verify"],
            clean=checked["clean"],
            older_than_days=float(checked["older_than_days"]),
            keep=int(checked["keep"]),
            grace_days=float(checked["grace_days"]),
            min_free=checked["min_free"],
            max_free=checked["max_free"],
            watch=checked["watch"] == "yes",
            mail=checked["mail"] == "yes",
        )


class MaintenanceError(Exception):
    """A run or a setting that cannot go ahead; one line naming the thing and what to do."""


def in_root(root: str, path: str) -> str:
    """``path`` of the target system as it is on this machine: under ``root`` unless it is "/"."""
    return path if root == "/" else os.path.normpath(root + path)


def load_settings(root: str = "/") -> Settings | None:
    """The written settings, None when maintenance was never enabled; raises
    :class:`MaintenanceError` for a file that is not valid."""
    path = in_root(root, rh.MAINTENANCE_CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(65536)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MaintenanceError(f"{path} cannot be read: {exc.strerror or exc}") from None
    raw: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            raw[key.strip()] = value.strip()
    try:
        return Settings.from_mapping(raw)
    except rh.UsageError as exc:
        raise MaintenanceError(f"{path}: {exc}; enable maintenance again to rewrite it") from None


# --- where things are -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """The paths a run uses: on this machine (root "/") or under a fake root."""

    root: str = "/"

    @property
    def store(self) -> str:
        return in_root(self.root, rh.SHARED_STORE)

    @property
    def state_dir(self) -> str:
        return in_root(self.root, rh.MAINTENANCE_STATE_DIR)

    @property
    def status_file(self) -> str:
        return os.path.join(self.state_dir, STATUS_NAME)

    @property
    def seen_file(self) -> str:
        return os.path.join(self.state_dir, WATCH_SEEN_NAME)

    @property
    def action_log(self) -> str:
        return os.path.join(in_root(self.root, rh.MAINTENANCE_LOG_DIR), ACTIONS_NAME)

    @property
    def pins_file(self) -> str:
        from core.pins import PINS_NAME

        return os.path.join(self.state_dir, PINS_NAME)

    @property
    def sendmail(self) -> str:
        return in_root(self.root, rh.SENDMAIL)

    def env(self) -> Mapping[str, str] | None:
        """The environment 0install's paths are read from: None (this machine's) on "/", else
        one pointing into the fake root (root's home is PREFIX/root)."""
        if self.root == "/":
            return None
        r = self.root
        return {
            "HOME": f"{r}/root", "XDG_CACHE_HOME": f"{r}/root/.cache",
            "XDG_CONFIG_HOME": f"{r}/root/.config", "XDG_DATA_HOME": f"{r}/root/.local/share",
            "XDG_STATE_HOME": f"{r}/var/lib", "XDG_CACHE_DIRS": f"{r}/var/cache",
            "XDG_CONFIG_DIRS": f"{r}/etc/xdg", "XDG_DATA_DIRS": f"{r}/usr/share",
        }  # fmt: skip

    def homes(self) -> list[str] | None:
        """Every user's home whose apps and pins count: None on "/" (the password database, as
        root); under a fake root, the homes of its /etc/passwd that exist there."""
        if self.root == "/":
            return None
        homes = []
        try:
            with open(in_root(self.root, "/etc/passwd"), encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if len(fields) >= 7 and fields[5] not in ("", "/"):
                        home = in_root(self.root, fields[5])
                        if os.path.isdir(home):
                            homes.append(home)
        except OSError:
            pass
        return sorted(set(homes))

    def stores(self) -> list:
        from core.stores import stores_from_paths

        return stores_from_paths([self.store], self.env())
