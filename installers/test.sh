#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only Python: installs the system packages the
# tests use as real references (0install, visudo, apparmor_parser, useradd, systemd-analyze for the
# maintenance units, xmllint with polkitd's DTD for the polkit policy and pkexec's own messages,
# ansible-playbook for the exported playbook, ruby -c and
# nix-instantiate --parse for the VM snippets, Xvfb), the packaging tests' tools (dpkg-deb, desktop-file-validate, appstreamcli,
# debootstrap; ssh and ip for the playbook's throwaway hosts; locales for localedef's sources, so a
# test can make an ISO-8859-1 locale of its own) and Qt's runtime libraries when
# missing, then the project with its test extras in .venv, then runs pytest. Arguments go to pytest
# (-m 'not slow' leaves out the tests that build the package or debootstrap, minutes each).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_debian_packages 0install-core sudo apparmor passwd systemd xvfb xauth libxml2-utils polkitd pkexec ansible-core \
  ruby nix-bin python3-venv binutils desktop-file-utils appstream debootstrap openssh-client iproute2 locales \
  "${QT_RUNTIME_PACKAGES[@]}"
ensure_venv test
cd "$ZIA_ROOT"
export QT_QPA_PLATFORM=offscreen
exec "$ZIA_VENV/bin/python" -m pytest "$@"
