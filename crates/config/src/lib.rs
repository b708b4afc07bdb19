//! wccpd configuration: YAML schema, validation with line/column errors

#![forbid(unsafe_code)]
