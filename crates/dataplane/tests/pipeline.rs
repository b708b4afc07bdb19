//! Golden frames through `pipeline::process`: one test per path and per drop reason. Inputs are
//! built with etherparse, expected outputs are built independently (etherparse computes every
//! checksum), and outputs are parsed back with etherparse.

mod support;

use assign::hash::{primary_bucket, FlowKey};
use assign::RedirectTable;
use etherparse::icmpv4::{DestUnreachableHeader, TimeExceededCode};
use etherparse::{Icmpv4Type, IpNumber};
use support::*;
use wccp_dataplane::pipeline::Action;
use wccp_dataplane::{Reason, VecBuf};

/// The expected GRE frame to `cache` (MAC `mac`) for `inner`, from the cache port.
fn gre_frame(
    src: std::net::Ipv4Addr,
    cache: std::net::Ipv4Addr,
    mac: [u8; 6],
    rh: [u8; 4],
    inner: &[u8],
) -> Vec<u8> {
    from_port(CACHE, mac, &wccp_gre(src, cache, rh, inner))
}

/// Cross-checks a GRE frame with etherparse: outer header valid, GRE + redirect header, inner
/// packet parsed after 14 + 20 + 4 + 4 octets with a valid TCP checksum. Returns the inner TTL
/// and MSS option.
#[track_caller]
fn check_gre(out: &[u8], cache: std::net::Ipv4Addr) -> (u8, Option<u16>) {
    let p = parse(out);
    let outer = ipv4(&p);
    assert_eq!(outer.protocol, IpNumber::GRE);
    assert_eq!(outer.destination, cache.octets());
    assert_eq!(usize::from(outer.total_len), out.len() - 14);
    assert_eq!(&out[34..38], &[0, 0, 0x88, 0x3e], "GRE header");
    let inner = parse_ip(&out[42..]);
    let ttl = ipv4(&inner).time_to_live;
    (ttl, tcp_checked(&inner))
}

// ---- redirection ----

#[test]
fn gre_redirect_golden() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_A);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    let rh = [
        0,
        0,
        web_alt_bucket(CLIENT_IP, DST_A),
        web_bucket(CLIENT_IP, DST_A),
    ];
    let want = gre_frame(
        PORT_IP[2],
        CACHE_A,
        CACHE_A_MAC,
        rh,
        &input.clone().ttl(63).ip(),
    );
    assert_eq!(out, &want[..]);
    assert_eq!(check_gre(out, CACHE_A), (63, None));
    let svc = r.counters.service(SLOT_WEB);
    assert_eq!(svc.redirected.get(), 1);
    assert_eq!(svc.targets[0].packets.get(), 1);
    assert_eq!(
        svc.buckets[usize::from(web_bucket(CLIENT_IP, DST_A))].get(),
        1
    );
}

#[test]
fn gre_redirect_follows_the_bucket_to_the_second_cache() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_B);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    let rh = [
        0,
        0,
        web_alt_bucket(CLIENT_IP, DST_B),
        web_bucket(CLIENT_IP, DST_B),
    ];
    let want = gre_frame(PORT_IP[2], CACHE_B, CACHE_B_MAC, rh, &input.ttl(63).ip());
    assert_eq!(out, &want[..]);
    assert_eq!(r.counters.service(SLOT_WEB).targets[1].packets.get(), 1);
}

#[test]
fn gre_redirect_keeps_ip_options() {
    let t = Lab::new().tables();
    let mut input = Tcp::web(DST_A).syn(1460);
    input.ip_options = vec![1, 1, 1, 0];
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    let rh = [
        0,
        0,
        web_alt_bucket(CLIENT_IP, DST_A),
        web_bucket(CLIENT_IP, DST_A),
    ];
    let mut want = input.ttl(63);
    want.mss = Some(1432);
    assert_eq!(
        out,
        &gre_frame(PORT_IP[2], CACHE_A, CACHE_A_MAC, rh, &want.ip())[..]
    );
    assert_eq!(check_gre(out, CACHE_A), (63, Some(1432)));
}

#[test]
fn gre_source_is_the_router_id_until_the_cache_sent_to_us() {
    let mut lab = Lab::new();
    lab.state.cache_local.clear();
    let t = lab.tables();
    let input = Tcp::web(DST_A);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    let rh = [
        0,
        0,
        web_alt_bucket(CLIENT_IP, DST_A),
        web_bucket(CLIENT_IP, DST_A),
    ];
    let want = gre_frame(ROUTER_ID, CACHE_A, CACHE_A_MAC, rh, &input.ttl(63).ip());
    assert_eq!(out, &want[..]);
}

