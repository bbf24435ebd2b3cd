"""The fleet: ``zeroinstall-admin fleet report`` over the results the playbook gathers, and the
playbook itself run by Ansible against two throwaway Debian hosts (chroots with their own sshd,
reached over the loopback of a private network namespace: tests/chroot_hosts.sh)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from core import cli, fleet
from tests.conftest import REPO, run_cli

HOSTS = REPO / "tests" / "chroot_hosts.sh"


def result(host: str, listed: object, verified: object, list_rc: int = 0, verify_rc: int = 0):
    return {
        "host": host,
        "list": {"rc": list_rc, "stdout": json.dumps(listed), "stderr": "", "msg": ""},
        "verify": {"rc": verify_rc, "stdout": json.dumps(verified), "stderr": "", "msg": ""},
    }


def write(results: Path, data: dict) -> None:
    results.mkdir(exist_ok=True)
    (results / f"{data['host']}.json").write_text(json.dumps(data))


def test_report_table_of_hosts(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    rows = [{"name": "sha256new_A", "size": 2_000_000}, {"name": "sha256new_B", "size": 500_000}]
    write(results, result("lab-01", rows, [{"name": "sha256new_A", "status": "ok"}]))
    corrupt = {"name": {"base64": "eA==", "text": "caf\\xe9"}, "status": "corrupt",
               "detail": "1 file changed"}  # fmt: skip
    write(results, result("lab-02", rows[:1], [corrupt], verify_rc=1))
    missing = result("lab-03", [], [], list_rc=None, verify_rc=None)  # type: ignore[arg-type]
    missing["list"]["msg"] = "[Errno 2] No such file or directory: b'zeroinstall-admin'"
    write(results, missing)
    (results / "notes.txt").write_text("not a result")
    (results / "lab-04.json").write_text("{ broken")

    assert cli.main(["fleet", "report", str(results)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert re.match(r"HOST +ENTRIES +SIZE +PROBLEMS$", out[0])
    assert re.match(r"lab-01 +2 +2\.5 MB +none$", out[1]), out[1]
    assert re.match(r"lab-02 +1 +2\.0 MB +corrupt: caf\\xe9 \(1 file changed\)$", out[2]), out[2]
    assert re.match(r"lab-03 +\? +\? +list did not run: .*No such file", out[3]), out[3]
    assert "verify did not run" in out[3]
    assert re.match(r"lab-04 +\? +\? +lab-04.json cannot be read", out[4]), out[4]
    assert out[5] == "4 hosts, 3 entries, 4.5 MB; 3 with problems"

    assert cli.main(["fleet", "report", "--json", str(results)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [d["host"] for d in data] == ["lab-01", "lab-02", "lab-03", "lab-04"]
    assert data[0] == {"host": "lab-01", "entries": 2, "size": 2_500_000, "verified": 1,
                       "problems": []}  # fmt: skip


def test_report_of_healthy_hosts_exits_0(tmp_path: Path, capsys) -> None:
    write(tmp_path, result("a", [], []))
    assert cli.main(["fleet", "report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith("1 hosts, 0 entries, 0 bytes; no problems\n")


def test_report_of_a_wrong_directory_says_what_to_do(tmp_path: Path, capsys) -> None:
    assert cli.main(["fleet", "report", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "nowhere" in err and "zia_results=DIR" in err and "Traceback" not in err
    assert cli.main(["fleet", "report", str(tmp_path)]) == 1
    assert "has no HOST.json" in capsys.readouterr().err
    assert cli.main(["fleet"]) == 2
    assert "fleet needs an action: report" in capsys.readouterr().err


def test_host_report_survives_odd_json() -> None:
    odd = fleet.host_report("x", {"list": {"rc": 0, "stdout": '{"a": 1}'}, "verify": "?"})
    assert odd.entries is None
    assert any("other than a list" in p for p in odd.problems)
    assert any("no verify result" in p for p in odd.problems)
    assert fleet.host_report("y", []).problems == ["the results file is not a JSON object"]


# --- the playbook on two throwaway hosts ----------------------------------------------------------

HOST_PACKAGES = ["openssh-server", "python3", "python3-apt", "sudo", "0install-core"]


def _image(cache: Path) -> Path:
    """A tarball of a Debian chroot with sshd, sudo and 0install-core, and every dependency of the
    .deb (so the hosts install it without a network), made once and kept in ``cache``."""
    qt = subprocess.run(
        ["bash", "-c", f"source {REPO}/installers/common.sh; echo ${{QT_RUNTIME_PACKAGES[@]}}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    packages = [*HOST_PACKAGES, "python3-venv", "pkexec", "libstdc++6", "libgcc-s1", *qt]
    proc = subprocess.run([str(HOSTS), "image", str(cache), *packages], capture_output=True,
                          text=True, timeout=3600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def _recap(output: str) -> dict[str, dict[str, int]]:
    recap = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        m = re.match(r"(\S+)\s+:\s+(.*)$", line)
        if m:
            recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return recap


@pytest.mark.slow
def test_playbook_on_two_hosts_installs_shares_reports_and_is_idempotent(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        pytest.fail("needs root and debootstrap (installers/test.sh installs it)")
    cache = Path(os.environ.get("ZIA_CHROOT_CACHE", "/var/tmp/zeroinstall-admin-test-chroots"))
    image = _image(cache)
    work = Path(tmp_path_factory.mktemp("fleet"))
    work.chmod(0o755)
    proc = subprocess.run([str(REPO / "installers" / "build-deb.sh"), "--outdir", str(work)],
                          capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    deb = proc.stdout.strip().splitlines()[-1]
    roots = []
    for name in ("host1", "host2"):
        root = work / name
        root.mkdir()
        # (tar itself: Debian 12's Python 3.11.2 has no extractall(filter=); the image is ours.)
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(image)],
                       check=True, timeout=600)  # fmt: skip
        roots.append(root)
    # host1 as 0install-core leaves it; host2 with no zeroinst yet, and sharing half done by hand.
    subprocess.run(["chroot", str(roots[1]), "userdel", "zeroinst"], check=True, timeout=60)
    (roots[1] / "var/cache/0install.net").mkdir(exist_ok=True)
    # Something in each host's shared cache: the same implementation, tampered with on host2.
    tree = work / "impl"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "tool").write_text("#!/bin/sh\necho hello\n")
    (tree / "README").write_text("x" * 100_000)
    digest = cli_output(["digest", str(tree)]).strip()
    assert digest.startswith("sha256new_"), digest
    for root in roots:
        store = root / "var/cache/0install.net/implementations"
        store.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tree, store / digest)
    (roots[1] / "var/cache/0install.net/implementations" / digest / "README").write_text("y")
    playbook = work / "zeroinstall-admin.yml"
    playbook.write_text(cli_output(["sharing", "script", "--ansible"]))
    results = work / "results"
    steps = f"""
