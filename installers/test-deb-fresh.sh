#!/usr/bin/env bash
# Installs the .deb on a fresh Debian machine, as a new user would, and checks it:
#   installers/test-deb-fresh.sh [PACKAGE.deb]     (default: builds one with build-deb.sh)
#   installers/test-deb-fresh.sh --build           builds it on the fresh machine itself, from a
#                                                  copy of this checkout in /root, as the README
#                                                  tells a new user to (then the same checks)
# The fresh machine is a debootstrap chroot of this machine's Debian release in a temporary
# directory, used inside a private mount and PID namespace; this machine's own root filesystem is
# never changed. Needs root, debootstrap and the Debian mirror ($DEBIAN_MIRROR to choose another);
# $ZIA_DEBOOTSTRAP_CACHE names a directory where the downloaded .debs and the bootstrapped tree
# (a tarball, made again after a week) are kept between runs.
#
# Checked: apt resolves the dependencies (without Recommends, so Depends alone must be enough);
# `zeroinstall-admin list` and `--screenshot` of every page work for a new unprivileged user; the Qt
# plugins find every system library they need; the desktop entry's program is on PATH; pkaction
# (from a polkitd started in the chroot) knows every action of the policy, and its exec.path is the
# root-owned helper; `dpkg -r` then `dpkg --purge` leave no file of the package behind.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "${1:-}" = --inside ]; then
  # Runs in the new namespaces: $2 is the chroot.
  root="$2"
  inroot() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
  as_user() { chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/home/alice LANG=C.UTF-8 \
    setpriv --reuid=alice --regid=alice --init-groups "$@"; }
  step() { echo "== $*" >&2; }
  fail() { echo "FAILED: $*" >&2; exit 1; }
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount -t tmpfs tmpfs "$root/run"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"   # no services start on install
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  if [ -n "${ZIA_DEBOOTSTRAP_CACHE:-}" ]; then
    mkdir -p "$ZIA_DEBOOTSTRAP_CACHE/apt"
    mount --bind "$ZIA_DEBOOTSTRAP_CACHE/apt" "$root/var/cache/apt/archives"
  fi

  if [ -d "$root/root/zeroinstall-admin" ]; then
    step "./installers/build-deb.sh in a copy of the checkout in /root, as root on the fresh machine"
    # pip reaches the package index the way this machine does: its pip configuration, the
    # certificates it trusts (a proxy's own CA) and the local package directories it names.
    pip_env=()
    if [ -f /etc/pip.conf ]; then
      cp /etc/pip.conf "$root/etc/pip.conf"
      for dir in $(grep -oE '(file://)?/[^ ]+' /etc/pip.conf | sed 's|^file://||'); do
        [ -d "$dir" ] || continue
        mkdir -p "$root$dir"
        mount --bind -o ro "$dir" "$root$dir"
      done
    fi
    if [ -f "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" ]; then
      cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/zia-host-ca.crt"
      pip_env=(PIP_CERT=/etc/zia-host-ca.crt)
    fi
    inroot "${pip_env[@]}" bash -c 'cd /root/zeroinstall-admin && ./installers/build-deb.sh' > "$root/tmp/build.log" 2>&1 \
      || { tail -n 30 "$root/tmp/build.log" >&2; fail "build-deb.sh on the fresh machine"; }
    built="$(tail -n 1 "$root/tmp/build.log")"
    case "$built" in /root/zeroinstall-admin/dist/*.deb) ;; *) fail "build-deb.sh printed '$built', not the .deb" ;; esac
    [ -f "$root$built" ] || fail "build-deb.sh printed $built, which does not exist"
    echo "built $built" >&2
    cp "$root$built" "$root/tmp/"
  fi

  step "apt-get install ./$(basename "$(ls "$root"/tmp/*.deb)") (no Recommends)"
  inroot apt-get update -qq
  inroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "/tmp/$(basename "$(ls "$root"/tmp/*.deb)")" > "$root/tmp/apt.log" 2>&1 \
    || { tail -n 30 "$root/tmp/apt.log" >&2; fail "apt-get install"; }
  grep -E '^(Need to get|After this operation|[0-9]+ upgraded)' "$root/tmp/apt.log" >&2
  inroot dpkg-query -W -f='${Status} ${Version}\n' zeroinstall-admin | grep -q '^install ok installed' \
    || fail "zeroinstall-admin is not installed"
  inroot dpkg -L zeroinstall-admin > "$root/tmp/files"

  step "a new user runs zeroinstall-admin"
  inroot useradd --create-home --shell /bin/bash alice
  [ "$(inroot sh -c 'command -v zeroinstall-admin')" = /usr/bin/zeroinstall-admin ] || fail "zeroinstall-admin is not on PATH"
  as_user zeroinstall-admin list || fail "zeroinstall-admin list"
  as_user zeroinstall-admin list --json > /dev/null || fail "zeroinstall-admin list --json"
  usage="$(as_user zeroinstall-admin --demo --page none --screenshot /tmp/none.png 2>&1 || true)"
  pages="$(sed -n 's/.*choose one of: //p' <<<"$usage" | tr -d ',')"
  [ -n "$pages" ] || fail "--page none did not list the pages: $usage"
  for page in $pages; do
    as_user zeroinstall-admin --demo --page "$page" --screenshot "/tmp/shot-$page.png" \
      || fail "--screenshot of the $page page"
    [ "$(head -c 8 "$root/tmp/shot-$page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
      || fail "the $page screenshot is not a PNG"
    echo "screenshot of the $page page: $(stat -c %s "$root/tmp/shot-$page.png") bytes" >&2
  done
  ls "$root"/home/alice/.local/share/ "$root"/home/alice/.config 2>/dev/null >&2 || true

  step "Qt finds every library its plugins need (but GTK's and the portal's, for desktops that have them)"
  plugins="$(inroot find /usr/lib/zeroinstall-admin -path '*/Qt/plugins/*' \
    ! -path '*/platformthemes/*' -name '*.so')"
  missing=""
  for so in $plugins; do
    missing+="$(inroot ldd "$so" | grep 'not found' | sed "s|^|$(basename "$so"): |" || true)"
  done
  [ -z "$missing" ] || fail "libraries missing: $(sort -u <<<"$missing")"
  echo "$(wc -w <<<"$plugins") plugins: all libraries found" >&2

  step "the desktop menu entry"
  desktop=/usr/share/applications/net.zeroinstall.Admin.desktop
  [ -f "$root$desktop" ] || fail "no $desktop"
  exe="$(sed -n 's/^Exec=\([^ ]*\).*/\1/p' "$root$desktop")"
  inroot sh -c "command -v $exe" > /dev/null || fail "the desktop entry runs '$exe', which is not on PATH"
  grep -qx 'Name=Zero Install Admin' "$root$desktop" || fail "the menu entry is not called Zero Install Admin"
  for icon in scalable/apps/net.zeroinstall.Admin.svg 48x48/apps/net.zeroinstall.Admin.png; do
    [ -f "$root/usr/share/icons/hicolor/$icon" ] || fail "no icon $icon"
  done

  policy=/usr/share/polkit-1/actions/net.zeroinstall.Admin.policy
  helper=/usr/libexec/zeroinstall-admin/zeroinstall-admin-helper
  if [ -f "$root$policy" ]; then
    step "polkit knows the actions (pkaction, through a system bus and polkitd started here)"
    mkdir -p "$root/run/dbus"
    inroot dbus-daemon --system --fork
    actions="$(grep -o 'action id="[^"]*"' "$root$policy" | cut -d'"' -f2)"
    [ -n "$actions" ] || fail "no action in $policy"
    for action in $actions; do
      out="$(inroot pkaction --verbose --action-id "$action")" || fail "pkaction does not know $action"
      grep -Eq "org\.freedesktop\.policykit\.exec\.path( ->|:) *$helper\$" <<<"$out" \
        || fail "$action does not run $helper: $out"
      echo "pkaction: $action -> $helper" >&2
    done
    [ "$(stat -c '%U:%G %a' "$root$helper")" = "root:root 755" ] || fail "$helper is not root:root 0755"
    head -n 1 "$root$helper" | grep -qx '#!/usr/bin/python3 -I' || fail "$helper does not start python3 -I"
    # Started with no verb it must answer with a usage error, not a traceback (as root), and refuse
    # an ordinary user started without pkexec.
    for who in inroot as_user; do
      code=0
      out="$("$who" "$helper" 2>&1)" || code=$?
      case "$code" in 1|2|3) ;; *) fail "$helper as $who exited $code: $out" ;; esac
      ! grep -q Traceback <<<"$out" || fail "$helper as $who: $out"
      echo "$helper as $who: exit $code: $(head -n 1 <<<"$out")" >&2
    done
  else
    echo "NOTE: this package has no polkit policy: pkaction not checked" >&2
  fi

  step "dpkg -r, then dpkg --purge"
  inroot dpkg -r zeroinstall-admin >&2
  left=""
  while IFS= read -r f; do
    [ "$f" = "/." ] && continue
    if [ -e "$root$f" ] || [ -L "$root$f" ]; then
      # A directory stays when another package still uses it (/usr/share/icons...).
      if [ -d "$root$f" ] && [ ! -L "$root$f" ] && [ -n "$(inroot dpkg-query -S "$f" 2>/dev/null)" ]; then
        continue
      fi
      left+="$f "
    fi
  done < "$root/tmp/files"
  [ -z "$left" ] || fail "dpkg -r left: $left"
  inroot dpkg --purge zeroinstall-admin >&2
  if inroot dpkg-query -W -f='${Status}\n' zeroinstall-admin 2>/dev/null | grep -qv 'not-installed'; then
    fail "dpkg still has a record of zeroinstall-admin"
  fi
  leftovers="$(cd "$root" && find . -xdev \( -path ./tmp -o -path ./home -o -path ./proc \
    -o -path ./sys -o -path ./dev -o -path ./run -o -path ./root/zeroinstall-admin \) -prune -o \( -iname '*zeroinstall-admin*' \
    -o -name 'net.zeroinstall.Admin*' \) -print)"
  [ -z "$leftovers" ] || fail "left after --purge: $leftovers"
  echo "PASSED: installed with apt, ran, found by polkit, removed and purged without a trace" >&2
  exit 0