#[test]
fn alternate_bucket_sets_the_a_flag() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_ALT);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    let (primary, alt) = (
        web_bucket(CLIENT_IP, DST_ALT),
        web_alt_bucket(CLIENT_IP, DST_ALT),
    );
    // The primary bucket says "alternate"; the alternate bucket names cache B.
    let want = gre_frame(
        PORT_IP[2],
        CACHE_B,
        CACHE_B_MAC,
        [0x02, 0, alt, primary],
        &input.ttl(63).ip(),
    );
    assert_eq!(out, &want[..]);
    assert_eq!(
        r.counters.service(SLOT_WEB).buckets[usize::from(alt)].get(),
        1
    );
}

#[test]
fn mask_assignment_selects_by_masked_value() {
    let t = Lab::new().tables();
    for (dst, cache, mac) in [(DST_A, CACHE_A, CACHE_A_MAC), (DST_B, CACHE_B, CACHE_B_MAC)] {
        let input = Tcp::new(CLIENT_IP, dst, 40000, 8080);
        let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
        let out = r.expect_tx(CACHE, Reason::RedirectedGre);
        // Dynamic flag, service 70, no buckets under mask assignment.
        let want = gre_frame(
            PORT_IP[2],
            cache,
            mac,
            [0x01, 70, 0, 0],
            &input.ttl(63).ip(),
        );
        assert_eq!(out, &want[..], "to {dst}");
        assert_eq!(r.counters.service(SLOT_MASK).redirected.get(), 1);
    }
}

#[test]
fn l2_redirect_rewrites_the_destination_mac() {
    let t = Lab::new().tables();
    let input = Tcp::new(CLIENT_IP, DST_A, 40000, 443);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedL2);
    assert_eq!(
        out,
        &from_port(CACHE, CACHE_L2_MAC, &input.ttl(63).ip())[..]
    );
    let p = parse(out);
    assert_eq!(ipv4(&p).time_to_live, 63);
    tcp_checked(&p);
    assert_eq!(r.counters.service(SLOT_L2).redirected.get(), 1);
}

/// Redirection on egress: the client port has no `redirect in`, the server port has
/// `redirect out`.
fn redirect_out_lab() -> Lab {
    Lab::new()
        .port(CLIENT, |p| p.redirect_in = false)
        .port(SERVER, |p| p.redirect_out = true)
}

#[test]
fn redirect_out_redirects_on_egress() {
    let t = redirect_out_lab().tables();
    let input = Tcp::web(DST_A);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    r.expect_tx(CACHE, Reason::RedirectedGre);
}

#[test]
fn exclude_in_port_is_not_redirected_on_egress() {
    let input = Tcp::new(CACHE_NET_HOST, DST_A, 40000, 80);
    let frame = to_port(CACHE, CACHE_NET_HOST_MAC, &input.ip());
    let t = redirect_out_lab().tables();
    let out = run(&t, CACHE, &frame);
    let out = out.expect_tx(SERVER, Reason::Routed);
    assert_eq!(out, &from_port(SERVER, GW_MAC, &input.ttl(63).ip())[..]);
    // Without exclude_in the same frame is redirected.
    let t = redirect_out_lab()
        .port(CACHE, |p| p.exclude_in = false)
        .tables();
    run(&t, CACHE, &frame).expect_tx(CACHE, Reason::RedirectedGre);
}

#[test]
fn port_without_a_redirect_direction_routes() {
    let t = Lab::new().tables();
    // Server port (no redirect in) to client port (no redirect out), TCP port 80.
    let input = Tcp::new(SERVER_IP, CLIENT_IP, 40000, 80);
    let r = run(&t, SERVER, &to_port(SERVER, SERVER_MAC, &input.ip()));
    let out = r.expect_tx(CLIENT, Reason::Routed);
    assert_eq!(out, &from_port(CLIENT, CLIENT_MAC, &input.ttl(63).ip())[..]);
}

// ---- routing ----