set -u
run() {{ name=$1; shift;
         ansible-playbook -i "$WORK/inventory" {playbook} "$@" > "$WORK/$name.out" 2>&1;
         echo $? > "$WORK/$name.rc"; }}
run check --check --diff -e zia_deb={deb}
for root in {roots[0]} {roots[1]}; do  # what check mode left: exactly what was there
  [ ! -e $root/usr/bin/zeroinstall-admin ] || echo "$root: zeroinstall-admin"
  ! grep -q ^zeroinst: $root/etc/passwd || echo "$root: zeroinst"
  [ ! -e $root/etc/sudoers.d/zeroinstall ] || echo "$root: drop-in"
done > "$WORK/after-check"
run first -e zia_deb={deb}
run second -e zia_deb={deb}
run check-after --check -e zia_deb={deb}
run report --tags report -e zia_results={results}
"""
    try:
        _run_on_hosts(work, roots, steps, digest)
    finally:
        for root in roots:  # two Debian trees: not kept with the test's other files
            shutil.rmtree(root, ignore_errors=True)


def _run_on_hosts(work: Path, roots: list[Path], steps: str, digest: str) -> None:
    results = work / "results"
    proc = subprocess.run(
        [str(HOSTS), "run", str(work), *map(str, roots), "--", "bash", "-c", steps],
        capture_output=True, text=True, timeout=3600, check=False,
        env={**os.environ, "WORK": str(work), "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    def outcome(name: str) -> tuple[int, str, dict[str, dict[str, int]]]:
        out = (work / f"{name}.out").read_text()
        return int((work / f"{name}.rc").read_text()), out, _recap(out)

    # Check mode first: truthful (the package, the user on host2...), and nothing was changed.
    rc, out, recap = outcome("check")
    assert rc == 0, out[-4000:]
    assert recap["host1"]["changed"] > 0 and recap["host2"]["changed"] > recap["host1"]["changed"]
    assert "would install zeroinstall-admin" in out
    assert (work / "after-check").read_text() == f"{roots[0]}: zeroinst\n"  # 0install-core's
    # The real run, then a second one that changes nothing, and check mode agrees.
    rc, out, recap = outcome("first")
    assert rc == 0, out[-4000:]
    assert all(r["failed"] == 0 and r["changed"] > 0 for r in recap.values()), recap
    for name in ("second", "check-after"):
        rc, out, recap = outcome(name)
        assert rc == 0 and set(recap) == {"host1", "host2"}, out[-4000:]
        assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), out[-4000:]
    for root in roots:
        assert (root / "usr/bin/zeroinstall-admin").is_symlink()
        assert (root / "etc/sudoers.d/zeroinstall").stat().st_mode & 0o777 == 0o440
        assert "zeroinst:" in (root / "etc/passwd").read_text()
    # The report: both hosts' results here, and one table of them.
    rc, out, recap = outcome("report")
    assert rc == 0 and all(r["changed"] == 0 for r in recap.values()), out[-4000:]
    assert sorted(p.name for p in results.iterdir()) == ["host1.json", "host2.json"]
    table = run_cli("fleet", "report", str(results), text=True, timeout=120, cwd=REPO)
    assert table.returncode == 1, table.stdout + table.stderr  # host2 has a problem
    lines = table.stdout.splitlines()
    assert re.match(r"host1 +1 +1\d\d\.\d kB +none$", lines[1]), table.stdout  # README's 100 kB
    # (Its size is mostly directories: 4 kB each on ext4, a few bytes on tmpfs.)
    host2 = rf"host2 +1 +[\d.]+ (bytes|kB) +corrupt: {digest} \(Contents do not"
    assert re.match(host2, lines[2]), table.stdout
    assert re.match(r"2 hosts, 2 entries, [\d.]+ kB; 1 with problems$", lines[-1]), table.stdout


def cli_output(argv: list[str]) -> str:
    proc = run_cli(*argv, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
