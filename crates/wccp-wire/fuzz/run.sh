#!/usr/bin/env bash
# Runs every wccp-wire fuzz target for a bounded time, seeded from seeds/<target>/.
# Usage: crates/wccp-wire/fuzz/run.sh [SECONDS_PER_TARGET] (default 30)
# Exits non-zero if any target finds a crash (the reproducer is left in artifacts/<target>/).
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
secs="${1:-30}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: a nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is required (cargo install cargo-fuzz)" >&2
    exit 2
fi
targets=(message gre)
status=0
for t in "${targets[@]}"; do
    # A fresh working corpus per run; the committed seeds are read-only input.
    corpus="$(mktemp -d "${TMPDIR:-/tmp}/wccp-fuzz-$t.XXXXXX")"
    mkdir -p "artifacts/$t"
    echo "== fuzz target $t for ${secs}s (seeds: seeds/$t)"
    if ! cargo +nightly fuzz run "$t" "$corpus" "seeds/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        -max_len=4096; then
        echo "fuzz/run.sh: target $t FAILED (see artifacts/$t/)" >&2
        status=1
    fi
    rm -rf "$corpus"
done
exit "$status"