#[test]
fn pass_through_routing_to_a_connected_host() {
    let t = Lab::new().tables();
    let input = Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(SERVER, Reason::Routed);
    assert_eq!(
        out,
        &from_port(SERVER, SERVER_MAC, &input.clone().ttl(63).ip())[..]
    );
    let p = parse(out);
    assert_eq!(ipv4(&p).time_to_live, 63);
    tcp_checked(&p);
}

#[test]
fn pass_through_routing_via_a_static_route() {
    let t = Lab::new().tables();
    let input = Tcp::new(CLIENT_IP, DST_A, 40000, 22);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(SERVER, Reason::Routed);
    assert_eq!(out, &from_port(SERVER, GW_MAC, &input.ttl(63).ip())[..]);
}

#[test]
fn vlan_tagged_frame_is_routed_untagged() {
    let t = Lab::new().tables();
    let input = Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22);
    let mut tagged = PORT_MAC[0].to_vec();
    tagged.extend_from_slice(&CLIENT_MAC);
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
    tagged.extend_from_slice(&input.ip());
    let r = run(&t, CLIENT, &tagged);
    let out = r.expect_tx(SERVER, Reason::Routed);
    assert_eq!(out, &from_port(SERVER, SERVER_MAC, &input.ttl(63).ip())[..]);
}

#[test]
fn ethernet_padding_is_trimmed() {
    let t = Lab::new().tables();
    let ip = udp_ip(CLIENT_IP, SERVER_IP, 5000, 53, &[1, 2, 3, 4]);
    let mut frame = to_port(CLIENT, CLIENT_MAC, &ip);
    frame.resize(60, 0);
    let r = run(&t, CLIENT, &frame);
    let out = r.expect_tx(SERVER, Reason::Routed);
    assert_eq!(out.len(), 14 + ip.len());
    assert_eq!(usize::from(ipv4(&parse(out)).total_len), ip.len());
}

#[test]
fn unresolved_next_hop_is_punted_half_built() {
    let t = Lab::new().tables();
    let input = Tcp::new(CLIENT_IP, UNKNOWN_IP, 40000, 22);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    r.expect_punt();
    // Zero destination MAC (held), our source MAC, TTL already decremented, egress port set.
    assert_eq!(
        r.frame(),
        &from_port(SERVER, [0; 6], &input.ttl(63).ip())[..]
    );
    assert_eq!(wccp_dataplane::PacketBuf::port(&r.buf), SERVER);
    assert!(wccp_dataplane::worker::is_held(&r.buf));
}

// ---- packet return ----

#[test]
fn gre_return_883e_with_redirect_header_is_routed_unchanged() {
    let t = Lab::new().tables();
    let inner = Tcp::web(DST_A).ttl(63).ip();
    let rh = [0, 0, 0, web_bucket(CLIENT_IP, DST_A)];
    let frame = to_port(
        CACHE,
        CACHE_A_MAC,
        &gre_return(CACHE_A, 0x883e, Some(rh), &inner),
    );
    let r = run(&t, CACHE, &frame);
    let out = r.expect_tx(SERVER, Reason::ReturnedGre);
    // Decapsulated and routed, never redirected again, TTL untouched.
    assert_eq!(out, &from_port(SERVER, GW_MAC, &inner)[..]);
    tcp_checked(&parse(out));
    assert_eq!(r.counters.service(SLOT_WEB).returned.get(), 1);
}

#[test]
fn gre_return_0800_without_redirect_header_is_routed() {
    let t = Lab::new().tables();
    let inner = Tcp::web(DST_A).ttl(63).ip();
    let frame = to_port(
        CACHE,
        CACHE_A_MAC,
        &gre_return(CACHE_A, 0x0800, None, &inner),
    );
    let r = run(&t, CACHE, &frame);
    let out = r.expect_tx(SERVER, Reason::ReturnedGre);
    assert_eq!(out, &from_port(SERVER, GW_MAC, &inner)[..]);
}

#[test]
fn gre_return_from_a_member_without_buckets_is_accepted() {
    // CACHE_IDLE is a usable member of the group but the assignment gave it no bucket.
    let lab = Lab::new().table(
        S_WEB,
        Some(web_table().with_members([CACHE_A, CACHE_B, CACHE_C, CACHE_IDLE])),
    );
    let t = lab.tables();
    let inner = Tcp::web(DST_A).ttl(63).ip();
    let frame = to_port(
        CACHE,
        CACHE_IDLE_MAC,
        &gre_return(CACHE_IDLE, 0x0800, None, &inner),
    );
    run(&t, CACHE, &frame).expect_tx(SERVER, Reason::ReturnedGre);
}

