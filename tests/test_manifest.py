"""The manifest engine against the real 0install 2.18 and the test vectors of manifest.md."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import digests
from core.manifest import ManifestError, generate_manifest, hash_manifest, manifest_digest
from core.verify_entry import verify_directory
from tests.conftest import run_0install

ALGS = digests.ALGORITHMS


def make_vector_tree(base: Path) -> Path:
    """The tree of 0install's own tests: MyDir/{Hello, Run me, Sym link}."""
    my = base / "MyDir"
    my.mkdir(parents=True)
    (my / "Hello").write_text("Hello World")
    (my / "Run me").write_text("Bang!")
    (my / "Run me").chmod(0o700)
    (my / "Sym link").symlink_to("Hello")
    os.utime(my / "Hello", (30, 30))
    os.utime(my / "Run me", (40, 40))
    os.utime(my, (20, 20))
    return base


VECTOR_DIGESTS = {
    "sha1": "sha1=b42c511f26fad15b00085a55ee357807a175b71f",
    "sha1new": "sha1new=0499b09c24872ee3c9eba525428a796359b9ddfa",
    "sha256": "sha256=443e258781bcb5f5616f9535df4503af824343960d2dd4315b0b3a1c56281be3",
    "sha256new": "sha256new_IQ7CLB4BXS27KYLPSU256RIDV6BEGQ4WBUW5IMK3BM5BYVRIDPRQ",
}


@pytest.mark.parametrize("alg", ALGS)
def test_vector_digests(tmp_path: Path, alg: str) -> None:
    root = make_vector_tree(tmp_path / "t")
    assert manifest_digest(root, alg).name == VECTOR_DIGESTS[alg]


def test_vector_sha1_manifest_text(tmp_path: Path) -> None:
    root = make_vector_tree(tmp_path / "t")
    assert generate_manifest(root, "sha1") == (
        b"D 20 /MyDir\n"
        b"F 0a4d55a8d778e5022fab701977c5d840bbc486d0 30 11 Hello\n"
        b"X 4001b8c42ddfb61c453d04930e8ce78fb3a40bc8 40 5 Run me\n"
        b"S f7ff9e8b7bb2e09b70935a5d785e0cc5d9d0abf0 5 Sym link\n"
    )
    assert generate_manifest(root, "sha1new").startswith(b"D /MyDir\n")


def test_empty_directory_digests(tmp_path: Path) -> None:
    assert (
        manifest_digest(tmp_path, "sha1new").name
        == "sha1new=da39a3ee5e6b4b0d3255bfef95601890afd80709"
    )
    assert manifest_digest(tmp_path, "sha256").value == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert manifest_digest(tmp_path, "sha256new").name == (
        "sha256new_4OYMIQUY7QOBJGX36TEJS35ZEQT24QPEMSNZGTFESWMRW6CSXBKQ"
    )


def test_base32_encoding() -> None:
    import hashlib

    assert digests.encode_value("sha256new", hashlib.sha1(b"hello").digest()) == (
        "VL2MMHO4YXUKFWV63YHTWSBM3GXKSQ2N"
    )


# --- digest names --------------------------------------------------------------------------------


def test_strict_and_loose_parsing() -> None:
    value = "IQ7CLB4BXS27KYLPSU256RIDV6BEGQ4WBUW5IMK3BM5BYVRIDPRQ"
    assert digests.parse_digest(f"sha256new_{value}") == ("sha256new", value)
    with pytest.raises(digests.DigestError, match="sha256new="):
        digests.parse_digest(f"sha256new={value}")
    assert digests.parse_digest(f" sha256new={value}\n", loose=True).name == f"sha256new_{value}"
    for bad in ("md5=abc", "tmp-123", "sha256new", ""):
        with pytest.raises(digests.DigestError):
            digests.parse_digest(bad, loose=True)


def test_value_problems() -> None:
    assert digests.value_problem(digests.parse_digest("sha1new=deadbeef")) is not None
    assert digests.value_problem(digests.parse_digest("sha256new_" + "a" * 52)) is not None
    assert digests.value_problem(digests.parse_digest("sha1=" + "0" * 40)) is None
    assert not digests.is_strict_digest_name(
        "sha256new_" + "iq7clb4bxs27kylpsu256ridv6begq4wbuw5imk3bm5byvridprq"
    )
    with pytest.raises(digests.DigestError, match="52 characters"):
        digests.parse_user_digest("sha256new=ABC")


# --- against the real 0install --------------------------------------------------------------------


