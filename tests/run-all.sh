#!/usr/bin/env bash
# The one test command: installs what it needs, then runs every check CI runs.
#
#   tests/run-all.sh                 everything (format, lints, all tests incl. DPDK/TAP/netns, fuzz smoke)
#   WCCPD_FUZZ_SECONDS=N             seconds per fuzz target (default 30; 0 skips fuzzing)
#
# Runs as root: DPDK tests need hugepages or --no-huge memory, TAP/netns tests need CAP_NET_ADMIN.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds=${WCCPD_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" = 0 ]; then export WCCPD_NO_FUZZ=1; fi
bash deploy/setup-host.sh

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
out="$target_dir/test-output.txt"

step "cargo test (whole workspace: pure crates, DPDK vdev and TAP tests, namespaces, tshark, squid)"
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e

step "loom: model-checking the RCU cell (crates/rcu/loom.sh)"
set +e
bash crates/rcu/loom.sh 2>&1 | tee -a "$out"
loom_status=${PIPESTATUS[0]}
set -e

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$out" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$out" | awk '{s+=$1} END {print s+0}')

step "rustdoc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

if [ "$fuzz_seconds" != 0 ] && [ -x crates/wccp-wire/fuzz/run.sh ]; then
    step "fuzz smoke: ${fuzz_seconds}s per target"
    crates/wccp-wire/fuzz/run.sh "$fuzz_seconds"
fi

printf '\nall checks: %s passed, %s failed\n' "$passed" "$failed"
if [ "$status" != 0 ] || [ "$loom_status" != 0 ]; then
    echo "test command failed (cargo test exit $status, loom exit $loom_status)" >&2
    exit 1
fi
