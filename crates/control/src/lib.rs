//! Sans-IO WCCPv2 router and cache membership state machines, plus thin UDP drivers

#![forbid(unsafe_code)]
