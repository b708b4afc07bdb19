//! Mask/value assignment (docs/protocol.md 3.3) and the 2.01 Value Sequence Number mapping (3.4).
//!
//! * [`MaskSet`] / [`ValueElement`]: a Mask/Value Set Element as on the wire (2.17), targets named
//!   by cache address; [`match_sets`] is the reference matcher: for each set in order, mask the
//!   packet's `(src, dst, sport, dport)` and compare with each value in order; the first equal
//!   value wins.
//! * [`VsnMap`]: VSN <-> value tuple for one mask (3.4), and [`expand_alternate`] turning 2.01
//!   Alternate Mask/Value Sets (cache + VSN list) into plain value elements.
//! * [`MaskMatcher`]: the compiled, allocation-free form the data plane uses (per set: octet
//!   lookup tables computing the VSN of a packet, then a direct VSN -> target array).

use core::fmt;

use crate::hash::FlowKey;

/// Four fields as in a Mask Element or the value part of a Value Element (2.17).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MaskTuple {
    /// Source address (mask or value).
    pub src_addr: u32,
    /// Destination address.
    pub dst_addr: u32,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl MaskTuple {
    /// A tuple from its four fields.
    pub const fn new(src_addr: u32, dst_addr: u32, src_port: u16, dst_port: u16) -> Self {
        MaskTuple {
            src_addr,
            dst_addr,
            src_port,
            dst_port,
        }
    }

    /// The packet's fields AND this mask.
    #[inline]
    pub const fn apply(&self, key: &FlowKey) -> MaskTuple {
        MaskTuple {
            src_addr: key.src & self.src_addr,
            dst_addr: key.dst & self.dst_addr,
            src_port: key.sport & self.src_port,
            dst_port: key.dport & self.dst_port,
        }
    }

    /// Number of set bits over the four fields.
    pub const fn bit_count(&self) -> u32 {
        self.src_addr.count_ones()
            + self.dst_addr.count_ones()
            + self.src_port.count_ones()
            + self.dst_port.count_ones()
    }

    /// `true` if every set bit of `self` is also set in `mask`.
    pub const fn within(&self, mask: &MaskTuple) -> bool {
        self.src_addr & !mask.src_addr == 0
            && self.dst_addr & !mask.dst_addr == 0
            && self.src_port & !mask.src_port == 0
            && self.dst_port & !mask.dst_port == 0
    }

    /// The 12 octets in wire order (src addr, dst addr, src port, dst port).
    const fn octets(&self) -> [u8; 12] {
        let s = self.src_addr.to_be_bytes();
        let d = self.dst_addr.to_be_bytes();
        let sp = self.src_port.to_be_bytes();
        let dp = self.dst_port.to_be_bytes();
        [
            s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3], sp[0], sp[1], dp[0], dp[1],
        ]
    }
}

impl From<&wire::MaskElement> for MaskTuple {
    /// The mask of a wire Mask Element (address elements taken as IPv4 masks).
    fn from(m: &wire::MaskElement) -> Self {
        MaskTuple::new(m.src_addr.0, m.dst_addr.0, m.src_port, m.dst_port)
    }
}

/// A Value Element (2.17): a value tuple and the cache that gets matching packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueElement {
    /// The value tuple compared with the masked packet fields.
    pub value: MaskTuple,
    /// The cache address.
    pub cache: u32,
}

/// A Mask/Value Set Element (2.17): one mask and its values, in wire order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MaskSet {
    /// The Mask Element.
    pub mask: MaskTuple,
    /// The Value Elements, first match wins.
    pub values: Vec<ValueElement>,
}

impl From<&wire::MaskValueSet> for MaskSet {
    /// A wire Mask/Value Set Element (address elements taken as IPv4 values).
    fn from(s: &wire::MaskValueSet) -> Self {
        MaskSet {
            mask: MaskTuple::from(&s.mask),
            values: s
                .values
                .iter()
                .map(|v| ValueElement {
                    value: MaskTuple::new(v.src_addr.0, v.dst_addr.0, v.src_port, v.dst_port),
                    cache: v.cache.0,
                })
                .collect(),
        }
    }
}

