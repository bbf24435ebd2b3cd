#!/usr/bin/env bash
# Sets up (the first time) and starts Zero Install Admin. With no arguments it opens the machine's
# 0install caches, or a demo cache built on the fly when this machine has none.
# Arguments go to zeroinstall-admin (e.g. "verify", "list --json", "--store DIR").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_debian_packages "${QT_RUNTIME_PACKAGES[@]}"
ensure_venv
app="$ZIA_VENV/bin/zeroinstall-admin"
if [ $# -eq 0 ]; then
  if ! "$ZIA_VENV/bin/python" -c 'import sys; from core.cache import scan; sys.exit(0 if scan().entries else 1)' 2>/dev/null; then
    echo "No 0install cache on this machine: opening the demo cache." >&2
    set -- --demo
  fi
fi
# Every subcommand (list, verify, clean, sharing, vm...) runs without a display; the window itself
# says "no display" and exits 1 when there is none, so nothing is decided here.
exec "$app" "$@"
