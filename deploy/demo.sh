#!/usr/bin/env bash
# The wccpd demo: a WCCPv2 router on a DPDK data plane redirecting real HTTP to two Squid caches.
# No hardware needed: run as root on Debian 12; it installs what it needs.
#
#                          10.71.1.0/24            10.71.2.0/24
#     client (curl) ──── [client] wccpd router [server] ──── web server (10.71.2.2, .2.3)
#                          [cache1]        [cache2]       (DPDK TAP ports, one worker lcore)
#                             │                │
#              cache1 10.71.3.10        cache2 10.71.4.10
#              wccpd cache + Squid      wccpd cache + Squid (intercepting, behind nftables)
#
#  1. wccpd starts on DPDK TAP vdevs (--no-pci) in its own namespace; each TAP is moved into a
#     host namespace. Routing, ARP, ping and traceroute go through the data plane.
#  2. Two cache agents join service 0 (web-cache, TCP 80); the designated cache assigns the 256
#     buckets; wccpd redirects port-80 traffic in GRE; each agent decapsulates into a TUN device,
#     nftables hands the connections to Squid, and Squid fetches from the origin through wccpd
#     (a cache's own traffic is routed, never redirected).
#  3. cache1 dies; wccpd removes it and cache2 takes every bucket; then cache2 dies and the
#     traffic flows straight to the server (an open service).
# TRANSMIT_T is 1 s (10x faster than the default) so the whole story takes about a minute.
#
# Everything it creates (namespaces wdemo-* or $WCCPD_DEMO_NS-*, files under /tmp/wccpd-demo.*) is removed on exit,
# also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

# For tests/demo.rs (CI runs this very script): WCCPD_BIN, an already built wccpd (skips the
# build); WCCPD_DEMO_NS, the namespace prefix (default wdemo).
P=${WCCPD_DEMO_NS:-wdemo}
WCCPD_NO_FUZZ=1 bash deploy/setup-host.sh >/dev/null
step() { printf '\n\033[1m==> [%3ss] %s\033[0m\n' "$SECONDS" "$*"; }
if [[ -n ${WCCPD_BIN:-} ]]; then
    BIN=$WCCPD_BIN
else
    step "building wccpd (release)"
    cargo build --release --locked --quiet
    BIN=$PWD/target/release/wccpd
fi

