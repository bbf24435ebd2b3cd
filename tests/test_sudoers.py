"""The sudoers reader: files included the way sudo includes them, the last matching rule, the
Defaults that decide env_reset and HOME, all on fake roots. Every file written here is also
checked with the real ``visudo -c -f``, so the cases are sudoers that sudo itself accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core import root_helper as rh
from core import sudoers

PROGRAM = "/usr/bin/0store-secure-add"
DOCS_LINES = (
    "Defaults>zeroinst env_reset,always_set_home\n"
    "ALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add\n"
)
DEBIAN_SUDOERS = (
    "Defaults\tenv_reset\n"
    "Defaults\tmail_badpass\n"
    'Defaults\tsecure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
    "Defaults\tuse_pty\n"
    "# User privilege specification\n"
    "root\tALL=(ALL:ALL) ALL\n"
    "%sudo\tALL=(ALL:ALL) ALL\n"
    "@includedir /etc/sudoers.d\n"
)


pytestmark = pytest.mark.usefixtures("no_real_root")


def fake_root(tmp_path: Path, main: str = DEBIAN_SUDOERS, **dropins: str) -> Path:
    root = tmp_path / "root"
    (root / "etc/sudoers.d").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "zeroinst:x:102:105::/var/cache/0install.net:/usr/sbin/nologin\n"
    )
    (root / "etc/group").write_text("root:x:0:\nzeroinst:x:105:\nstaff:x:50:alice\n")
    write(root, "/etc/sudoers", main)
    for name, text in dropins.items():
        write(root, f"/etc/sudoers.d/{name.replace('_', '-')}", text)
    return root


def write(root: Path, path: str, text: str) -> Path:
    full = root / path.lstrip("/")
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)
    full.chmod(0o440)
    if "@include" not in text and "#include" not in text:  # visudo would follow the real paths
        proc = subprocess.run(["visudo", "-c", "-f", str(full)], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert proc.returncode == 0, (text, proc.stderr + proc.stdout)
    return full


def verdict(root: Path) -> sudoers.Verdict:
    config = sudoers.read(str(root))
    return sudoers.evaluate(config, sudoers.target_for(str(root), PROGRAM))


def test_debian_sudoers_alone_grants_nothing(tmp_path: Path):
    v = verdict(fake_root(tmp_path))
    assert not v.allowed and v.rule is None and not v.works
    assert v.env_reset and v.home_set  # Debian's 'Defaults env_reset' resets HOME too


def test_the_docs_lines_at_the_end_of_etc_sudoers_work_and_are_located(tmp_path: Path):
    root = fake_root(tmp_path, DEBIAN_SUDOERS + DOCS_LINES)
    v = verdict(root)
    assert v.works
    assert v.rule is not None and v.rule.entry.where == "/etc/sudoers (line 10)"
    assert [e.where for e in v.settings if "zeroinst" in e.text] == ["/etc/sudoers (line 9)"]


def test_the_docs_lines_in_any_dropin_work(tmp_path: Path):
    root = fake_root(tmp_path, **{"0install_docs": DOCS_LINES})
    v = verdict(root)
    assert v.works and v.rule is not None
    assert v.rule.entry.path == "/etc/sudoers.d/0install-docs"


@pytest.mark.parametrize("name", ["zeroinstall~", "zeroinstall.bak", "old.dpkg-dist"])
def test_includedir_skips_backup_names_and_names_with_a_dot(tmp_path: Path, name: str):
    root = fake_root(tmp_path)
    write(root, f"/etc/sudoers.d/{name}", DOCS_LINES)
    config = sudoers.read(str(root))
    assert f"/etc/sudoers.d/{name}" not in config.files
    assert not verdict(root).allowed


def test_include_and_hash_include_with_relative_paths(tmp_path: Path):
    main = DEBIAN_SUDOERS.replace("@includedir /etc/sudoers.d\n", "#include sudoers.local\n")
    root = fake_root(tmp_path, main)
    write(root, "/etc/sudoers.local", "@include sudoers.more\n")
    write(root, "/etc/sudoers.more", DOCS_LINES)
    config = sudoers.read(str(root))
    assert config.files == ["/etc/sudoers", "/etc/sudoers.local", "/etc/sudoers.more"]
    assert verdict(root).works
    assert "/etc/sudoers.d" not in config.includes_dir  # no drop-in directory is read


def test_a_later_rule_without_nopasswd_wins_and_is_named(tmp_path: Path):
    root = fake_root(tmp_path, DEBIAN_SUDOERS + DOCS_LINES + "ALL ALL=(ALL) ALL\n")
    v = verdict(root)
    assert v.allowed and not v.nopasswd and not v.works
    assert v.blocking[0].where == "/etc/sudoers (line 11)"


def test_a_rule_for_a_group_is_not_a_rule_for_every_user(tmp_path: Path):
    root = fake_root(tmp_path, DEBIAN_SUDOERS + "%staff ALL=(zeroinst) NOPASSWD: " + PROGRAM + "\n")
    v = verdict(root)
    assert not v.allowed
    assert [r.entry.line for r in v.others] == [9]


def test_tags_runas_and_aliases_carry_as_sudo_reads_them(tmp_path: Path):
    text = (
        "Runas_Alias ZI = zeroinst\n"
        "Cmnd_Alias ADD = /usr/bin/0store-secure-add\n"
        "ALL ALL=(ZI) NOPASSWD: /usr/bin/true, ADD\n"
    )
    assert verdict(fake_root(tmp_path, DEBIAN_SUDOERS + text)).works


def test_a_negated_command_refuses(tmp_path: Path):
    text = DOCS_LINES + "ALL ALL=(zeroinst) NOPASSWD: ALL, !/usr/bin/0store-secure-add\n"
    v = verdict(fake_root(tmp_path, DEBIAN_SUDOERS + text))
    assert not v.allowed and v.blocking[0].line == 11


def test_a_rule_without_arguments_allowed_does_not_cover_the_digest(tmp_path: Path):
    text = 'ALL ALL=(zeroinst) NOPASSWD: /usr/bin/0store-secure-add ""\n'
    assert not verdict(fake_root(tmp_path, DEBIAN_SUDOERS + text)).allowed


@pytest.mark.parametrize(
    "extra, env_reset, home_set",
    [
        ("Defaults>zeroinst !env_reset\n", False, True),  # always_set_home still sets HOME
        ("Defaults !env_reset\n", True, True),  # the drop-in's runas Defaults come later
        ("Defaults env_keep += HOME\n", True, True),  # always_set_home still sets it
        ("Defaults>zeroinst !always_set_home\nDefaults env_keep += HOME\n", True, False),
    ],
)
def test_defaults_classes_apply_in_sudos_order(tmp_path: Path, extra, env_reset, home_set):
    root = fake_root(tmp_path, DEBIAN_SUDOERS, zz_local=extra, zeroinstall=DOCS_LINES)
    v = verdict(root)
    assert (v.env_reset, v.home_set) == (env_reset, home_set)
    assert v.works == (env_reset and home_set)


def test_requiretty_breaks_it(tmp_path: Path):
    v = verdict(fake_root(tmp_path, DEBIAN_SUDOERS + DOCS_LINES + "Defaults requiretty\n"))
    assert v.allowed and v.requiretty and not v.works


def test_continuation_lines_and_comments(tmp_path: Path):
    text = (
        "# a comment naming ALL ALL=(zeroinst) NOPASSWD: ALL\n"
        "ALL ALL=(zeroinst) \\\n"
        "    NOPASSWD: /usr/bin/0store-secure-add  # added by hand\n"
    )
    v = verdict(fake_root(tmp_path, DEBIAN_SUDOERS + text))
    assert v.works and v.rule is not None and v.rule.entry.line == 10


def test_world_writable_and_foreign_files_are_skipped_as_sudo_does(tmp_path: Path):
    root = fake_root(tmp_path, **{"0install_docs": DOCS_LINES})
    (root / "etc/sudoers.d/0install-docs").chmod(0o666)
    config = sudoers.read(str(root))
    assert config.skipped == ["/etc/sudoers.d/0install-docs is writable by others: sudo skips it"]
    assert not verdict(root).allowed


def test_an_unreadable_file_is_reported_not_guessed(tmp_path: Path, monkeypatch):
    root = fake_root(tmp_path, DEBIAN_SUDOERS + DOCS_LINES)
    real_open = open

    def refusing(path, *args, **kwargs):
        if str(path).endswith("/etc/sudoers"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing)
    config = sudoers.read(str(root))
    assert config.unreadable == ["/etc/sudoers"] and config.entries == []


def test_with_dropin_takes_its_place_in_the_directory_order(tmp_path: Path):
    late = "ALL ALL=(zeroinst) /usr/bin/0store-secure-add\n"
    root = fake_root(tmp_path, zz_local=late)
    config = sudoers.read(str(root))
    after = sudoers.with_dropin(config, rh.SUDOERS_DROPIN, rh.sudoers_content(PROGRAM))
    assert after is not None
    assert [e.path for e in after.entries][-3:] == [
        rh.SUDOERS_DROPIN, rh.SUDOERS_DROPIN, "/etc/sudoers.d/zz-local"]  # fmt: skip
    target = sudoers.target_for(str(root), PROGRAM)
    assert not sudoers.evaluate(after, target).works  # zz-local, read later, asks for a password
    early = fake_root(tmp_path / "2", aa_local=late)
    config = sudoers.read(str(early))
    after = sudoers.with_dropin(config, rh.SUDOERS_DROPIN, rh.sudoers_content(PROGRAM))
    assert after is not None and sudoers.evaluate(after, target).works


def test_a_symlink_in_a_fake_root_is_followed_inside_it_never_out(tmp_path: Path):
    """sudo follows a symlinked drop-in; on a fake root the link's absolute target means the
    fake root's file (this machine's /etc/shadow is never read)."""
    root = fake_root(tmp_path)
    write(root, "/etc/zeroinstall-rules", DOCS_LINES)
    (root / "etc/sudoers.d/rules").symlink_to("/etc/zeroinstall-rules")
    (root / "etc/sudoers.d/shadow").symlink_to("/etc/shadow")  # none in the fake root
    config = sudoers.read(str(root))
    assert config.real["/etc/sudoers.d/rules"] == str(root / "etc/zeroinstall-rules")
    assert "/etc/sudoers.d/shadow" not in config.files
    assert verdict(root).works


def test_hostile_sudoers_are_reported_not_fatal(tmp_path: Path):
    main = DEBIAN_SUDOERS + (
        "@include /etc/sudoers\n"
        '@include "/etc/with space"\n'
        "@includedir /etc/nonexistent\n"
        "(((\n"
        "ALL ALL = (zeroinst\n"
        "Cmnd_Alias X = !X\n"
        "ALL ALL=(zeroinst) NOPASSWD: X\n"
    )
    root = tmp_path / "root"
    (root / "etc/sudoers.d").mkdir(parents=True)
    (root / "etc/sudoers").write_text(main)
    (root / "etc/sudoers.d/garbage").write_bytes(bytes(range(256)) * 8)
    config = sudoers.read(str(root))
    assert "/etc/sudoers: included from itself (sudo refuses such a loop)" in config.problems
    assert "/etc/with space is included but does not exist" in config.problems
    assert not verdict(root).allowed


# --- the helper's own check agrees with the detection ---------------------------------------------

WITHOUT_DIR = DEBIAN_SUDOERS.replace("@includedir /etc/sudoers.d\n", "")
INCLUDE_CASES = {
    # name: (/etc/sudoers, {other file: text}, reads /etc/sudoers.d)
    "in /etc/sudoers": (DEBIAN_SUDOERS, {}, True),
    "hash includedir with a slash": (WITHOUT_DIR + "#includedir /etc/sudoers.d/\n", {}, True),
    "nowhere": (WITHOUT_DIR, {}, False),
    "in an included file": (
        WITHOUT_DIR + "@include /etc/sudoers.local\n",
        {"/etc/sudoers.local": "@includedir /etc/sudoers.d\n"},
        True,
    ),
    "relative hash include, two deep": (
        WITHOUT_DIR + "#include sudoers.local\n",
        {"/etc/sudoers.local": "@include sudoers.more\n",
         "/etc/sudoers.more": "@includedir /etc/sudoers.d\n"},
        True,
    ),
    "quoted name with a space": (
        WITHOUT_DIR + '@include "/etc/sudoers local"\n',
        {"/etc/sudoers local": "@includedir /etc/sudoers.d\n"},
        True,
    ),
    "in a file of another included directory": (
        WITHOUT_DIR + "@includedir /etc/sudo-extra\n",
        {"/etc/sudo-extra/site": "@includedir /etc/sudoers.d\n"},
        True,
    ),
    "only in a name includedir skips": (
        WITHOUT_DIR + "@includedir /etc/sudo-extra\n",
        {"/etc/sudo-extra/site.conf": "@includedir /etc/sudoers.d\n",
         "/etc/sudo-extra/site~": "@includedir /etc/sudoers.d\n"},
        False,
    ),
    "only in a file sudo skips (world-writable)": (
        WITHOUT_DIR + "@include /etc/sudoers.local\n",
        {"/etc/sudoers.local": "@includedir /etc/sudoers.d\n", "chmod": "/etc/sudoers.local"},
        False,
    ),
    "only in a file that is not there, and a loop": (
        WITHOUT_DIR + "@include /etc/sudoers.gone\n@include /etc/sudoers.loop\n",
        {"/etc/sudoers.loop": "@include /etc/sudoers\n"},
        False,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(INCLUDE_CASES))
def test_the_helper_and_the_detection_agree_on_what_reads_the_dropin_directory(
    tmp_path: Path, case: str
):
    main, others, reads = INCLUDE_CASES[case]
    root = fake_root(tmp_path, main)
    for path, text in others.items():
        if path != "chmod":
            write(root, path, text)
    if "chmod" in others:
        (root / others["chmod"].lstrip("/")).chmod(0o666)
    detected = sudoers.with_dropin(sudoers.read(str(root)), rh.SUDOERS_DROPIN, DOCS_LINES)
    assert (detected is not None) is reads
    assert rh.sudoers_includes_dropins(str(root)) is reads
    # The install step goes ahead exactly where the detection says a drop-in would be read.
    program = root / "usr/bin/0store-secure-add"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    dropin = root / rh.SUDOERS_DROPIN.lstrip("/")
    if reads:
        assert rh.step_install_sudoers(str(root)).endswith("written")
        assert "NOPASSWD" in dropin.read_text()
    else:
        with pytest.raises(rh.HelperError, match="does not read /etc/sudoers.d"):
            rh.step_install_sudoers(str(root))
        assert not dropin.exists()
