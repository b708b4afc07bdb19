//! A serialisable snapshot of the data plane for `wccpd show`: ports, verdict and drop
//! counters summed over every lcore, per-service and per-cache counts, neighbours, and the
//! control lcore's own counters. Collected on the control lcore, off the packet path.

use std::collections::BTreeMap;
use std::sync::Arc;

use control::label::{self, Label};
use serde::{Deserialize, Serialize};

use crate::buf::PacketBuf;
use crate::control::{ControlPlane, ControlStats};
use crate::counters::{LcoreCounters, Reason};
use crate::tables::Encap;

/// A port's device counters (DPDK `rte_eth_stats`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PortCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Octets received.
    pub rx_bytes: u64,
    /// Octets sent.
    pub tx_bytes: u64,
    /// Packets the device dropped for lack of RX descriptors.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// RX buffer allocation failures.
    pub rx_nombuf: u64,
}

/// One port.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortStatus {
    /// Configured name.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// Interface addresses.
    pub addresses: Vec<String>,
    /// MTU.
    pub mtu: u16,
    /// Redirection directions.
    #[serde(deserialize_with = "label::deserialize_vec")]
    pub redirect: Vec<Label>,
    /// `exclude_in`.
    pub exclude_in: bool,
    /// Device counters.
    pub counters: PortCounters,
}

/// One cache (target) of a service's current table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The cache's address.
    pub address: String,
    /// `"gre"` or `"l2"`.
    #[serde(deserialize_with = "label::deserialize")]
    pub method: Label,
    /// Its MAC (or its next hop's) is resolved and its buckets are redirected.
    pub resolved: bool,
    /// Drained (removed from the group since the assignment).
    pub drained: bool,
    /// Packets redirected to it.
    pub packets: u64,
    /// Octets (inner IPv4) redirected to it.
    pub bytes: u64,
}

/// One service group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceDp {
    /// Service id.
    pub id: u8,
    /// Dynamic or standard.
    pub dynamic: bool,
    /// A table is published.
    pub active: bool,
    /// Closed service.
    pub closed: bool,
    /// Redirect-list rules.
    pub redirect_list_rules: usize,
    /// Packets redirected.
    pub redirected: u64,
    /// Packets its caches handed back.
    pub returned: u64,
    /// Matched but unassigned (routed).
    pub unassigned: u64,
    /// Matched and dropped (closed, unassigned).
    pub closed_drop: u64,
    /// Denied by the redirect list.
    pub denied: u64,
    /// The current table's caches.
    pub caches: Vec<TargetStatus>,
    /// Redirected packets per bucket, `(bucket, packets)` for the buckets that saw any.
    pub bucket_packets: Vec<(u8, u64)>,
}

/// One lcore's verdicts and drops.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LcoreStatus {
    /// `control` or `worker<N>`.
    pub lcore: String,
    /// Non-zero counters by reason label.
    #[serde(deserialize_with = "label::deserialize_keys")]
    pub counters: BTreeMap<Label, u64>,
}

/// One neighbour.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NeighbourStatus {
    /// Address.
    pub address: String,
    /// MAC.
    pub mac: String,
    /// Port name.
    pub port: String,
    /// Configured (static) rather than learnt by ARP.
    pub is_static: bool,
}

/// The whole data plane.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataplaneStatus {
    /// Tables generation (publications so far).
    pub generation: u64,
    /// Tables retired but not yet reclaimed.
    pub pending_reclaim: usize,
    /// Worker lcores.
    pub workers: usize,
    /// Ports.
    pub ports: Vec<PortStatus>,
    /// Verdict counters summed over every lcore (non-zero only).
    #[serde(deserialize_with = "label::deserialize_keys")]
    pub verdicts: BTreeMap<Label, u64>,
    /// Drop reasons summed over every lcore (non-zero only).
    #[serde(deserialize_with = "label::deserialize_keys")]
    pub drops: BTreeMap<Label, u64>,
    /// Per lcore (control first, then the workers), non-zero counters.
    pub lcores: Vec<LcoreStatus>,
    /// Per service group.
    pub services: Vec<ServiceDp>,
    /// Neighbours.
    pub neighbours: Vec<NeighbourStatus>,
    /// The control lcore's counters.
    pub control: ControlStats,
    /// Mempool size and mbufs in use.
    pub mempool_size: u32,
    /// Mbufs in use.
    pub mempool_in_use: u32,
}

