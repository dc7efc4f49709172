#!/usr/bin/env bash
# scripts/bench.sh [--quick]: crius beside containerd on this machine, measured the same way by
# crius-bench (crates/crius-bench), in one run. As root.
#
#   - installs what is missing (containerd, runc, gcc, the CNI plugins) with apt-get;
#   - builds crius and crius-bench (release), static binaries (scripts/bench/: pause, `true`, and
#     `serve`, a port-forward target), and two OCI images made of them: the pause image
#     (containerd's sandbox image, imported with ctr) and the bench image (served by a loopback
#     registry run by crius-bench);
#   - runs a private containerd (1.6 config: private root/state/socket, runc with cgroupfs, a CNI
#     conf dir holding a loopback conflist, so its pods get a netns with only lo) and benchmarks it;
#     then a private crius daemon (temp root/state/socket, the same CNI config, its own nftables
#     table) and benchmarks it;
#   - prints both tables, the ratios and the targets, and (full mode) writes BENCHMARKS.md
#     (BENCHMARKS-bridge.md with BENCH_CNI=bridge).
#
# BENCH_CNI=bridge: a real bridge + host-local network for both runtimes instead of loopback only.
# BENCH_IMAGE_MIB=N: N MiB of random data in the bench image (default 100 in full mode, 0 in quick).
#
# --quick: small counts, under two minutes, for CI: checks that the harness works (exits non-zero
# when a measurement failed), not the figures, and leaves BENCHMARKS.md alone.
#
# Everything it makes (daemons, pods, shims, mounts, netns, cgroups, files) is removed on exit,
# failure or Ctrl-C/SIGTERM.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