#[test]
fn l2_return_is_routed_not_redirected() {
    // The server port redirects on egress and the cache port is not excluded: only the L2
    // return check keeps the cache's frame from going back to the cache.
    let lab = Lab::new()
        .port(SERVER, |p| p.redirect_out = true)
        .port(CACHE, |p| p.exclude_in = false);
    let t = lab.tables();
    let input = Tcp::new(CLIENT_IP, DST_A, 40000, 443).ttl(63);
    let r = run(&t, CACHE, &to_port(CACHE, CACHE_L2_MAC, &input.ip()));
    let out = r.expect_tx(SERVER, Reason::ReturnedL2);
    // Like a GRE return, the frame keeps its TTL: it lost it when it was redirected.
    assert_eq!(out, &from_port(SERVER, GW_MAC, &input.ip())[..]);
    // The same frame from another station on that port is redirected.
    let r = run(&t, CACHE, &to_port(CACHE, CACHE_NET_HOST_MAC, &input.ip()));
    r.expect_tx(CACHE, Reason::RedirectedL2);
}

// ---- exclusions and lists ----

#[test]
fn packets_from_a_cache_are_not_redirected() {
    let t = Lab::new().tables();
    let input = Tcp::new(CACHE_A, DST_A, 40000, 80);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(SERVER, Reason::Routed);
    assert_eq!(out, &from_port(SERVER, GW_MAC, &input.ttl(63).ip())[..]);
}

#[test]
fn packets_from_a_member_without_buckets_are_not_redirected() {
    // A cache fetching from the origin through a port that redirects on egress, without
    // exclude_in: its membership alone must keep its traffic from being redirected.
    let lab = Lab::new()
        .table(
            S_WEB,
            Some(web_table().with_members([CACHE_A, CACHE_B, CACHE_C, CACHE_IDLE])),
        )
        .port(SERVER, |p| p.redirect_out = true)
        .port(CACHE, |p| p.exclude_in = false);
    let t = lab.tables();
    let input = Tcp::new(CACHE_IDLE, DST_A, 40000, 80);
    let r = run(&t, CACHE, &to_port(CACHE, CACHE_IDLE_MAC, &input.ip()));
    r.expect_tx(SERVER, Reason::Routed);
}

#[test]
fn redirect_list_deny_routes_normally() {
    let t = Lab::new().with_deny().tables();
    let input = Tcp::web(DST_DENIED);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(SERVER, Reason::Routed);
    assert_eq!(out, &from_port(SERVER, GW_MAC, &input.ttl(63).ip())[..]);
    assert_eq!(r.counters.service(SLOT_WEB).denied.get(), 1);
    assert_eq!(r.counters.service(SLOT_FALLBACK).redirected.get(), 0);
    // The list permits the rest.
    let r = run(
        &t,
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()),
    );
    r.expect_tx(CACHE, Reason::RedirectedGre);
}

#[test]
fn redirect_list_deny_with_check_all_tries_the_next_service() {
    let mut lab = Lab::new().with_deny();
    lab.topo.check_all = true;
    let t = lab.tables();
    let input = Tcp::web(DST_DENIED);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    let key = FlowKey::new(u32::from(CLIENT_IP), u32::from(DST_DENIED), 40000, 80);
    let primary = primary_bucket(fallback_def().flags, &key);
    // Service 71 (dynamic) takes it: all its buckets go to cache B.
    let want = gre_frame(
        PORT_IP[2],
        CACHE_B,
        CACHE_B_MAC,
        [0x01, 71, 0, primary],
        &input.ttl(63).ip(),
    );
    assert_eq!(out, &want[..]);
    assert_eq!(r.counters.service(SLOT_WEB).denied.get(), 1);
    assert_eq!(r.counters.service(SLOT_FALLBACK).redirected.get(), 1);
}

#[test]
fn closed_service_drops_unassigned_traffic() {
    let lab = Lab::new().table(S_WEB, Some(web_table().with_closed(true)));
    let t = lab.tables();
    let r = run(
        &t,
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_UNASSIGNED).ip()),
    );
    r.expect_drop(Reason::ClosedService);
    assert_eq!(r.counters.service(SLOT_WEB).closed_drop.get(), 1);
    // Assigned traffic of the closed service is still redirected.
    let r = run(
        &t,
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()),
    );
    r.expect_tx(CACHE, Reason::RedirectedGre);
}

