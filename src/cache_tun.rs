//! The cache agent's TUN device (`cache.tun`): where WCCP GRE that the agent decapsulated itself
//! is handed to the local stack.
//!
//! Kernels without `ip_gre` (and hosts that must not load modules) cannot terminate WCCP GRE
//! with a GRE interface. With `cache.tun` configured, the packet-return worker
//! ([`crate::gre_return`]) strips the outer IPv4, GRE and redirect headers of every WCCP GRE
//! packet from an accepted router, applies the service's `return_policy`, and writes the inner
//! IPv4 packet of every accepted one to this device (`IFF_TUN | IFF_NO_PI`: raw IPv4, no packet
//! information header). To the kernel the packet then arrives on the TUN interface, where an
//! nftables `iifname "wccp0" tcp dport 80 redirect to :3129` rule hands it to a transparent
//! proxy (`docs/cache-host.md`).
//!
//! At start the device is created (the `tun` crate does the `TUNSETIFF` and `SIOCSIF*` ioctls),
//! given its /32 address and brought up, and `rp_filter` is turned off on it and on `all` (the
//! kernel uses the larger of the two): the clients' addresses are routed through the Ethernet
//! side, so strict reverse-path filtering would drop every packet arriving on the TUN. The
//! previous `all` value is put back at exit. The device is not persistent: it disappears when
//! the agent closes it (or dies).

use std::fmt;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use config::Ipv4Net;
use serde::{Deserialize, Serialize};

/// What the TUN side needs from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunSettings {
    /// Interface name.
    pub name: String,
    /// Its /32 address.
    pub address: Ipv4Addr,
    /// Outer GRE sources that are decapsulated (the routers); other GRE is ignored.
    pub accept_from: Vec<Ipv4Net>,
}

impl TunSettings {
    /// From the validated `cache.tun` section.
    pub fn from_config(t: &config::CacheTun) -> TunSettings {
        TunSettings {
            name: t.name.clone(),
            address: t.address,
            accept_from: t.accept_from.clone(),
        }
    }

    /// Whether GRE from `router` is decapsulated.
    pub fn accepts(&self, router: Ipv4Addr) -> bool {
        self.accept_from.iter().any(|p| p.contains(&router))
    }
}

/// The TUN side's counters (shared with the control socket).
#[derive(Debug, Default)]
pub struct TunCounters {
    /// WCCP GRE packets from an accepted router whose inner packet was extracted (whatever the
    /// policy then decided).
    pub decapsulated: AtomicU64,
    /// Inner packets written to the TUN device.
    pub written: AtomicU64,
    /// Writes the device refused.
    pub write_errors: AtomicU64,
    /// GRE from a source outside `accept_from`: neither delivered nor returned.
    pub unknown_peer: AtomicU64,
    /// Detail of the latest write error.
    pub last_error: Mutex<Option<String>>,
    /// Why `rp_filter` could not be turned off, if it could not.
    pub rp_filter_error: Mutex<Option<String>>,
}

/// A counter's value (counters are independent: relaxed loads).
pub(crate) fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The text in a status slot (`None` if empty, or if a writer panicked).
pub(crate) fn text(m: &Mutex<Option<String>>) -> Option<String> {
    m.lock().map(|g| g.clone()).unwrap_or(None)
}

pub(crate) fn set_text(m: &Mutex<Option<String>>, v: Option<String>) {
    if let Ok(mut g) = m.lock() {
        *g = v;
    }
}

impl TunCounters {
    /// The counters as the `tun` object of `wccpd show`.
    pub fn report(&self, settings: &TunSettings) -> TunReport {
        TunReport {
            name: settings.name.clone(),
            address: settings.address,
            accept_from: settings
                .accept_from
                .iter()
                .map(ToString::to_string)
                .collect(),
            decapsulated: get(&self.decapsulated),
            written: get(&self.written),
            write_errors: get(&self.write_errors),
            unknown_peer: get(&self.unknown_peer),
            last_error: text(&self.last_error),
            rp_filter_error: text(&self.rp_filter_error),
        }
    }
}

/// The `tun` object of `wccpd show`: the device and its counters (see [`TunCounters`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunReport {
    /// Interface name.
    pub name: String,
    /// Its /32 address.
    pub address: Ipv4Addr,
    /// The prefixes GRE is decapsulated from (`a.b.c.d/len`).
    pub accept_from: Vec<String>,
    /// WCCP GRE packets from an accepted router whose inner packet was extracted.
    pub decapsulated: u64,
    /// Inner packets written to the device.
    pub written: u64,
    /// Writes the device refused.
    pub write_errors: u64,
    /// GRE from a source outside `accept_from`.
    pub unknown_peer: u64,
    /// Detail of the latest write error.
    pub last_error: Option<String>,
    /// Why `rp_filter` could not be turned off, if it could not.
    pub rp_filter_error: Option<String>,
}

