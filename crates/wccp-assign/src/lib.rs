//! WCCPv2 service model, bucket hash, mask/value matching, assignment algorithms and redirection tables (pure)

#![forbid(unsafe_code)]
