//! WCCPv2 wire formats (versions 2.00 and 2.01): messages, components, GRE and the redirect
//! header, and MD5 message authentication. No I/O, no `unsafe`, and only `no_std` dependencies
//! (RustCrypto's `md-5` for the digest).
//!
//! # What this crate is for
//!
//! A byte-exact codec for the control plane (`HERE_I_AM`, `I_SEE_YOU`, `REDIRECT_ASSIGN`,
//! `REMOVAL_QUERY`) and zero-copy header views for the data plane (GRE, the WCCP redirect header,
//! IPv4). It never does I/O, never allocates in the header views, and never panics on input.
//!
//! # Contract
//!
//! * Two levels, as in smoltcp: zero-copy `Packet<T: AsRef<[u8]>>` views (`new_unchecked`,
//!   `new_checked`, `check_len`, `into_inner`; getters on `AsRef`, setters on `AsMut`) and owned
//!   `Repr` types with `parse` / `emit` / `buffer_len`.
//! * **If `check_len()` returned `Ok`, no accessor of that view panics.** Parse untrusted input
//!   only through `new_checked` or a `Repr::parse` (which does so internally); every malformed
//!   input is an [`Error`] naming the layer, field and offset, never a panic.
//! * **Emit into a buffer of exactly `buffer_len()` octets.** Message and component `emit`
//!   return [`Error::BufferLength`] otherwise; header `emit`s (GRE, redirect, IPv4) panic on a
//!   short buffer (documented per method).
//! * Messages are emitted in the canonical component order (docs/protocol.md §1.4). Parsing skips
//!   unknown components by length and, for duplicated components, **the first occurrence wins**.
//! * Addresses are kept as raw 4-octet [`Addr`] element values; with a 2.01 Address Table they
//!   are 1-based indices, resolved by [`Addr::resolve`].
//! * MD5: [`sign`] after emitting, [`verify`] / [`authenticate`] before parsing.
//!
//! # Example
//!
//! ```
//! use wccp_wire::{Message, MessageRepr, RemovalQuery, RouterQueryInfo, Security, ServiceInfo, Version};
//! let rq = RemovalQuery {
//!     version: Version::V2_00,
//!     security: Security::MD5_UNSIGNED,
//!     service: ServiceInfo::standard(0),
//!     query: RouterQueryInfo::default(),
//!     address_table: None,
//! };
//! let mut bytes = rq.to_vec()?;
//! wccp_wire::sign(&mut bytes, b"secret")?;
//! wccp_wire::verify(&bytes, b"secret")?;
//! assert_eq!(Message::parse(&bytes)?.msg_type().as_str(), "REMOVAL_QUERY");
//! # Ok::<(), wccp_wire::Error>(())
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Peer input and configuration are errors, never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

extern crate alloc;

#[macro_use]
mod view;

pub mod addr;
pub mod arp;
pub mod auth;
pub mod checksum;
pub mod component;
pub mod cursor;
pub mod error;
pub mod ethernet;
pub mod gre;
pub mod ipv4;
pub mod l4;
pub mod message;
pub mod redirect_header;

/// Field ranges used by the private `field` modules.
pub(crate) mod field {
    pub type Field = core::ops::Range<usize>;
}

pub use addr::Addr;
pub use auth::{authenticate, sign, verify};
pub use component::identity::ExtendedData;
pub use component::{
    AddressTable, AltAssignmentBody, AltMaskValueSet, AlternateAssignment, AlternateAssignmentMap,
    AssignmentData, AssignmentInfo, AssignmentKey, AssignmentMap, CacheValueElement, Capabilities,
    Capability, Command, CommandExtension, Component, ComponentRepr, ComponentType, Components,
    HashAssignmentData, HashBuckets, IdentityFlags, MaskAssignmentData, MaskElement, MaskValueSet,
    RouterAssignment, RouterIdElement, RouterIdentityInfo, RouterQueryInfo, RouterViewInfo,
    Security, ServiceFlags, ServiceInfo, ServiceType, ValueElement, WebCacheIdentity,
    WebCacheIdentityInfo, WebCacheViewInfo,
};
pub use cursor::{Cursor, CursorMut};
pub use error::{Error, FieldId, Layer};
pub use gre::{decap_wccp, write_wccp_encap, GreRepr, Packet as GrePacket, WccpPayload};
pub use ipv4::{Ipv4Repr, Packet as Ipv4Packet};
pub use message::{
    Assignment, HereIAm, ISeeYou, Message, MessageRepr, MessageType, Packet as MessagePacket,
    RedirectAssign, RemovalQuery, Version,
};
pub use redirect_header::{Packet as RedirectPacket, RedirectFlags, RedirectHeader};
