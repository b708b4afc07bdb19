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

step "cargo test (whole workspace: pure crates, DPDK vdev and TAP tests, namespaces, tshark, squid)"
cargo test --workspace --locked --no-fail-fast 2>&1 | tee target/test-output.txt
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' target/test-output.txt | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')

step "rustdoc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

if [ "$fuzz_seconds" != 0 ] && [ -x crates/wccp-wire/fuzz/run.sh ]; then
    step "fuzz smoke: ${fuzz_seconds}s per target"
    crates/wccp-wire/fuzz/run.sh "$fuzz_seconds"
fi

printf '\nall checks: %s passed, %s failed\n' "$passed" "$failed"
