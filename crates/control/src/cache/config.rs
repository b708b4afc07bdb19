//! Cache agent configuration: validated, typed, built by `config` (or by hand in tests).

use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

use assign::spread::{MaskField, SlowStart, SQUID_MASK};

use crate::ServiceKey;

// The plain types the cache agent shares with the configuration file and the router: one
// definition each, in `wccp-assign`.
pub use assign::method::{AssignMethod, Method};
pub use assign::service::{HashField, HashFields, PortsAre, ServiceDefinition};
pub use assign::spread::SpreadAlgorithm;

/// Default TRANSMIT_T (HERE_I_AM interval), docs/protocol.md §5.1.
pub const DEFAULT_TRANSMIT_T: Duration = Duration::from_secs(10);

/// Default assignment weight (Squid's `wccp2_weight`).
pub const DEFAULT_WEIGHT: u16 = 10000;

/// Maximum MD5 password length (docs/protocol.md §2.2).
pub const MAX_PASSWORD_LEN: usize = 8;

/// Mask assignment settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskConfig {
    /// The field the 0x1741 mask applies to; `None` derives it from the service flags
    /// (Squid's rule, [`MaskField::for_service`]).
    pub field: Option<MaskField>,
}

/// One service group the cache joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The definition announced in every message.
    pub service: ServiceDefinition,
    /// Assignment weight announced in the identity element.
    pub weight: u16,
    /// MD5 password (at most 8 octets); `None` = no security.
    pub password: Option<Vec<u8>>,
    /// Acceptable forwarding methods, most preferred first.
    pub forwarding: Vec<Method>,
    /// Acceptable assignment methods, most preferred first.
    pub assignment: Vec<AssignMethod>,
    /// Acceptable packet-return methods, most preferred first.
    pub packet_return: Vec<Method>,
    /// Mask assignment settings.
    pub mask: MaskConfig,
    /// Bucket spreading when this cache is designated.
    pub spread: SpreadAlgorithm,
    /// Optional slow start for caches joining a group that already has an assignment
    /// (designated cache only): while a newcomer ramps up, the assignment is recomputed every T.
    /// Pair it with [`SpreadAlgorithm::Stable`]; with Squid's walk every ramp step reshuffles
    /// most buckets.
    pub slow_start: Option<SlowStart>,
}

impl ServiceConfig {
    /// A service with defaults: weight 10000, no password, GRE/hash/GRE only, Squid spreading.
    pub fn new(service: ServiceDefinition) -> ServiceConfig {
        ServiceConfig {
            service,
            weight: DEFAULT_WEIGHT,
            password: None,
            forwarding: vec![Method::Gre],
            assignment: vec![AssignMethod::Hash],
            packet_return: vec![Method::Gre],
            mask: MaskConfig::default(),
            spread: SpreadAlgorithm::Squid,
            slow_start: None,
        }
    }

    /// The service group key.
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            dynamic: self.service.dynamic,
            id: self.service.id,
        }
    }

    /// The mask field used for mask assignment.
    pub fn mask_field(&self) -> MaskField {
        self.mask
            .field
            .unwrap_or_else(|| self.service.default_mask_field())
    }

    /// The mask element announced and assigned: [`SQUID_MASK`] on [`Self::mask_field`].
    pub fn mask_element(&self) -> (u32, u32, u16, u16) {
        match self.mask_field() {
            MaskField::SrcIp => (SQUID_MASK, 0, 0, 0),
            MaskField::DstIp => (0, SQUID_MASK, 0, 0),
            MaskField::SrcPort => (0, 0, SQUID_MASK as u16, 0),
            MaskField::DstPort => (0, 0, 0, SQUID_MASK as u16),
        }
    }
}

/// The whole cache agent configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Our address: source of every message and the identity we announce.
    pub address: Ipv4Addr,
    /// Routers to join (seed list), unicast.
    pub routers: Vec<Ipv4Addr>,
    /// Service groups.
    pub services: Vec<ServiceConfig>,
    /// HERE_I_AM interval (TRANSMIT_T).
    pub transmit_t: Duration,
}

impl CacheConfig {
    /// A configuration with the default TRANSMIT_T.
    pub fn new(address: Ipv4Addr, routers: Vec<Ipv4Addr>, services: Vec<ServiceConfig>) -> Self {
        CacheConfig {
            address,
            routers,
            services,
            transmit_t: DEFAULT_TRANSMIT_T,
        }
    }

    /// Checks the configuration, collecting every problem.
    ///
    /// # Errors
    /// [`ConfigError`] listing all problems found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if self.address.is_unspecified()
            || self.address.is_multicast()
            || self.address.is_broadcast()
        {
            p.push(format!("address {} is not a unicast address", self.address));
        }
        if self.routers.is_empty() {
            p.push("no routers configured".to_owned());
        }
        for (i, r) in self.routers.iter().enumerate() {
            if r.is_unspecified() || *r == self.address {
                p.push(format!("router {r} is not usable"));
            }
            if self.routers[..i].contains(r) {
                p.push(format!("router {r} listed twice"));
            }
        }
        if self.services.is_empty() {
            p.push("no services configured".to_owned());
        }
        let ms = self.transmit_t.as_millis();
        if !(500..=60_000).contains(&ms) {
            p.push(format!("transmit_t {ms} ms outside 500..=60000"));
        }
        for (i, s) in self.services.iter().enumerate() {
            let key = s.key();
            let name = key;
            if self.services[..i].iter().any(|o| o.key() == key) {
                p.push(format!("{name} configured twice"));
            }
            if let Some(pw) = &s.password {
                if pw.len() > MAX_PASSWORD_LEN {
                    p.push(format!(
                        "{name}: password longer than {MAX_PASSWORD_LEN} octets"
                    ));
                }
            }
            if s.forwarding.is_empty() {
                p.push(format!("{name}: no forwarding method"));
            }
            if s.assignment.is_empty() {
                p.push(format!("{name}: no assignment method"));
            }
            if s.packet_return.is_empty() {
                p.push(format!("{name}: no packet return method"));
            }
            let d = &s.service;
            if d.dynamic {
                if d.ports.len() > 8 {
                    p.push(format!("{name}: {} ports, at most 8", d.ports.len()));
                }
                if d.ports.contains(&0) {
                    p.push(format!("{name}: port 0 terminates the port list"));
                }
                if s.assignment.contains(&AssignMethod::Hash) && d.hash.is_empty() {
                    p.push(format!(
                        "{name}: hash assignment needs at least one primary hash field"
                    ));
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: p })
        }
    }
}

/// An invalid cache configuration; lists every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid cache configuration: {}",
            self.problems.join("; ")
        )
    }
}

impl std::error::Error for ConfigError {}
