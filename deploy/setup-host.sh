#!/usr/bin/env bash
# Prepare a Debian 12 host for building, testing and running wccpd. Idempotent; run as root.
#
#   deploy/setup-host.sh            packages + hugepages
#   WCCPD_NO_FUZZ=1 ...             skip installing cargo-fuzz / the nightly toolchain check
#
# What it does:
#  1. apt packages: DPDK 22.11 (libdpdk-dev, dpdk-dev for dpdk-testpmd), the bindgen toolchain
#     (clang, libclang-dev, pkg-config), iproute2 for test namespaces, tshark (the protocol
#     referee), squid (a real WCCPv2 cache) and nftables (interception rules on a cache host,
#     tests/netns_tun.rs).
#  2. 256 x 2 MiB hugepages mounted at /dev/hugepages (tests fall back to --no-huge without them).
#  3. cargo-fuzz, for the bounded fuzz runs of the test command.
set -euo pipefail

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-host: must run as root (apt-get, sysctl, hugepages)" >&2
        exit 1
    fi
}

PKGS=(libdpdk-dev dpdk-dev pkg-config clang libclang-dev iproute2 tshark squid procps nftables iputils-ping traceroute curl python3 prometheus)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    need_root
    echo "setup-host: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer before it asks.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts squid as a service on install; our tests run their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet squid 2>/dev/null; then
    systemctl stop squid || true
fi
# Only promtool is wanted from the prometheus package (checking metrics and rules).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
if pgrep -x squid >/dev/null 2>&1 && [ -f /run/squid.pid ]; then
    kill "$(cat /run/squid.pid)" 2>/dev/null || true
fi

# Hugepages: keep what is there if it is enough.
want=256
have=$(cat /proc/sys/vm/nr_hugepages)
if [ "$have" -lt "$want" ] && [ "$(id -u)" -eq 0 ]; then
    echo "$want" > /proc/sys/vm/nr_hugepages || true
fi
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /dev/hugepages 2>/dev/null; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages || true
fi
# Stale DPDK runtime files from killed processes hold hugepages; files a live process (a
# running wccpd) maps are left alone.
for f in /dev/hugepages/rtemap_*; do
    [ -e "$f" ] || continue
    grep -qsF "$f" /proc/[0-9]*/maps || rm -f "$f"
done
echo "setup-host: hugepages total=$(cat /proc/sys/vm/nr_hugepages) free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)"

if [ -z "${WCCPD_NO_FUZZ:-}" ]; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "setup-host: installing cargo-fuzz"
        cargo install --quiet --locked cargo-fuzz
    fi
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        echo "setup-host: no nightly toolchain; fuzzing needs one (rustup toolchain install nightly)" >&2
    fi
fi
