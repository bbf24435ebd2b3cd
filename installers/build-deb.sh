#!/usr/bin/env bash
# Builds the Debian package of Zero Install Admin from this checkout with dpkg-deb.
#   installers/build-deb.sh [--outdir DIR]     (default: dist/ in the checkout)
# Prints the .deb's path as the last line.
#
# The app lives in its own virtual environment, /usr/lib/zeroinstall-admin, made here with the
# target's /usr/bin/python3 and filled from the wheel built by build-dist.sh plus its dependencies
# from PyPI (PySide6, psutil, humanize). It is a plain part of the package: dpkg knows every file,
# so removing the package removes all of it, and no maintainer script runs pip or the network.
set -euo pipefail
here="$(dirname "${BASH_SOURCE[0]}")"
source "$here/common.sh"
parse_outdir "$@"
umask 022

APP=/usr/lib/zeroinstall-admin
HELPER=/usr/libexec/zeroinstall-admin/zeroinstall-admin-helper
APP_ID=net.zeroinstall.Admin
ICON_SIZES=(16 22 24 32 48 64 128 256 512)

# What the build's own steps run: the target's python3 with venv (the app's environment), dpkg-deb,
# objdump (trim_pyside.py) and Qt's runtime libraries (the icons are rendered with the packaged
# PySide6, which a fresh machine cannot load without libglib2.0-0, libEGL...).
[ -x "$SYSTEM_PYTHON" ] || ensure_debian_packages python3
ensure_debian_packages python3-venv dpkg binutils "${QT_RUNTIME_PACKAGES[@]}"
tools_python="$(ensure_build_tools)"
wheel="$("$here/build-dist.sh" --outdir "$outdir" | tail -n 1)"
version="$(basename "$wheel" | cut -d- -f2)"
deb_version="$version-1"
arch="$(dpkg --print-architecture)"
# The virtual environment runs on the target's python3 of this minor version, and no other.
pyver="$("$SYSTEM_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
next_pyver="$("$SYSTEM_PYTHON" -c 'import sys; print("%d.%d" % (sys.version_info[0], sys.version_info[1] + 1))')"

stage="$(mktemp -d "${TMPDIR:-/tmp}/zeroinstall-admin-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
mkdir -p "$root"

# --- the app's virtual environment ---------------------------------------------------------------
"$SYSTEM_PYTHON" -m venv --without-pip "$root$APP"
"$tools_python" -m pip --python "$root$APP/bin/python3" install -q --disable-pip-version-check \
  --no-compile --only-binary :all: "$wheel" >&2
# Only the interpreter links and our launcher stay in bin/: activate scripts and PySide6's developer
# tools (pyside6-designer...) would name the staging directory in their first line.
find "$root$APP/bin" -mindepth 1 ! -name 'python*' ! -name zeroinstall-admin -delete
# -I: the caller's PYTHONPATH, user site-packages and current directory stay out of the app (its
# import packages are called core and gui); -B: no bytecode written into the package's tree.
sed -i "1s|.*|#!$APP/bin/python3 -IB|" "$root$APP/bin/zeroinstall-admin"
sed -i "s|$root||g" "$root$APP/pyvenv.cfg"
find "$root$APP" -name direct_url.json -path '*.dist-info/*' -delete
"$SYSTEM_PYTHON" "$here/trim_pyside.py" "$root$APP" "$ZIA_ROOT" >&2
# Bytecode made now and shipped, so nothing is written under /usr at run time and dpkg removes it
# all; checked-hash: valid whatever the files' times after unpacking, and never stale if an admin
# edits a module.
"$SYSTEM_PYTHON" -m compileall -q -j 0 --invalidation-mode checked-hash -s "$root" -p / \
  "$root$APP/lib" >&2
if grep -rlI --exclude=RECORD -- "$stage" "$root" >&2; then
  echo "build-deb: the files above name the staging directory $stage" >&2
  exit 1
fi
mkdir -p "$root/usr/bin"
ln -s "../lib/zeroinstall-admin/bin/zeroinstall-admin" "$root/usr/bin/zeroinstall-admin"

# --- the privileged helper and its polkit policy ------------------------------------------------
if [ -f "$ZIA_ROOT/core/root_helper.py" ]; then
  install -d "$root$(dirname "$HELPER")"
  # Standard library only, on the system's python3, isolated from the caller's environment.
  { echo "#!/usr/bin/python3 -I"; sed '1{/^#!/d}' "$ZIA_ROOT/core/root_helper.py"; } > "$root$HELPER"
  chmod 0755 "$root$HELPER"
else
  echo "build-deb: no core/root_helper.py in this checkout: the package has no privileged helper" >&2
fi
if [ -f "$ZIA_ROOT/resources/$APP_ID.policy" ]; then
  install -D -m 0644 "$ZIA_ROOT/resources/$APP_ID.policy" "$root/usr/share/polkit-1/actions/$APP_ID.policy"
else
  echo "build-deb: no resources/$APP_ID.policy in this checkout: the package has no polkit policy" >&2
fi

# --- desktop integration ------------------------------------------------------------------------
install -D -m 0644 "$ZIA_ROOT/resources/$APP_ID.desktop" "$root/usr/share/applications/$APP_ID.desktop"
install -D -m 0644 "$ZIA_ROOT/resources/$APP_ID.metainfo.xml" "$root/usr/share/metainfo/$APP_ID.metainfo.xml"
icons="$root/usr/share/icons/hicolor"
install -D -m 0644 "$ZIA_ROOT/resources/icons/$APP_ID.svg" "$icons/scalable/apps/$APP_ID.svg"
QT_QPA_PLATFORM=offscreen "$root$APP/bin/python3" -IB "$here/render_icon.py" \
  "$ZIA_ROOT/resources/icons/$APP_ID.svg" "$icons" "${ICON_SIZES[@]}"
install -D -m 0644 "$here/debian/copyright" "$root/usr/share/doc/zeroinstall-admin/copyright"

# --- control file and the package ---------------------------------------------------------------
# The binary wheels say which glibc they need in their manylinux tags (PySide6: 2.34).
glibc="$("$SYSTEM_PYTHON" - "$root$APP" <<'PY'
import re, sys
from pathlib import Path
need = (2, 17)
for wheel in Path(sys.argv[1]).glob("lib/python3*/site-packages/*.dist-info/WHEEL"):
    tags = re.findall(r"^Tag: .*manylinux_(\d+)_(\d+)_", wheel.read_text(), re.MULTILINE)
    if tags:  # a wheel runs where any of its tags fits: its least demanding one counts
        need = max(need, min((int(a), int(b)) for a, b in tags))
print("%d.%d" % need)
PY
)"
depends=("python3 (>= $pyver)" "python3 (<< $next_pyver)" python3-venv 0install-core sudo pkexec
  "libc6 (>= $glibc)" libstdc++6 libgcc-s1 "${QT_RUNTIME_PACKAGES[@]}")
depends_line="$(IFS=,; echo "${depends[*]}" | sed 's/,/, /g')"
installed_size="$(du -sk --apparent-size "$root" | cut -f1)"
mkdir -p "$root/DEBIAN"
sed -e "s|@VERSION@|$deb_version|" -e "s|@ARCH@|$arch|" -e "s|@INSTALLED_SIZE@|$installed_size|" \
  -e "s|@DEPENDS@|$depends_line|" "$here/debian/control.in" > "$root/DEBIAN/control"
find "$root" -type d -exec chmod 0755 {} +
deb="$outdir/zeroinstall-admin_${deb_version}_$arch.deb"
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