def zeroinstall_manifest(root: Path, alg: str) -> tuple[bytes, str]:
    """(manifest text, digest name) as the real ``0install store manifest`` prints them."""
    out = run_0install("store", "manifest", str(root), alg).encode("utf-8", "surrogateescape")
    body, _, last = out.rstrip(b"\n").rpartition(b"\n")
    return (body + b"\n" if body else b""), last.decode()


NAME_CHARS = st.sampled_from(
    [
        b"a",
        b"B",
        b"z",
        b"0",
        b"_",
        b"-",
        b".",
        b" ",
        b"~",
        b"\xe9",
        b"\xff",
        "é".encode(),
        b"A",
        b"#",
    ]
)
NAMES = (
    st.lists(NAME_CHARS, min_size=1, max_size=6)
    .map(b"".join)
    .filter(lambda n: n not in (b".", b".."))
)
MTIMES = st.one_of(
    st.integers(min_value=-(10**10), max_value=2 * 10**9),
    st.just(1_700_000_000_999_999_999),  # float st_mtime would round this up
    st.just(-5_500_000_000),
).map(lambda v: v if abs(v) > 10**12 else v * 10**9)


@st.composite
def trees(draw, depth: int = 0) -> dict:
    """A nested dict: name -> ("file", content, mode, mtime_ns) | ("link", target)
    | ("dir", subtree)."""
    names = draw(st.lists(NAMES, max_size=5, unique=True))
    tree = {}
    for name in names:
        kind = draw(
            st.sampled_from(["file", "file", "link", "dir"] if depth < 3 else ["file", "link"])
        )
        if kind == "file":
            tree[name] = (
                "file",
                draw(st.binary(max_size=300)),
                draw(st.sampled_from([0o644, 0o755, 0o600, 0o610, 0o601, 0o444])),
                draw(MTIMES),
            )
        elif kind == "link":
            tree[name] = ("link", draw(st.one_of(NAMES, st.just(b"/etc/passwd"), st.just(b"../x"))))
        else:
            tree[name] = ("dir", draw(trees(depth=depth + 1)))
    if depth == 0 and draw(st.booleans()):
        tree[b".manifest"] = ("file", b"ignored", 0o644, 10**9)
    return tree


def materialise(root: bytes, tree: dict) -> None:
    os.mkdir(root)
    for name, spec in tree.items():
        path = root + b"/" + name
        if spec[0] == "file":
            with open(path, "wb") as f:
                f.write(spec[1])
            os.chmod(path, spec[2])
            os.utime(path, ns=(0, spec[3]))
        elif spec[0] == "link":
            os.symlink(spec[1], path)
        else:
            materialise(path, spec[1])


@pytest.mark.needs_0install
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=trees(), alg=st.sampled_from(ALGS))
def test_random_trees_match_0install(
    tmp_path_factory: pytest.TempPathFactory, tree: dict, alg: str
) -> None:
    root = tmp_path_factory.mktemp("tree") / "t"
    materialise(os.fsencode(root), tree)
    expected_text, expected_digest = zeroinstall_manifest(root, alg)
    ours = generate_manifest(root, alg)
    assert ours == expected_text
    assert manifest_digest(root, alg).name == expected_digest
    digest_out = run_0install("digest", f"--algorithm={alg}", str(root)).strip()
    assert digest_out == expected_digest


@pytest.mark.needs_0install
@pytest.mark.parametrize("alg", ALGS)
def test_hard_links_and_subdir_manifest(tmp_path: Path, alg: str) -> None:
    root = tmp_path / "t"
    (root / "sub").mkdir(parents=True)
    (root / "a").write_bytes(b"shared")
    os.link(root / "a", root / "sub" / "b")
    (root / "sub" / ".manifest").write_text("not the root one")
    (root / ".manifest").symlink_to("a")  # a symlinked root .manifest is included
    text, digest = zeroinstall_manifest(root, alg)
    assert generate_manifest(root, alg) == text
    assert manifest_digest(root, alg).name == digest
    assert b".manifest" in text


