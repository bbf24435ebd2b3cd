"""core.snippets: each snippet is checked by the real tool that reads it (ruby, nix-instantiate,
an XML parser) and, for Vagrant, run against a stub of Vagrant's configuration objects."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from core import snippets
from core.snippets import SnippetOptions

RUBY = shutil.which("ruby")
NIX = shutil.which("nix-instantiate")

ODD = SnippetOptions(
    name="ZeroInstall",
    host_path='/srv/it\'s "my" #{cache} ${x}\\dir',
    guest_path="/var/cache/0install.net/implementations",
    guest_cache="/home/me/.cache/shared-vagrant-guest-cache",
)

# A stand-in for Vagrant's configuration DSL: records every call and prints them as JSON.
VAGRANT_STUB = r"""
require "json"
$calls = []
def plain(v)
  return ":" + v.to_s if v.is_a?(Symbol)
  return v.map { |x| plain(x) } if v.is_a?(Array)
  return v.to_h { |k, x| [k.to_s, plain(x)] } if v.is_a?(Hash)
  v
end
class Recorder
  def initialize(path) @path = path end
  def method_missing(name, *args, &block)
    $calls << [@path + "." + name.to_s, plain(args)]
    block.call(Recorder.new(@path + "." + name.to_s + "(" + args.first.to_s + ")")) if block
    Recorder.new(@path + "." + name.to_s)
  end
  def respond_to_missing?(*) true end
end
module Vagrant
  def self.configure(version) $calls << ["configure", [version]]; yield Recorder.new("config") end
  module Config
    def self.run() $calls << ["run", []]; yield Recorder.new("config") end
  end