#[test]
fn closed_service_without_caches_drops_everything() {
    let lab = Lab::new().table(
        S_WEB,
        Some(RedirectTable::empty(web_def()).with_closed(true)),
    );
    let t = lab.tables();
    let r = run(
        &t,
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()),
    );
    r.expect_drop(Reason::ClosedService);
}

#[test]
fn unassigned_bucket_is_routed() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_UNASSIGNED);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(SERVER, Reason::Unassigned);
    assert_eq!(out, &from_port(SERVER, GW_MAC, &input.ttl(63).ip())[..]);
    assert_eq!(r.counters.service(SLOT_WEB).unassigned.get(), 1);
}

#[test]
fn unresolved_target_is_treated_as_unassigned() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_UNRESOLVED);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(SERVER, Reason::Unassigned);
    assert_eq!(out, &from_port(SERVER, GW_MAC, &input.ttl(63).ip())[..]);
    assert_eq!(r.counters.get(Reason::TargetUnresolved), 1);
}

#[test]
fn drained_target_is_treated_as_unassigned() {
    let lab = Lab::new().table(S_WEB, Some(web_table().with_drained(|a| a != CACHE_A)));
    let t = lab.tables();
    let r = run(
        &t,
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()),
    );
    r.expect_tx(SERVER, Reason::Unassigned);
}

#[test]
fn service_without_a_table_routes() {
    let t = Lab::new()
        .table(S_WEB, None)
        .table(S_FALLBACK, None)
        .tables();
    let r = run(
        &t,
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()),
    );
    r.expect_tx(SERVER, Reason::Routed);
}

// ---- TTL, MTU, MSS ----

#[test]
fn ttl_expiry_sends_time_exceeded() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_A).ttl(1).ip();
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input));
    let out = r.expect_tx(CLIENT, Reason::TimeExceededSent);
    // Golden: from the arrival port's address, quoting the header and 8 octets.
    let quote = &input[..28];
    let mut icmp = etherparse::Icmpv4Header::with_checksum(
        Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit),
        quote,
    )
    .to_bytes()
    .to_vec();
    icmp.extend_from_slice(quote);
    let mut ip = ipv4_header(PORT_IP[0], CLIENT_IP, IpNumber::ICMP, 64, icmp.len());
    ip.extend_from_slice(&icmp);
    assert_eq!(out, &from_port(CLIENT, CLIENT_MAC, &ip)[..]);
    let p = parse(out);
    assert_eq!(
        icmp_checked(&p),
        Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit)
    );
}

#[test]
fn syn_mss_is_clamped_on_gre_redirect() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_A).syn(1460);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    // 1500 - 28 (GRE) - 40 (IPv4 + TCP).
    let mut want = input.ttl(63);
    want.mss = Some(1432);
    let rh = [
        0,
        0,
        web_alt_bucket(CLIENT_IP, DST_A),
        web_bucket(CLIENT_IP, DST_A),
    ];
    assert_eq!(
        out,
        &gre_frame(PORT_IP[2], CACHE_A, CACHE_A_MAC, rh, &want.ip())[..]
    );
    assert_eq!(check_gre(out, CACHE_A), (63, Some(1432)));
    assert_eq!(r.counters.get(Reason::MssClamped), 1);
}

#[test]
fn syn_mss_at_an_odd_offset_is_clamped_with_a_valid_checksum() {
    let t = Lab::new().tables();
    let mut input = Tcp::web(DST_A).syn(1460);
    input.nop_before_mss = true;
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    assert_eq!(check_gre(out, CACHE_A), (63, Some(1432)));
}

#[test]
fn syn_mss_below_the_limit_is_left_alone() {
    let t = Lab::new().tables();
    let input = Tcp::web(DST_A).syn(1200);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input.ip()));
    let out = r.expect_tx(CACHE, Reason::RedirectedGre);
    assert_eq!(check_gre(out, CACHE_A), (63, Some(1200)));
    assert_eq!(r.counters.get(Reason::MssClamped), 0);
}

