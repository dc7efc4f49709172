#!/usr/bin/env bash
# Installs what crius's tests need on Debian 12 (run as root): protoc for the build, the OCI runtimes,
# iproute2/util-linux/nftables/conntrack for namespaces and host ports, a static busybox for test images, a local
# registry and the CNI plugins. Does nothing (and needs no network) when everything is already there.
set -euo pipefail

packages=(
  protobuf-compiler
  runc
  crun
  iproute2
  util-linux
  nftables
  conntrack
  busybox-static
  docker-registry
  containernetworking-plugins
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
  echo "setup-test-deps: all test dependencies are installed"
else
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-test-deps: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup-test-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The tools the build and the tests call by name.
for tool in protoc runc nsenter ip nft conntrack; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup-test-deps: $tool is still missing after the install" >&2
    exit 1
  fi
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup-test-deps: cargo not found: install a Rust toolchain (1.88 or newer, e.g. with rustup)" >&2
  exit 1
fi
