"""Sharing: each step detected and applied on fake roots with the real tools (useradd --prefix,
visudo, apparmor_parser), the polkit policy against its DTD, elevation outcomes, and the whole chain
(enable, then an ordinary user adds through the helper) inside a throwaway mount namespace.

Nothing here may touch this machine's /etc, users or /var/cache/0install.net: the helper's real-root
guard is off for the whole module, and the namespace driver refuses to run outside its sandbox.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core import elevate, sharing
from core import root_helper as rh

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "resources" / "net.zeroinstall.Admin.policy"
DTD = "/usr/share/polkit-1/policyconfig-1.dtd"
SECURE_ADD = "/usr/bin/0store-secure-add"
NOBODY = 65534

BASE_ACCOUNTS = {
    "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:"
    "/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "shadow": "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
    "gshadow": "root:*::\nnogroup:*::\n",
}


pytestmark = pytest.mark.usefixtures("no_real_root")


def make_root(
    base: Path,
    *,
    debian: bool = False,
    apparmor: bool = False,
    includedir: bool = True,
    secure_add: str | None = SECURE_ADD,
) -> Path:
    """A fake root: account files, /etc/sudoers like Debian's, 0store-secure-add; with ``debian``
    also the zeroinst user and the store directory 0install-core makes."""
    root = base / "root"
    (root / "etc" / "sudoers.d").mkdir(parents=True)
    for name, text in BASE_ACCOUNTS.items():
        (root / "etc" / name).write_text(text)
    sudoers = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n"
    if includedir:
        sudoers += "@includedir /etc/sudoers.d\n"
    (root / "etc" / "sudoers").write_text(sudoers)
    (root / "etc" / "sudoers").chmod(0o440)
    (root / "etc" / "profile").write_text(
        'if [ "$(id -u)" -eq 0 ]; then\n'
        '  PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"\n'
        'else\n  PATH="/usr/local/bin:/usr/bin:/bin:/usr/games"\nfi\nexport PATH\n'
    )
    if secure_add:
        target = root / secure_add.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SECURE_ADD, target)
    if apparmor:
        enabled = root / rh.APPARMOR_ENABLED_FILE.lstrip("/")
        enabled.parent.mkdir(parents=True)
        enabled.write_text("Y\n")
    if debian:
        subprocess.run(["useradd", "--prefix", str(root), *rh.USERADD_ARGS], check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        account = rh.read_account("zeroinst", str(root))
        assert account is not None
        store = root / rh.SHARED_STORE.lstrip("/")
        store.mkdir(parents=True)
        os.chown(store, account.uid, account.gid)
    return root


def states(root: Path) -> dict[str, str]:
    return {s.key: s.state for s in sharing.detect(str(root))}


def by_key(root: Path) -> dict[str, sharing.Step]:
    return {s.key: s for s in sharing.detect(str(root))}


def tree_state(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    result = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if p.is_file() and not p.is_symlink() and st.st_size < 65536 else b""
        mtime = 0 if p.is_dir() and not p.is_symlink() else st.st_mtime_ns
        result[str(p.relative_to(root))] = (st.st_mode, st.st_uid, mtime, data)
    return result


# --- a fresh system ------------------------------------------------------------------------------


def test_fresh_system_is_enabled_step_by_step_with_the_real_tools(tmp_path: Path):
    root = make_root(tmp_path)
    before = states(root)
    assert before == {"user": "missing", "store": "missing", "helper": "missing",
                      "sudoers": "missing", "apparmor": "not applicable", "space": "done",
                      "self-test": "not applicable"}  # fmt: skip
    planned = [s.verb for s in sharing.plan(sharing.detect(str(root)))]
    assert planned == ["create-user", "create-store", "install-secure-add-helper",
                       "install-sudoers"]  # fmt: skip
    for verb in planned:
        outcome = elevate.run_helper(verb, root=str(root))  # type: ignore[arg-type]
        assert outcome.ok, outcome.message
    assert sharing.is_enabled(sharing.detect(str(root)))
    assert states(root)["user"] == "done"
    account = rh.read_account("zeroinst", str(root))
    assert account and account.home == rh.SHARED_CACHE_DIR and account.shell == rh.NOLOGIN
    store = root / rh.SHARED_STORE.lstrip("/")
    assert store.stat().st_uid == account.uid and stat.S_IMODE(store.stat().st_mode) == 0o755
    helper = root / rh.HELPER_SCRIPT_PATH.lstrip("/")
    assert helper.read_text() == (
        '#!/bin/sh\nexec sudo -S -u zeroinst /usr/bin/0store-secure-add "$@" < /dev/null\n'
    )
    assert stat.S_IMODE(helper.stat().st_mode) == 0o755
    dropin = root / rh.SUDOERS_DROPIN.lstrip("/")
    assert "ALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add\n" in dropin.read_text()
    assert "Defaults>zeroinst env_reset,always_set_home\n" in dropin.read_text()
    proc = subprocess.run(["visudo", "-c", "-O", "-P", "-f", str(dropin)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert not [n for n in os.listdir(dropin.parent) if n.startswith(".")]  # no temporary left


def test_enabling_twice_changes_nothing(tmp_path: Path):
    root = make_root(tmp_path)
    first = rh.enable(str(root))
    assert "user zeroinst created" in first
    snapshot = tree_state(root)
    again = rh.enable(str(root))
    assert all("unchanged" in line or "not enabled" in line for line in again), again
    assert tree_state(root) == snapshot
    assert sharing.plan(sharing.detect(str(root))) == []


# --- a Debian system where 0install-core made the user and the directory -------------------------


def test_debian_system_keeps_its_user_and_directory(tmp_path: Path):
    root = make_root(tmp_path, debian=True)
    passwd = (root / "etc/passwd").read_text()
    assert states(root)["user"] == "done" and states(root)["store"] == "done"
    result = rh.enable(str(root))
    assert result[0] == "user zeroinst exists: unchanged"
    assert "unchanged" in result[1]
    assert (root / "etc/passwd").read_text() == passwd


def test_existing_zeroinst_with_a_login_shell_is_reported_not_changed(tmp_path: Path):
    root = make_root(tmp_path)
    subprocess.run(["useradd", "--prefix", str(root), "--system", "--home-dir", "/home/zeroinst",
                    "--shell", "/bin/bash", "zeroinst"], check=True, timeout=60)  # fmt: skip
    step = by_key(root)["user"]
    assert step.state == "needs attention" and not step.fixable
    assert "/bin/bash, a login shell" in step.detail and "/home/zeroinst" in step.detail
    assert "usermod" in step.detail
    passwd = (root / "etc/passwd").read_text()
    rh.enable(str(root))
    assert (root / "etc/passwd").read_text() == passwd
    assert sharing.blockers(sharing.detect(str(root)))[0].key == "user"


# --- half configured ------------------------------------------------------------------------------


def test_half_configured_system_gets_only_the_missing_and_wrong_steps(tmp_path: Path):
    root = make_root(tmp_path, debian=True)
    store = root / rh.SHARED_STORE.lstrip("/")
    store.chmod(0o775)
    helper = root / rh.HELPER_SCRIPT_PATH.lstrip("/")
    helper.parent.mkdir(parents=True)
    helper.write_text('#!/bin/sh\nexec sudo -u zeroinst /usr/bin/0store-secure-add "$@"\n')
    helper.chmod(0o700)
    steps = by_key(root)
    assert steps["store"].state == "needs attention" and "0775" in steps["store"].detail
    assert steps["helper"].state == "needs attention"
    assert "(written by hand)" in steps["helper"].detail
    assert "not executable by everyone" in steps["helper"].detail
    assert [s.verb for s in sharing.plan(list(steps.values()))] == [
        "create-store", "install-secure-add-helper", "install-sudoers"]  # fmt: skip
    rh.enable(str(root))
    assert sharing.is_enabled(sharing.detect(str(root)))
    assert stat.S_IMODE(helper.stat().st_mode) == 0o755


def test_missing_includedir_is_pointed_out_and_blocks_the_sudoers_step(tmp_path: Path):
    root = make_root(tmp_path, includedir=False)
    step = by_key(root)["sudoers"]
    assert step.state == "needs attention" and "@includedir /etc/sudoers.d" in step.detail
    with pytest.raises(rh.HelperError, match="does not read /etc/sudoers.d"):
        rh.step_install_sudoers(str(root))
    assert not (root / rh.SUDOERS_DROPIN.lstrip("/")).exists()


def test_hash_includedir_counts_as_a_directive(tmp_path: Path):
    root = make_root(tmp_path, includedir=False)
    with open(root / "etc/sudoers", "a") as f:
        f.write("#includedir /etc/sudoers.d\n")
    assert rh.sudoers_includes_dropins(str(root))


# --- sudoers: someone else's files ----------------------------------------------------------------


def test_broken_dropin_left_by_someone_else_is_named(tmp_path: Path):
    """sudo 1.9.13 warns about the bad line and goes on (checked with the real sudo): the rule
    still works, and the file is named for the admin to fix."""
    root = make_root(tmp_path)
    rh.enable(str(root))
    broken = root / "etc/sudoers.d/local-admins"
    broken.write_text("alice ALL=(ALL) NOPASSWD: sudo-without-a-path\n")
    broken.chmod(0o440)
    ignored = root / "etc/sudoers.d/old.dpkg-dist"  # sudo skips names with a dot
    ignored.write_text("this is not sudoers at all\n")
    step = by_key(root)["sudoers"]
    assert step.state == "done"
    assert "/etc/sudoers.d/local-admins" in step.detail
    assert "expected a fully-qualified path name" in step.detail or "syntax error" in step.detail
    assert "old.dpkg-dist" not in step.detail


def test_later_rule_without_nopasswd_is_a_warning(tmp_path: Path):
    root = make_root(tmp_path)
    rh.enable(str(root))
    with open(root / "etc/sudoers", "a") as f:
        f.write("%staff ALL=(ALL) ALL\n")
    late = root / "etc/sudoers.d/zz-local"
    late.write_text("ALL ALL=(zeroinst) /usr/bin/0store-secure-add\n")
    late.chmod(0o440)
    early = root / "etc/sudoers.d/aa-local"
    early.write_text("ALL ALL=(zeroinst) /usr/bin/0store-secure-add\n")
    early.chmod(0o440)
    env = root / "etc/sudoers.d/zz-env"
    env.write_text("Defaults>zeroinst !env_reset\n")
    env.chmod(0o440)
    step = by_key(root)["sudoers"]
    assert step.state == "needs attention" and "NOPASSWD line must go at the end" in step.detail
    assert step.verb is None  # rewriting the drop-in would not help
    assert "/etc/sudoers.d/zz-env (line 1): Defaults>zeroinst !env_reset" in step.detail
    assert "%staff" not in step.detail  # an ordinary user is not in staff
    assert "/etc/sudoers.d/zz-local (line 1)" in step.detail
    assert "aa-local" not in step.detail  # read before ours: ours wins


def test_a_failing_validator_leaves_the_system_as_it_was(tmp_path: Path, monkeypatch):
    root = make_root(tmp_path)
    rh.step_create_user(str(root))
    before = tree_state(root)
    monkeypatch.setattr(rh, "SUDOERS_TEMPLATE", "ALL ALL=(zeroinst NOPASSWD: {program}\n")
    with pytest.raises(rh.HelperError, match="would not be valid: .*nothing was changed"):
        rh.step_install_sudoers(str(root))
    assert tree_state(root) == before


def test_a_missing_visudo_is_a_clear_message(tmp_path: Path, monkeypatch):
    root = make_root(tmp_path)
    monkeypatch.setattr(rh, "PROGRAM_DIRS", (str(tmp_path / "empty"),))
    before = tree_state(root)
    outcome = elevate.run_helper("install-sudoers", root=str(root))
    assert outcome.status == elevate.FAILED
    assert outcome.message == ("visudo is missing: install the 'sudo' package; nothing was changed")
    assert tree_state(root) == before


def test_secure_add_not_owned_by_root_all_the_way_up_is_refused(tmp_path: Path):
    root = make_root(tmp_path, secure_add="/usr/local/bin/0store-secure-add")
    os.chown(root / "usr/local", NOBODY, NOBODY)
    step = by_key(root)["helper"]
    assert step.state == "needs attention" and not step.fixable
    assert "'/usr/local' belongs to uid 65534, not root" in step.detail
    with pytest.raises(rh.HelperError, match="refusing to name /usr/local/bin/0store-secure-add"):
        rh.step_install_secure_add_helper(str(root))
    assert not (root / rh.HELPER_SCRIPT_PATH.lstrip("/")).exists()


def test_source_install_is_named_in_the_helper_and_sudoers(tmp_path: Path):
    root = make_root(tmp_path, secure_add="/usr/local/bin/0store-secure-add")
    rh.enable(str(root))
    assert "/usr/local/bin/0store-secure-add \"$@\"" in (
        root / rh.HELPER_SCRIPT_PATH.lstrip("/")).read_text()  # fmt: skip
    assert "NOPASSWD: /usr/local/bin/0store-secure-add" in (
        root / rh.SUDOERS_DROPIN.lstrip("/")).read_text()  # fmt: skip


def test_missing_secure_add_says_which_package(tmp_path: Path):
    root = make_root(tmp_path, secure_add=None)
    step = by_key(root)["helper"]
    assert step.state == "needs attention" and "0install-core" in step.detail


def test_login_path_without_usr_local_bin_needs_attention(tmp_path: Path):
    root = make_root(tmp_path)
    rh.enable(str(root))
    (root / "etc/login.defs").write_text("ENV_PATH PATH=/usr/bin:/bin\n")
    step = by_key(root)["helper"]
    assert step.state == "needs attention" and "lacks /usr/local/bin" in step.detail


# --- AppArmor -------------------------------------------------------------------------------------


def test_apparmor_off_is_not_applicable_with_the_reason(tmp_path: Path):
    root = make_root(tmp_path)
    step = by_key(root)["apparmor"]
    assert step.state == "not applicable" and "AppArmor is not enabled" in step.detail
    assert rh.step_install_apparmor(str(root)) == "AppArmor is not enabled: no profile needed"


def test_apparmor_profile_is_parsed_by_the_real_parser_before_it_is_installed(tmp_path: Path):
    root = make_root(tmp_path, apparmor=True)
    assert by_key(root)["apparmor"].state == "missing"
    result = rh.step_install_apparmor(str(root))
    assert "not loaded into the kernel" in result
    profile = root / "etc/apparmor.d/usr.bin.0store-secure-add"
    assert "flags=(complain)" in profile.read_text()
    proc = subprocess.run(["apparmor_parser", "-Q", "-K", str(profile)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert by_key(root)["apparmor"].state == "done"


def test_a_profile_that_does_not_parse_is_never_installed(tmp_path: Path, monkeypatch):
    root = make_root(tmp_path, apparmor=True)
    monkeypatch.setattr(rh, "APPARMOR_TEMPLATE", "profile broken {program} {{\n  /** rwx\n")
    with pytest.raises(rh.HelperError, match="would not be valid"):
        rh.step_install_apparmor(str(root))
    assert not (root / "etc/apparmor.d").exists() or os.listdir(root / "etc/apparmor.d") == []


# --- disable --------------------------------------------------------------------------------------


def test_disable_removes_what_enable_wrote_and_keeps_user_cache_and_foreign_files(tmp_path: Path):
    root = make_root(tmp_path, apparmor=True)
    rh.enable(str(root))
    store = root / rh.SHARED_STORE.lstrip("/")
    (store / ("sha256new_" + "A" * 52)).mkdir()
    foreign = root / "etc/sudoers.d/zeroinstall"
    assert sharing.disable_preview(str(root)) == (
        [rh.HELPER_SCRIPT_PATH, rh.SUDOERS_DROPIN, "/etc/apparmor.d/usr.bin.0store-secure-add"],
        [],
    )
    done = rh.disable(str(root))
    assert done == [
        "/usr/local/bin/0store-secure-add-helper: removed",
        "/etc/sudoers.d/zeroinstall: removed",
        "/etc/apparmor.d/usr.bin.0store-secure-add: removed",
    ]
    assert rh.read_account("zeroinst", str(root)) is not None
    assert os.listdir(store) == ["sha256new_" + "A" * 52]
    foreign.write_text(
        "# the admin's own\nALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add\n"
    )
    assert sharing.disable_preview(str(root)) == ([], ["/etc/sudoers.d/zeroinstall"])
    done = rh.disable(str(root))
    assert done[1] == "/etc/sudoers.d/zeroinstall: left alone (not written by this app)"
    assert foreign.exists()
    assert rh.disable(str(root))[0] == "/usr/local/bin/0store-secure-add-helper: absent"


# --- paths never leave the fake root --------------------------------------------------------------


def test_a_symlink_in_the_fake_root_cannot_lead_a_write_outside(tmp_path: Path):
    root = make_root(tmp_path)
    outside = tmp_path / "outside-etc"
    outside.mkdir()
    shutil.rmtree(root / "etc/sudoers.d")
    (root / "etc/sudoers.d").symlink_to(outside)
    with pytest.raises(rh.HelperError, match="not inside the root"):
        rh.step_install_sudoers(str(root))
    assert os.listdir(outside) == []


def test_the_real_root_is_refused_while_tests_run():
    with pytest.raises(rh.HelperError, match="real /"):
        rh.enable("/")
    with pytest.raises(rh.HelperError, match="real /"):
        rh.disable("/")


# --- polkit policy --------------------------------------------------------------------------------


def test_policy_is_valid_against_the_polkit_dtd():
    proc = subprocess.run(["xmllint", "--noout", "--dtdvalid", DTD, str(POLICY)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_policy_has_one_action_per_verb_with_path_and_argv1():
    tree = ET.parse(POLICY)
    actions = {a.get("id"): a for a in tree.getroot().iter("action")}
    assert set(actions) == {rh.polkit_action(v) for v in rh.VERBS}
    for verb in rh.VERBS:
        action = actions[rh.polkit_action(verb)]
        notes = {n.get("key"): n.text for n in action.iter("annotate")}
        assert notes == {
            "org.freedesktop.policykit.exec.path": rh.INSTALLED_PATH,
            "org.freedesktop.policykit.exec.argv1": verb,
        }
        defaults = action.find("defaults")
        assert defaults is not None
        assert defaults.findtext("allow_any") == "no"
        assert defaults.findtext("allow_inactive") == "no"
        assert defaults.findtext("allow_active") == "auth_admin_keep"
    assert "allow_gui" not in POLICY.read_text()


def test_helper_file_is_standard_library_only_and_imports_nothing_of_the_project():
    source = Path(rh.__file__).read_text()
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, re.MULTILINE)
    assert not [m for m in imports if m.split(".")[0] in ("core", "gui", "PySide6")]
    for module in imports:
        name = module.split(".")[0]
        assert name == "__future__" or name in sys.stdlib_module_names, module
    assert source.startswith("#!/usr/bin/python3 -I\n")
    assert "shell=True" not in source


# --- elevation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, stderr, status",
    [
        (126, "Error executing command as another user: Request dismissed", elevate.DISMISSED),
        (127, "Error executing command as another user: Not authorized", elevate.NOT_AUTHORISED),
        (
            127,
            "Error executing command as another user: No authentication agent found.",
            elevate.UNAVAILABLE,
        ),
        (
            1,
            "zeroinstall-admin-helper: visudo is missing: install the 'sudo' package",
            elevate.FAILED,
        ),
        (0, "", elevate.DONE),
    ],
)
def test_pkexec_outcomes_are_told_apart(code: int, stderr: str, status: str):
    outcome = elevate.interpret("install-sudoers", (), code, "done\n", stderr)
    assert outcome.status == status
    assert outcome.root_command.startswith("sudo ")
    assert outcome.root_command.endswith(" install-sudoers")
    if status == elevate.FAILED:
        assert outcome.message == "visudo is missing: install the 'sudo' package"
    if status == elevate.UNAVAILABLE:
        assert "run this as root instead" in outcome.message


def test_without_the_installed_helper_an_ordinary_user_gets_the_root_command(code_for_other_users):
    code = (
        f"import json, sys; sys.path.insert(0, {str(code_for_other_users.path)!r})\n"
        "from core import elevate, root_helper\n"
        "root_helper.INSTALLED_PATH = '/nonexistent/zeroinstall-admin-helper'\n"
        "o = elevate.run_helper('enable')\n"
        "print(json.dumps([o.status, o.message, o.root_command]))"
    )
    proc = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         code_for_other_users.python, "-I", "-c", code],
        capture_output=True, text=True, timeout=60, cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status, message, command = json.loads(proc.stdout)
    assert status == elevate.UNAVAILABLE
    assert "run this as root instead" in message
    assert command.startswith("sudo ") and command.endswith("root_helper.py enable")


def test_unknown_verbs_are_a_programming_error():
    with pytest.raises(ValueError):
        elevate.run_helper("rm", "-rf", "/")


# --- the whole chain, in a throwaway namespace ----------------------------------------------------


def run_sandbox(scenario: str, tmp_path: Path) -> dict:
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-m",
         "tests.sharing_sandbox", scenario, str(tmp_path / "sandbox")],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_whole_chain_on_a_fresh_system(tmp_path: Path):
    real_dropins = sorted(os.listdir("/etc/sudoers.d"))
    result = run_sandbox("fresh", tmp_path)
    assert result["before"]["user"] == "missing"
    assert result["enable"][0] == "user zeroinst created"
    assert all("unchanged" in s or "not enabled" in s for s in result["enable_again"])
    assert {k: v for k, v in result["after"].items() if k in sharing.ENABLE_KEYS} == {
        "user": "done", "store": "done", "helper": "done", "sudoers": "done",
        "apparmor": "not applicable"}  # fmt: skip
    test = result["self_test"]
    assert test["passed"], test
    assert test["user"].startswith("zia-selftest-")
    assert any("owned by zeroinst" in line for line in test["log"])
    assert any("verify" in line for line in test["log"])
    assert result["removed"] == [test["digest"]] and result["store_left"] == []
    assert result["users_left"] == []
    assert result["after_disable"]["helper"] == "missing"
    assert result["after_disable"]["sudoers"] == "missing"
    assert result["zeroinst_kept"]
    # The machine's own configuration never saw any of it.
    assert sorted(os.listdir("/etc/sudoers.d")) == real_dropins
    assert not os.path.exists(rh.HELPER_SCRIPT_PATH)


def test_whole_chain_on_a_debian_system(tmp_path: Path):
    result = run_sandbox("debian", tmp_path)
    assert result["before"]["user"] == "done" and result["before"]["store"] == "done"
    assert result["enable"][0] == "user zeroinst exists: unchanged"
    assert result["self_test"]["passed"], result["self_test"]


def test_self_test_explains_a_missing_helper(tmp_path: Path):
    result = run_sandbox("debian-untouched", tmp_path)
    assert not result["self_test"]["passed"]
    assert "0store-secure-add-helper is not on" in result["self_test"]["summary"]
    assert "silently" in result["self_test"]["summary"]


def test_self_test_explains_a_password_prompt_from_a_later_rule(tmp_path: Path):
    result = run_sandbox("override", tmp_path)
    assert result["after"]["sudoers"] == "needs attention"
    assert "zz-local" in result["details"]["sudoers"]
    summary = result["self_test"]["summary"]
    assert not result["self_test"]["passed"]
    assert "sudo asked for a password" in summary and "must go at the end" in summary
    assert result["store_left"] == []


# --- the exported script and playbook -------------------------------------------------------------


def test_exported_script_is_posix_and_names_the_same_contents():
    from core import sharing_export

    script = sharing_export.posix_script()
    proc = subprocess.run(["dash", "-n"], input=script, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "visudo -c -q -O -P -f" in script and "apparmor_parser -Q -K" in script
    assert rh.HELPER_SCRIPT_TEMPLATE.format(program="@PROGRAM@") in script


def test_playbook_passes_ansible_syntax_check(tmp_path: Path):
    from core import sharing_export

    playbook = tmp_path / "enable-sharing.yml"
    playbook.write_text(sharing_export.ansible_playbook())
    proc = subprocess.run(
        ["ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = playbook.read_text()
    assert "validate: visudo -c -q -f %s" in text  # the drop-in before it is put in place
    assert "argv: [visudo, -c, -q]" in text  # then sudo's whole configuration with it
    assert "ansible.builtin.getent:" in text and "getent passwd" not in text  # check-mode safe
    # Read-only probes run in check mode too, or --check would report from skipped tasks.
    for probe in ("argv: [sudo, -n, -l, -U, nobody]", "argv: [zeroinstall-admin, verify, --json]"):
        task = text[text.index(probe) :].split("\n\n")[0]
        assert "check_mode: false" in task and "changed_when: false" in task, task
    # The shared cache's parent is made when missing, and never forced to root:root.
    parent = text[text.index("The shared cache's parent directory") :].split("\n\n")[0]
    assert "when: not zia_dirs.results[0].stat.exists" in parent
    modules = set(re.findall(r"^\s+(ansible\.\w+\.\w+):", text, re.MULTILINE))
    assert modules and all(m.startswith("ansible.builtin.") for m in modules)


@pytest.mark.slow  # runs the playbook with Ansible
def test_playbook_in_check_mode_reports_the_missing_user_and_changes_nothing(tmp_path: Path):
    """--check --diff on a machine without zeroinst: the user, the store, the helper and the
    drop-in are reported as changes (the probes run in check mode too), and nothing is written."""
    result = run_sandbox("ansible-check", tmp_path)
    lines = result["enable"]
    assert lines[0] == "exit 0", lines
    out = "\n".join(lines)
    for task in ("Create the zeroinst system user", "The shared store (check mode",
                 "The helper 0install looks up on PATH", "The sudoers drop-in"):  # fmt: skip
        header = next(i for i, ln in enumerate(lines) if ln.startswith("TASK [") and task in ln)
        verdict = next(ln for ln in lines[header + 1 :]  # after the --diff lines
                       if ln.startswith(("changed:", "ok:", "skipping:", "fatal:")))  # fmt: skip
        assert verdict.startswith("changed:"), (task, verdict)
    recap = next(ln for ln in lines if ln.startswith("localhost") and "changed=" in ln)
    assert "changed=0" not in recap and "failed=0" in recap, recap
    assert "+ALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add" in out  # --diff
    assert {k: result["after"][k] for k in ("user", "helper", "sudoers")} == {
        "user": "missing", "helper": "missing", "sudoers": "missing"}  # fmt: skip


@pytest.mark.slow  # runs the playbook with Ansible
def test_exported_steps_leave_a_hand_made_sudo_rule_and_an_annotated_helper(tmp_path: Path):
    """The docs' two lines appended to /etc/sudoers and a helper with comments of its own work:
    the script and the playbook judge them by their effect and leave them as they are."""
    result = run_sandbox("by-hand", tmp_path)
    for key in ("script", "ansible"):
        lines = result[key]
        assert lines[0] == "exit 0", lines
        assert any("configured elsewhere" in ln for ln in lines), lines
    assert "zeroinstall" not in result["sudoers_d"]
    assert result["helper"].startswith("#!/bin/sh\n# made by hand from the 0install docs\n")
    assert any("changed=0" in ln for ln in result["ansible"] if ln.startswith("localhost"))


@pytest.mark.parametrize(
    "scenario",
    ["script", pytest.param("ansible", marks=pytest.mark.slow)],  # Ansible: seconds
)
def test_exported_steps_enable_a_fresh_machine_of_their_own(scenario: str, tmp_path: Path):
    result = run_sandbox(scenario, tmp_path)
    assert result["enable"][0] == "exit 0", result["enable"]
    assert result["enable_again"][0] == "exit 0", result["enable_again"]
    if scenario == "script":
        assert "user zeroinst created" in result["enable"]
        assert "/etc/sudoers.d/zeroinstall: unchanged" in result["enable_again"]
    else:
        assert any("changed=0" in line for line in result["enable_again"])
    assert {k: v for k, v in result["after"].items() if k in sharing.ENABLE_KEYS} == {
        "user": "done", "store": "done", "helper": "done", "sudoers": "done",
        "apparmor": "not applicable"}  # fmt: skip
    assert result["self_test"]["passed"], result["self_test"]


def test_an_ordinary_user_sees_an_enabled_fake_root_as_enabled(
    tmp_path: Path, code_for_other_users
):
    """/etc/sudoers and the drop-in are root's eyes only: the page, run as a user, must not call
    them broken or missing."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="zia-user-view-", dir="/tmp"))
    try:
        base.chmod(0o755)
        root = make_root(base)
        rh.enable(str(root))
        code = (
            f"import json, sys; sys.path.insert(0, {str(code_for_other_users.path)!r})\n"
            "from core import sharing\n"
            f"steps = sharing.detect({str(root)!r},"
            " env={'PATH': '/usr/local/bin:/usr/bin:/bin'})\n"
            "print(json.dumps({s.key: [s.state, s.detail] for s in steps}))"
        )
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             code_for_other_users.python, "-I", "-c", code],
            capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout)
        assert seen["sudoers"][0] == "done", seen["sudoers"]
        assert "readable by root only" in seen["sudoers"][1]
        assert all(seen[k][0] in ("done", "not applicable") for k in sharing.ENABLE_KEYS), seen
    finally:
        shutil.rmtree(base)


