#!/usr/bin/env bash
# Model-checks the RCU cell with loom (crates/rcu/tests/loom.rs).
# Uses its own target directory: `--cfg loom` in RUSTFLAGS rebuilds everything, and sharing
# a directory with normal builds would make them rebuild each other.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}-loom"
export RUSTFLAGS="--cfg loom"
exec cargo test -p wccp-rcu --release --test loom "$@"