@pytest.mark.needs_0install
def test_deep_tree(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    path = str(root)
    os.mkdir(path)
    for _ in range(1200):  # deeper than Python's recursion limit
        path += "/d"
        os.mkdir(path)
    Path(path, "leaf").write_text("bottom")
    try:
        for alg in ("sha1", "sha256new"):
            text, digest = zeroinstall_manifest(root, alg)
            assert generate_manifest(root, alg) == text
            assert manifest_digest(root, alg).name == digest
    finally:
        # pytest's recursive clean-up cannot remove a tree this deep: take it down from the bottom.
        os.remove(os.path.join(path, "leaf"))
        while path != str(root):
            os.rmdir(path)
            path = os.path.dirname(path)


def test_reading_does_not_touch_access_times(tmp_path: Path) -> None:
    """Access times are the cache's only "last used" record: verifying must leave them alone."""
    (tmp_path / "sub").mkdir()
    for name in ("a", "sub/b", ".manifest"):
        (tmp_path / name).write_bytes(b"x" * 5000)
        os.utime(tmp_path / name, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    verify_directory(tmp_path, digests.Digest("sha256new", "A" * 52))
    for name in ("a", "sub/b", ".manifest"):
        assert os.stat(tmp_path / name).st_atime_ns == 1_000_000_000_000_000_000, name


# --- what 0install rejects, and the newline it should --------------------------------------------


def test_fifo_is_rejected_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "sub" / "pipe")
    with pytest.raises(
        ManifestError, match=r"Not a regular file/directory/symlink '.*sub/pipe'.*FIFO"
    ) as e:
        generate_manifest(tmp_path, "sha256new")
    assert e.value.kind == "invalid"
    assert e.value.path.endswith(b"sub/pipe")


def test_a_walk_can_be_cancelled_between_directories(tmp_path: Path) -> None:
    from core.manifest import WalkCancelled

    for n in range(10):
        (tmp_path / f"d{n}").mkdir()
    asked = []

    def tick() -> int:
        asked.append(1)
        return 2 if len(asked) > 3 else 0

    with pytest.raises(WalkCancelled):
        generate_manifest(tmp_path, "sha256new", tick=tick)
    assert len(asked) == 4  # stopped at the fourth directory, not after all eleven
    assert generate_manifest(tmp_path, "sha256new", tick=lambda: 0).count(b"\n") == 10


def test_socket_is_rejected(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(ManifestError, match="socket"):
            generate_manifest(tmp_path, "sha1new")
    finally:
        sock.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device needs root")
def test_device_is_rejected(tmp_path: Path) -> None:
    os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(ManifestError, match="character device"):
        generate_manifest(tmp_path, "sha256")


def test_newline_in_directory_name_rejected_like_0install(tmp_path: Path) -> None:
    (tmp_path / "bad\nname").mkdir()
    with pytest.raises(ManifestError, match=r"Newline in directory name '.*bad\\nname'"):
        generate_manifest(tmp_path, "sha256new")
    proc_out = None
    try:
        run_0install("store", "manifest", str(tmp_path), "sha256new")
    except AssertionError as exc:
        proc_out = str(exc)
    assert proc_out and "Newline" in proc_out


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_newline_in_file_or_symlink_name_rejected(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "evil\nF 0000 1 1 fake"
    if kind == "file":
        path.write_text("x")
    else:
        path.symlink_to("target")
    with pytest.raises(ManifestError, match=f"Newline in {kind} name"):
        generate_manifest(tmp_path, "sha256new")


def test_hash_manifest_matches_0install_digest_line(tmp_path: Path) -> None:
    make_vector_tree(tmp_path)
    text = generate_manifest(tmp_path, "sha256")
    assert hash_manifest("sha256", text) == VECTOR_DIGESTS["sha256"].split("=")[1]


# --- names shown to people and written as JSON ----------------------------------------------------


def test_display_path_escapes_what_a_terminal_would_obey() -> None:
    from core.display import display_path, safe_text

    name = b"tmp-\x1b[2K\rOK\n\t\x7f\xc2\x9b\xe2\x80\xae\xff\\x41 caf\xc3\xa9"
    shown = display_path(name)
    assert shown == "tmp-\\x1b[2K\\rOK\\n\\t\\x7f\\x9b\\u202e\\xff\\\\x41 café"
    assert shown.isprintable()
    # Unambiguous: a literal backslash-x and a byte never look the same.
    assert display_path(b"\\xff") != display_path(b"\xff")
    # Messages already holding escaped names are made safe without escaping them twice.
    assert safe_text(f"'{shown}' is odd\x1b") == f"'{shown}' is odd\\x1b"


def test_json_name_is_lossless_and_strict() -> None:
    import base64
    import json

    from core.display import json_name

    assert json_name("café") == "café"
    assert json_name(b"caf\xc3\xa9") == "café"
    odd = json_name(b"caf\xe9\xff")
    assert odd == {"base64": base64.b64encode(b"caf\xe9\xff").decode(), "text": "caf\\xe9\\xff"}
    assert json_name(os.fsdecode(b"caf\xe9\xff")) == odd  # a name as os.fsdecode made it
    json.dumps(odd, ensure_ascii=False).encode("utf-8")  # strict UTF-8: no lone surrogates
    assert json_name(None) is None