fi

[ "$(id -u)" -eq 0 ] || { echo "test-deb-fresh: run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "test-deb-fresh: needs debootstrap" >&2; exit 1; }
build_here=
if [ "${1:-}" = --build ]; then
  build_here=1
else
  deb="${1:-$("$here/build-deb.sh" | tail -n 1)}"
  [ -f "$deb" ] || { echo "test-deb-fresh: no such package: $deb" >&2; exit 2; }
fi
suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="$(mktemp -d /var/tmp/zeroinstall-admin-fresh.XXXXXX)"
trap 'rm -rf --one-file-system "$work"' EXIT
cache=()
if [ -n "${ZIA_DEBOOTSTRAP_CACHE:-}" ]; then
  mkdir -p "$ZIA_DEBOOTSTRAP_CACHE"
  ZIA_DEBOOTSTRAP_CACHE="$(cd "$ZIA_DEBOOTSTRAP_CACHE" && pwd)"
  export ZIA_DEBOOTSTRAP_CACHE
  cache=(--cache-dir="$ZIA_DEBOOTSTRAP_CACHE")
fi
start=$SECONDS
tree="${ZIA_DEBOOTSTRAP_CACHE:+$ZIA_DEBOOTSTRAP_CACHE/$suite-minbase.tar}"
if [ -n "$tree" ] && [ -f "$tree" ] && [ -z "$(find "$tree" -mtime +7)" ]; then
  echo "== $suite (minbase) from $tree" >&2
  mkdir "$work/root"
  tar -C "$work/root" -xf "$tree"
else
  echo "== debootstrap $suite (minbase) from $mirror" >&2
  debootstrap --variant=minbase "${cache[@]}" "$suite" "$work/root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  if [ -n "$tree" ]; then
    tar -C "$work/root" -cf "$tree.tmp" . && mv "$tree.tmp" "$tree"
  fi
fi
echo "debootstrap: $((SECONDS - start)) s" >&2
if [ -n "$build_here" ]; then
  # What a clone has: the tracked files (and new ones not ignored), as they are in this checkout.
  mkdir -p "$work/root/root/zeroinstall-admin"
  git -C "$here/.." ls-files -z --cached --others --exclude-standard \
    | (cd "$here/.." && tar --null --no-recursion --ignore-failed-read -T - -cf -) | tar -C "$work/root/root/zeroinstall-admin" -xf -
else
  cp "$deb" "$work/root/tmp/"
fi
start=$SECONDS
# The mounts and every process started in the chroot (dbus, polkitd) end with this namespace.
unshare --mount --pid --fork --propagation private "$0" --inside "$work/root"
echo "install and checks: $((SECONDS - start)) s" >&2