#[test]
fn cache_syn_ack_is_clamped() {
    // The proxy answers the intercepted SYN from the origin server's address (docs/cache-host.md)
    // through its default gateway: the frame comes from the cache's MAC on the cache port.
    let t = Lab::new().tables();
    let input = Tcp::new(DST_A, CLIENT_IP, 80, 40000).syn_ack(1460);
    let r = run(&t, CACHE, &to_port(CACHE, CACHE_A_MAC, &input.ip()));
    let out = r.expect_tx(CLIENT, Reason::Routed);
    let mut want = input.ttl(63);
    want.mss = Some(1432);
    assert_eq!(out, &from_port(CLIENT, CLIENT_MAC, &want.ip())[..]);
    assert_eq!(tcp_checked(&parse(out)), Some(1432));
    assert_eq!(r.counters.get(Reason::MssClamped), 1);
}

#[test]
fn cache_syn_ack_from_its_own_address_is_clamped() {
    let t = Lab::new().tables();
    let input = Tcp::new(CACHE_A, CLIENT_IP, 80, 40000).syn_ack(1460);
    let r = run(&t, CACHE, &to_port(CACHE, CACHE_A_MAC, &input.ip()));
    let out = r.expect_tx(CLIENT, Reason::Routed);
    assert_eq!(tcp_checked(&parse(out)), Some(1432));
}

#[test]
fn server_syn_ack_is_not_clamped() {
    let t = Lab::new().tables();
    let input = Tcp::new(DST_A, CLIENT_IP, 80, 40000).syn_ack(1460);
    let r = run(&t, SERVER, &to_port(SERVER, GW_MAC, &input.ip()));
    let out = r.expect_tx(CLIENT, Reason::Routed);
    assert_eq!(out, &from_port(CLIENT, CLIENT_MAC, &input.ttl(63).ip())[..]);
    assert_eq!(r.counters.get(Reason::MssClamped), 0);
}

#[test]
fn syn_ack_of_an_l2_service_is_not_clamped() {
    let t = Lab::new().tables();
    let input = Tcp::new(DST_A, CLIENT_IP, 443, 40000).syn_ack(1460);
    let r = run(&t, CACHE, &to_port(CACHE, CACHE_L2_MAC, &input.ip()));
    // Frames from an L2 cache's MAC are its L2 returns.
    let out = r.expect_tx(CLIENT, Reason::ReturnedL2);
    assert_eq!(tcp_checked(&parse(out)), Some(1460));
    assert_eq!(r.counters.get(Reason::MssClamped), 0);
}

#[test]
fn df_packet_too_big_for_the_gre_cache_gets_frag_needed() {
    let t = Lab::new().tables();
    // 1480 octets fit the port (1500) but not the GRE tunnel (1500 - 28).
    let input = Tcp::web(DST_A).payload_len(1480 - 40).ip();
    assert_eq!(input.len(), 1480);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input));
    let out = r.expect_tx(CLIENT, Reason::FragNeededSent);
    let p = parse(out);
    let ip = ipv4(&p);
    assert_eq!(
        (ip.source, ip.destination),
        (PORT_IP[0].octets(), CLIENT_IP.octets())
    );
    assert_eq!(&out[..6], &CLIENT_MAC);
    assert_eq!(
        icmp_checked(&p),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1472
        })
    );
    // The quote is the original header and 8 octets.
    assert_eq!(&out[14 + 20 + 8..], &input[..28]);
}

#[test]
fn df_packet_too_big_for_the_egress_port_gets_frag_needed() {
    let t = Lab::new().port(SERVER, |p| p.mtu = 1400).tables();
    let input = Tcp::new(CLIENT_IP, SERVER_IP, 40000, 22)
        .payload_len(1410)
        .ip();
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input));
    let out = r.expect_tx(CLIENT, Reason::FragNeededSent);
    assert_eq!(
        icmp_checked(&parse(out)),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400
        })
    );
}

