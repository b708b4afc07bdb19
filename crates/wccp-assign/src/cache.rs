//! A cache's settings for one service group: what `cache.services[*]` in the configuration file
//! says and what the cache agent runs on. One type for both, so a new setting is declared here
//! once, given its default in [`CacheService::new`], parsed by `config` and read by `control`.

use crate::method::{AssignMethod, Method};
use crate::policy::ReturnPolicy;
use crate::service::ServiceDefinition;
use crate::spread::{MaskField, SlowStart, SpreadAlgorithm, SQUID_MASK};

/// Default assignment weight (Squid's `wccp2_weight`).
pub const DEFAULT_WEIGHT: u16 = 10000;

/// Mask assignment settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskConfig {
    /// The field the 0x1741 mask applies to; `None` derives it from the service flags
    /// (Squid's rule, [`MaskField::for_service`]).
    pub field: Option<MaskField>,
}

/// One service group a cache joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheService {
    /// The definition announced in every message.
    pub definition: ServiceDefinition,
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
    /// Which redirected packets to hand back to the router (empty: none).
    pub return_policy: ReturnPolicy,
}

impl CacheService {
    /// A service with defaults: weight 10000, no password, GRE/hash/GRE only, mask field from
    /// the service flags, Squid spreading, no slow start, no return policy.
    pub fn new(definition: ServiceDefinition) -> CacheService {
        CacheService {
            definition,
            weight: DEFAULT_WEIGHT,
            password: None,
            forwarding: vec![Method::Gre],
            assignment: vec![AssignMethod::Hash],
            packet_return: vec![Method::Gre],
            mask: MaskConfig::default(),
            spread: SpreadAlgorithm::Squid,
            slow_start: None,
            return_policy: ReturnPolicy::default(),
        }
    }

    /// The mask field used for mask assignment.
    pub fn mask_field(&self) -> MaskField {
        self.mask
            .field
            .unwrap_or_else(|| self.definition.default_mask_field())
    }

    /// The mask element announced and assigned: [`SQUID_MASK`] on [`Self::mask_field`], as
    /// (source address, destination address, source port, destination port) masks.
    pub fn mask_element(&self) -> (u32, u32, u16, u16) {
        match self.mask_field() {
            MaskField::SrcIp => (SQUID_MASK, 0, 0, 0),
            MaskField::DstIp => (0, SQUID_MASK, 0, 0),
            MaskField::SrcPort => (0, 0, SQUID_MASK as u16, 0),
            MaskField::DstPort => (0, 0, 0, SQUID_MASK as u16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_field_defaults_to_the_service_flags() {
        let mut s = CacheService::new(ServiceDefinition::web_cache());
        assert_eq!(s.mask_field(), MaskField::DstIp);
        assert_eq!(s.mask_element(), (0, SQUID_MASK, 0, 0));
        s.mask.field = Some(MaskField::SrcPort);
        assert_eq!(s.mask_element(), (0, 0, SQUID_MASK as u16, 0));
    }
}
