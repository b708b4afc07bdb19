//! Hot reload on the control plane (`ControlPlane::reconfigure_topology`) with the pipeline
//! reading its tables: a reload changes the verdicts of the services it changes and of no
//! other (their tables are the very same `Arc`s, their counter slots stay), and what the
//! running data plane cannot change is refused without publishing anything.

mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;

use assign::RedirectTable;
use config::{RedirectRule, RuleAction};
use control::router::{ReloadError, Router, RouterConfig, ServiceConfig};
use control::{Instant, ServiceKey};
use ipnet::Ipv4Net;
use support::*;
use wccp_dataplane::control::{initial_tables, ControlPlane};
use wccp_dataplane::pipeline::Action;
use wccp_dataplane::tables::Topology;
use wccp_dataplane::{LcoreCounters, Reason, VecBuf};

const ALL: [ServiceKey; 4] = [S_WEB, S_MASK, S_FALLBACK, S_L2];

fn router_config(services: &[ServiceKey], password_l2: Option<&[u8]>) -> RouterConfig {
    let mut addresses: Vec<Ipv4Addr> = PORT_IP.to_vec();
    addresses.sort();
    RouterConfig {
        router_id: Some(ROUTER_ID),
        addresses,
        services: services
            .iter()
            .map(|&k| {
                let mut s = ServiceConfig::new(k);
                if k == S_L2 {
                    s.password = password_l2.map(<[u8]>::to_vec);
                }
                s
            })
            .collect(),
    }
}

/// The lab's control plane with every service's table in force (as if published by caches).
fn lab_control_plane() -> ControlPlane<VecBuf> {
    let topo = topology();
    let router = Router::new(router_config(&ALL, None)).expect("router config");
    let (publisher, _readers) = rcu::cell(initial_tables(&topo), 0);
    let mut cp = ControlPlane::new(router, topo, publisher, Arc::new(LcoreCounters::default()));
    let tables: [(ServiceKey, RedirectTable); 4] = [
        (S_WEB, web_table()),
        (S_MASK, mask_table()),
        (S_FALLBACK, fallback_table()),
        (S_L2, l2_table()),
    ];
    for (k, t) in tables {
        cp.set_redirect(k, Some(Arc::new(t)));
    }
    cp
}

/// The lab's topology with only `services` (in this order).
fn topology_with(services: &[ServiceKey]) -> Topology {
    let mut t = topology();
    t.services = services.iter().map(|&k| (k, Vec::new())).collect();
    t
}

/// Client packets of every service: (service, name, frame).
fn probes() -> Vec<(ServiceKey, &'static str, Vec<u8>)> {
    let to = |tcp: Tcp| to_port(CLIENT, CLIENT_MAC, &tcp.ip());
    vec![
        (S_WEB, "web to A", to(Tcp::web(DST_A))),
        (S_WEB, "web to B", to(Tcp::web(DST_B))),
        (S_WEB, "web denied", to(Tcp::web(DST_DENIED))),
        (S_WEB, "web unassigned", to(Tcp::web(DST_UNASSIGNED))),
        (
            S_MASK,
            "mask even",
            to(Tcp::new(CLIENT_IP, DST_A, 40000, 8080)),
        ),
        (
            S_MASK,
            "mask odd",
            to(Tcp::new(CLIENT_IP, DST_B, 40000, 8080)),
        ),
        (S_L2, "l2", to(Tcp::new(CLIENT_IP, DST_A, 40000, 443))),
        (
            S_WEB,
            "ssh (no service)",
            to(Tcp::new(CLIENT_IP, DST_A, 40000, 22)),
        ),
    ]
}

/// Every probe's action, output frame and terminal verdicts on the control plane's tables.
fn verdicts(cp: &ControlPlane<VecBuf>) -> Vec<(Action, Vec<u8>, Vec<Reason>)> {
    probes()
        .iter()
        .map(|(_, _, f)| {
            let r = run(cp.tables(), CLIENT, f);
            (r.action, r.frame().to_vec(), r.terminal())
        })
        .collect()
}

fn table_of(cp: &ControlPlane<VecBuf>, k: ServiceKey) -> Option<Arc<RedirectTable>> {
    cp.tables().service_by_key(k).and_then(|s| s.table.clone())
}

fn slot_of(cp: &ControlPlane<VecBuf>, k: ServiceKey) -> usize {
    cp.tables().service_by_key(k).expect("service").slot
}