WORK=$(mktemp -d /tmp/wccpd-demo.XXXXXX)
chmod 755 "$WORK"
NSS=("$P-r" "$P-client" "$P-server" "$P-cache1" "$P-cache2")
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for ns in "${NSS[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nsx() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
wait_for() { # seconds, description, command...
    local t=$1 what=$2; shift 2
    for _ in $(seq $((t * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out waiting for $what" >&2
    show 2>&1 | tail -40 >&2 || true
    return 1
}
show() { "$BIN" show --socket "$WORK/router.sock" "$@"; }

for ns in "${NSS[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done

step "1. wccpd on the DPDK data plane: 4 TAP ports, 1 worker lcore, control lcore speaks WCCP"
cat >"$WORK/router.yaml" <<EOF
router:
  addresses: [10.71.3.1, 10.71.4.1]
  control: {transport: dpdk, socket_path: $WORK/router.sock}
  metrics: {listen: "127.0.0.1:9548"}
  timers: {transmit_t_ms: 1000}
  services:
    - {id: 0, type: standard}
dataplane:
  eal: [--no-huge, --no-shconf, -m, "256", --log-level, "*:error"]
  workers: 1
  idle_backoff: true
  ports:
    - {name: client, device: "net_tap0,iface=wd-client", addresses: [10.71.1.1/24], redirect: [in]}
    - {name: server, device: "net_tap1,iface=wd-server", addresses: [10.71.2.1/24], redirect: [in]}
    - {name: cache1, device: "net_tap2,iface=wd-cache1", addresses: [10.71.3.1/24], redirect: [in]}
    - {name: cache2, device: "net_tap3,iface=wd-cache2", addresses: [10.71.4.1/24], redirect: [in]}
log: {level: info}
EOF
ip netns exec "$P-r" "$BIN" router -c "$WORK/router.yaml" >"$WORK/router.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the data plane" grep -q "data plane running" "$WORK/router.log"
host() { # iface ns address gateway mac
    ip -n "$P-r" link set "$1" netns "$P-$2"
    ip -n "$P-$2" link set "$1" address "$5"
    ip -n "$P-$2" addr add "$3" dev "$1"
    ip -n "$P-$2" link set "$1" up
    ip -n "$P-$2" route add default via "$4"
}
host wd-client client 10.71.1.2/24 10.71.1.1 02:00:00:71:01:02
host wd-server server 10.71.2.2/24 10.71.2.1 02:00:00:71:02:02
ip -n "$P-server" addr add 10.71.2.3/24 dev wd-server
host wd-cache1 cache1 10.71.3.10/24 10.71.3.1 02:00:00:71:03:10
host wd-cache2 cache2 10.71.4.10/24 10.71.4.1 02:00:00:71:04:10
grep -E "port started|data plane running" "$WORK/router.log" | sed 's/^.*INFO //'
nsx client ping -c 2 -W 1 10.71.2.2 | sed -n '2,3p'
nsx client traceroute -n -w 1 -q 1 10.71.2.2 | sed 's/^/    /'

step "2. the web server (10.71.2.2 and 10.71.2.3) and two caches: wccpd cache + Squid each"
mkdir -p "$WORK/www"
echo "hello from the origin server" >"$WORK/www/index.html"
nsx server python3 -m http.server 80 --bind 0.0.0.0 --directory "$WORK/www" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for i in 1 2; do
    d="$WORK/cache$i"
    mkdir -p "$d"
    chmod 777 "$d"
    cat >"$d/cache.yaml" <<EOF
cache:
  address: 10.71.$((i + 2)).10
  routers: [10.71.$((i + 2)).1]
  control: {socket_path: $d/agent.sock}
  timers: {transmit_t_ms: 1000}
  tun: {name: wccp0}
  services:
    - {id: 0, type: standard}
log: {level: warn}
EOF
    cat >"$d/squid.conf" <<EOF
http_port 3128
http_port 3129 intercept
visible_hostname demo-cache$i
http_access allow all
cache deny all
access_log stdio:$d/access.log
cache_store_log none
cache_log $d/cache.log
pid_filename $d/squid.pid
coredump_dir $d
netdb_filename none
pinger_enable off
shutdown_lifetime 0 seconds
EOF
    cat >"$d/wccp.nft" <<'EOF'
table ip wccp {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wccp0" tcp dport 80 redirect to :3129
    }
}
EOF
    nsx "cache$i" nft -f "$d/wccp.nft"
    nsx "cache$i" /usr/sbin/squid -N -f "$d/squid.conf" >"$d/squid.out" 2>&1 &
    PIDS+=($!)
    # `ip netns exec` execs the agent, so $! is the agent itself.
    ip netns exec "$P-cache$i" "$BIN" cache -c "$d/cache.yaml" >"$d/agent.log" 2>&1 &
    PIDS+=($!)
    eval "AGENT$i=\$!"
done
joined() { # N: N usable caches share all 256 buckets, each resolved in the data plane
    show --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
n = int(sys.argv[1])
usable = [c for c in d["services"][0]["caches"] if c["usable"]]
dp = [c for c in d["dataplane"]["services"][0]["caches"] if c["resolved"] and not c["drained"]]
ok = len(usable) == n and sum(c["buckets"] for c in usable) == 256 and len(dp) == n
sys.exit(0 if ok else 1)' "$1"; }
squid_up() { # N: cache N's Squid listens on its intercept port and has opened its access log
    nsx "cache$1" ss -Hltn "sport = :3129" | grep -q 3129 && [ -e "$WORK/cache$1/access.log" ]; }
# Squid starts slower than the agent on a busy machine: a request before it listens is refused.
for i in 1 2; do wait_for 30 "Squid in cache$i" squid_up "$i"; done
wait_for 20 "both caches to join" joined 2
show | sed -n '/Service Identifier/,/^$/p' | grep -E "Service|Change|Assignment Key|Cache ID|State|Buckets"

step "3. HTTP from the client: wccpd redirects port 80 in GRE, Squid answers, by hash bucket"
for dst in 10.71.2.2 10.71.2.3 10.71.2.2 10.71.2.3; do
    printf '    curl http://%s/  ->  %s\n' "$dst" "$(nsx client curl -s -m 5 "http://$dst/")"
done
for i in 1 2; do
    echo "    Squid access log, cache$i:"
    awk '{print "        client " $3 "  " $4 "  " $6 " " $7 "  " $9}' "$WORK/cache$i/access.log"
done
show | sed -n '/^Data plane/,$p' | grep -E "Data plane|service|cache |Verdicts"

step "4. cache1 fails: wccpd removes it after 3 x TRANSMIT_T and cache2 gets every bucket"
kill -9 "$AGENT1"
t0=$SECONDS
wait_for 15 "cache2 alone" joined 1
echo "    buckets moved after $((SECONDS - t0)) s"
for dst in 10.71.2.2 10.71.2.3; do
    printf '    curl http://%s/  ->  %s\n' "$dst" "$(nsx client curl -s -m 5 "http://$dst/")"
done
echo "    Squid access log, cache2 (last 2):"
tail -n 2 "$WORK/cache2/access.log" | awk '{print "        client " $3 "  " $4 "  " $6 " " $7 "  " $9}'

step "5. no cache left: the open service forwards straight to the server"
kill -9 "$AGENT2"
gone() { show --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if not [c for c in d["services"][0]["caches"] if c["usable"]] else 1)'; }
wait_for 15 "the caches to be removed" gone
printf '    curl http://10.71.2.2/  ->  %s\n' "$(nsx client curl -s -m 5 http://10.71.2.2/)"
echo "    origin server log (last 2):"
tail -n 2 "$WORK/server.log" | sed 's/^/        /'

step "6. Prometheus metrics (an excerpt of /metrics) and wccpd show"
nsx r curl -s http://127.0.0.1:9548/metrics |
    grep -E '^wccp_(service_usable_caches|service_packets_total\{outcome="(redirected|unassigned)"|cache_packets_total|dp_tables_generation)' |
    sed 's/^/    /'
show | sed -n '/^Data plane/,$p'

step "done: tearing everything down"
kill -TERM "${PIDS[0]}"
wait "${PIDS[0]}" 2>/dev/null || true
grep -E "mempool at exit|stopped" "$WORK/router.log" | sed 's/^.*INFO //'
