#!/usr/bin/env bash
# Installs what running crius needs on Debian 12 (run as root): runc (the default OCI runtime),
# iproute2 and util-linux (namespaces, nsenter), the CNI plugins, nftables and conntrack (pod
# networks, host ports), and protobuf-compiler to build it; where the kernel has AppArmor enabled, apparmor
# (apparmor_parser, which loads crius's default profile). Does nothing when everything is already there.
set -euo pipefail

packages=(
  runc
  iproute2
  util-linux
  containernetworking-plugins
  nftables
  conntrack
  protobuf-compiler
  make
  gcc
)
# Only where AppArmor is on: without it there is no profile to load, and the package would be dead weight.
if [[ $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null) == Y ]]; then
  packages+=(apparmor)
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup-run-deps: all run dependencies are installed"
else
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-run-deps: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup-run-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Debian 12's own rustc is too old for edition 2024: a fresh machine gets rustup's stable toolchain.
if ! command -v cargo >/dev/null 2>&1 && [[ ! -x "$HOME/.cargo/bin/cargo" ]]; then
  echo "setup-run-deps: no cargo; installing the stable Rust toolchain with rustup"
  apt-get install -y --no-install-recommends curl ca-certificates
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
