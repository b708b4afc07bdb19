//! `wccpd`: WCCPv2 router and cache agent.
fn main() {}
