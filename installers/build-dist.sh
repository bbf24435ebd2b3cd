#!/usr/bin/env bash
# Builds the sdist, then the wheel from that sdist (so a file missing from the sdist breaks the
# wheel here, not on a user's machine), with the standard front end `python -m build`.
#   installers/build-dist.sh [--outdir DIR]     (default: dist/ in the checkout)
# Prints the sdist's path, then the wheel's path as the last line.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_outdir "$@"
python="$(ensure_build_tools)"
version="$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ZIA_ROOT/pyproject.toml")"
sdist="$outdir/zeroinstall_admin-$version.tar.gz"
wheel="$outdir/zeroinstall_admin-$version-py3-none-any.whl"
rm -f "$sdist" "$wheel"
# --no-isolation: hatchling comes from the tools environment instead of a download on every build.
"$python" -m build --no-isolation --outdir "$outdir" "$ZIA_ROOT" >&2
for f in "$sdist" "$wheel"; do
  [ -f "$f" ] || { echo "build-dist: $f was not built" >&2; exit 1; }
  echo "$f"
done