impl MaskSet {
    /// The wire form of this set.
    pub fn to_wire(&self) -> wire::MaskValueSet {
        wire::MaskValueSet {
            mask: wire::MaskElement {
                src_addr: wire::Addr(self.mask.src_addr),
                dst_addr: wire::Addr(self.mask.dst_addr),
                src_port: self.mask.src_port,
                dst_port: self.mask.dst_port,
            },
            values: self
                .values
                .iter()
                .map(|v| wire::ValueElement {
                    src_addr: wire::Addr(v.value.src_addr),
                    dst_addr: wire::Addr(v.value.dst_addr),
                    src_port: v.value.src_port,
                    dst_port: v.value.dst_port,
                    cache: wire::Addr(v.cache),
                })
                .collect(),
        }
    }
}

/// One Web-Cache Value Element of a 2.01 Alternate Mask/Value Set (2.18).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheVsns {
    /// The cache address.
    pub cache: u32,
    /// The Value Sequence Numbers assigned to it.
    pub vsns: Vec<u32>,
}

/// A 2.01 Alternate Mask/Value Set Element (2.18).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AltMaskSet {
    /// The Mask Element.
    pub mask: MaskTuple,
    /// Per cache, its VSNs.
    pub caches: Vec<CacheVsns>,
}

impl From<&wire::AltMaskValueSet> for AltMaskSet {
    /// A wire 2.01 Alternate Mask/Value Set Element.
    fn from(s: &wire::AltMaskValueSet) -> Self {
        AltMaskSet {
            mask: MaskTuple::from(&s.mask),
            caches: s
                .caches
                .iter()
                .map(|c| CacheVsns {
                    cache: c.cache.0,
                    vsns: c.vsns.clone(),
                })
                .collect(),
        }
    }
}

/// Why mask data cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaskError {
    /// A mask has more than 32 bits set (3.4: total bits across masks <= 32).
    TooManyBits {
        /// Index of the set.
        set: usize,
        /// Number of mask bits.
        bits: u32,
    },
    /// A VSN does not fit the mask's bit count.
    VsnOutOfRange {
        /// Index of the set.
        set: usize,
        /// Index of the cache within the set.
        cache: usize,
        /// The VSN.
        vsn: u32,
        /// Number of mask bits.
        bits: u32,
    },
    /// A value element names a target index that does not exist.
    TargetOutOfRange {
        /// Index of the set.
        set: usize,
        /// Index of the value within the set.
        value: usize,
        /// The target index.
        target: u8,
    },
}

impl fmt::Display for MaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MaskError::TooManyBits { set, bits } => {
                write!(f, "mask set {set}: {bits} mask bits (at most 32)")
            }
            MaskError::VsnOutOfRange {
                set,
                cache,
                vsn,
                bits,
            } => write!(
                f,
                "alternate mask set {set}, cache {cache}: VSN {vsn} out of range for {bits} mask bits"
            ),
            MaskError::TargetOutOfRange { set, value, target } => {
                write!(f, "mask set {set}, value {value}: target index {target} out of range")
            }
        }
    }
}

impl std::error::Error for MaskError {}

/// Reference matcher (3.3): the first value element, over the sets in order, whose value equals
/// the packet's fields masked by its set's mask. `None`: forward normally.
pub fn match_sets<'a>(sets: &'a [MaskSet], key: &FlowKey) -> Option<&'a ValueElement> {
    sets.iter().find_map(|s| {
        let m = s.mask.apply(key);
        s.values.iter().find(|v| v.value == m)
    })
}

/// Which field a VSN bit comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    DstPort,
    SrcPort,
    DstAddr,
    SrcAddr,
}

/// The VSN <-> value mapping of one mask (docs/protocol.md 3.4, R1 7).
///
/// The set bits of the masks are collected in the order: destination-port mask bits 0..15, then
/// source-port mask bits 0..15, then destination-address mask bits 0..31, then source-address mask
/// bits 0..31 (LSB first within each). The i-th collected bit is VSN bit i.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsnMap {
    bits: Vec<(Field, u8)>,
}

