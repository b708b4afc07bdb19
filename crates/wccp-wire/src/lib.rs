//! WCCPv2 wire formats: messages, components, GRE and the redirect header (no I/O, no dependencies)

#![forbid(unsafe_code)]