def test_self_test_catches_an_environment_sudo_did_not_clear(tmp_path: Path):
    """0install's canaries (ENV_NOT_CLEARED, HOME=Unclean) reach 0store-secure-add when a later
    Defaults turns env_reset off; the self-test must say so plainly."""
    result = run_sandbox("no-env-reset", tmp_path)
    assert result["after"]["sudoers"] == "needs attention"
    summary = result["self_test"]["summary"]
    assert not result["self_test"]["passed"]
    assert "sudo did not clear the environment" in summary and "env_reset" in summary


@pytest.mark.parametrize(
    "code, stderr, status",
    [
        (0, "", elevate.DONE),
        (126, "Error executing command as another user: Request dismissed", elevate.DISMISSED),
        (127, "Error executing command as another user: Not authorized", elevate.NOT_AUTHORISED),
        (
            127,
            "Error executing command as another user: No authentication agent found.",
            elevate.UNAVAILABLE,
        ),
    ],
)
def test_an_ordinary_user_goes_through_pkexec_with_the_installed_helper(
    tmp_path: Path, monkeypatch, code: int, stderr: str, status: str
):
    """A real executable stands in for pkexec: it records its arguments and answers like pkexec."""
    record = tmp_path / "argv"
    fake = tmp_path / "pkexec"
    fake.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {record}\n"
        f"[ {code} -eq 0 ] && echo 'removed it'\n"
        f"[ -n '{stderr}' ] && echo '{stderr}' >&2\n"
        f"exit {code}\n"
    )
    fake.chmod(0o755)
    helper = tmp_path / "zeroinstall-admin-helper"
    helper.write_text("")
    monkeypatch.setattr(elevate, "PKEXEC_CANDIDATES", (str(fake),))
    monkeypatch.setattr(rh, "INSTALLED_PATH", str(helper))
    monkeypatch.setattr(elevate.os, "geteuid", lambda: 1000)
    outcome = elevate.run_helper("remove-implementation", rh.SHARED_STORE, "sha256new_" + "A" * 52)
    assert outcome.status == status
    assert record.read_text().splitlines() == [
        "--disable-internal-agent",  # the window: no text agent on a terminal nobody watches
        str(helper),
        "remove-implementation",
        rh.SHARED_STORE,
        "sha256new_" + "A" * 52,
    ]
    if status == elevate.DONE:
        assert outcome.message == "removed it"
    else:
        assert outcome.root_command.startswith(f"sudo {helper} remove-implementation ")


