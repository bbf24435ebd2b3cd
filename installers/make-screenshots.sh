#!/usr/bin/env bash
# Renders every page of the window over the demo cache to resources/screenshots/PAGE.png with
# `zeroinstall-admin --demo --page PAGE --screenshot FILE.png` (the Cache page after verifying), for
# the README and the AppStream metainfo. Run it after a page changes; it prints each file written.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_venv
app=("$ZIA_VENV/bin/python" -m gui.launch)
cd "$ZIA_ROOT"
# An unknown page makes the app list the pages it has.
usage="$(QT_QPA_PLATFORM=offscreen "${app[@]}" --demo --page '?' --screenshot /dev/null.png 2>&1 || true)"
pages="$(sed -n 's/.*choose one of: //p' <<<"$usage" | tr -d ',')"
[ -n "$pages" ] || { echo "make-screenshots: could not learn the pages: $usage" >&2; exit 1; }
for page in $pages; do
  extra=()
  [ "$page" = cache ] && extra=(--verify)
  QT_QPA_PLATFORM=offscreen "${app[@]}" --demo --page "$page" "${extra[@]}" \
    --screenshot "resources/screenshots/$page.png"
  echo "resources/screenshots/$page.png"
done
