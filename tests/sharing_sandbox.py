"""Run the real enable steps and the self-test on "/" inside a throwaway mount namespace.

Started by tests as ``unshare -m --propagation private python -m tests.sharing_sandbox SCENARIO
WORKDIR``, SCENARIO one of: fresh (no zeroinst); debian (user and directory made by
0install-core); debian-untouched (the same, nothing enabled); override (fresh, plus a later rule
without NOPASSWD); no-env-reset (fresh, plus a later Defaults>zeroinst !env_reset); script and
ansible (the exports); docs and docs-dropin (debian, then set up by hand as 0install's docs say:
the two sudoers lines at the end of /etc/sudoers or in /etc/sudoers.d/0install-docs, and a helper
script with a comment of the admin's). Before anything else it bind-mounts copies over /etc,
/var/cache, /usr/local/bin and /run/sudo, then checks a random marker file is visible in /etc: if
any mount did not take, it exits 99 having written nothing outside WORKDIR. The machine's own /etc,
users and /var/cache/0install.net are never touched; everything vanishes with the namespace.

Prints one JSON object on stdout with what each step returned.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys

SANDBOX_EXIT = 99


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, timeout=30)


def _drop_account(etc: str, name: str) -> None:
    for base in ("passwd", "group", "shadow", "gshadow"):
        path = os.path.join(etc, base)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            lines = f.readlines()
        with open(path, "w") as f:
            f.writelines(ln for ln in lines if not ln.startswith(name + ":"))


def enter_sandbox(work: str, *, fresh: bool) -> None:
    """Mount the copies; exit SANDBOX_EXIT unless they are in place."""
    try:  # unshare exec'd us: our parent still lives in the machine's own mount namespace
        shared = os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt")
    except OSError:
        shared = True
    if shared:
        print("not in a private mount namespace", file=sys.stderr)
        sys.exit(SANDBOX_EXIT)
    etc = os.path.join(work, "etc")
    shutil.copytree("/etc", etc, symlinks=True)
    marker = ".zia-sandbox-" + secrets.token_hex(8)
    open(os.path.join(etc, marker), "w").close()
    if fresh:
        _drop_account(etc, "zeroinst")
    var_cache = os.path.join(work, "var-cache")
    local_bin = os.path.join(work, "usr-local-bin")
    run_sudo = os.path.join(work, "run-sudo")
    for d in (var_cache, local_bin, run_sudo):
        os.makedirs(d, mode=0o755)
    if not fresh:  # a Debian system where 0install-core made the user and the directory
        os.makedirs(os.path.join(var_cache, "0install.net", "implementations"))
    _mount("--make-rprivate", "/")
    _mount("--bind", etc, "/etc")
    _mount("--bind", var_cache, "/var/cache")
    _mount("--bind", local_bin, "/usr/local/bin")
    if os.path.isdir("/run/sudo"):
        _mount("--bind", run_sudo, "/run/sudo")
    if not os.path.exists("/etc/" + marker) or os.listdir("/var/cache") != os.listdir(var_cache):
        print("the sandbox mounts are not in place", file=sys.stderr)
        sys.exit(SANDBOX_EXIT)
    if not fresh:
        import pwd

        pw = pwd.getpwnam("zeroinst")
        os.chown("/var/cache/0install.net/implementations", pw.pw_uid, pw.pw_gid)


def _ansible(work: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["ansible-playbook", "-c", "local", "-i", "localhost,", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1",
                               "HOME": os.path.join(work, "home")})  # fmt: skip


def _by_hand(work: str) -> int:
    """Sharing set up by hand from the 0install docs (the user and store made by 0install-core):
    the two lines appended to /etc/sudoers, the helper with comments of its own; then the exported
    script and the playbook run on it."""
    from core import sharing_export

    with open("/etc/sudoers", "a") as f:
        f.write("Defaults>zeroinst env_reset,always_set_home\n"
                "ALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add\n")  # fmt: skip
    helper = ("#!/bin/sh\n# made by hand from the 0install docs\n"
              'exec sudo -S -u zeroinst /usr/bin/0store-secure-add "$@" < /dev/null\n')  # fmt: skip
    with open("/usr/local/bin/0store-secure-add-helper", "w") as f:
        f.write(helper)
    os.chmod("/usr/local/bin/0store-secure-add-helper", 0o755)
    result: dict[str, object] = {}
    script = os.path.join(work, "enable-sharing.sh")
    with open(script, "w") as f:
        f.write(sharing_export.posix_script())
    proc = subprocess.run(["/bin/sh", script], capture_output=True, text=True, timeout=300)
    result["script"] = [f"exit {proc.returncode}", *proc.stdout.splitlines(),
                        *proc.stderr.splitlines()]  # fmt: skip
    playbook = os.path.join(work, "zeroinstall-admin.yml")
    with open(playbook, "w") as f:
        f.write(sharing_export.ansible_playbook())
    proc = _ansible(work, playbook)
    result["ansible"] = [f"exit {proc.returncode}", *proc.stdout.splitlines(),
                         *proc.stderr.splitlines()]  # fmt: skip
    result["sudoers_d"] = sorted(os.listdir("/etc/sudoers.d"))
    with open("/usr/local/bin/0store-secure-add-helper") as f:
        result["helper"] = f.read()
    print(json.dumps(result))
    return 0


def main(argv: list[str]) -> int:
    scenario, work = argv
    fresh = scenario in ("fresh", "override", "no-env-reset", "script", "ansible", "ansible-check")
    enter_sandbox(work, fresh=fresh)
    from core import root_helper, self_test, sharing

    result: dict[str, object] = {}
    result["before"] = {s.key: s.state for s in sharing.detect("/")}
    if scenario == "no-env-reset":
        with open("/etc/sudoers.d/zz-env", "w") as f:
            f.write("Defaults>zeroinst !env_reset\n")
        os.chmod("/etc/sudoers.d/zz-env", 0o440)
    if scenario == "override":
        with open("/etc/sudoers.d/zz-local", "w") as f:
            f.write("ALL ALL=(zeroinst) /usr/bin/0store-secure-add\n")
        os.chmod("/etc/sudoers.d/zz-local", 0o440)
    if scenario == "by-hand":
        return _by_hand(work)
    if scenario == "ansible-check":
        from core import sharing_export

        path = os.path.join(work, "zeroinstall-admin.yml")
        with open(path, "w") as f:
            f.write(sharing_export.ansible_playbook())
        proc = _ansible(work, "--check", "--diff", path)
        result["enable"] = [f"exit {proc.returncode}", *proc.stdout.splitlines(),
                            *proc.stderr.splitlines()]  # fmt: skip
        result["after"] = {s.key: s.state for s in sharing.detect("/")}
        print(json.dumps(result))
        return 0
    if scenario in ("script", "ansible"):
        from core import sharing_export

        if scenario == "script":
            path = os.path.join(work, "enable-sharing.sh")
            text = sharing_export.posix_script()
            command = ["/bin/sh", path]
        else:
            path = os.path.join(work, "enable-sharing.yml")
            text = sharing_export.ansible_playbook()
            command = ["ansible-playbook", "-c", "local", "-i", "localhost,", path]
        with open(path, "w") as f:
            f.write(text)
        for key in ("enable", "enable_again"):
            proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                                  env={**os.environ, "ANSIBLE_NOCOLOR": "1",
                                       "HOME": os.path.join(work, "home")})  # fmt: skip
            result[key] = [f"exit {proc.returncode}", *proc.stdout.splitlines(),
                           *proc.stderr.splitlines()]  # fmt: skip
    elif scenario in ("docs", "docs-dropin"):
        lines = (
            "Defaults>zeroinst env_reset,always_set_home\n"
            "ALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add\n"
        )
        path = "/etc/sudoers" if scenario == "docs" else "/etc/sudoers.d/0install-docs"
        with open(path, "a") as f:
            f.write(lines)
        os.chmod(path, 0o440)
        with open(root_helper.HELPER_SCRIPT_PATH, "w") as f:
            f.write(
                "#!/bin/sh\n# by hand, from the docs\n"
                'exec sudo -S -u zeroinst /usr/bin/0store-secure-add "$@" < /dev/null\n'
            )
        os.chmod(root_helper.HELPER_SCRIPT_PATH, 0o755)
        result["plan"] = [s.verb for s in sharing.plan(sharing.detect("/"))]
        usage = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sudo", "-n", "-u",
             "zeroinst", "/usr/bin/0store-secure-add"],
            capture_output=True, text=True, timeout=60, check=False, cwd="/",
        )  # fmt: skip
        # (Without the host's name in /etc/hosts, as in a fresh chroot, sudo first warns
        # "unable to resolve host": not what is judged here.)
        errors = [
            line for line in usage.stderr.splitlines() if "unable to resolve host" not in line
        ]
        result["sudo_as_nobody"] = "\n".join([usage.stdout.strip(), *errors]).strip()
    elif scenario != "debian-untouched":
        result["enable"] = root_helper.enable("/")
        result["enable_again"] = root_helper.enable("/")
    steps = sharing.detect("/")
    result["after"] = {s.key: s.state for s in steps}
    result["details"] = {s.key: s.detail for s in steps}
    removed: list[str] = []

    def remove(store: str, name: str) -> tuple[bool, str]:
        removed.append(name)
        done = root_helper.run_verb("remove-implementation", [store, name])
        return True, done

    test = self_test.run_self_test(remove=remove)
    result["self_test"] = {"passed": test.passed, "summary": test.summary, "log": test.log,
                           "user": test.user, "digest": test.digest}  # fmt: skip
    result["removed"] = removed
    store = "/var/cache/0install.net/implementations"
    result["store_left"] = sorted(os.listdir(store)) if os.path.isdir(store) else None
    with open("/etc/passwd") as f:
        result["users_left"] = [ln.split(":")[0] for ln in f if ln.startswith("zia-selftest-")]
    steps = sharing.detect("/", self_test=test)
    result["with_test"] = {s.key: s.state for s in steps}
    result["overall_with_test"] = sharing.overall(steps).summary
    if scenario in ("docs", "docs-dropin"):
        with open(root_helper.HELPER_SCRIPT_PATH, "a") as f:
            f.write("# edited later\n")
        steps = sharing.detect("/", self_test=test)
        result["after_edit"] = {s.key: [s.state, s.detail] for s in steps}
        result["disable_preview"] = sharing.disable_preview("/")
    if scenario in ("fresh", "debian", "script", "ansible"):
        result["disable"] = root_helper.disable("/")
        result["after_disable"] = {s.key: s.state for s in sharing.detect("/")}
        result["zeroinst_kept"] = root_helper.read_account("zeroinst") is not None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