/// An open, configured TUN device. Dropping it closes the device (the kernel removes it) and
/// puts `net.ipv4.conf.all.rp_filter` back if it was changed.
pub struct TunDevice {
    dev: tun::Device,
    name: String,
    /// The previous `all.rp_filter`, to restore at exit.
    restore_all: Option<String>,
}

impl fmt::Debug for TunDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunDevice")
            .field("name", &self.name)
            .field("restore_all", &self.restore_all)
            .finish_non_exhaustive()
    }
}

fn rp_filter_path(dev: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/net/ipv4/conf/{dev}/rp_filter"))
}

/// Sets `net.ipv4.conf.<dev>.rp_filter` to 0; returns the previous value.
fn rp_filter_off(dev: &str) -> Result<String, String> {
    let path = rp_filter_path(dev);
    let old = std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if old != "0" {
        std::fs::write(&path, "0").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(old)
}

impl TunDevice {
    /// Creates `settings.name` (`IFF_TUN | IFF_NO_PI`), gives it `settings.address`/32, brings
    /// it up and turns `rp_filter` off on it and on `all`. Needs `CAP_NET_ADMIN` and
    /// `/dev/net/tun`. A failed `rp_filter` write is logged and shown in `counters`, not fatal.
    ///
    /// # Errors
    /// The device cannot be created or configured (no permission, no `/dev/net/tun`, the name
    /// belongs to an interface that is not a TUN device).
    pub fn open(settings: &TunSettings, counters: &TunCounters) -> io::Result<TunDevice> {
        let mut cfg = tun::Configuration::default();
        cfg.tun_name(&settings.name)
            .layer(tun::Layer::L3)
            .address(settings.address)
            .netmask(Ipv4Addr::BROADCAST)
            .up();
        let dev = tun::create(&cfg).map_err(|e| match e {
            tun::Error::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        let mut device = TunDevice {
            dev,
            name: settings.name.clone(),
            restore_all: None,
        };
        let mut problems = Vec::new();
        match rp_filter_off(&settings.name) {
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        match rp_filter_off("all") {
            Ok(old) if old != "0" => device.restore_all = Some(old),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        if problems.is_empty() {
            tracing::info!(
                tun = %settings.name,
                address = %settings.address,
                previous_all_rp_filter = device.restore_all.as_deref().unwrap_or("0"),
                "TUN device up, rp_filter 0 on it and on all"
            );
        } else {
            let detail = problems.join("; ");
            tracing::warn!(
                tun = %settings.name,
                error = %detail,
                "cannot turn rp_filter off (not permitted?): packets arriving on the TUN from \
                 clients routed through another interface may be dropped; set \
                 net.ipv4.conf.{}.rp_filter=0 and net.ipv4.conf.all.rp_filter=0 by hand",
                settings.name
            );
            set_text(&counters.rp_filter_error, Some(detail));
        }
        Ok(device)
    }

    /// Hands one IPv4 packet to the local stack.
    ///
    /// # Errors
    /// The kernel refused the write (e.g. device down, malformed packet).
    pub fn write(&mut self, packet: &[u8]) -> io::Result<()> {
        let n = self.dev.write(packet)?;
        if n != packet.len() {
            return Err(io::Error::other(format!(
                "short write: {n} of {} octets",
                packet.len()
            )));
        }
        Ok(())
    }
}

impl Drop for TunDevice {
    fn drop(&mut self) {
        if let Some(old) = self.restore_all.take() {
            match std::fs::write(rp_filter_path("all"), &old) {
                Ok(()) => tracing::info!(value = %old, "net.ipv4.conf.all.rp_filter restored"),
                Err(e) => tracing::warn!(
                    error = %e,
                    value = %old,
                    "cannot restore net.ipv4.conf.all.rp_filter"
                ),
            }
        }
        tracing::info!(tun = %self.name, "TUN device closed (removed)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_from_prefixes() {
        let s = TunSettings::from_config(&config::CacheTun {
            name: "wccp0".into(),
            address: Ipv4Addr::new(169, 254, 87, 1),
            accept_from: vec![
                "10.0.0.0/24".parse().unwrap(),
                Ipv4Net::from(Ipv4Addr::new(192, 0, 2, 1)),
            ],
        });
        assert!(s.accepts(Ipv4Addr::new(10, 0, 0, 77)));
        assert!(s.accepts(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(!s.accepts(Ipv4Addr::new(192, 0, 2, 2)));
        let c = TunCounters::default();
        c.written.fetch_add(2, Ordering::Relaxed);
        let j = serde_json::to_value(c.report(&s)).unwrap();
        assert_eq!(j["written"], 2);
        assert_eq!(j["name"], "wccp0");
        assert_eq!(j["accept_from"][0], "10.0.0.0/24");
        assert!(j["last_error"].is_null());
    }
}
