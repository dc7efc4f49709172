# crius: `make test` (as root) sets up and runs every check; `make run` sets up, builds and runs the daemon.
SHELL := /bin/bash
# Where rustup puts cargo on a machine set up by scripts/setup-run-deps.sh.
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
# Extra flags for `crius daemon` in `make run`, e.g. CRIUS_ARGS='--log-level debug'.
CRIUS_ARGS ?=

.PHONY: all build release test test-deps run-deps fmt-check clippy unit run bench bench-quick

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p crius

test-deps:
	bash scripts/setup-test-deps.sh

run-deps:
	bash scripts/setup-run-deps.sh

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit and integration tests only (nextest when available); TEST_ARGS passes a filter or runner flags.
unit:
	bash scripts/run-tests.sh $(TEST_ARGS)

# The README's test command: dependencies, format, lints, then every test. One step after the other.
test: test-deps
	$(MAKE) --no-print-directory fmt-check
	$(MAKE) --no-print-directory clippy
	$(MAKE) --no-print-directory unit

# Installs the runtime dependencies, builds in release mode and runs the daemon in the foreground with the
# built-in defaults (socket /run/crius/crius.sock). Needs root.
run: run-deps
	$(MAKE) --no-print-directory release
	./target/release/crius $(CRIUS_ARGS) init-network
	./target/release/crius $(CRIUS_ARGS) daemon

# crius beside containerd (installed if missing) on the same machine; rewrites BENCHMARKS.md.
bench:
	bash scripts/bench.sh

# A two-minute smoke run of the same harness (CI runs it): checks the harness works, not the figures.
bench-quick:
	bash scripts/bench.sh --quick
