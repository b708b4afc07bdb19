//! Cache agent configuration: validated, typed, built by `config` (or by hand in tests).

use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

use crate::ServiceKey;

// The plain types the cache agent shares with the configuration file and the router: one
// definition each, in `wccp-assign`. A cache's service group is `CacheService`, parsed by
// `config` and run on by the agent as it is.
pub use assign::cache::{CacheService, MaskConfig, DEFAULT_WEIGHT};
pub use assign::method::{AssignMethod, Method};
pub use assign::service::{HashField, HashFields, PortsAre, ServiceDefinition};
pub use assign::spread::SpreadAlgorithm;
pub use wire::auth::MAX_PASSWORD_LEN;

/// Default TRANSMIT_T (HERE_I_AM interval), docs/protocol.md §5.1.
pub const DEFAULT_TRANSMIT_T: Duration = Duration::from_secs(10);

/// The whole cache agent configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Our address: source of every message and the identity we announce.
    pub address: Ipv4Addr,
    /// Routers to join (seed list), unicast.
    pub routers: Vec<Ipv4Addr>,
    /// Service groups.
    pub services: Vec<CacheService>,
    /// HERE_I_AM interval (TRANSMIT_T).
    pub transmit_t: Duration,
}

impl CacheConfig {
    /// A configuration with the default TRANSMIT_T.
    pub fn new(address: Ipv4Addr, routers: Vec<Ipv4Addr>, services: Vec<CacheService>) -> Self {
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
            let key = ServiceKey::of(&s.definition);
            let name = key;
            if self.services[..i]
                .iter()
                .any(|o| ServiceKey::of(&o.definition) == key)
            {
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
            let d = &s.definition;
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
