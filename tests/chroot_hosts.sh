#!/usr/bin/env bash
# Throwaway Debian machines for the playbook tests: chroots of this machine's Debian release, each
# with its own ssh server, reached by Ansible over the loopback of a private network namespace.
# Nothing of this machine's own /etc, users or services is touched.
#
#   chroot_hosts.sh image CACHE_DIR PACKAGE...
#       Prints the path of a tarball of a debootstrap (minbase) with these packages installed, made
#       once and kept in CACHE_DIR (remade after a week, or when the package list changes).
#   chroot_hosts.sh run WORKDIR ROOT... -- COMMAND...
#       In new mount, PID and network namespaces: starts sshd in each ROOT (port 2201, 2202...,
#       root's key in WORKDIR/id), writes WORKDIR/inventory (hosts host1, host2...), runs COMMAND
#       and ends every process started here with it. Needs root.
set -euo pipefail

case "${1:-}" in
image)
  cache="$2"
  shift 2
  suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"
  mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
  key="$(printf '%s\n' "$suite" "$@" | sort | sha256sum | cut -c1-12)"
  mkdir -p "$cache"
  tarball="$cache/$suite-hosts-$key.tar"
  if [ -f "$tarball" ] && [ -z "$(find "$tarball" -mtime +7)" ]; then
    echo "$tarball"
    exit 0
  fi
  work="$(mktemp -d /var/tmp/zia-chroot-image.XXXXXX)"
  trap 'rm -rf --one-file-system "$work"' EXIT
  mkdir -p "$cache/debs"
  echo "chroot_hosts: debootstrap $suite with: $*" >&2
  debootstrap --variant=minbase --cache-dir="$cache/debs" "$suite" "$work/root" "$mirror" \
    > "$work/log" 2>&1 || { tail -n 30 "$work/log" >&2; exit 1; }
  # The packages with apt, as on a real machine (some postinsts want /proc), no service started.
  printf '#!/bin/sh\nexit 101\n' > "$work/root/usr/sbin/policy-rc.d"
  chmod 0755 "$work/root/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$work/root/etc/resolv.conf"
  unshare --mount --pid --fork --propagation private sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount --bind /dev "$root/dev" &&
    mount --bind "$0" "$root/var/cache/apt/archives" &&
    chroot "$root" apt-get update -qq &&
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
  ' "$cache/debs" "$work/root" "$@" >> "$work/log" 2>&1 || { tail -n 30 "$work/log" >&2; exit 1; }
  rm -f "$work/root/usr/sbin/policy-rc.d" "$work/root/var/cache/apt/archives/"*.deb
  rm -f "$work/root/etc/ssh/ssh_host_"*  # made per host
  tar -C "$work/root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  echo "$tarball"
  ;;
run)
  work="$2"
  shift 2
  roots=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do roots+=("$1"); shift; done
  [ "${1:-}" = -- ] || { echo "usage: $0 run WORKDIR ROOT... -- COMMAND..." >&2; exit 2; }
  shift
  exec unshare --mount --pid --net --fork --propagation private "$0" inside "$work" "${roots[@]}" -- "$@"
  ;;
inside)
  work="$2"
  shift 2
  roots=()
  while [ "$1" != -- ]; do roots+=("$1"); shift; done
  shift
  ip link set lo up
  mount -t proc proc /proc  # this PID namespace's processes only
  [ -f "$work/id" ] || ssh-keygen -q -t ed25519 -N '' -f "$work/id"
  : > "$work/inventory"
  n=0
  for root in "${roots[@]}"; do
    n=$((n + 1))
    port=$((2200 + n))
    mount -t proc proc "$root/proc"
    mount -t tmpfs tmpfs "$root/run"
    mount --rbind /dev "$root/dev"
    mkdir -p "$root/run/sshd" "$root/root/.ssh"
    install -m 0600 "$work/id.pub" "$root/root/.ssh/authorized_keys"
    echo "host$n" > "$root/etc/hostname"
    chroot "$root" ssh-keygen -A > /dev/null
    chroot "$root" /usr/sbin/sshd -p "$port" -o ListenAddress=127.0.0.1 -o UseDNS=no \
      -o PermitRootLogin=prohibit-password -E /var/log/sshd.log
    echo "host$n ansible_host=127.0.0.1 ansible_port=$port zia_root=$root" >> "$work/inventory"
  done
  # Each sshd is ready when its port answers.
  for i in $(seq "$n"); do
    until ssh-keyscan -p $((2200 + i)) 127.0.0.1 > /dev/null 2>&1; do :; done
  done
  cat > "$work/ansible.cfg" <<EOF
[defaults]
host_key_checking = False
interpreter_python = /usr/bin/python3
local_tmp = $work/ansible-local
nocows = True
[ssh_connection]
ssh_args = -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o IdentitiesOnly=yes
EOF
  export ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_PRIVATE_KEY_FILE="$work/id" ANSIBLE_REMOTE_USER=root
  export HOME="$work"
  "$@"
  ;;
*)
  echo "usage: $0 image CACHE_DIR PACKAGE... | run WORKDIR ROOT... -- COMMAND..." >&2
  exit 2
  ;;
esac
