#!/usr/bin/env bash
# The wccpd demo: no hardware needed. Run as root on Debian 12; installs what it needs.
#
#  1. DPDK: `wccpd smoke` forwards packets between two vdevs (--no-pci, ring pair) on a worker
#     lcore and prints the counts and the mempool balance.
#  2. WCCPv2: a router and two cache agents, each in its own network namespace on one bridge.
#     The caches join, the designated cache (lowest address) assigns the 256 buckets, the router
#     adopts the assignment; then one cache dies and the router removes it and the survivor
#     takes every bucket. `wccpd show` prints each step. Timers run at TRANSMIT_T = 1 s
#     (10x faster than the default) so the whole story takes under a minute.
#
# Everything it creates (namespaces wccpd-demo-*, files under /tmp/wccpd-demo.*) is removed on
# exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

WCCPD_NO_FUZZ=1 bash deploy/setup-host.sh
echo "==> building wccpd (release)"
cargo build --release --locked --quiet
BIN=$PWD/target/release/wccpd

WORK=$(mktemp -d /tmp/wccpd-demo.XXXXXX)
NS_SW=wccpd-demo-sw NS_R=wccpd-demo-r NS_C1=wccpd-demo-c1 NS_C2=wccpd-demo-c2
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in $NS_R $NS_C1 $NS_C2 $NS_SW; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo
echo "==> 1. DPDK smoke: forward packets between two vdevs (--no-pci)"
"$BIN" smoke --vdev-kind ring --packets 200000 --file-prefix "wccpd-demo-$$"

echo
echo "==> 2. WCCPv2 service group in namespaces: router 10.77.0.1, caches 10.77.0.11 and .12"
for ns in $NS_R $NS_C1 $NS_C2 $NS_SW; do ip netns del "$ns" 2>/dev/null || true; ip netns add "$ns"; done
ip -n $NS_SW link add br0 type bridge
ip -n $NS_SW link set br0 up
i=0
for ns in $NS_R $NS_C1 $NS_C2; do
    i=$((i + 1))
    ip link add "wd$i" netns "$ns" type veth peer name "p$i" netns $NS_SW
    ip -n $NS_SW link set "p$i" master br0 up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "wd$i" up
done
ip -n $NS_R addr add 10.77.0.1/24 dev wd1
ip -n $NS_C1 addr add 10.77.0.11/24 dev wd2
ip -n $NS_C2 addr add 10.77.0.12/24 dev wd3

cat > "$WORK/router.yaml" <<YAML
router:
  addresses: [10.77.0.1]
  control: { transport: socket, socket_path: $WORK/router.sock }
  timers: { transmit_t_ms: 1000 }
  services:
    - { id: 0, type: standard, password: demo }
    - { id: 70, type: dynamic }
log: { level: warn }
YAML
for c in 11 12; do
cat > "$WORK/cache$c.yaml" <<YAML
cache:
  address: 10.77.0.$c
  routers: [10.77.0.1]
  control: { socket_path: $WORK/cache$c.sock }
  timers: { transmit_t_ms: 1000 }
  services:
    - { id: 0, type: standard, password: demo, weight: 10000 }
    - { id: 70, type: dynamic, protocol: tcp, ports: [443], hash: [src_ip], alt_hash: [src_ip, src_port], assignment: mask }
log: { level: warn }
YAML
done

ip netns exec $NS_R "$BIN" router -c "$WORK/router.yaml" & PIDS+=($!)
ip netns exec $NS_C1 "$BIN" cache -c "$WORK/cache11.yaml" & PIDS+=($!)
ip netns exec $NS_C2 "$BIN" cache -c "$WORK/cache12.yaml" & C2=$!; PIDS+=($C2)

# Wait until the router has adopted an assignment naming both caches (at most 20 s).
router_json() { "$BIN" show -s "$WORK/router.sock" --json 2>/dev/null || echo '{}'; }
wait_for() { # $1 = python expression over `s` (the show JSON), $2 = seconds
    local end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        if router_json | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.5
    done
    echo "demo: timed out waiting for: $1" >&2
    return 1
}
both_assigned='any(v["id"]==0 and sum(1 for c in v["caches"] if c["usable"] and c["buckets"]>0)==2 for v in s.get("services",[]))'
wait_for "$both_assigned" 20
echo
echo "--- router, both caches joined and assigned (wccpd show) ---"
"$BIN" show -s "$WORK/router.sock"
echo
echo "--- cache agent 10.77.0.11 (the designated cache) ---"
"$BIN" show -s "$WORK/cache11.sock"

echo
echo "==> killing cache 10.77.0.12; the router queries it at 2.5 T and removes it at 3 T"
kill -9 "$C2"
one_left='any(v["id"]==0 and len([c for c in v["caches"] if c["usable"]])==1 and [c for c in v["caches"] if c["usable"]][0]["buckets"]==256 for v in s.get("services",[]))'
wait_for "$one_left" 20
echo
echo "--- router, after the removal and the new assignment ---"
"$BIN" show -s "$WORK/router.sock"
echo
echo "demo: OK"
