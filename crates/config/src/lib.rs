//! wccpd configuration: YAML schema, validation with line/column errors.
//!
//! Files are parsed into raw serde structures (`deny_unknown_fields`), then validated into the
//! typed [`RouterSettings`] / [`CacheSettings`]. Validation never stops at the first problem:
//! every problem is collected into [`ConfigError::Invalid`], each naming its field path
//! (`router.services[1].password`) and the line and column of the offending key.
//!
//! The schema is documented in `docs/configuration.md`.

#![forbid(unsafe_code)]
// Peer input and configuration are errors, never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod error;
mod locate;
mod model;
mod parse;

use std::path::Path;

pub use error::{ConfigError, FieldPath, Problem, Segment};
pub use model::*;

/// The YAML implementation. `serde_yaml` is deprecated upstream; swapping to a fork
/// (`serde_yaml_ng`) is this one line.
mod yaml {
    pub(crate) use serde_yaml::{from_str, Value};
}

/// Deserializes YAML text into any serde type (the single entry point to the YAML library).
pub fn from_yaml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        ConfigError::Invalid(vec![Problem {
            path: FieldPath::default(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }])
    })
}

/// Parses and validates a router configuration.
pub fn router_from_str(text: &str) -> Result<RouterSettings, ConfigError> {
    let mut ctx = parse::Ctx::new(text);
    let settings = parse::parse_value(&mut ctx, text).and_then(|v| parse::router(&mut ctx, v));
    finish(settings, ctx.problems)
}

/// Parses and validates a cache configuration.
pub fn cache_from_str(text: &str) -> Result<CacheSettings, ConfigError> {
    let mut ctx = parse::Ctx::new(text);
    let settings = parse::parse_value(&mut ctx, text).and_then(|v| parse::cache(&mut ctx, v));
    finish(settings, ctx.problems)
}

/// Reads and validates a router configuration file.
pub fn load_router(path: &Path) -> Result<RouterSettings, ConfigError> {
    router_from_str(&read(path)?)
}

/// Reads and validates a cache configuration file.
pub fn load_cache(path: &Path) -> Result<CacheSettings, ConfigError> {
    cache_from_str(&read(path)?)
}

/// Which daemon a configuration file is for (its top-level section).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Has a `router:` section.
    Router,
    /// Has a `cache:` section.
    Cache,
}

/// Tells a router file from a cache file by its top-level key, without validating it.
pub fn kind_of(text: &str) -> Option<Kind> {
    let v: yaml::Value = yaml::from_str(text).ok()?;
    let m = v.as_mapping()?;
    if m.contains_key("router") {
        Some(Kind::Router)
    } else if m.contains_key("cache") {
        Some(Kind::Cache)
    } else {
        None
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn finish<T>(settings: Option<T>, mut problems: Vec<Problem>) -> Result<T, ConfigError> {
    match settings {
        Some(s) if problems.is_empty() => Ok(s),
        _ => {
            if problems.is_empty() {
                problems.push(Problem {
                    path: FieldPath::default(),
                    line: None,
                    column: None,
                    message: "invalid configuration".into(),
                });
            }
            problems.sort_by_key(|p| (p.line.unwrap_or(0), p.column.unwrap_or(0)));
            Err(ConfigError::Invalid(problems))
        }
    }
}
