//! Router configuration: our addresses and, per service group, what we accept and offer.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use assign::method::{AssignMethod, Method};
use assign::service::ServiceDef;
use ipnet::Ipv4Net;

use crate::ServiceKey;

/// Capability bit: GRE (forwarding and return method, docs/protocol.md 2.10).
pub const METHOD_GRE: u32 = Method::Gre.bit();
/// Capability bit: L2 (forwarding and return method).
pub const METHOD_L2: u32 = Method::L2.bit();
/// Capability bit: hash assignment.
pub const ASSIGN_HASH: u32 = AssignMethod::Hash.bit();
/// Capability bit: mask assignment.
pub const ASSIGN_MASK: u32 = AssignMethod::Mask.bit();

/// What the router offers a service group in its Capabilities Info (docs/protocol.md 2.10) and what
/// it accepts in HERE_I_AMs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Forwarding methods, bitmask of [`METHOD_GRE`] / [`METHOD_L2`].
    pub forwarding: u32,
    /// Assignment methods, bitmask of [`ASSIGN_HASH`] / [`ASSIGN_MASK`].
    pub assignment: u32,
    /// Packet return methods, bitmask of [`METHOD_GRE`] / [`METHOD_L2`].
    pub packet_return: u32,
    /// Accepted TRANSMIT_T range in milliseconds (min, max).
    pub transmit_t_ms: (u16, u16),
    /// Accepted TIMEOUT_SCALE range (min, max), never 0.
    pub timeout_scale: (u8, u8),
    /// Accepted RA_TIMER_SCALE range (min, max), never 0.
    pub ra_scale: (u8, u8),
}

impl Default for Offer {
    /// What a Cisco router offers (CAP-R): GRE|L2, hash|mask, GRE|L2, TRANSMIT_T 500..60000 ms,
    /// scales 1..5.
    fn default() -> Self {
        Offer {
            forwarding: METHOD_GRE | METHOD_L2,
            assignment: ASSIGN_HASH | ASSIGN_MASK,
            packet_return: METHOD_GRE | METHOD_L2,
            transmit_t_ms: (500, 60_000),
            timeout_scale: (1, 5),
            ra_scale: (1, 5),
        }
    }
}

/// One service group as configured on the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Standard or dynamic, and the id.
    pub key: ServiceKey,
    /// A fixed definition. Standard services use their implied one when `None`; a dynamic
    /// service without one is defined by the first cache that joins (docs/protocol.md 2.3).
    pub definition: Option<ServiceDef>,
    /// MD5 password (at most 8 octets); `None` = no security.
    pub password: Option<Vec<u8>>,
    /// Group list: caches allowed to join. Empty = anyone.
    pub allowed_caches: Vec<Ipv4Net>,
    /// Closed service: drop the service's traffic instead of forwarding it when no cache takes it.
    pub closed: bool,
    /// Capabilities offered.
    pub offer: Offer,
    /// TRANSMIT_T used when a cache does not negotiate one (default 10 s).
    pub timer_base: Duration,
}

impl ServiceConfig {
    /// A service with defaults: implied/learned definition, no password, anyone may join, open,
    /// [`Offer::default`], T = 10 s.
    pub fn new(key: ServiceKey) -> Self {
        ServiceConfig {
            key,
            definition: None,
            password: None,
            allowed_caches: Vec::new(),
            closed: false,
            offer: Offer::default(),
            timer_base: Duration::from_secs(10),
        }
    }

    /// Standard service 0 ("web-cache") with defaults.
    pub fn web_cache() -> Self {
        ServiceConfig::new(ServiceKey {
            dynamic: false,
            id: 0,
        })
    }
}

/// The router's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// Our addresses (the driver binds UDP 2048 on each). Replies always leave from the address
    /// the cache sent to.
    pub addresses: Vec<Ipv4Addr>,
    /// Router ID put in Router Identity Info; `None` = the address the cache sent to.
    pub router_id: Option<Ipv4Addr>,
    /// Service groups.
    pub services: Vec<ServiceConfig>,
}

