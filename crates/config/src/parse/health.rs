//! `cache.health_check`, validated into [`crate::model::HealthCheck`].

use std::net::SocketAddrV4;

use super::{opt, Ctx};
use crate::error::FieldPath;
use crate::model::*;
use crate::yaml::Value;

const KEYS: &[&str] = &[
    "kind",
    "address",
    "path",
    "interval_ms",
    "timeout_ms",
    "threshold",
];

/// `cache.health_check`: a mapping (`{}` for a TCP check of 127.0.0.1:3129 with every default).
pub(super) fn health_check(ctx: &mut Ctx<'_>, v: Value, path: &FieldPath) -> Option<HealthCheck> {
    if v.is_null() {
        ctx.err(
            path,
            "expected a mapping; write `health_check: {}` for a TCP check of 127.0.0.1:3129",
        );
        return None;
    }
    let before = ctx.problems.len();
    let mut m = ctx.fields(v, path, KEYS)?;
    let kind = match opt::<String>(ctx, &mut m, path, "kind").as_deref() {
        None | Some("tcp") => HealthCheckKind::Tcp,
        Some("http") => HealthCheckKind::Http,
        Some(other) => {
            ctx.err(
                &path.key("kind"),
                format!("unknown kind `{other}`, expected tcp or http"),
            );
            HealthCheckKind::Tcp
        }
    };
    let address = match opt::<String>(ctx, &mut m, path, "address") {
        None => DEFAULT_HEALTH_ADDRESS,
        Some(s) => match s.trim().parse::<SocketAddrV4>() {
            Ok(a) if a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast() => a,
            _ => {
                ctx.err(
                    &path.key("address"),
                    format!("`{s}` is not an IPv4 address and port such as 127.0.0.1:3129"),
                );
                DEFAULT_HEALTH_ADDRESS
            }
        },
    };
    let probe_path = match opt::<String>(ctx, &mut m, path, "path") {
        None => DEFAULT_HEALTH_PATH.to_string(),
        Some(_) if kind != HealthCheckKind::Http => {
            ctx.err(&path.key("path"), "a path needs `kind: http`");
            DEFAULT_HEALTH_PATH.to_string()
        }
        Some(p)
            if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            ctx.err(
                &path.key("path"),
                format!("`{p}` is not a request path (it starts with `/`, no white space)"),
            );
            DEFAULT_HEALTH_PATH.to_string()
        }
        Some(p) => p,
    };
    let interval_ms =
        opt::<u32>(ctx, &mut m, path, "interval_ms").unwrap_or(DEFAULT_HEALTH_INTERVAL_MS);
    let (lo, hi) = HEALTH_INTERVAL_RANGE_MS;
    if !(lo..=hi).contains(&interval_ms) {
        ctx.err(
            &path.key("interval_ms"),
            format!("{interval_ms} is outside {lo}..={hi}"),
        );
    }
    let timeout_ms = opt::<u32>(ctx, &mut m, path, "timeout_ms")
        .unwrap_or_else(|| DEFAULT_HEALTH_TIMEOUT_MS.min(interval_ms));
    if timeout_ms < HEALTH_TIMEOUT_MIN_MS || timeout_ms > interval_ms {
        ctx.err(
            &path.key("timeout_ms"),
            format!(
                "{timeout_ms} is outside {HEALTH_TIMEOUT_MIN_MS}..={interval_ms} (it may not exceed interval_ms)"
            ),
        );
    }
    let threshold = opt::<u32>(ctx, &mut m, path, "threshold").unwrap_or(DEFAULT_HEALTH_THRESHOLD);
    let (lo, hi) = HEALTH_THRESHOLD_RANGE;
    if !(lo..=hi).contains(&threshold) {
        ctx.err(
            &path.key("threshold"),
            format!("{threshold} is outside {lo}..={hi}"),
        );
    }
    (ctx.problems.len() == before).then_some(HealthCheck {
        kind,
        address,
        path: probe_path,
        interval_ms,
        timeout_ms,
        threshold,
    })
}
