"""The sharing self-test: on the real system, an ordinary user adds a tiny implementation through
0store-secure-add-helper, as 0install does, and the test checks it arrived in the shared cache.

Run as root, the ordinary user is a throwaway system user made for the test and removed after it.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core import elevate
from core import root_helper as rh
from core.manifest import ManifestError, generate_manifest, hash_manifest, manifest_digest
from core.sharing import SelfTestResult, fingerprint

TIMEOUT_S = 120
"""How long the helper may take (sudo waiting for a password would wait forever)."""

EXPLANATIONS: tuple[tuple[str, str], ...] = (
    ("a password is required",
     ("sudo asked for a password: the NOPASSWD rule is missing, or a rule read after it takes it "
     "away again (the docs: the NOPASSWD line must go at the end). 0install would silently keep "
     "each user's downloads in their own cache.")),
    ("a terminal is required", ("sudo asked for a password (see the sudoers step): the NOPASSWD "
     "rule is missing or overridden.")),
    ("is not in the sudoers file", ("sudo has no rule letting users run 0store-secure-add as "
     "zeroinst: install the sudoers drop-in.")),
    ("is not allowed to execute", ("sudo has no rule letting this user run 0store-secure-add as "
     "zeroinst: install the sudoers drop-in, or check a rule that names this user.")),
    ("not allowed to run sudo", "sudo has no rule for this user: install the sudoers drop-in."),
    ("environment not cleared", ("sudo did not clear the environment (0store-secure-add: "
     "'Environment not cleared. Check your sudoers file.'): the sudoers file needs "
     "'Defaults>zeroinst env_reset,always_set_home', and no rule may turn env_reset off.")),
    ("$home not set", ("sudo did not set HOME for zeroinst: the sudoers file needs "
     "'always_set_home' for zeroinst (Defaults>zeroinst env_reset,always_set_home).")),
    ("does not support copying", ("sha1 implementations cannot be shared: 0store-secure-add "
     "refuses them, so they stay in each user's own cache.")),
    ("parse error", ("a sudoers file does not parse, so sudo refuses to run at all: see the "
     "sudoers step for the file to fix.")),
    ("unknown user", "sudo does not know the zeroinst user: create it (the first step)."),
    ("'.manifest' doesn't exist", ("0store-secure-add could not read the implementation it was "
     "given: the directory must be readable by zeroinst.")),
)  # fmt: skip

Remove = Callable[[str, str], tuple[bool, str]]
"""Removes ``(store, digest)`` from the shared cache: (ok, message)."""


def explain(output: str) -> str | None:
    """The plain explanation for an error of sudo or 0store-secure-add, or None."""
    lowered = output.lower()
    for needle, explanation in EXPLANATIONS:
        if needle in lowered:
            return explanation
    return None


def _tiny_implementation(base: str) -> tuple[str, str]:
    """A tiny implementation in a new directory under ``base``, readable by everyone, with its
    .manifest, as 0install leaves one before calling the helper. Returns (directory, digest)."""
    work = tempfile.mkdtemp(prefix="zeroinstall-admin-selftest-", dir=base)
    os.chmod(work, 0o755)
    impl = os.path.join(work, "impl")
    os.mkdir(impl, 0o755)
    os.chmod(impl, 0o755)
    with open(os.path.join(impl, "README"), "w") as f:
        f.write(f"Zero Install Admin self-test {secrets.token_hex(16)}\n")
    os.chmod(os.path.join(impl, "README"), 0o644)
    manifest = generate_manifest(impl, "sha256new")
    with open(os.path.join(impl, ".manifest"), "wb") as f:
        f.write(manifest)
    os.chmod(os.path.join(impl, ".manifest"), 0o644)
    return impl, "sha256new_" + hash_manifest("sha256new", manifest)


@dataclass
class _AsUser:
    """How to run a program as the user doing the test: ourselves, or a throwaway user (as root)."""

    name: str
    uid: int
    gid: int
    env: dict[str, str]
    prefix: list[str]
    cleanup: Callable[[], None] | None = None


def _throwaway_user(log: list[str]) -> _AsUser:
    name = "zia-selftest-" + secrets.token_hex(3)
    useradd = rh.find_program("useradd")
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", rh.NOLOGIN, name],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise rh.HelperError(f"could not create a throwaway user: {proc.stderr.strip()}")
    log.append(f"created the throwaway user {name}")
    pw = pwd.getpwnam(name)

    def remove() -> None:
        userdel = rh.find_program("userdel")
        subprocess.run([userdel, name], capture_output=True, timeout=60, check=False)
        log.append(f"removed the throwaway user {name}")

    setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/nonexistent", "USER": name,
           "LOGNAME": name, "LANG": "C.UTF-8"}  # fmt: skip
    prefix = [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
    return _AsUser(name, pw.pw_uid, pw.pw_gid, env, prefix, remove)


def run_self_test(
    *,
    env: Mapping[str, str] | None = None,
    remove: Remove | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> SelfTestResult:
    """Prove that sharing works the way 0install uses it, on the real system.

    As an ordinary user (this process's, or a throwaway system user when run as root): build a tiny
    implementation, run ``0store-secure-add-helper DIGEST`` found on that user's PATH from its
    directory with stdin from /dev/null, check the entry landed in the shared store owned by
    zeroinst and verifies, then remove it with ``remove(store, digest) -> (ok, message)``
    (default: the helper's remove-implementation verb through :mod:`core.elevate`).
    """
    log: list[str] = []

    def say(text: str) -> None:
        log.append(text)
        if on_progress:
            on_progress(text)

    if os.geteuid() == 0:
        try:
            user = _throwaway_user(log)
        except rh.HelperError as exc:
            return SelfTestResult(False, str(exc), log, when=time.time())
    else:
        me = pwd.getpwuid(os.getuid())
        user = _AsUser(me.pw_name, os.getuid(), os.getgid(), dict(env or os.environ), [])
    try:
        result = _self_test_as(user, say, log, remove or _remove_through_helper)
    finally:
        if user.cleanup:
            user.cleanup()
    # Taken after the throwaway user is gone: it is not part of the configuration.
    return dataclasses.replace(result, fingerprint=fingerprint("/"), when=time.time())


def _remove_through_helper(store: str, name: str) -> tuple[bool, str]:
    outcome = elevate.run_helper("remove-implementation", store, name)
    return outcome.ok, outcome.message


def _self_test_as(
    user: _AsUser, say: Callable[[str], None], log: list[str], remove: Remove
) -> SelfTestResult:
    """Add, check and remove the tiny implementation as ``user``."""
    helper = shutil.which("0store-secure-add-helper", path=user.env.get("PATH", ""))
    if helper is None:
        return SelfTestResult(
            False,
            f"0store-secure-add-helper is not on {user.name}'s PATH ({user.env.get('PATH', '')}): "
            "0install would silently keep every download in the user's own cache. Install the "
            "helper script and make sure /usr/local/bin is on the PATH users get.", log,
            user=user.name,
        )  # fmt: skip
    # In /tmp, not $TMPDIR: zeroinst must be able to reach it (a per-user runtime dir is 0700).
    work = tempfile.mkdtemp(prefix="zeroinstall-admin-selftest-",
                            dir="/tmp" if os.path.isdir("/tmp") else None)  # fmt: skip
    os.chmod(work, 0o755)
    try:
        impl, digest = _tiny_implementation(work)
        if user.uid != os.getuid():
            for dirpath, _dirs, files in os.walk(work):
                os.chown(dirpath, user.uid, user.gid)
                for f in files:
                    os.chown(os.path.join(dirpath, f), user.uid, user.gid)
        say(f"built a tiny implementation {digest} as {user.name}")
        failure = _add(user, helper, impl, digest, say) or _arrived(digest, say)
        if failure:
            return SelfTestResult(False, failure, log, digest, user.name)
        ok, message = remove(rh.SHARED_STORE, digest)
        say(("removed it: " if ok else "could not remove it: ") + message)
        tail = "" if ok else f" The test entry is still there (harmless): {message}"
        return SelfTestResult(
            True, f"Sharing works: {user.name} added {digest[:22]}… through "
            f"0store-secure-add-helper and it arrived in the shared cache, owned by "
            f"{rh.SYSTEM_USER}, verified.{tail}", log, digest, user.name,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _add(
    user: _AsUser, helper: str, impl: str, digest: str, say: Callable[[str], None]
) -> str | None:
    """Run the helper as 0install does; None if it succeeded, else why it failed."""
    say(f"running {helper} {digest} from its directory, stdin /dev/null")
    # 0install plants these canaries when it calls the helper: 0store-secure-add refuses to
    # run if sudo let them through (env_reset and always_set_home missing or overridden).
    env = {**user.env, "ENV_NOT_CLEARED": "Unclean", "HOME": "Unclean"}
    try:
        proc = subprocess.run(
            [*user.prefix, helper, digest], cwd=impl, env=env,
            stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
            timeout=TIMEOUT_S, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"{helper} did not finish in {TIMEOUT_S} s (is sudo waiting for a password?)."
    output = (proc.stderr + proc.stdout).strip()
    if output:
        say("it said: " + " | ".join(output.splitlines()[-4:]))
    if proc.returncode != 0:
        why = explain(output) or f"the helper failed (exit {proc.returncode})."
        first = output.splitlines()[-1] if output else ""
        return f"Adding failed: {why}" + (f" ({first})" if first else "")
    return None


def _arrived(digest: str, say: Callable[[str], None]) -> str | None:
    """None if ``digest`` is in the shared store, zeroinst's, and verifies; else what is wrong."""
    target = os.path.join(rh.SHARED_STORE, digest)
    account = rh.read_account(rh.SYSTEM_USER)
    try:
        st = os.lstat(target)
    except OSError:
        return (
            f"The helper succeeded but {target} does not exist: is "
            "the shared store configured elsewhere?"
        )
    if not stat.S_ISDIR(st.st_mode) or account is None or st.st_uid != account.uid:
        return f"{target} is not a directory owned by {rh.SYSTEM_USER} (uid {st.st_uid})."
    say(f"{target} exists, owned by {rh.SYSTEM_USER}")
    try:
        actual = manifest_digest(target, "sha256new").name
    except ManifestError as exc:
        actual = f"unreadable: {exc}"
    if actual != digest:
        return f"{target} does not verify ({actual})."
    say("its contents verify against the digest")
    return None