# --- a setup made by hand from the docs ----------------------------------------------------------

DOCS_SUDOERS = (
    "Defaults>zeroinst env_reset,always_set_home\n"
    "ALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add\n"
)
HAND_HELPER = (
    "#!/bin/sh\n"
    "# Set up by hand from 0install's 'Sharing downloads between users'\n"
    'exec sudo -S -u zeroinst /usr/bin/0store-secure-add "$@" < /dev/null\n'
)


def make_handmade(base: Path, where: str) -> Path:
    """A Debian system where the admin followed the docs: the two sudoers lines at the end of
    /etc/sudoers (``where="main"``) or in a drop-in of their own, and the helper script with a
    comment of theirs."""
    root = make_root(base, debian=True)
    if where == "main":
        sudoers_file = root / "etc/sudoers"
        sudoers_file.chmod(0o640)
        with open(sudoers_file, "a") as f:
            f.write(DOCS_SUDOERS)
        sudoers_file.chmod(0o440)
    else:
        sudoers_file = root / "etc/sudoers.d/0install-docs"
        sudoers_file.write_text(DOCS_SUDOERS)
        sudoers_file.chmod(0o440)
        proc = subprocess.run(["visudo", "-c", "-O", "-P", "-f", str(sudoers_file)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr + proc.stdout
    helper = root / rh.HELPER_SCRIPT_PATH.lstrip("/")
    helper.parent.mkdir(parents=True, exist_ok=True)
    helper.write_text(HAND_HELPER)
    helper.chmod(0o755)
    return root


@pytest.mark.parametrize(
    "where, located",
    [("main", "/etc/sudoers (line 6)"), ("dropin", "/etc/sudoers.d/0install-docs (line 2)")],
)
def test_a_setup_made_by_hand_from_the_docs_is_present_and_located(
    tmp_path: Path, where: str, located: str
):
    root = make_handmade(tmp_path, where)
    steps = by_key(root)
    assert {k: steps[k].state for k in sharing.ENABLE_KEYS} == {
        "user": "done", "store": "done", "helper": "done", "sudoers": "done",
        "apparmor": "not applicable"}  # fmt: skip
    assert steps["sudoers"].detail.startswith(f"Present in {located}, written by hand: ALL ALL=")
    assert steps["helper"].detail.startswith(
        f"Present: {rh.HELPER_SCRIPT_PATH} (written by hand) runs /usr/bin/0store-secure-add"
    )
    assert sharing.plan(list(steps.values())) == []
    assert sharing.overall(list(steps.values())).state == sharing.ENABLED


def test_enable_and_disable_leave_a_hand_made_setup_alone(tmp_path: Path):
    from tests.test_cli_sharing import run

    root = make_handmade(tmp_path, "main")
    before = tree_state(root)
    code, out, err = run("sharing", "enable", "--yes", "--root", str(root))
    assert code == 0, err
    assert "already enabled: nothing to change" in out
    assert tree_state(root) == before
    assert not (root / rh.SUDOERS_DROPIN.lstrip("/")).exists()

    code, out, err = run("sharing", "disable", "--yes", "--root", str(root))
    assert code == 0, err
    assert "Left alone (not written by this app):" in out
    assert f"Left alone (not written by this app):\n  {rh.HELPER_SCRIPT_PATH}\n" in out
    assert "Nothing to remove" in out and "removes these files" not in out
    assert tree_state(root) == before


def test_disable_lists_only_what_it_removes(tmp_path: Path):
    root = make_handmade(tmp_path, "main")
    rh.step_install_sudoers(str(root))  # ours next to the admin's
    remove, kept = sharing.disable_preview(str(root))
    assert remove == [rh.SUDOERS_DROPIN]
    assert kept == [rh.HELPER_SCRIPT_PATH]
    assert rh.disable(str(root)) == [
        f"{rh.HELPER_SCRIPT_PATH}: left alone (not written by this app)",
        f"{rh.SUDOERS_DROPIN}: removed",
    ]


@pytest.mark.parametrize(
    "text",
    [
        HAND_HELPER,
        "#! /bin/sh\n\n"
        '   exec   sudo -S -u zeroinst /usr/bin/0store-secure-add "$@" </dev/null  # x\n',
        "#!/usr/bin/env bash\nsudo -u zeroinst -S /usr/bin/0store-secure-add $@\n",
        '#!/bin/sh\nexec /usr/bin/sudo -S --user=zeroinst /usr/bin/0store-secure-add "$@"\n',
    ],
)
def test_helper_scripts_that_execute_the_same_are_the_same(text: str):
    assert sharing.helper_program(text) == ("/usr/bin/0store-secure-add", "")


@pytest.mark.parametrize(
    "text, why",
    [
        (
            'exec sudo -S -u zeroinst /usr/bin/0store-secure-add "$@" < /dev/null\n',
            "no '#!/bin/sh'",
        ),
        ('#!/bin/sh\nexec sudo -S /usr/bin/0store-secure-add "$@"\n', "as root, not as zeroinst"),
        ('#!/bin/sh\nexec sudo -E -u zeroinst /usr/bin/0store-secure-add "$@"\n', "option -E"),
        ("#!/bin/sh\nexec sudo -u zeroinst /usr/bin/0store-secure-add\n", "does not pass"),
        ('#!/bin/sh\ncurl x | sh\nexec sudo -u zeroinst /usr/bin/0store-secure-add "$@"\n',
         "more than the one sudo line: curl x | sh |"),
        ('#!/bin/sh\nexec sudo -u zeroinst /usr/bin/0store-secure-add "$@"\nrm -rf /\n',
         "more than the one sudo line"),
        ('#!/usr/bin/python3\nexec sudo -u zeroinst /usr/bin/0store-secure-add "$@"\n',
         "not a shell"),
    ],
)  # fmt: skip
def test_helper_scripts_that_execute_something_else_say_what(text: str, why: str):
    program, reason = sharing.helper_program(text)
    assert program is None and why in reason


def test_a_helper_that_runs_something_else_needs_attention_and_apply_replaces_it(tmp_path: Path):
    root = make_handmade(tmp_path, "main")
    helper = root / rh.HELPER_SCRIPT_PATH.lstrip("/")
    helper.write_text('#!/bin/sh\nexec sudo -E -u zeroinst /usr/bin/0store-secure-add "$@"\n')
    step = by_key(root)["helper"]
    assert step.state == "needs attention" and step.verb == "install-secure-add-helper"
    assert "option -E" in step.detail and "(written by hand)" in step.detail


@pytest.mark.parametrize("scenario", ["docs", "docs-dropin"])
def test_a_hand_made_setup_works_with_the_real_sudo_and_is_left_as_it_is(
    scenario: str, tmp_path: Path
):
    """Inside a throwaway namespace: the docs' lines, the real sudo and 0store-secure-add."""
    result = run_sandbox(scenario, tmp_path)
    assert result["sudo_as_nobody"] == "Usage: 0store-secure-add DIGEST"
    assert result["plan"] == []  # nothing to apply, nothing rewritten
    assert {k: v for k, v in result["after"].items() if k in sharing.ENABLE_KEYS} == {
        "user": "done", "store": "done", "helper": "done", "sudoers": "done",
        "apparmor": "not applicable"}  # fmt: skip
    where = "/etc/sudoers (line" if scenario == "docs" else "/etc/sudoers.d/0install-docs (line 2)"
    assert result["details"]["sudoers"].startswith(f"Present in {where}")
    assert "written by hand" in result["details"]["sudoers"]
    assert "('sudo -l -U nobody' agrees.)" in result["details"]["sudoers"]  # root asks sudo too
    assert result["self_test"]["passed"], result["self_test"]
    assert result["with_test"]["self-test"] == "done"
    assert result["overall_with_test"] == "Sharing is enabled and the self-test proved it works."
    # The helper changed after the test: its old "Done" no longer counts.
    state, detail = result["after_edit"]["self-test"]
    assert state == "missing" and "changed since the self-test" in detail
    assert result["after_edit"]["helper"][0] == "done"  # a comment changes nothing it runs
    assert result["disable_preview"] == [[], [rh.HELPER_SCRIPT_PATH]]


def test_an_ordinary_user_cannot_read_a_hand_made_rule_and_the_self_test_decides(
    tmp_path: Path, code_for_other_users
):
    """/etc/sudoers is root's eyes only: as an ordinary user the rule there is "not checked"
    (never "missing"), the summary says the self-test finds out, and a passed self-test proves
    it; a failed one is the verdict."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="zia-user-view-", dir="/tmp"))
    try:
        base.chmod(0o755)
        root = make_handmade(base, "main")
        code = (
            f"import json, sys; sys.path.insert(0, {str(code_for_other_users.path)!r})\n"
            "from core import sharing\n"
            f"steps = sharing.detect({str(root)!r}, env={{'PATH': '/usr/local/bin:/usr/bin'}})\n"
            "print(json.dumps({s.key: [s.state, s.detail, s.verb] for s in steps}))"
        )
        proc = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             code_for_other_users.python, "-I", "-c", code],
            capture_output=True, text=True, timeout=60, cwd="/", check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout)
    finally:
        shutil.rmtree(base)
    state, detail, verb = seen["sudoers"]
    assert state == sharing.UNKNOWN and verb == "install-sudoers"
    assert "/etc/sudoers can be read by root only" in detail and "self-test" in detail
    assert seen["helper"][0] == "done"  # the helper script is readable by everyone
    steps = [sharing.Step(k, k, v[0], v[1], v[2]) for k, v in seen.items()]
    verdict = sharing.overall(steps)
    assert verdict.state == sharing.UNCERTAIN and "Run the self-test" in verdict.summary

    passed = sharing.SelfTestResult(True, "Sharing works", user="alice", when=1.0)
    proven = sharing.proved_by(steps, passed)
    assert [s.state for s in proven if s.key == "sudoers"] == ["done"]
    proven[-1] = sharing.step_self_test(passed)
    assert sharing.overall(proven).state == sharing.ENABLED and sharing.overall(proven).proven

    failed = sharing.SelfTestResult(False, "Adding failed: sudo asked for a password")
    steps[-1] = sharing.step_self_test(failed)
    verdict = sharing.overall(sharing.proved_by(steps, failed))
    assert verdict.state == sharing.BROKEN and "self-test failed" in verdict.summary


def test_a_self_test_result_counts_only_for_the_configuration_it_tested(tmp_path: Path):
    root = make_handmade(tmp_path, "main")
    before = sharing.fingerprint(str(root))
    assert sharing.fingerprint(str(root)) == before
    store = root / rh.SHARED_STORE.lstrip("/")
    (store / ("sha256new_" + "B" * 52)).mkdir()  # adding to the store is not a change
    assert sharing.fingerprint(str(root)) == before
    with open(root / rh.HELPER_SCRIPT_PATH.lstrip("/"), "a") as f:
        f.write("# edited\n")
    assert sharing.fingerprint(str(root)) != before
    changed = sharing.fingerprint(str(root))
    (root / "etc/sudoers.d/zz-new").write_text("Defaults requiretty\n")
    assert sharing.fingerprint(str(root)) != changed


def test_rules_sudo_reads_from_sssd_are_not_called_missing(tmp_path: Path):
    root = make_root(tmp_path, debian=True)
    (root / "etc/nsswitch.conf").write_text("passwd: files\nsudoers: files sss\n")
    step = by_key(root)["sudoers"]
    assert step.state == sharing.UNKNOWN and "sss (/etc/nsswitch.conf)" in step.detail
    assert step.verb == "install-sudoers"
    (root / "etc/nsswitch.conf").write_text("sudoers: files\n")
    assert by_key(root)["sudoers"].state == sharing.MISSING


def test_a_helper_elsewhere_on_path_is_the_one_judged(tmp_path: Path):
    """0install runs the first 0store-secure-add-helper on PATH: one made by hand in /usr/bin
    counts, and enable does not add a second one."""
    root = make_handmade(tmp_path, "dropin")
    ours = root / rh.HELPER_SCRIPT_PATH.lstrip("/")
    elsewhere = root / "usr/bin/0store-secure-add-helper"
    ours.rename(elsewhere)
    step = by_key(root)["helper"]
    assert step.state == "done"
    assert step.detail.startswith("Present: /usr/bin/0store-secure-add-helper (written by hand)")
    assert sharing.plan(sharing.detect(str(root))) == []


def test_a_passed_self_test_is_never_contradicted_by_the_summary():
    steps = [
        sharing.Step("user", "System user zeroinst", sharing.DONE, ""),
        sharing.Step("helper", "0store-secure-add-helper", sharing.ATTENTION, "PATH", None),
        sharing.Step("self-test", "Self-test", sharing.DONE, "Passed"),
    ]
    verdict = sharing.overall(steps)
    assert verdict.state == sharing.ENABLED and verdict.proven
    assert verdict.summary.startswith("Sharing works (the self-test passed), but 0store-secure")
    steps[-1] = sharing.Step("self-test", "Self-test", sharing.ATTENTION, "Failed")
    steps[1] = sharing.Step("helper", "0store-secure-add-helper", sharing.DONE, "")
    verdict = sharing.overall(steps)
    assert verdict.state == sharing.BROKEN and "Sharing is enabled" not in verdict.summary


def test_roots_own_path_says_nothing_about_the_users_path(tmp_path: Path, monkeypatch):
    """Seen in a fresh chroot run as root with PATH=/usr/sbin:/usr/bin:/sbin:/bin: a working
    helper was "needs attention" because of root's PATH. An ordinary user's PATH still counts."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/profile").write_text('PATH="/usr/local/bin:/usr/bin:/bin"\nexport PATH\n')
    minimal = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    monkeypatch.setattr(sharing.os, "geteuid", lambda: 0)
    assert sharing._login_path_problem(str(root), minimal) is None
    monkeypatch.setattr(sharing.os, "geteuid", lambda: 1000)
    problem = sharing._login_path_problem(str(root), minimal)
    assert problem is not None and problem.startswith("your PATH")
