# Shared by run.sh and test.sh: install missing Debian packages and the Python environment.
# Sourced, not run.

ZIA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZIA_VENV="${ZIA_VENV:-$ZIA_ROOT/.venv}"

# Qt's runtime libraries (offscreen rendering, the X11 and Wayland platforms for a real window) and a
# font. The .deb depends on them all (installers/test-deb-fresh.sh checks that its plugins find them).
QT_RUNTIME_PACKAGES=(libegl1 libgl1 libfontconfig1 libfreetype6 libxkbcommon0 libglib2.0-0 libdbus-1-3
  fonts-dejavu-core libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
  libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xkb1 libx11-xcb1
  libwayland-client0 libwayland-cursor0 libwayland-egl1)

# Installs the Debian packages given that are not installed yet (as root, or through sudo).
ensure_debian_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "zeroinstall-admin setup: please install these packages: ${missing[*]}" >&2
    return 1
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      echo "zeroinstall-admin setup: run as root, or install: ${missing[*]}" >&2
      return 1
    fi
  fi
  echo "Installing Debian packages: ${missing[*]}" >&2
  _wait_for_apt || return 1
  # The lists' lock is not covered by DPkg::Lock::Timeout: wait again if it was taken meanwhile.
  until "${sudo[@]}" apt-get update -qq; do
    [ -n "$(_apt_lock_holders)" ] && _wait_for_apt || return 1
  done
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" "${missing[@]}" >&2
}

# Another package manager (apt, unattended-upgrades, a software centre) may hold dpkg's or apt's
# lock: wait for it, saying so, rather than fail at once with apt's exit code 100.
APT_LOCK_WAIT="${APT_LOCK_WAIT:-900}"  # seconds

# "PID (command)" of each process holding one of apt's or dpkg's locks (from /proc/locks).
_apt_lock_holders() {
  local lock id pid
  for lock in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock \
    /var/cache/apt/archives/lock; do
    [ -e "$lock" ] || continue
    # /proc/locks names a file as MAJOR:MINOR:INODE, the device numbers in hex.
    id="$(printf '%02x:%02x:%s' "$(stat -c %Hd "$lock")" "$(stat -c %Ld "$lock")" "$(stat -c %i "$lock")")"
    for pid in $(awk -v id="$id" '$2 != "->" && $6 == id { print $5 }' /proc/locks 2>/dev/null); do
      echo "$pid ($(cat "/proc/$pid/comm" 2>/dev/null))"
    done
  done | sort -u | paste -sd, - | sed 's/,/, /g'
}

# Waits (up to $APT_LOCK_WAIT seconds) until no process holds apt's or dpkg's locks.
_wait_for_apt() {
  local holders waited=0
  while holders="$(_apt_lock_holders)"; [ -n "$holders" ]; do
    if [ "$waited" -eq 0 ]; then
      echo "Waiting for another package manager to finish (process $holders)..." >&2
    elif [ "$waited" -ge "$APT_LOCK_WAIT" ]; then
      echo "zeroinstall-admin setup: apt is still busy after $APT_LOCK_WAIT s (process $holders):" \
        "run this again once it has finished" >&2
      return 1
    fi
    sleep 2
    waited=$((waited + 2))
  done
}

# Creates the virtual environment (once) and installs the project into it, with extras ("test").
ensure_venv() {
  local extras="${1:-}" spec="$ZIA_ROOT"
  [ -n "$extras" ] && spec="$ZIA_ROOT[$extras]"
  if [ ! -x "$ZIA_VENV/bin/python" ]; then
    python3 -m venv "$ZIA_VENV" 2>/dev/null || {
      ensure_debian_packages python3-venv && python3 -m venv "$ZIA_VENV"
    }
  fi
  # Re-install only when pyproject.toml changed since the last install.
  local stamp="$ZIA_VENV/.installed-$extras"
  if [ ! -f "$stamp" ] || [ "$ZIA_ROOT/pyproject.toml" -nt "$stamp" ]; then
    "$ZIA_VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" >&2
    touch "$stamp"
  fi
}

# The target's Python: Debian's own, never a pyenv or /usr/local one that the packaged virtual
# environment would then point at.
SYSTEM_PYTHON=/usr/bin/python3

# A virtual environment with the standard build front end (build, hatchling) and a recent pip, under
# build/ (ignored by git). Prints the path of its python.
ensure_build_tools() {
  local tools="$ZIA_ROOT/build/tools"
  if [ ! -x "$tools/bin/python" ]; then
    "$SYSTEM_PYTHON" -m venv "$tools" 2>/dev/null || {
      ensure_debian_packages python3-venv && "$SYSTEM_PYTHON" -m venv "$tools"
    } >&2
  fi
  if [ ! -f "$tools/.installed" ]; then
    "$tools/bin/python" -m pip install -q --disable-pip-version-check -U pip build hatchling >&2
    touch "$tools/.installed"
  fi
  echo "$tools/bin/python"
}

# The build scripts' one option: "--outdir DIR" (default dist/ in the checkout). Sets $outdir to
# the directory, made and absolute.
parse_outdir() {
  outdir="$ZIA_ROOT/dist"
  while [ $# -gt 0 ]; do
    case "$1" in
      --outdir) outdir="${2:?--outdir needs a directory}"; shift 2 ;;
      *) echo "usage: $0 [--outdir DIR]" >&2; exit 2 ;;
    esac
  done
  mkdir -p "$outdir"
  outdir="$(cd "$outdir" && pwd)"
}
