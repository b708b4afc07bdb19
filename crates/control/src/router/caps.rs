//! Capability negotiation (docs/protocol.md 2.10, R1 3.5): what the router advertises in
//! I_SEE_YOU and whether a cache's choices in HERE_I_AM are acceptable.

pub use assign::method::AssignMethod;
use assign::table::ForwardingMethod;
use wire::{Capabilities, Capability};

use super::config::{Offer, ASSIGN_HASH, ASSIGN_MASK, METHOD_GRE, METHOD_L2};

/// What the first usable cache fixes for the whole group (R1 3.5.2-3.5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupMethod {
    /// Assignment method.
    pub assignment: AssignMethod,
    /// TRANSMIT_T in ms.
    pub transmit_t_ms: u16,
    /// TIMEOUT_SCALE.
    pub timeout_scale: u8,
    /// RA_TIMER_SCALE.
    pub ra_scale: u8,
}

/// One cache's accepted choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheCaps {
    /// Forwarding method (per cache).
    pub forwarding: ForwardingMethod,
    /// Packet return method bit (per cache).
    pub packet_return: u32,
    /// The group-wide part.
    pub group: GroupMethod,
}

/// Which capability did not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Forwarding method.
    Forwarding,
    /// Assignment method.
    Assignment,
    /// Packet return method.
    Return,
    /// TRANSMIT_T.
    TransmitT,
    /// TIMER_SCALE.
    TimerScale,
}

impl Mismatch {
    /// Name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mismatch::Forwarding => "forwarding method",
            Mismatch::Assignment => "assignment method",
            Mismatch::Return => "packet return method",
            Mismatch::TransmitT => "TRANSMIT_T",
            Mismatch::TimerScale => "TIMER_SCALE",
        }
    }
}

/// The lowest set bit of `v` (0 if none).
fn lowest_bit(v: u32) -> u32 {
    v & v.wrapping_neg()
}

/// A single value, or a range `(upper, lower)` resolved towards `preferred`.
fn pick_u16(upper: u16, lower: u16, preferred: u16) -> u16 {
    if upper == 0 {
        lower
    } else {
        let (lo, hi) = (lower.min(upper), lower.max(upper));
        preferred.clamp(lo, hi)
    }
}

fn pick_u8(upper: u8, lower: u8, preferred: u8) -> u8 {
    if upper == 0 {
        lower
    } else {
        let (lo, hi) = (lower.min(upper), lower.max(upper));
        preferred.clamp(lo, hi)
    }
}

fn in_range<T: PartialOrd>(v: T, (lo, hi): (T, T)) -> bool {
    lo <= v && v <= hi
}

/// Checks a cache's capability choices against our offer and the group's fixed method.
/// Absence of the component (or of an element) means the defaults GRE / hash / GRE /
/// `default_t_ms` / 1 / 1 (R1 3.5).
///
/// # Errors
/// The first capability that is not acceptable.
pub fn negotiate(
    caps: Option<&Capabilities>,
    offer: &Offer,
    group: Option<&GroupMethod>,
    default_t_ms: u16,
) -> Result<CacheCaps, Mismatch> {
    let mut fwd = METHOD_GRE;
    let mut asg = ASSIGN_HASH;
    let mut ret = METHOD_GRE;
    let mut t = default_t_ms;
    let mut scales = (1u8, 1u8);
    let mut saw = [false; 5];
    for e in caps.map(|c| c.elements.as_slice()).unwrap_or(&[]) {
        // The first element of each type wins, like duplicate components.
        let slot = usize::from(e.kind()).wrapping_sub(1);
        if slot < saw.len() {
            if saw[slot] {
                continue;
            }
            saw[slot] = true;
        }
        match *e {
            Capability::ForwardingMethod(v) => fwd = v,
            Capability::AssignmentMethod(v) => asg = v,
            Capability::PacketReturnMethod(v) => ret = v,
            Capability::TransmitT { upper, lower } => {
                t = pick_u16(
                    upper,
                    lower,
                    group.map_or(default_t_ms, |g| g.transmit_t_ms),
                );
            }
            Capability::TimerScale {
                timeout_upper,
                timeout_lower,
                ra_upper,
                ra_lower,
            } => {
                let pref = group.map_or((1, 1), |g| (g.timeout_scale, g.ra_scale));
                scales = (
                    pick_u8(timeout_upper, timeout_lower, pref.0),
                    pick_u8(ra_upper, ra_lower, pref.1),
                );
            }
            _ => {}
        }
    }
    let fwd = lowest_bit(fwd & offer.forwarding);
    let forwarding = match fwd {
        METHOD_GRE => ForwardingMethod::Gre,
        METHOD_L2 => ForwardingMethod::L2,
        _ => return Err(Mismatch::Forwarding),
    };
    let asg = asg & offer.assignment;
    let assignment = match group {
        Some(g) if asg & g.assignment.bit() != 0 => g.assignment,
        Some(_) => return Err(Mismatch::Assignment),
        None => match lowest_bit(asg) {
            ASSIGN_HASH => AssignMethod::Hash,
            ASSIGN_MASK => AssignMethod::Mask,
            _ => return Err(Mismatch::Assignment),
        },
    };
    let packet_return = lowest_bit(ret & offer.packet_return);
    if packet_return == 0 {
        return Err(Mismatch::Return);
    }
    if t == 0 || (saw[3] && !in_range(t, offer.transmit_t_ms)) {
        return Err(Mismatch::TransmitT);
    }
    if scales.0 == 0
        || scales.1 == 0
        || !in_range(scales.0, offer.timeout_scale)
        || !in_range(scales.1, offer.ra_scale)
    {
        return Err(Mismatch::TimerScale);
    }
    let method = GroupMethod {
        assignment,
        transmit_t_ms: t,
        timeout_scale: scales.0,
        ra_scale: scales.1,
    };
    if let Some(g) = group {
        if g.transmit_t_ms != t {
            return Err(Mismatch::TransmitT);
        }
        if (g.timeout_scale, g.ra_scale) != scales {
            return Err(Mismatch::TimerScale);
        }
    }
    Ok(CacheCaps {
        forwarding,
        packet_return,
        group: method,
    })
}

