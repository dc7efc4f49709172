#!/usr/bin/env bash
# Installs what running crius needs on Debian 12 (run as root): runc (the default OCI runtime),
# iproute2 and util-linux (namespaces, nsenter), and protobuf-compiler to build it. Does nothing when
# everything is already there.
set -euo pipefail

packages=(
  runc
  iproute2
  util-linux
  protobuf-compiler
  make
)

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

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup-run-deps: cargo not found: install a Rust toolchain (1.88 or newer, e.g. with rustup)" >&2
  exit 1
fi