impl VsnMap {
    /// The mapping for `mask`.
    ///
    /// # Errors
    /// [`MaskError::TooManyBits`] (with `set: 0`) when the mask has more than 32 bits.
    pub fn new(mask: &MaskTuple) -> Result<VsnMap, MaskError> {
        let n = mask.bit_count();
        if n > 32 {
            return Err(MaskError::TooManyBits { set: 0, bits: n });
        }
        let mut bits = Vec::with_capacity(n as usize);
        let fields = [
            (Field::DstPort, u32::from(mask.dst_port), 16u8),
            (Field::SrcPort, u32::from(mask.src_port), 16),
            (Field::DstAddr, mask.dst_addr, 32),
            (Field::SrcAddr, mask.src_addr, 32),
        ];
        for (f, m, width) in fields {
            for b in 0..width {
                if m >> b & 1 == 1 {
                    bits.push((f, b));
                }
            }
        }
        Ok(VsnMap { bits })
    }

    /// Number of mask bits (VSNs range over `0 .. 2^bits`).
    pub fn bits(&self) -> u32 {
        self.bits.len() as u32
    }

    /// Number of distinct VSNs, `2^bits` (as u64 because 32 bits give 2^32).
    pub fn len(&self) -> u64 {
        1u64 << self.bits.len()
    }

    /// Always `false`: even a zero mask has the one VSN 0.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The value tuple of `vsn`, or `None` when `vsn >= 2^bits`.
    pub fn value_of(&self, vsn: u32) -> Option<MaskTuple> {
        if u64::from(vsn) >= self.len() {
            return None;
        }
        let mut t = MaskTuple::default();
        for (i, &(f, b)) in self.bits.iter().enumerate() {
            if vsn >> i & 1 == 1 {
                match f {
                    Field::DstPort => t.dst_port |= 1 << b,
                    Field::SrcPort => t.src_port |= 1 << b,
                    Field::DstAddr => t.dst_addr |= 1 << b,
                    Field::SrcAddr => t.src_addr |= 1 << b,
                }
            }
        }
        Some(t)
    }

    /// The VSN of a value tuple (bits outside the mask are ignored).
    pub fn vsn_of(&self, value: &MaskTuple) -> u32 {
        let mut vsn = 0u32;
        for (i, &(f, b)) in self.bits.iter().enumerate() {
            let bit = match f {
                Field::DstPort => u32::from(value.dst_port) >> b,
                Field::SrcPort => u32::from(value.src_port) >> b,
                Field::DstAddr => value.dst_addr >> b,
                Field::SrcAddr => value.src_addr >> b,
            } & 1;
            vsn |= bit << i;
        }
        vsn
    }
}

/// Expands 2.01 Alternate Mask/Value Sets into plain sets: every (cache, VSN) becomes a value
/// element, in wire order. A VSN listed for two caches goes to the first (2.18 says each VSN
/// belongs to at most one cache; first-match matching makes the first listing win).
///
/// # Errors
/// [`MaskError::TooManyBits`] or [`MaskError::VsnOutOfRange`] naming the set and cache.
pub fn expand_alternate(sets: &[AltMaskSet]) -> Result<Vec<MaskSet>, MaskError> {
    let mut out = Vec::with_capacity(sets.len());
    for (si, s) in sets.iter().enumerate() {
        let map = VsnMap::new(&s.mask).map_err(|e| match e {
            MaskError::TooManyBits { bits, .. } => MaskError::TooManyBits { set: si, bits },
            other => other,
        })?;
        let mut values = Vec::new();
        for (ci, c) in s.caches.iter().enumerate() {
            for &vsn in &c.vsns {
                let value = map.value_of(vsn).ok_or(MaskError::VsnOutOfRange {
                    set: si,
                    cache: ci,
                    vsn,
                    bits: map.bits(),
                })?;
                values.push(ValueElement {
                    value,
                    cache: c.cache,
                });
            }
        }
        out.push(MaskSet {
            mask: s.mask,
            values,
        });
    }
    Ok(out)
}

/// Target index meaning "no value matched" inside [`MaskMatcher`].
const NO_TARGET: u8 = 0xFF;