/// The Capabilities Info we put in an I_SEE_YOU: our offer, narrowed to the group's fixed
/// choices once the first usable cache made them. Element values are 4 octets; ranges are
/// `upper lower` (Cisco order, e.g. TRANSMIT_T `ea60 01f4`).
pub fn advertise(offer: &Offer, group: Option<&GroupMethod>) -> Capabilities {
    let (assignment, t, ts) = match group {
        Some(g) => (
            g.assignment.bit(),
            Capability::TransmitT {
                upper: 0,
                lower: g.transmit_t_ms,
            },
            Capability::TimerScale {
                timeout_upper: 0,
                timeout_lower: g.timeout_scale,
                ra_upper: 0,
                ra_lower: g.ra_scale,
            },
        ),
        None => (
            offer.assignment,
            range_u16(offer.transmit_t_ms),
            Capability::TimerScale {
                timeout_upper: if offer.timeout_scale.0 == offer.timeout_scale.1 {
                    0
                } else {
                    offer.timeout_scale.1
                },
                timeout_lower: offer.timeout_scale.0,
                ra_upper: if offer.ra_scale.0 == offer.ra_scale.1 {
                    0
                } else {
                    offer.ra_scale.1
                },
                ra_lower: offer.ra_scale.0,
            },
        ),
    };
    Capabilities {
        elements: vec![
            Capability::ForwardingMethod(offer.forwarding),
            Capability::AssignmentMethod(assignment),
            Capability::PacketReturnMethod(offer.packet_return),
            t,
            ts,
        ],
    }
}