fn mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Collects the snapshot. `counters[0]` is the control lcore's, the rest the workers'.
pub fn collect<B: PacketBuf>(
    cp: &ControlPlane<B>,
    counters: &[Arc<LcoreCounters>],
    ports: &[PortCounters],
    in_use: u32,
    size: u32,
) -> DataplaneStatus {
    let t = cp.tables();
    let mut verdicts = BTreeMap::new();
    let mut drops = BTreeMap::new();
    for r in Reason::ALL {
        let v: u64 = counters.iter().map(|c| c.get(*r)).sum();
        if v > 0 {
            if r.is_drop() {
                drops.insert(r.as_str(), v);
            } else {
                verdicts.insert(r.as_str(), v);
            }
        }
    }
    let sum = |f: &dyn Fn(&LcoreCounters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
    let mut services: Vec<ServiceDp> = t
        .services
        .iter()
        .map(|s| {
            let slot = s.slot;
            let caches = s
                .table
                .as_ref()
                .map(|tb| {
                    tb.targets()
                        .iter()
                        .enumerate()
                        .map(|(i, tg)| TargetStatus {
                            address: tg.addr.to_string(),
                            method: match s.targets.get(i).and_then(Option::as_ref) {
                                Some(Encap::L2 { .. }) => "l2",
                                Some(Encap::Gre { .. }) => "gre",
                                None => tg.method.as_str(),
                            },
                            resolved: s.targets.get(i).is_some_and(Option::is_some),
                            drained: tg.drained,
                            packets: sum(&|c| c.service(slot).targets[i].packets.get()),
                            bytes: sum(&|c| c.service(slot).targets[i].bytes.get()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ServiceDp {
                id: s.key.id,
                dynamic: s.key.dynamic,
                active: s.table.is_some(),
                closed: s.table.as_ref().is_some_and(|t| t.closed()),
                redirect_list_rules: s.rules.len(),
                redirected: sum(&|c| c.service(slot).redirected.get()),
                returned: sum(&|c| c.service(slot).returned.get()),
                unassigned: sum(&|c| c.service(slot).unassigned.get()),
                closed_drop: sum(&|c| c.service(slot).closed_drop.get()),
                denied: sum(&|c| c.service(slot).denied.get()),
                caches,
                bucket_packets: (0..=255u8)
                    .map(|b| (b, sum(&|c| c.service(slot).buckets[usize::from(b)].get())))
                    .filter(|x| x.1 > 0)
                    .collect(),
            }
        })
        .collect();
    services.sort_by_key(|s| (s.dynamic, s.id));
    let port_name = |i: u16| {
        t.ports
            .get(usize::from(i))
            .map_or_else(|| i.to_string(), |p| p.name.clone())
    };
    DataplaneStatus {
        generation: t.generation,
        pending_reclaim: cp.pending_reclaim(),
        workers: counters.len().saturating_sub(1),
        ports: t
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortStatus {
                name: p.name.clone(),
                mac: mac(p.mac),
                addresses: p.addrs.iter().map(|(a, l)| format!("{a}/{l}")).collect(),
                mtu: p.mtu,
                redirect: [("in", p.redirect_in), ("out", p.redirect_out)]
                    .into_iter()
                    .filter(|x| x.1)
                    .map(|x| x.0)
                    .collect(),
                exclude_in: p.exclude_in,
                counters: ports.get(i).cloned().unwrap_or_default(),
            })
            .collect(),
        verdicts,
        drops,
        lcores: counters
            .iter()
            .enumerate()
            .map(|(i, c)| LcoreStatus {
                lcore: if i == 0 {
                    "control".to_string()
                } else {
                    format!("worker{}", i - 1)
                },
                counters: Reason::ALL
                    .iter()
                    .map(|r| (r.as_str(), c.get(*r)))
                    .filter(|x| x.1 > 0)
                    .collect(),
            })
            .collect(),
        services,
        neighbours: cp
            .neighbours()
            .into_iter()
            .map(|(a, n, st)| NeighbourStatus {
                address: a.to_string(),
                mac: mac(n.mac),
                port: port_name(n.port),
                is_static: st,
            })
            .collect(),
        control: cp.stats().clone(),
        mempool_size: size,
        mempool_in_use: in_use,
    }
}