if [[ $(id -u) -ne 0 ]]; then
  echo "bench.sh: run as root (it starts container runtimes)" >&2
  exit 1
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
if [[ -d "$HOME/.cargo/bin" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export DEBIAN_FRONTEND=noninteractive

START_TIME=$(date +%s)
log() { printf '[bench.sh %3ds] %s\n' "$(($(date +%s) - START_TIME))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- parameters
if ((QUICK)); then
  BENCH_ARGS=(--count 3 --warmup 1 --concurrency 4 --rounds 1 --list-pods 5 --containers 10 --rpc-count 20)
  # MiB of incompressible data in the bench image (the pull throughput figure).
  IMAGE_MIB=${BENCH_IMAGE_MIB:-0}
else
  BENCH_ARGS=(--count 50 --warmup 3 --concurrency 16 --rounds 3 --list-pods 50 --containers 100 --rpc-count 200)
  IMAGE_MIB=${BENCH_IMAGE_MIB:-100}
fi

# Short temp path: unix socket paths must stay under 108 bytes.
T=$(mktemp -d /tmp/crius-bench.XXXXXX)
CTRD_DIR=$T/containerd
CTRD_SOCK=$CTRD_DIR/containerd.sock
CRIUS_DIR=$T/crius
CRIUS_SOCK=$CRIUS_DIR/crius.sock
BENCH=$REPO/target/release/crius-bench
CRIUS=$REPO/target/release/crius

NFT_TABLE=crius-bench-${T##*.}
CTRD_PID=""
CRIUS_PID=""
REGISTRY_PID=""
CHILD=""
NETNS_BEFORE=$(ls /run/netns 2>/dev/null | sort || true)
# containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its state dir is.
RUN_CONTAINERD_EXISTED=0
[[ -e /run/containerd ]] && RUN_CONTAINERD_EXISTED=1

# ---------------------------------------------------------------- cleanup
alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# Stops a process: SIGTERM, up to $2 seconds, then SIGKILL.
stop_pid() {
  local pid=$1 patience=${2:-10} i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < patience * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.1
}

# Pids of processes whose argv contains the word (or word prefix) $1.
pids_with_arg() {
  local needle=$1 p
  for p in /proc/[0-9]*; do
    [[ ${p#/proc/} == "$$" || ${p#/proc/} == "$BASHPID" ]] && continue
    if grep -qzF -- "$needle" "$p/cmdline" 2>/dev/null; then
      echo "${p#/proc/}"
    fi
  done
}

# Everything this run made, in order: pods (through the daemons), daemons, shims and monitors,
# runc containers, mounts, netns, cgroups, nftables tables, files.
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  # The bridge plugin leaves its bridge when the last pod goes.
  if [[ -n "${BRIDGE:-}" && -e /sys/class/net/$BRIDGE ]]; then ip link del "$BRIDGE"; fi
  if ((rc != 0 && rc != 130 && rc != 143)); then
    local f
    for f in containerd.log crius.log registry.log; do
      if [[ -s "$T/$f" ]]; then
        log "last lines of $f:"
        tail -n 20 "$T/$f" >&2
      fi
    done
  fi
  if [[ -n "$CHILD" ]] && alive "$CHILD"; then
    kill -TERM "$CHILD" 2>/dev/null
    wait "$CHILD" 2>/dev/null
  fi
  if [[ -x "$BENCH" ]]; then
    if alive "$CRIUS_PID" && [[ -S "$CRIUS_SOCK" ]]; then
      timeout 120 "$BENCH" cleanup --endpoint "$CRIUS_SOCK" >/dev/null 2>&1
    fi
    if alive "$CTRD_PID" && [[ -S "$CTRD_SOCK" ]]; then
      timeout 120 "$BENCH" cleanup --endpoint "$CTRD_SOCK" >/dev/null 2>&1
    fi
  fi
  stop_pid "$CRIUS_PID" 15
  stop_pid "$CTRD_PID" 15
  stop_pid "$REGISTRY_PID" 5
  # Shims of our containerd and monitors of our crius outlive their daemons: end them.
  local pid
  for pid in $(pids_with_arg "$CTRD_SOCK") $(pids_with_arg "$CRIUS_DIR/"); do
    kill -KILL "$pid" 2>/dev/null
  done
  # Containers left in our runc roots.
  local root id
  for root in "$CTRD_DIR"/runc/* "$CRIUS_DIR"/state/runc; do
    [[ -d "$root" ]] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      runc --root "$root" delete -f "$id" >/dev/null 2>&1
    done
  done
  # Mounts under the temp dir, deepest first.
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null
  done < <(awk -v t="$T" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  # Network namespaces containerd made during the run (cni-*), if any survived.
  local ns
  for ns in $(comm -13 <(echo "$NETNS_BEFORE") <(ls /run/netns 2>/dev/null | sort)); do
    if [[ $ns == cni-* ]]; then
      umount -l "/run/netns/$ns" 2>/dev/null
      rm -f "/run/netns/$ns"
    fi
  done
  # Empty cgroup directories of the pods (crius-bench removes them already; this is the backstop).
  local dir
  for dir in /sys/fs/cgroup/*/crius-bench /sys/fs/cgroup/crius-bench; do
    [[ -d "$dir" ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  # crius's hostport tables (both families).
  local family
  for family in ip ip6; do
    if nft list table "$family" "$NFT_TABLE" >/dev/null 2>&1; then
      nft delete table "$family" "$NFT_TABLE"
    fi
  done
  if ((!RUN_CONTAINERD_EXISTED)); then
    rmdir /run/containerd/s /run/containerd 2>/dev/null
  fi
  rm -rf "$T"
  if ((rc != 0)); then
    log "failed (exit $rc); cleaned up"
  fi
  exit "$rc"
}

on_signal() {
  log "interrupted: cleaning up"
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# Runs a command in the background and waits for it, so a signal to this script is handled at once
# (the EXIT trap then stops the command, which cleans up its own pods).
run_child() {
  "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# ---------------------------------------------------------------- dependencies
log "checking dependencies"
bash scripts/setup-run-deps.sh >/dev/null
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v gcc >/dev/null || missing+=(gcc)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/aarch64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
[[ -x /usr/lib/cni/loopback ]] || missing+=(containernetworking-plugins)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---------------------------------------------------------------- build
log "building crius and crius-bench (release)"
run_child cargo build --release -q -p crius -p crius-bench

mkdir -p "$T/img" "$T/logs" "$CTRD_DIR" "$CRIUS_DIR" "$T/cni/net.d"
gcc -static -Os -s -o "$T/img/pause" scripts/bench/pause.c
gcc -static -Os -s -o "$T/img/true" scripts/bench/true.c
gcc -static -Os -s -o "$T/img/serve" scripts/bench/serve.c

PAUSE_IMAGE=crius-bench.local/pause:1
"$BENCH" oci-image --layout "$T/img/pause-layout" --name "$PAUSE_IMAGE" --add /pause="$T/img/pause" \
  --dir dev --dir proc --dir sys --dir etc --entrypoint /pause --tar "$T/img/pause.tar" >/dev/null
# The bulk in four layers of incompressible data (real images have several; they download in
# parallel). bench:2 has the very same layers and another config: pulled while bench:1 is
# present, it measures a pull whose layers are all there.
BULK=()
if ((IMAGE_MIB > 0)); then
  for i in 1 2 3 4; do
    head -c "$((IMAGE_MIB * 1024 * 1024 / 4))" /dev/urandom >"$T/img/bulk$i"
    BULK+=(--layer /bulk$i="$T/img/bulk$i")
  done
fi
for tag in 1 2; do
  "$BENCH" oci-image --layout "$T/img/registry" --name crius-bench/bench:$tag --add /pause="$T/img/pause" \
    --add /bin/true="$T/img/true" --add /bin/serve="$T/img/serve" "${BULK[@]}" \
    --dir dev --dir proc --dir sys --dir etc --entrypoint /pause \
    --env PATH=/bin --env BENCH_IMAGE=$tag >/dev/null
done

# ---------------------------------------------------------------- loopback registry
setsid "$BENCH" registry --layout "$T/img/registry" --listen 127.0.0.1:0 --port-file "$T/registry.port" \
  >"$T/registry.log" 2>&1 </dev/null &
REGISTRY_PID=$!
for _ in $(seq 100); do
  [[ -s "$T/registry.port" ]] && break
  alive "$REGISTRY_PID" || die "the registry did not start: $(cat "$T/registry.log")"
  sleep 0.05
done
REG_PORT=$(cat "$T/registry.port")
IMAGE=127.0.0.1:$REG_PORT/crius-bench/bench:1
SAME_LAYERS_IMAGE=127.0.0.1:$REG_PORT/crius-bench/bench:2

# ---------------------------------------------------------------- containerd
# containerd 1.6 refuses a pod whose CNI result has no eth0 with an address, so the loopback plugin
# is followed by bench-ip (scripts/bench/cni-ip.c), which only reports one: the pod netns holds lo
# alone, as a crius pod's does. Both plugins sit in a private bin dir (loopback from /usr/lib/cni).
mkdir -p "$T/cni/bin"
ln -s /usr/lib/cni/loopback "$T/cni/bin/loopback"
gcc -static -Os -s -o "$T/cni/bin/bench-ip" scripts/bench/cni-ip.c
BRIDGE=""
MARKDOWN=BENCHMARKS.md
COMMAND=scripts/bench.sh
if [[ "${BENCH_CNI:-loopback}" == bridge ]]; then
  MARKDOWN=BENCHMARKS-bridge.md
  COMMAND="BENCH_CNI=bridge scripts/bench.sh"
  # BENCH_CNI=bridge: a real bridge + host-local network (what `crius init-network` writes), private
  # to this run: its own bridge name, a /24 of 10.209.0.0/16 and host-local data dir.
  BRIDGE=crb${T##*.}
  BRIDGE=${BRIDGE:0:15}
  ln -s /usr/lib/cni/bridge "$T/cni/bin/bridge"
  ln -s /usr/lib/cni/host-local "$T/cni/bin/host-local"
  NET3=$((RANDOM % 250 + 2))
  cat >"$T/cni/net.d/10-bench.conflist" <<EOF
{"cniVersion":"1.0.0","name":"bench","plugins":[{"type":"bridge","bridge":"$BRIDGE","isGateway":true,"ipMasq":false,
"ipam":{"type":"host-local","ranges":[[{"subnet":"10.209.$NET3.0/24"}]],"dataDir":"$T/cni/ipam"}},{"type":"loopback"}]}
EOF
else
  cat >"$T/cni/net.d/10-bench.conflist" <<'EOF'
{"cniVersion":"1.0.0","name":"bench","plugins":[{"type":"loopback"},{"type":"bench-ip"}]}
EOF
fi
cat >"$CTRD_DIR/config.toml" <<EOF
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # This machine has no CAP_SYS_RESOURCE: negative oom_score_adj values would fail.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
        Root = "$CTRD_DIR/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$T/cni/bin"
    conf_dir = "$T/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:$REG_PORT"]
    endpoint = ["http://127.0.0.1:$REG_PORT"]
EOF

log "starting containerd ($(containerd --version | awk '{print $3}'))"
setsid containerd --config "$CTRD_DIR/config.toml" >"$T/containerd.log" 2>&1 </dev/null &
CTRD_PID=$!
for _ in $(seq 200); do
  ctr -a "$CTRD_SOCK" version >/dev/null 2>&1 && break
  alive "$CTRD_PID" || die "containerd did not start: $(tail -20 "$T/containerd.log")"
  sleep 0.05
done
ctr -a "$CTRD_SOCK" version >/dev/null 2>&1 || die "containerd does not answer on $CTRD_SOCK"
ctr -a "$CTRD_SOCK" -n k8s.io images import "$T/img/pause.tar" >/dev/null ||
  die "importing the pause image into containerd failed"

bench() {
  local name=$1 sock=$2
  shift 2
  log "benchmarking $name"
  run_child "$BENCH" --endpoint "$sock" --name "$name" --image "$IMAGE" --same-layers-image "$SAME_LAYERS_IMAGE" \
    --json "$T/$name.json" \
    --log-dir "$T/logs/$name" "${BENCH_ARGS[@]}" "$@"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
bench containerd "$CTRD_SOCK"
log "stopping containerd"
stop_pid "$CTRD_PID" 15
CTRD_PID=""
# Any shim still running now is a leak of the benchmark.
leaked=$(pids_with_arg "$CTRD_SOCK")
[[ -z "$leaked" ]] || log "warning: containerd shims still running after the run: $leaked"

# ---------------------------------------------------------------- crius
# The same CNI config as containerd's, and a private nftables table for crius's hostport manager
# (it makes the table at start; cleanup deletes it).
cat >"$T/crius.toml" <<EOF
netns_dir = ""
log_level = "warn"

[network]
conf_dirs = ["$T/cni/net.d"]
bin_dirs = ["$T/cni/bin"]
hostport_table = "$NFT_TABLE"
EOF
log "starting crius ($("$CRIUS" version))"
setsid "$CRIUS" --config "$T/crius.toml" daemon --listen "$CRIUS_SOCK" --root "$CRIUS_DIR/root" \
  --state "$CRIUS_DIR/state" >"$T/crius.log" 2>&1 </dev/null &
CRIUS_PID=$!
for _ in $(seq 200); do
  [[ -S "$CRIUS_SOCK" ]] && "$CRIUS" ctl --endpoint "$CRIUS_SOCK" version >/dev/null 2>&1 && break
  alive "$CRIUS_PID" || die "crius did not start: $(tail -20 "$T/crius.log")"
  sleep 0.05
done
[[ -S "$CRIUS_SOCK" ]] || die "crius does not listen on $CRIUS_SOCK"

bench crius "$CRIUS_SOCK"
log "stopping crius"
stop_pid "$CRIUS_PID" 15
CRIUS_PID=""
leaked=$(pids_with_arg "$CRIUS_DIR/")
[[ -z "$leaked" ]] || log "warning: crius monitors still running after the run: $leaked"

# ---------------------------------------------------------------- report
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cgroups=$(if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then echo v2; else echo "v1 (hybrid)"; fi)
INFO=(
  --info "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  --info "nproc=$(nproc)"
  --info "memory=$mem_total"
  --info "cpu=${cpu_model:-unknown}"
  --info "kernel=$(uname -r)"
  --info "cgroups=$cgroups"
  --info "runc=$(runc --version | head -1)"
  --info "containerd=$(containerd --version)"
  --info "crius=$("$CRIUS" version)"
  --info "rustc=$(rustc --version)"
  --info "load average (1/5/15 min) before, after=$LOAD_BEFORE; $(cut -d' ' -f1-3 /proc/loadavg)"
)
if ((QUICK)); then
  "$BENCH" compare "$T/crius.json" "$T/containerd.json" --check "${INFO[@]}"
else
  "$BENCH" compare "$T/crius.json" "$T/containerd.json" --check "${INFO[@]}" \
    --command "$COMMAND" --markdown "$REPO/$MARKDOWN"
fi
log "done in $(($(date +%s) - START_TIME)) s"