fn range_u16((lo, hi): (u16, u16)) -> Capability {
    if lo == hi {
        Capability::TransmitT {
            upper: 0,
            lower: lo,
        }
    } else {
        Capability::TransmitT {
            upper: hi,
            lower: lo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(e: Vec<Capability>) -> Capabilities {
        Capabilities { elements: e }
    }

    #[test]
    fn defaults_without_component() {
        let c = negotiate(None, &Offer::default(), None, 10_000).unwrap();
        assert_eq!(c.forwarding, ForwardingMethod::Gre);
        assert_eq!(c.packet_return, METHOD_GRE);
        assert_eq!(
            c.group,
            GroupMethod {
                assignment: AssignMethod::Hash,
                transmit_t_ms: 10_000,
                timeout_scale: 1,
                ra_scale: 1
            }
        );
    }

    #[test]
    fn choices_checked_against_offer() {
        let mut offer = Offer::default();
        let l2_mask = caps(vec![
            Capability::ForwardingMethod(METHOD_L2),
            Capability::AssignmentMethod(ASSIGN_MASK),
            Capability::PacketReturnMethod(METHOD_L2),
        ]);
        let c = negotiate(Some(&l2_mask), &offer, None, 10_000).unwrap();
        assert_eq!(c.forwarding, ForwardingMethod::L2);
        assert_eq!(c.group.assignment, AssignMethod::Mask);
        offer.forwarding = METHOD_GRE;
        assert_eq!(
            negotiate(Some(&l2_mask), &offer, None, 10_000),
            Err(Mismatch::Forwarding)
        );
        offer.forwarding = METHOD_L2;
        offer.assignment = ASSIGN_HASH;
        assert_eq!(
            negotiate(Some(&l2_mask), &offer, None, 10_000),
            Err(Mismatch::Assignment)
        );
        offer.assignment = ASSIGN_MASK;
        offer.packet_return = METHOD_GRE;
        assert_eq!(
            negotiate(Some(&l2_mask), &offer, None, 10_000),
            Err(Mismatch::Return)
        );
    }

    #[test]
    fn group_method_must_match() {
        let g = GroupMethod {
            assignment: AssignMethod::Mask,
            transmit_t_ms: 10_000,
            timeout_scale: 1,
            ra_scale: 1,
        };
        // A default (hash) cache cannot join a mask group.
        assert_eq!(
            negotiate(None, &Offer::default(), Some(&g), 10_000),
            Err(Mismatch::Assignment)
        );
        let both = caps(vec![Capability::AssignmentMethod(
            ASSIGN_HASH | ASSIGN_MASK,
        )]);
        assert_eq!(
            negotiate(Some(&both), &Offer::default(), Some(&g), 10_000)
                .unwrap()
                .group
                .assignment,
            AssignMethod::Mask
        );
        let t = caps(vec![
            Capability::AssignmentMethod(ASSIGN_MASK),
            Capability::TransmitT {
                upper: 0,
                lower: 5_000,
            },
        ]);
        assert_eq!(
            negotiate(Some(&t), &Offer::default(), Some(&g), 10_000),
            Err(Mismatch::TransmitT)
        );
        let s = caps(vec![
            Capability::AssignmentMethod(ASSIGN_MASK),
            Capability::TimerScale {
                timeout_upper: 0,
                timeout_lower: 2,
                ra_upper: 0,
                ra_lower: 1,
            },
        ]);
        assert_eq!(
            negotiate(Some(&s), &Offer::default(), Some(&g), 10_000),
            Err(Mismatch::TimerScale)
        );
    }

    #[test]
    fn timers() {
        let t = caps(vec![Capability::TransmitT {
            upper: 0,
            lower: 5_000,
        }]);
        assert_eq!(
            negotiate(Some(&t), &Offer::default(), None, 10_000)
                .unwrap()
                .group
                .transmit_t_ms,
            5_000
        );
        let far = caps(vec![Capability::TransmitT {
            upper: 0,
            lower: 100,
        }]);
        assert_eq!(
            negotiate(Some(&far), &Offer::default(), None, 10_000),
            Err(Mismatch::TransmitT)
        );
        let range = caps(vec![Capability::TransmitT {
            upper: 60_000,
            lower: 500,
        }]);
        assert_eq!(
            negotiate(Some(&range), &Offer::default(), None, 10_000)
                .unwrap()
                .group
                .transmit_t_ms,
            10_000
        );
        let zero = caps(vec![Capability::TimerScale {
            timeout_upper: 0,
            timeout_lower: 0,
            ra_upper: 0,
            ra_lower: 1,
        }]);
        assert_eq!(
            negotiate(Some(&zero), &Offer::default(), None, 10_000),
            Err(Mismatch::TimerScale)
        );
        let s = caps(vec![Capability::TimerScale {
            timeout_upper: 0,
            timeout_lower: 2,
            ra_upper: 0,
            ra_lower: 3,
        }]);
        let g = negotiate(Some(&s), &Offer::default(), None, 10_000)
            .unwrap()
            .group;
        assert_eq!((g.timeout_scale, g.ra_scale), (2, 3));
        // Unknown capability types are ignored.
        let u = caps(vec![Capability::Unknown {
            kind: 99,
            value: vec![1, 2, 3, 4],
        }]);
        assert!(negotiate(Some(&u), &Offer::default(), None, 10_000).is_ok());
    }

    #[test]
    fn advertisement() {
        let a = advertise(&Offer::default(), None);
        assert_eq!(a.forwarding_method(), Some(3));
        assert_eq!(a.assignment_method(), Some(3));
        assert_eq!(a.packet_return_method(), Some(3));
        assert!(a.elements.contains(&Capability::TransmitT {
            upper: 60_000,
            lower: 500
        }));
        assert!(a.elements.contains(&Capability::TimerScale {
            timeout_upper: 5,
            timeout_lower: 1,
            ra_upper: 5,
            ra_lower: 1
        }));
        let g = GroupMethod {
            assignment: AssignMethod::Hash,
            transmit_t_ms: 10_000,
            timeout_scale: 1,
            ra_scale: 1,
        };
        let a = advertise(&Offer::default(), Some(&g));
        assert_eq!(a.assignment_method(), Some(ASSIGN_HASH));
        assert!(a.elements.contains(&Capability::TransmitT {
            upper: 0,
            lower: 10_000
        }));
        assert!(a.elements.contains(&Capability::TimerScale {
            timeout_upper: 0,
            timeout_lower: 1,
            ra_upper: 0,
            ra_lower: 1
        }));
    }
}
