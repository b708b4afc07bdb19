#!/usr/bin/env bash
# Prepares a bare-metal host for wccpd's DPDK data plane. Idempotent; never disturbs a running
# wccpd (hugepages in use are left alone, bound NICs are not rebound).
#
#   deploy/dpdk-host.sh --config /etc/wccpd/router.yaml   hugepages + bind the config's PCI ports
#   deploy/dpdk-host.sh --hugepages 1024                   reserve 1024 x 2 MiB pages
#   deploy/dpdk-host.sh --bind 0000:03:00.0 --dry-run      show what would be done
#
# 1. Reserves 2 MiB hugepages (default 1024 = 2 GiB) and mounts hugetlbfs at /dev/hugepages.
# 2. Removes stale rtemap_* files only when no process maps them.
# 3. Loads vfio-pci and binds every PCI device named in the configuration's
#    dataplane.ports[].device (or given with --bind) to it, with dpdk-devbind.py (package dpdk).
#    A device whose kernel interface is up is refused: unbinding it would cut the link.
set -euo pipefail

pages=1024 config="" dry=0 binds=()
while [ $# -gt 0 ]; do
    case "$1" in
        --config) config=$2; shift 2 ;;
        --hugepages) pages=$2; shift 2 ;;
        --bind) binds+=("$2"); shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "dpdk-host: unknown argument $1" >&2; exit 2 ;;
    esac
done
run() { if [ "$dry" = 1 ]; then echo "would run: $*"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] || { echo "dpdk-host: must run as root" >&2; exit 1; }

have=$(cat /proc/sys/vm/nr_hugepages)
if [ "$have" -lt "$pages" ]; then
    run sh -c "echo $pages > /proc/sys/vm/nr_hugepages"
fi
if ! mountpoint -q /dev/hugepages; then
    run mkdir -p /dev/hugepages
    run mount -t hugetlbfs nodev /dev/hugepages
fi
for f in /dev/hugepages/rtemap_*; do
    [ -e "$f" ] || continue
    if grep -qsF "$f" /proc/[0-9]*/maps; then
        echo "dpdk-host: $f is in use, kept"
    else
        run rm -f "$f"
    fi
done
echo "dpdk-host: hugepages total=$(cat /proc/sys/vm/nr_hugepages) free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)"

if [ -n "$config" ]; then
    # PCI devices of dataplane.ports[].device: DDDD:BB:DD.F or BB:DD.F, before any ",args".
    while read -r bdf; do binds+=("$bdf"); done < <(
        grep -Eo 'device:[[:space:]]*"?([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]' "$config" |
            sed -E 's/device:[[:space:]]*"?//')
fi
[ "${#binds[@]}" -gt 0 ] || exit 0
devbind=$(command -v dpdk-devbind.py || command -v dpdk-devbind || true)
[ -n "$devbind" ] || { echo "dpdk-host: dpdk-devbind.py not found (apt-get install dpdk)" >&2; exit 1; }
run modprobe vfio-pci
for bdf in "${binds[@]}"; do
    [[ "$bdf" == *:*:* ]] || bdf="0000:$bdf"
    drv=$(basename "$(readlink -f "/sys/bus/pci/devices/$bdf/driver" 2>/dev/null)" 2>/dev/null || true)
    if [ "$drv" = vfio-pci ]; then
        echo "dpdk-host: $bdf already bound to vfio-pci"
        continue
    fi
    for ifc in /sys/bus/pci/devices/"$bdf"/net/*; do
        [ -e "$ifc" ] || continue
        if [ "$(cat "$ifc/operstate" 2>/dev/null)" = up ]; then
            echo "dpdk-host: $bdf is $(basename "$ifc"), which is up: bring it down first" >&2
            exit 1
        fi
    done
    run "$devbind" --bind=vfio-pci "$bdf"
done
