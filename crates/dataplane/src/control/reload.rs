//! Hot reload on the control lcore: the router state machine takes the new service
//! configuration ([`control::router::Router::reconfigure`]), the topology takes the new
//! services, redirect lists, static assignments, routes and neighbours, and one new [`Tables`]
//! is compiled and published.
//!
//! The workers switch to it atomically at their next read (RCU), between two packets: no
//! packet is dropped by a reload. A service the reload does not touch keeps its table (the
//! very same `Arc`) and its counter slot, so its packets get the same verdicts before and
//! after. What the running data plane cannot change (ports, the Router ID) is refused before
//! anything is applied.
//!
//! [`Tables`]: crate::tables::Tables

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use control::router::{ReloadError, ReloadSummary, RouterConfig};
use control::{Instant, ServiceKey};

use super::{Alloc, ControlPlane};
use crate::buf::PacketBuf;
use crate::counters::MAX_SERVICES;
use crate::tables::Topology;

/// An allocator behind a mutable reference (`&mut dyn Alloc` from the DPDK control loop).
impl<A: Alloc + ?Sized> Alloc for &mut A {
    type Buf = A::Buf;
    fn alloc(&mut self, frame: &[u8]) -> Option<A::Buf> {
        (**self).alloc(frame)
    }
}

impl<B: PacketBuf> ControlPlane<B> {
    /// Reloads from a validated configuration file: the router's part is `router` (built from
    /// `settings`), the topology is compiled from `settings` with the running ports' MAC
    /// addresses. See [`ControlPlane::reconfigure_topology`].
    ///
    /// # Errors
    /// As [`ControlPlane::reconfigure_topology`]; [`ReloadError::NeedsRestart`] also when
    /// `settings` has no `dataplane` section.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        router: RouterConfig,
        settings: &config::RouterSettings,
        alloc: &mut impl Alloc<Buf = B>,
    ) -> Result<ReloadSummary, ReloadError> {
        let Some(dp) = settings.dataplane.as_ref() else {
            return Err(ReloadError::NeedsRestart(vec!["dataplane".into()]));
        };
        let macs: Vec<[u8; 6]> = self.topo.ports.iter().map(|p| p.mac).collect();
        let topo = Topology::from_config(settings, dp, &macs);
        self.reconfigure_topology(now, router, topo, alloc)
    }

    /// Applies a new router configuration and topology: the router reconfigures its groups
    /// (removed services withdraw their tables, see `Router::reconfigure`), the topology is
    /// replaced, and new tables are compiled and published at once. Services keep their
    /// counter slots; a new service takes a slot no service used so far when there is one.
    ///
    /// # Errors
    /// [`ReloadError::NeedsRestart`] when the ports or the Router ID differ from the running
    /// ones, and the router's own refusals ([`ReloadError::Invalid`], changed addresses).
    /// Nothing is changed then.
    pub fn reconfigure_topology(
        &mut self,
        now: Instant,
        router: RouterConfig,
        mut topo: Topology,
        alloc: &mut impl Alloc<Buf = B>,
    ) -> Result<ReloadSummary, ReloadError> {
        let mut restart = Vec::new();
        if topo.ports != self.topo.ports {
            restart.push("dataplane.ports".to_owned());
        }
        if topo.router_id != self.topo.router_id {
            restart.push("router.addresses".to_owned());
        }
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart));
        }
        let summary = self.router.reconfigure(now, router)?;
        // A static assignment that did not change keeps its table (the same `Arc`).
        for (k, t) in &mut topo.statics {
            if let Some(old) = self.topo.statics.get(k).filter(|old| **old == *t) {
                *t = Arc::clone(old);
            }
        }
        keep_slots(&self.topo, &topo, &mut self.state.slots);
        // Tables set for services that are gone (`set_redirect`) go with them.
        let keys: BTreeSet<ServiceKey> = topo.services.iter().map(|s| s.0).collect();
        self.state.redirect.retain(|k, _| keys.contains(k));
        self.topo = topo;
        self.dirty = true;
        // The router's withdrawals and republications, then one compilation and publication.
        self.drain_router(now, alloc);
        Ok(summary)
    }
}