/// Largest mask (in bits) compiled into a direct VSN -> target array (64 KiB); wider masks use a
/// linear scan.
const DIRECT_MAX_BITS: u32 = 16;

/// One compiled set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CompiledSet {
    mask: MaskTuple,
    /// Per octet of the masked tuple that has mask bits: (octet index, VSN contribution per
    /// octet value).
    luts: Vec<(u8, Box<[u32; 256]>)>,
    kind: SetKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SetKind {
    /// Index = VSN, entry = target or [`NO_TARGET`].
    Direct(Box<[u8]>),
    /// (value, target) in wire order.
    Linear(Vec<(MaskTuple, u8)>),
}

/// Compiled mask/value sets (3.3) with targets as indexes: allocation-free lookup.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MaskMatcher {
    sets: Vec<CompiledSet>,
}

impl MaskMatcher {
    /// Compiles `sets`, each value given as (value tuple, target index < `n_targets`).
    ///
    /// # Errors
    /// [`MaskError::TooManyBits`] or [`MaskError::TargetOutOfRange`] naming the set and value.
    pub fn new(
        sets: &[(MaskTuple, Vec<(MaskTuple, u8)>)],
        n_targets: usize,
    ) -> Result<MaskMatcher, MaskError> {
        let mut out = Vec::with_capacity(sets.len());
        for (si, (mask, values)) in sets.iter().enumerate() {
            let bits = mask.bit_count();
            if bits > 32 {
                return Err(MaskError::TooManyBits { set: si, bits });
            }
            if let Some((vi, &(_, t))) = values
                .iter()
                .enumerate()
                .find(|(_, (_, t))| usize::from(*t) >= n_targets || *t == NO_TARGET)
            {
                return Err(MaskError::TargetOutOfRange {
                    set: si,
                    value: vi,
                    target: t,
                });
            }
            let map = VsnMap::new(mask).map_err(|_| MaskError::TooManyBits { set: si, bits })?;
            let kind = if bits <= DIRECT_MAX_BITS {
                let mut direct = vec![NO_TARGET; 1usize << bits].into_boxed_slice();
                for &(v, t) in values {
                    // A value with bits outside the mask can never equal a masked packet.
                    if !v.within(mask) {
                        continue;
                    }
                    let slot = &mut direct[map.vsn_of(&v) as usize];
                    if *slot == NO_TARGET {
                        *slot = t;
                    }
                }
                SetKind::Direct(direct)
            } else {
                SetKind::Linear(values.clone())
            };
            let luts = if matches!(kind, SetKind::Direct(_)) {
                build_luts(mask, &map)
            } else {
                Vec::new()
            };
            out.push(CompiledSet {
                mask: *mask,
                luts,
                kind,
            });
        }
        Ok(MaskMatcher { sets: out })
    }