#[test]
fn frag_needed_for_a_returned_packet_is_routed_to_its_source() {
    // Redirected within the cache's MTU, returned, then too big for the server port: the error
    // must reach the client, not go back to the cache that returned the packet.
    let t = Lab::new().port(SERVER, |p| p.mtu = 1400).tables();
    let inner = Tcp::web(DST_A).ttl(63).payload_len(1410).ip();
    let frame = to_port(
        CACHE,
        CACHE_A_MAC,
        &gre_return(CACHE_A, 0x0800, None, &inner),
    );
    let r = run(&t, CACHE, &frame);
    let out = r.expect_tx(CLIENT, Reason::FragNeededSent);
    assert_eq!(&out[..12], &[CLIENT_MAC, PORT_MAC[0]].concat()[..]);
    let p = parse(out);
    let ip = ipv4(&p);
    assert_eq!(
        (ip.source, ip.destination),
        (PORT_IP[0].octets(), CLIENT_IP.octets())
    );
    assert_eq!(
        icmp_checked(&p),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1400
        })
    );
    assert_eq!(&out[14 + 20 + 8..], &inner[..28]);
}

// ---- to us ----

#[test]
fn echo_request_gets_a_reply() {
    let t = Lab::new().tables();
    let input = echo_request(CLIENT_IP, PORT_IP[0], 64);
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &input));
    let out = r.expect_tx(CLIENT, Reason::EchoReply);
    let want = etherparse::PacketBuilder::ethernet2(PORT_MAC[0], CLIENT_MAC)
        .ipv4(PORT_IP[0].octets(), CLIENT_IP.octets(), 64)
        .icmpv4_echo_reply(0x1234, 7);
    let mut w = Vec::new();
    want.write(&mut w, b"ping payload").expect("write");
    assert_eq!(out, &w[..]);
    assert!(matches!(
        icmp_checked(&parse(out)),
        Icmpv4Type::EchoReply(_)
    ));
}

#[test]
fn arp_is_punted() {
    let t = Lab::new().tables();
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(&CLIENT_MAC);
    arp.extend_from_slice(&CLIENT_IP.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&PORT_IP[0].octets());
    let r = run(&t, CLIENT, &eth([0xff; 6], CLIENT_MAC, 0x0806, &arp));
    r.expect_punt();
}

#[test]
fn wccp_datagram_to_us_is_punted() {
    let t = Lab::new().tables();
    let ip = udp_ip(CACHE_A, PORT_IP[2], 2048, 2048, b"wccp");
    run(&t, CACHE, &to_port(CACHE, CACHE_A_MAC, &ip)).expect_punt();
}

#[test]
fn fragment_to_us_is_punted() {
    let t = Lab::new().tables();
    let mut ip = udp_ip(CACHE_A, PORT_IP[2], 2048, 2048, &[0; 16]);
    // MF set, offset 0.
    ip[6] = 0x20;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = wire::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    run(&t, CACHE, &to_port(CACHE, CACHE_A_MAC, &ip)).expect_punt();
}

// ---- drops: one case per reason ----