#[test]
fn a_redirect_list_reload_changes_only_that_services_verdicts() {
    let mut cp = lab_control_plane();
    let before = verdicts(&cp);
    let tables: Vec<_> = ALL.iter().map(|&k| table_of(&cp, k)).collect();
    let generation = cp.tables().generation;
    assert_eq!(
        before[2].2,
        vec![Reason::RedirectedGre],
        "denied only later"
    );

    let mut topo = topology();
    topo.services[SLOT_WEB].1 = vec![
        RedirectRule {
            dst: Ipv4Net::from(DST_DENIED),
            ..RedirectRule::any(RuleAction::Deny)
        },
        RedirectRule::any(RuleAction::Permit),
    ];
    let summary = cp
        .reconfigure_topology(
            Instant(1000),
            router_config(&ALL, None),
            topo,
            &mut VecAlloc,
        )
        .expect("applied");
    assert!(summary.is_empty(), "the router's services did not change");
    assert!(cp.tables().generation > generation, "published");

    let after = verdicts(&cp);
    let names: Vec<&str> = probes().iter().map(|p| p.1).collect();
    for (i, name) in names.iter().enumerate() {
        if *name == "web denied" {
            assert_eq!(after[i].0, Action::Tx(SERVER), "now routed");
            assert_eq!(after[i].2, vec![Reason::Routed]);
        } else {
            assert_eq!(after[i], before[i], "{name}: unchanged");
        }
    }
    // Every table is the very same one, and every slot stays.
    for (k, t) in ALL.iter().zip(&tables) {
        let now = table_of(&cp, *k);
        assert!(
            matches!((&now, t), (Some(a), Some(b)) if Arc::ptr_eq(a, b)),
            "{k:?}: same table"
        );
    }
    assert_eq!(
        ALL.map(|k| slot_of(&cp, k)),
        [SLOT_WEB, SLOT_MASK, SLOT_FALLBACK, SLOT_L2]
    );
    let r = run(
        cp.tables(),
        CLIENT,
        &to_port(CLIENT, CLIENT_MAC, &Tcp::web(DST_DENIED).ip()),
    );
    assert_eq!(r.counters.service(SLOT_WEB).denied.get(), 1);
}

#[test]
fn another_services_password_change_leaves_a_service_untouched() {
    let mut cp = lab_control_plane();
    let before = verdicts(&cp);
    let web = table_of(&cp, S_WEB).expect("web table");
    let summary = cp
        .reconfigure_topology(
            Instant(1000),
            router_config(&ALL, Some(b"secret")),
            topology(),
            &mut VecAlloc,
        )
        .expect("applied");
    assert_eq!(summary.to_string(), "dynamic 90: password");
    assert!(Arc::ptr_eq(&web, &table_of(&cp, S_WEB).expect("web table")));
    assert_eq!(verdicts(&cp), before);
}

#[test]
fn removed_service_stops_redirecting_and_a_new_one_gets_an_unused_slot() {
    let mut cp = lab_control_plane();
    let before = verdicts(&cp);
    let web = table_of(&cp, S_WEB).expect("web table");
    let kept = [S_WEB, S_FALLBACK, S_L2];
    let summary = cp
        .reconfigure_topology(
            Instant(1000),
            router_config(&kept, None),
            topology_with(&kept),
            &mut VecAlloc,
        )
        .expect("applied");
    assert_eq!(summary.removed, vec!["dynamic 70".to_string()]);
    assert!(cp.tables().service_by_key(S_MASK).is_none());
    let after = verdicts(&cp);
    for (i, (k, name, _)) in probes().iter().enumerate() {
        if *k == S_MASK {
            assert_eq!(after[i].2, vec![Reason::Routed], "{name}: routed now");
        } else {
            assert_eq!(after[i], before[i], "{name}: unchanged");
        }
    }
    assert!(Arc::ptr_eq(&web, &table_of(&cp, S_WEB).expect("web table")));
    assert_eq!(
        kept.map(|k| slot_of(&cp, k)),
        [SLOT_WEB, SLOT_FALLBACK, SLOT_L2]
    );

    // A new service takes a slot no service used (not the removed one's counters).
    let s_new = ServiceKey {
        dynamic: true,
        id: 72,
    };
    let grown = [S_WEB, s_new, S_FALLBACK, S_L2];
    let summary = cp
        .reconfigure_topology(
            Instant(2000),
            router_config(&grown, None),
            topology_with(&grown),
            &mut VecAlloc,
        )
        .expect("applied");
    assert_eq!(summary.added, vec!["dynamic 72".to_string()]);
    assert_eq!(slot_of(&cp, s_new), 4);
    assert!(table_of(&cp, s_new).is_none(), "created empty");
    // The removed service comes back in its own slot, without its old table.
    let back = [S_WEB, s_new, S_MASK, S_FALLBACK, S_L2];
    cp.reconfigure_topology(
        Instant(3000),
        router_config(&back, None),
        topology_with(&back),
        &mut VecAlloc,
    )
    .expect("applied");
    assert_eq!(slot_of(&cp, S_MASK), SLOT_MASK);
    assert!(table_of(&cp, S_MASK).is_none());
}

#[test]
fn port_or_address_changes_are_refused_and_nothing_is_published() {
    let mut cp = lab_control_plane();
    let before = verdicts(&cp);
    let generation = cp.tables().generation;
    let mut mtu = topology();
    mtu.ports[CACHE as usize].mtu = 9000;
    let e = cp
        .reconfigure_topology(Instant(1000), router_config(&ALL, None), mtu, &mut VecAlloc)
        .unwrap_err();
    assert_eq!(e, ReloadError::NeedsRestart(vec!["dataplane.ports".into()]));
    let mut moved = router_config(&[S_WEB], None);
    moved.addresses.push(Ipv4Addr::new(10, 0, 3, 2));
    let e = cp
        .reconfigure_topology(Instant(1000), moved, topology_with(&[S_WEB]), &mut VecAlloc)
        .unwrap_err();
    assert!(e.to_string().contains("router addresses"), "{e}");
    assert_eq!(cp.tables().generation, generation);
    assert_eq!(verdicts(&cp), before);
    assert_eq!(cp.router().status().services.len(), 4);
}