/// Counter slots for the services of `new`, recorded in `slots`: a service of `old` keeps its
/// own (its position there unless recorded); another takes the slot it had before it was
/// removed when that is free, else the lowest slot never recorded, else the lowest free one
/// (whose counters it then continues), else the last (shared, as beyond [`MAX_SERVICES`]).
/// Entries of removed services stay, so that their slots are reused last.
fn keep_slots(old: &Topology, new: &Topology, slots: &mut BTreeMap<ServiceKey, usize>) {
    for (i, (k, _)) in old.services.iter().enumerate() {
        slots.entry(*k).or_insert(i);
    }
    let before: BTreeSet<ServiceKey> = old.services.iter().map(|s| s.0).collect();
    let kept: BTreeSet<ServiceKey> = new
        .services
        .iter()
        .map(|s| s.0)
        .filter(|k| before.contains(k))
        .collect();
    let mut taken: BTreeSet<usize> = kept.iter().filter_map(|k| slots.get(k).copied()).collect();
    for (k, _) in new.services.iter().filter(|s| !kept.contains(&s.0)) {
        let slot = match slots.get(k) {
            Some(&s) if !taken.contains(&s) => s,
            _ => {
                let recorded: BTreeSet<usize> = slots.values().copied().collect();
                let never = (0..MAX_SERVICES).find(|s| !recorded.contains(s));
                let free = (0..MAX_SERVICES).find(|s| !taken.contains(s));
                never.or(free).unwrap_or(MAX_SERVICES - 1)
            }
        };
        // A removed service that held this slot gives it up.
        slots.retain(|other, s| *s != slot || other == k || kept.contains(other));
        slots.insert(*k, slot);
        taken.insert(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> ServiceKey {
        ServiceKey { dynamic: true, id }
    }

    fn topo(ids: &[u8]) -> Topology {
        Topology {
            ports: Vec::new(),
            routes: Vec::new(),
            neighbours: Vec::new(),
            services: ids.iter().map(|&i| (key(i), Vec::new())).collect(),
            check_all: false,
            router_id: std::net::Ipv4Addr::UNSPECIFIED,
            statics: BTreeMap::new(),
        }
    }

    fn slot_of(slots: &BTreeMap<ServiceKey, usize>, id: u8) -> usize {
        slots[&key(id)]
    }

    #[test]
    fn services_keep_their_slots_and_new_ones_take_unused_slots() {
        let mut slots = BTreeMap::new();
        // 10, 20, 30 at 0, 1, 2; 20 goes, 40 comes: 40 takes 3, never used.
        keep_slots(&topo(&[10, 20, 30]), &topo(&[10, 30, 40]), &mut slots);
        assert_eq!(
            [10, 30, 40].map(|i| slot_of(&slots, i)),
            [0, 2, 3],
            "{slots:?}"
        );
        // 20 comes back: its old slot is free.
        keep_slots(&topo(&[10, 30, 40]), &topo(&[20, 10, 30, 40]), &mut slots);
        assert_eq!([20, 10, 30, 40].map(|i| slot_of(&slots, i)), [1, 0, 2, 3]);
        // Every slot recorded once: a new service reuses the lowest free one.
        let all: Vec<u8> = (0..MAX_SERVICES as u8).collect();
        let mut slots = BTreeMap::new();
        keep_slots(&topo(&all), &topo(&all[1..]), &mut slots);
        keep_slots(
            &topo(&all[1..]),
            &topo(&[&all[1..], &[200]].concat()),
            &mut slots,
        );
        assert_eq!(slot_of(&slots, 200), 0);
        assert!(!slots.contains_key(&key(0)), "the removed owner gave it up");
    }
}