/// Why a [`RouterConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// No local address.
    NoAddress,
    /// The same service configured twice.
    DuplicateService(ServiceKey),
    /// A standard service id nobody defines (only 0 = web-cache exists).
    UnknownStandardService(u8),
    /// A fixed definition whose identity differs from the service key.
    DefinitionMismatch(ServiceKey),
    /// Password longer than 8 octets.
    PasswordTooLong {
        /// The service.
        service: ServiceKey,
        /// Its length.
        len: usize,
    },
    /// An offered method set is empty or has unknown bits.
    BadOffer {
        /// The service.
        service: ServiceKey,
        /// Which capability.
        field: &'static str,
    },
    /// `timer_base` is zero or above 65.535 s.
    BadTimerBase(ServiceKey),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoAddress => f.write_str("router: no local address configured"),
            ConfigError::DuplicateService(k) => {
                write!(f, "service {k}: configured twice")
            }
            ConfigError::UnknownStandardService(id) => {
                write!(
                    f,
                    "standard service {id}: not a well-known service (only 0 = web-cache)"
                )
            }
            ConfigError::DefinitionMismatch(k) => {
                write!(f, "service {k}: definition names another service")
            }
            ConfigError::PasswordTooLong { service, len } => {
                write!(f, "service {service}: password is {len} octets (at most 8)")
            }
            ConfigError::BadOffer { service, field } => {
                write!(f, "service {service}: offered {field} is empty or invalid")
            }
            ConfigError::BadTimerBase(k) => {
                write!(f, "service {k}: timer base must be 1..=65535 ms")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl RouterConfig {
    /// Checks everything [`super::Router::new`] relies on.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.addresses.is_empty() {
            return Err(ConfigError::NoAddress);
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.services {
            let k = s.key;
            if !seen.insert(k) {
                return Err(ConfigError::DuplicateService(k));
            }
            if !k.dynamic && ServiceDef::well_known(k.id).is_none() {
                return Err(ConfigError::UnknownStandardService(k.id));
            }
            if let Some(d) = &s.definition {
                if d.dynamic != k.dynamic || d.id != k.id {
                    return Err(ConfigError::DefinitionMismatch(k));
                }
            }
            if let Some(p) = &s.password {
                if p.len() > wire::auth::MAX_PASSWORD_LEN {
                    return Err(ConfigError::PasswordTooLong {
                        service: k,
                        len: p.len(),
                    });
                }
            }
            let o = &s.offer;
            let bad = |field| ConfigError::BadOffer { service: k, field };
            if o.forwarding == 0 || o.forwarding & !3 != 0 {
                return Err(bad("forwarding method"));
            }
            if o.assignment == 0 || o.assignment & !3 != 0 {
                return Err(bad("assignment method"));
            }
            if o.packet_return == 0 || o.packet_return & !3 != 0 {
                return Err(bad("packet return method"));
            }
            if o.transmit_t_ms.0 == 0 || o.transmit_t_ms.0 > o.transmit_t_ms.1 {
                return Err(bad("TRANSMIT_T range"));
            }
            if o.timeout_scale.0 == 0 || o.timeout_scale.0 > o.timeout_scale.1 {
                return Err(bad("TIMEOUT_SCALE range"));
            }
            if o.ra_scale.0 == 0 || o.ra_scale.0 > o.ra_scale.1 {
                return Err(bad("RA_TIMER_SCALE range"));
            }
            let ms = s.timer_base.as_millis();
            if ms == 0 || ms > u128::from(u16::MAX) {
                return Err(ConfigError::BadTimerBase(k));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = Ipv4Net::new(Ipv4Addr::new(10, 200, 0, 0), 24).unwrap();
        assert!(p.contains(&Ipv4Addr::new(10, 200, 0, 77)));
        assert!(!p.contains(&Ipv4Addr::new(10, 200, 1, 1)));
        let any = Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).unwrap();
        assert!(any.contains(&Ipv4Addr::new(1, 2, 3, 4)));
        // A length above 32 is refused (config never produces one); a host is a /32.
        assert!(Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 1), 40).is_err());
        let host = Ipv4Net::from(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains(&Ipv4Addr::new(10, 0, 0, 1)));
        assert!(!host.contains(&Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(p.to_string(), "10.200.0.0/24");
    }

    fn cfg(s: ServiceConfig) -> RouterConfig {
        RouterConfig {
            addresses: vec![Ipv4Addr::new(10, 0, 0, 1)],
            router_id: None,
            services: vec![s],
        }
    }

    #[test]
    fn validation() {
        assert_eq!(cfg(ServiceConfig::web_cache()).validate(), Ok(()));
        let mut c = cfg(ServiceConfig::web_cache());
        c.addresses.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoAddress));
        let mut c = cfg(ServiceConfig::web_cache());
        c.services.push(ServiceConfig::web_cache());
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateService(_))
        ));
        let c = cfg(ServiceConfig::new(ServiceKey {
            dynamic: false,
            id: 3,
        }));
        assert_eq!(c.validate(), Err(ConfigError::UnknownStandardService(3)));
        let mut s = ServiceConfig::web_cache();
        s.password = Some(b"123456789".to_vec());
        let e = cfg(s).validate().unwrap_err();
        assert!(e.to_string().contains("9 octets"), "{e}");
        let mut s = ServiceConfig::web_cache();
        s.offer.assignment = 4;
        assert!(matches!(
            cfg(s).validate(),
            Err(ConfigError::BadOffer { .. })
        ));
        let mut s = ServiceConfig::web_cache();
        s.offer.timeout_scale = (0, 1);
        assert!(matches!(
            cfg(s).validate(),
            Err(ConfigError::BadOffer { .. })
        ));
        let mut s = ServiceConfig::web_cache();
        s.timer_base = Duration::ZERO;
        assert!(matches!(
            cfg(s).validate(),
            Err(ConfigError::BadTimerBase(_))
        ));
        let mut s = ServiceConfig::new(ServiceKey {
            dynamic: true,
            id: 80,
        });
        s.definition = Some(ServiceDef::WEB_CACHE);
        assert!(matches!(
            cfg(s).validate(),
            Err(ConfigError::DefinitionMismatch(_))
        ));
    }
}