/// A frame that makes the pipeline drop it for `r`, run.
fn drop_case(r: Reason) -> Run {
    let lab = Lab::new();
    let t = lab.tables();
    let web = |dst| to_port(CLIENT, CLIENT_MAC, &Tcp::web(dst).ip());
    match r {
        Reason::EthTruncated => run(&t, CLIENT, &web(DST_A)[..13]),
        Reason::NotOurMac => {
            let mut f = web(DST_A);
            f[..6].copy_from_slice(&[0x02, 0, 0, 0, 9, 9]);
            run(&t, CLIENT, &f)
        }
        Reason::UnsupportedEthertype => {
            let mut f = web(DST_A);
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            run(&t, CLIENT, &f)
        }
        Reason::Ipv4Malformed => {
            let f = web(DST_A);
            run(&t, CLIENT, &f[..f.len() - 5])
        }
        Reason::Ipv4Checksum => {
            let mut f = web(DST_A);
            f[14 + 10] ^= 0x55;
            run(&t, CLIENT, &f)
        }
        Reason::Ipv4Multicast => run(&t, CLIENT, &web(std::net::Ipv4Addr::new(224, 0, 0, 5))),
        Reason::L4Truncated => {
            let mut ip = ipv4_header(CLIENT_IP, DST_A, IpNumber::TCP, 64, 2);
            ip.extend_from_slice(&[0x9c, 0x40]);
            run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &ip))
        }
        Reason::TtlExpired => {
            // No ICMP error about an ICMP error.
            let mut ip = ipv4_header(CLIENT_IP, DST_A, IpNumber::ICMP, 1, 8);
            let mut icmp = [3u8, 1, 0, 0, 0, 0, 0, 0];
            wire::l4::fill_icmp_checksum(&mut icmp);
            ip.extend_from_slice(&icmp);
            run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &ip))
        }
        Reason::NoRoute => run(&t, CLIENT, &web(NOWHERE)),
        Reason::ClosedService => {
            let t = lab
                .table(S_WEB, Some(web_table().with_closed(true)))
                .tables();
            run(&t, CLIENT, &web(DST_UNASSIGNED))
        }
        Reason::GreNotFromCache => {
            let inner = Tcp::web(DST_A).ip();
            let ip = gre_return(CACHE_NET_HOST, 0x883e, Some([0; 4]), &inner);
            run(&t, CACHE, &to_port(CACHE, CACHE_NET_HOST_MAC, &ip))
        }
        Reason::GreMalformed => {
            let inner = Tcp::web(DST_A).ip();
            let ip = gre_return(CACHE_A, 0x6558, None, &inner);
            run(&t, CACHE, &to_port(CACHE, CACHE_A_MAC, &ip))
        }
        Reason::LocalUnhandled => {
            let ip = Tcp::new(CLIENT_IP, PORT_IP[0], 40000, 22).ip();
            run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &ip))
        }
        Reason::MtuExceeded => {
            let ip = Tcp::web(DST_A).df(false).payload_len(1440).ip();
            run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &ip))
        }
        Reason::FragNeeded => {
            let ip = Tcp::web(DST_A).payload_len(1440).ip();
            let r = run_limited(
                &t,
                CLIENT,
                VecBuf::new(CLIENT, &to_port(CLIENT, CLIENT_MAC, &ip)),
            );
            assert_eq!(r.counters.get(Reason::IcmpRateLimited), 1);
            r
        }
        Reason::NotEditable => run_buf(&t, CLIENT, VecBuf::new(CLIENT, &web(DST_A)).shared()),
        Reason::NoHeadroom => run_buf(&t, CLIENT, VecBuf::with_headroom(CLIENT, &web(DST_A), 0)),
        Reason::UnknownPort => run(&t, 9, &web(DST_A)),
        other => panic!("no drop case for {other:?}"),
    }
}

#[test]
fn every_drop_reason_has_a_case() {
    for r in Reason::ALL.iter().copied() {
        if r.is_drop() && r.is_terminal() {
            drop_case(r).expect_drop(r);
        }
    }
}

macro_rules! drop_tests {
    ($($name:ident: $reason:ident,)*) => {$(
        #[test]
        fn $name() {
            drop_case(Reason::$reason).expect_drop(Reason::$reason);
        }
    )*};
}

drop_tests! {
    drop_eth_truncated: EthTruncated,
    drop_not_our_mac: NotOurMac,
    drop_unsupported_ethertype: UnsupportedEthertype,
    drop_ipv4_malformed: Ipv4Malformed,
    drop_ipv4_checksum: Ipv4Checksum,
    drop_ipv4_multicast: Ipv4Multicast,
    drop_l4_truncated: L4Truncated,
    drop_ttl_expired_without_icmp: TtlExpired,
    drop_no_route: NoRoute,
    drop_closed_service: ClosedService,
    drop_gre_not_from_cache: GreNotFromCache,
    drop_gre_malformed: GreMalformed,
    drop_local_unhandled: LocalUnhandled,
    drop_mtu_exceeded_df_clear: MtuExceeded,
    drop_frag_needed_rate_limited: FragNeeded,
    drop_not_editable: NotEditable,
    drop_no_headroom: NoHeadroom,
}

#[test]
fn unknown_arrival_port_is_dropped() {
    let t = Lab::new().tables();
    let r = run(&t, 9, &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_A).ip()));
    assert!(matches!(r.action, Action::Drop(_)));
}

#[test]
fn directed_broadcast_to_a_connected_subnet_is_not_forwarded() {
    let lab = Lab::new();
    let t = lab.tables();
    let ip = Tcp::new(CLIENT_IP, std::net::Ipv4Addr::new(10, 0, 2, 255), 40000, 22).ip();
    let r = run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &ip));
    assert_eq!(r.action, Action::Drop(Reason::Ipv4Multicast));
    // The last host address of that subnet is routed as usual.
    let ip = Tcp::new(CLIENT_IP, std::net::Ipv4Addr::new(10, 0, 2, 254), 40000, 22).ip();
    run(&t, CLIENT, &to_port(CLIENT, CLIENT_MAC, &ip)).expect_tx(SERVER, Reason::Routed);
}