    /// The target of the first matching value (3.3), or `None` (forward normally).
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u8> {
        for s in &self.sets {
            let m = s.mask.apply(key);
            match &s.kind {
                SetKind::Direct(direct) => {
                    let o = m.octets();
                    let mut vsn = 0u32;
                    for (i, lut) in &s.luts {
                        vsn |= lut[usize::from(o[usize::from(*i)])];
                    }
                    match direct.get(vsn as usize) {
                        Some(&t) if t != NO_TARGET => return Some(t),
                        _ => {}
                    }
                }
                SetKind::Linear(values) => {
                    if let Some(&(_, t)) = values.iter().find(|(v, _)| *v == m) {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    /// Number of sets.
    pub fn set_count(&self) -> usize {
        self.sets.len()
    }

    /// Calls `f(target)` once per VSN slot / value element that redirects (for per-target
    /// counts in status output).
    pub fn for_each_target(&self, mut f: impl FnMut(u8)) {
        for s in &self.sets {
            match &s.kind {
                SetKind::Direct(d) => d.iter().filter(|&&t| t != NO_TARGET).for_each(|&t| f(t)),
                SetKind::Linear(v) => v.iter().for_each(|&(_, t)| f(t)),
            }
        }
    }
}

/// Per non-zero mask octet, the VSN bits contributed by each possible octet value.
fn build_luts(mask: &MaskTuple, map: &VsnMap) -> Vec<(u8, Box<[u32; 256]>)> {
    let mo = mask.octets();
    let mut luts = Vec::new();
    for (i, &m) in mo.iter().enumerate() {
        if m == 0 {
            continue;
        }
        let mut lut = Box::new([0u32; 256]);
        for (v, slot) in lut.iter_mut().enumerate() {
            let mut o = [0u8; 12];
            o[i] = v as u8 & m;
            let t = MaskTuple::new(
                u32::from_be_bytes([o[0], o[1], o[2], o[3]]),
                u32::from_be_bytes([o[4], o[5], o[6], o[7]]),
                u16::from_be_bytes([o[8], o[9]]),
                u16::from_be_bytes([o[10], o[11]]),
            );
            *slot = map.vsn_of(&t);
        }
        luts.push((i as u8, lut));
    }
    luts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tv9_mask() -> MaskTuple {
        MaskTuple::new(0x100, 0x3, 0, 0x1)
    }

    #[test]
    fn tv9_vsn_mapping() {
        let m = VsnMap::new(&tv9_mask()).unwrap();
        assert_eq!(m.bits(), 4);
        assert_eq!(m.len(), 16);
        assert_eq!(m.value_of(5), Some(MaskTuple::new(0, 0x2, 0, 0x1)));
        assert_eq!(m.value_of(8), Some(MaskTuple::new(0x100, 0, 0, 0)));
        assert_eq!(m.value_of(15), Some(MaskTuple::new(0x100, 0x3, 0, 0x1)));
        assert_eq!(m.value_of(16), None);
        for v in 0..16 {
            assert_eq!(m.vsn_of(&m.value_of(v).unwrap()), v);
        }
    }

    fn set_bits(x: u32) -> Vec<u32> {
        (0..32).filter(|b| x >> b & 1 == 1).collect()
    }

    #[test]
    fn tv9_da_masks() {
        let m = VsnMap::new(&MaskTuple::new(0, 0x1741, 0, 0)).unwrap();
        assert_eq!(m.len(), 64);
        let all: u32 = (0..64)
            .map(|v| m.value_of(v).unwrap().dst_addr)
            .fold(0, |a, b| a | b);
        assert_eq!(set_bits(all), vec![0, 6, 8, 9, 10, 12]);
        // VSN bit i is the i-th mask bit.
        assert_eq!(m.value_of(1).unwrap().dst_addr, 1 << 0);
        assert_eq!(m.value_of(2).unwrap().dst_addr, 1 << 6);
        assert_eq!(m.value_of(32).unwrap().dst_addr, 1 << 12);
        let m = VsnMap::new(&MaskTuple::new(0, 0x526, 0, 0)).unwrap();
        assert_eq!(m.len(), 32);
        let order: Vec<u32> = (0..5)
            .map(|i| m.value_of(1 << i).unwrap().dst_addr)
            .collect();
        assert_eq!(order, vec![1 << 1, 1 << 2, 1 << 5, 1 << 8, 1 << 10]);
    }

    #[test]
    fn too_many_bits() {
        assert!(VsnMap::new(&MaskTuple::new(u32::MAX, 0, 0, 0)).is_ok());
        assert_eq!(
            VsnMap::new(&MaskTuple::new(u32::MAX, 1, 0, 0)),
            Err(MaskError::TooManyBits { set: 0, bits: 33 })
        );
        let full = VsnMap::new(&MaskTuple::new(u32::MAX, 0, 0, 0)).unwrap();
        assert_eq!(
            full.value_of(u32::MAX),
            Some(MaskTuple::new(u32::MAX, 0, 0, 0))
        );
    }

    #[test]
    fn reference_matcher_first_match_wins() {
        let sets = vec![
            MaskSet {
                mask: MaskTuple::new(0, 0x1, 0, 0),
                values: vec![
                    ValueElement {
                        value: MaskTuple::new(0, 1, 0, 0),
                        cache: 10,
                    },
                    ValueElement {
                        value: MaskTuple::new(0, 1, 0, 0),
                        cache: 11,
                    },
                ],
            },
            MaskSet {
                mask: MaskTuple::new(0, 0, 0, 0xFFFF),
                values: vec![ValueElement {
                    value: MaskTuple::new(0, 0, 0, 0),
                    cache: 12,
                }],
            },
        ];
        // Odd destination: first set, first value.
        assert_eq!(
            match_sets(&sets, &FlowKey::new(0, 3, 1, 2)).unwrap().cache,
            10
        );
        // Even destination, no port: second set (ports are 0 without a transport header).
        assert_eq!(
            match_sets(&sets, &FlowKey::new(0, 2, 0, 0)).unwrap().cache,
            12
        );
        // Even destination with a port: nothing.
        assert!(match_sets(&sets, &FlowKey::new(0, 2, 0, 80)).is_none());
    }

    #[test]
    fn expand_alternate_sets() {
        let alt = vec![AltMaskSet {
            mask: tv9_mask(),
            caches: vec![
                CacheVsns {
                    cache: 1,
                    vsns: vec![5, 8],
                },
                CacheVsns {
                    cache: 2,
                    vsns: vec![15, 5],
                },
            ],
        }];
        let sets = expand_alternate(&alt).unwrap();
        assert_eq!(sets.len(), 1);
        let v: Vec<(MaskTuple, u32)> = sets[0].values.iter().map(|v| (v.value, v.cache)).collect();
        assert_eq!(
            v,
            vec![
                (MaskTuple::new(0, 2, 0, 1), 1),
                (MaskTuple::new(0x100, 0, 0, 0), 1),
                (MaskTuple::new(0x100, 3, 0, 1), 2),
                (MaskTuple::new(0, 2, 0, 1), 2),
            ]
        );
        // VSN 5 (DA 2, DP 1) goes to the first cache listing it.
        let k = FlowKey::new(0, 0xFE, 0, 0xF1);
        assert_eq!(match_sets(&sets, &k).unwrap().cache, 1);
        let bad = vec![AltMaskSet {
            mask: tv9_mask(),
            caches: vec![
                CacheVsns {
                    cache: 1,
                    vsns: vec![1],
                },
                CacheVsns {
                    cache: 2,
                    vsns: vec![16],
                },
            ],
        }];
        assert_eq!(
            expand_alternate(&bad),
            Err(MaskError::VsnOutOfRange {
                set: 0,
                cache: 1,
                vsn: 16,
                bits: 4
            })
        );
    }

    #[test]
    fn wire_conversions() {
        let w = wire::MaskValueSet {
            mask: wire::MaskElement {
                src_addr: wire::Addr(0),
                dst_addr: wire::Addr(0x1741),
                src_port: 0,
                dst_port: 0,
            },
            values: vec![wire::ValueElement {
                src_addr: wire::Addr(0),
                dst_addr: wire::Addr(0x40),
                src_port: 0,
                dst_port: 0,
                cache: wire::Addr(0x0ac8_0002),
            }],
        };
        let s = MaskSet::from(&w);
        assert_eq!(s.mask, MaskTuple::new(0, 0x1741, 0, 0));
        assert_eq!(s.values[0].value.dst_addr, 0x40);
        assert_eq!(s.values[0].cache, 0x0ac8_0002);
        assert_eq!(s.to_wire(), w);
        let alt = wire::AltMaskValueSet {
            mask: w.mask,
            caches: vec![wire::CacheValueElement {
                cache: wire::Addr(7),
                vsns: vec![0, 63],
            }],
        };
        let a = AltMaskSet::from(&alt);
        let e = expand_alternate(&[a]).unwrap();
        assert_eq!(e[0].values[1].value.dst_addr, 0x1741);
        assert_eq!(e[0].values[1].cache, 7);
    }

    #[test]
    fn matcher_validates_targets() {
        let sets = vec![(
            MaskTuple::new(0, 1, 0, 0),
            vec![(MaskTuple::new(0, 1, 0, 0), 2)],
        )];
        assert_eq!(
            MaskMatcher::new(&sets, 2),
            Err(MaskError::TargetOutOfRange {
                set: 0,
                value: 0,
                target: 2
            })
        );
        assert!(MaskMatcher::new(&sets, 3).is_ok());
    }

    #[test]
    fn matcher_value_outside_mask_never_matches() {
        let sets = vec![(
            MaskTuple::new(0, 0x1, 0, 0),
            vec![
                (MaskTuple::new(0, 0x3, 0, 0), 0),
                (MaskTuple::new(0, 0x1, 0, 0), 1),
            ],
        )];
        let m = MaskMatcher::new(&sets, 2).unwrap();
        assert_eq!(m.lookup(&FlowKey::new(0, 3, 0, 0)), Some(1));
        assert_eq!(m.lookup(&FlowKey::new(0, 2, 0, 0)), None);
    }

    fn arb_tuple() -> impl Strategy<Value = MaskTuple> {
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>())
            .prop_map(|(a, b, c, d)| MaskTuple::new(a, b, c, d))
    }

    /// A mask with at most `max` bits, drawn from all four fields.
    fn arb_mask(max: usize) -> impl Strategy<Value = MaskTuple> {
        proptest::collection::vec(0u32..96, 0..=max).prop_map(|bits| {
            let mut m = MaskTuple::default();
            for b in bits {
                match b {
                    0..=31 => m.src_addr |= 1 << b,
                    32..=63 => m.dst_addr |= 1 << (b - 32),
                    64..=79 => m.src_port |= 1 << (b - 64),
                    _ => m.dst_port |= 1 << (b - 80),
                }
            }
            m
        })
    }

    proptest! {
        /// VSN -> value -> VSN is the identity, and every value lies inside the mask.
        #[test]
        fn vsn_round_trip(mask in arb_mask(32), vsn: u32) {
            let m = VsnMap::new(&mask).unwrap();
            let vsn = if m.len() > u64::from(u32::MAX) { vsn } else { vsn % m.len() as u32 };
            let v = m.value_of(vsn).unwrap();
            prop_assert!(v.within(&mask));
            prop_assert_eq!(v.bit_count(), vsn.count_ones());
            prop_assert_eq!(m.vsn_of(&v), vsn);
        }

        /// The compiled matcher agrees with the reference matcher, direct and linear sets alike.
        #[test]
        fn matcher_equals_reference(
            masks in proptest::collection::vec(arb_mask(20), 1..4),
            raw_values in proptest::collection::vec((0usize..4, arb_tuple(), 0u8..4, any::<bool>()), 0..40),
            keys in proptest::collection::vec(arb_tuple(), 1..40),
        ) {
            let mut sets: Vec<MaskSet> =
                masks.iter().map(|m| MaskSet { mask: *m, values: vec![] }).collect();
            let n = sets.len();
            for (si, v, t, inside) in raw_values {
                let s = &mut sets[si % n];
                // Mostly values inside the mask (the only ones that can match).
                let value = if inside {
                    MaskTuple::new(v.src_addr & s.mask.src_addr, v.dst_addr & s.mask.dst_addr,
                        v.src_port & s.mask.src_port, v.dst_port & s.mask.dst_port)
                } else { v };
                s.values.push(ValueElement { value, cache: u32::from(t) });
            }
            let compiled: Vec<(MaskTuple, Vec<(MaskTuple, u8)>)> = sets.iter()
                .map(|s| (s.mask, s.values.iter().map(|v| (v.value, v.cache as u8)).collect()))
                .collect();
            let m = MaskMatcher::new(&compiled, 4).unwrap();
            for k in keys {
                // Keys built from the values so that matches actually happen.
                for probe in [
                    FlowKey::new(k.src_addr, k.dst_addr, k.src_port, k.dst_port),
                ].into_iter().chain(sets.iter().flat_map(|s| s.values.iter()).take(8).map(|v|
                    FlowKey::new(v.value.src_addr | (k.src_addr & 0x8000_0000),
                        v.value.dst_addr, v.value.src_port, v.value.dst_port))) {
                    let want = match_sets(&sets, &probe).map(|v| v.cache as u8);
                    prop_assert_eq!(m.lookup(&probe), want);
                }
            }
        }
    }
}