end
load ARGV[0]
puts JSON.generate($calls)
"""


def _ruby_calls(tmp_path: Path, text: str) -> list:
    assert RUBY, "ruby is needed to check the Vagrant snippets (installers/test.sh installs it)"
    vagrantfile = tmp_path / "Vagrantfile"
    vagrantfile.write_text(text)
    check = subprocess.run(
        [RUBY, "-c", str(vagrantfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert check.returncode == 0, check.stderr
    stub = tmp_path / "stub.rb"
    stub.write_text(VAGRANT_STUB)
    run = subprocess.run(
        [RUBY, str(stub), str(vagrantfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("opts", [SnippetOptions(), ODD], ids=["default", "odd-paths"])
def test_vagrant_v2_shares_read_only_with_matching_ids(
    tmp_path: Path, opts: SnippetOptions
) -> None:
    calls = _ruby_calls(tmp_path, snippets.generate("vagrant", opts))
    assert calls[0] == ["configure", ["2"]]
    folders = [args for name, args in calls if name == "config.vm.synced_folder"]
    host_share = folders[0]
    assert host_share[0] == opts.host_path and host_share[1] == opts.guest_path
    options = host_share[2]
    assert options["id"] == opts.name and options["type"] == "virtualbox"
    assert options["mount_options"] == ["ro"]
    assert options["SharedFoldersEnableSymlinksCreate"] is False
    customize = [args[0] for name, args in calls if name.endswith(".customize")]
    assert ["sharedfolder", "remove", ":id", "--name", opts.name] in customize
    assert [
        "sharedfolder",
        "add",
        ":id",
        "--name",
        opts.name,
        "--hostpath",
        opts.host_path,
        "--readonly",
    ] in customize
    # Every setextradata key names a synced folder's id (the 0install docs' example does not).
    ids = {f[2]["id"] for f in folders}
    for args in customize:
        if args[0] == "setextradata":
            assert args[2].rsplit("/", 1)[1] in ids
    if opts.guest_cache:
        guest = folders[1]
        assert guest[0] == opts.guest_cache and guest[2]["id"] == "shared-guest-cache"
        assert guest[2]["SharedFoldersEnableSymlinksCreate"] is True
        assert [
            "setextradata",
            ":id",
            "VBoxInternal2/SharedFoldersEnableSymlinksCreate/shared-guest-cache",
            "1",
        ] in customize
    else:
        assert len(folders) == 1


def test_vagrant_v2_writable_drops_read_only(tmp_path: Path) -> None:
    calls = _ruby_calls(tmp_path, snippets.generate("vagrant", SnippetOptions(writable=True)))
    folder = next(args for name, args in calls if name == "config.vm.synced_folder")
    assert "mount_options" not in folder[2]
    assert not any(name.endswith(".customize") for name, _ in calls)


@pytest.mark.parametrize("opts", [SnippetOptions(), ODD], ids=["default", "odd-paths"])
def test_vagrant_v1(tmp_path: Path, opts: SnippetOptions) -> None:
    calls = _ruby_calls(tmp_path, snippets.generate("vagrant-v1", opts))
    assert calls[0] == ["run", []]
    shares = [args for name, args in calls if name == "config.vm.share_folder"]
    assert shares[0][:3] == [opts.name, opts.guest_path, opts.host_path]
    assert shares[0][3]["extra"] == "ro"
    customize = [args[0] for name, args in calls if name == "config.vm.customize"]
    assert [
        "sharedfolder",
        "add",
        ":id",
        "--name",
        opts.name,
        "--hostpath",
        opts.host_path,
        "--readonly",
    ] in customize
    names = {s[0] for s in shares}
    for args in customize:
        if args[0] == "setextradata":
            assert args[2].rsplit("/", 1)[1] in names


def _nix_parse(tmp_path: Path, text: str) -> str:
    assert NIX, "nix-instantiate is needed (installers/test.sh installs nix-bin)"
    path = tmp_path / "share.nix"
    path.write_text(text)
    proc = subprocess.run(
        [NIX, "--parse", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("proto", ["virtiofs", "9p"])
def test_microvm_parses_and_is_read_only(tmp_path: Path, proto: str) -> None:
    opts = SnippetOptions(proto=proto, host_path=ODD.host_path)
    text = snippets.generate("microvm", opts)
    parsed = _nix_parse(tmp_path, text)
    assert f'proto = "{proto}"' in parsed and "readOnly = true" in parsed
    assert (
        'tag = "ZeroInstall"' in parsed
        and 'mountPoint = "/var/cache/0install.net/implementations"' in parsed
    )
    # The odd host path survives quoting: no antiquotation, escapes intact.
    assert "\\${x}" in parsed and '\\"my\\"' in parsed
    if proto == "virtiofs":
        assert "virtiofsd" in text and "firecracker has no shares" in text
    writable = _nix_parse(tmp_path, snippets.generate("microvm", SnippetOptions(writable=True)))
    assert "readOnly" not in writable


def test_nix_checker_fails_on_broken_nix(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        _nix_parse(tmp_path, "{ microvm.shares = [ {\n")


@pytest.mark.parametrize(
    ("version", "readonly"), [(None, False), ((10, 10, 0), False), ((11, 0, 0), True)]
)
def test_libvirt_xml_has_memory_backing_and_readonly_where_accepted(
    version, readonly: bool
) -> None:
    text = snippets.generate(
        "libvirt", SnippetOptions(host_path="/a--b/it's & <x>", libvirt_version=version)
    )
    root = ET.fromstring(text)
    assert root.tag == "domain"
    backing = root.find("memoryBacking")
    assert backing is not None
    assert backing.find("source").get("type") == "memfd"
    assert backing.find("access").get("mode") == "shared"
    fs = root.find("devices/filesystem")
    assert fs.get("type") == "mount" and fs.get("accessmode") == "passthrough"
    assert fs.find("driver").get("type") == "virtiofs"
    assert fs.find("source").get("dir") == "/a--b/it's & <x>"
    assert fs.find("target").get("dir") == "ZeroInstall"
    assert (fs.find("readonly") is not None) is readonly
    if not readonly:
        assert "Only the guest's ro mount protects the host's cache" in text
    assert "mount -t virtiofs -o ro ZeroInstall /var/cache/0install.net/implementations" in text


def test_libvirt_version_parsing() -> None:
    assert snippets.parse_libvirt_version("11.0.0\n") == (11, 0, 0)
    assert snippets.parse_libvirt_version("virsh 9.0") == (9, 0)
    assert snippets.parse_libvirt_version("") is None
    assert snippets.libvirt_accepts_readonly((11, 0)) and not snippets.libvirt_accepts_readonly(
        (10, 10, 0)
    )


def test_fstab_lines_escape_spaces() -> None:
    text = snippets.generate("fstab", SnippetOptions(guest_path="/opt/zero cache"))
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines[0] == "ZeroInstall /opt/zero\\040cache vboxsf ro,_netdev,nofail 0 0"
    assert all(len(line.split()) == 6 for line in lines)
    assert {line.split()[2] for line in lines} == {"vboxsf", "virtiofs", "9p"}
    assert "rw," in snippets.generate("fstab", SnippetOptions(writable=True))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "a b"}, "contains a space"),
        ({"host_path": "rel"}, "not absolute"),
        ({"name": ""}, "empty"),
        ({"proto": "nfs"}, "unknown protocol"),
        ({"name": "x" * 40}, "36 bytes"),
    ],
)
def test_bad_options_are_refused_in_one_line(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        snippets.generate("vagrant", SnippetOptions(**changes))


def _fake_virsh(tmp_path: Path, version: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    virsh = folder / "virsh"
    virsh.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo {version}\n')
    virsh.chmod(0o755)
    return folder


@pytest.mark.parametrize(("version", "readonly"), [("11.2.0", True), ("10.0.0", False)])
def test_snippet_command_asks_virsh_for_the_libvirt_version(
    tmp_path: Path, monkeypatch, capsys, version: str, readonly: bool
) -> None:
    from core.cli import main

    monkeypatch.setenv("PATH", str(_fake_virsh(tmp_path, version)))
    assert snippets.detect_libvirt_version() == snippets.parse_libvirt_version(version)
    assert main(["snippet", "libvirt"]) == 0
    out = capsys.readouterr().out
    assert ("<readonly/>" in out.split("-->", 1)[1]) is readonly
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert snippets.detect_libvirt_version() is None
