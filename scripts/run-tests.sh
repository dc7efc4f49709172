#!/usr/bin/env bash
# Runs every unit and integration test of the workspace: with cargo-nextest when it is installed (one
# process per test, a per-test time limit, a parsable summary), else with cargo test. Extra arguments go to
# the test runner (a filter, say). The integration tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "run-tests: warning: not root; the integration tests start real daemons and namespaces and will fail" >&2
fi

if cargo nextest --version >/dev/null 2>&1; then
  # nextest does not run doc tests: run them first, so nextest's summary is the last thing printed.
  cargo test --workspace --doc
  exec cargo nextest run --workspace --config-file scripts/nextest.toml "$@"
else
  exec cargo test --workspace --no-fail-fast "$@"
fi
