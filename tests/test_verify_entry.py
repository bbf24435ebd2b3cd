"""Verifying one entry (core.verify_entry): a real 0install store's entry, damaged, and the
verdicts on a wrong or missing ``.manifest``."""

from __future__ import annotations

from pathlib import Path

from core import digests
from core.manifest import generate_manifest, manifest_digest
from core.verify_entry import compare, verify_directory
from tests.conftest import RealStore


def test_verify_real_store_entry_and_damage(real_store: RealStore) -> None:
    impl = real_store.add(
        "app", {"bin/run": "!#!/bin/sh\necho hi\n", "README": "hello", "lib/x.py": "x=1\n"}
    )
    assert verify_directory(impl).status == "ok"
    readme = impl / "README"
    impl.chmod(0o755)
    readme.chmod(0o644)
    readme.write_text("hello, tampered")
    (impl / "lib").chmod(0o755)
    (impl / "lib" / "x.py").chmod(0o755)
    (impl / "lib" / "new.py").write_text("")
    result = verify_directory(impl)
    assert result.status == "corrupt"
    assert result.expected == impl.name and result.actual != impl.name
    described = {c.path: c for c in result.changes}
    assert described["/README"].change == "modified"
    assert "content" in described["/README"].what
    assert any(w.startswith("size 5 -> 15") for w in described["/README"].what)
    assert described["/lib/x.py"].what == ("executable bit set",)
    assert described["/lib/new.py"].change == "added"


def test_verify_reports_wrong_manifest_and_missing_manifest(tmp_path: Path) -> None:
    src = tmp_path / "impl"
    src.mkdir()
    (src / "f").write_text("data")
    digest = manifest_digest(src, "sha256new")
    (src / ".manifest").write_bytes(b"F 00 1 1 g\n")
    result = compare(digest, generate_manifest(src, "sha256new"), b"F 00 1 1 g\n")
    assert result.status == "corrupt"
    assert "manifest file is wrong" in result.detail
    no_manifest = compare(
        digests.Digest("sha256new", "A" * 52), generate_manifest(src, "sha256new"), None
    )
    assert "no .manifest" in no_manifest.detail.lower()


def test_verify_skips_non_digest_names(tmp_path: Path) -> None:
    (tmp_path / "tmp-abc").mkdir()
    assert verify_directory(tmp_path / "tmp-abc").status == "skipped"
