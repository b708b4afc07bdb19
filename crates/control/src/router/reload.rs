//! Hot reload: [`Router::reconfigure`] applies a new [`RouterConfig`] to a running router,
//! service by service, without losing the state of what did not change.
//!
//! ```text
//!  new config ─> validate ─> addresses / Router ID changed? ─> NeedsRestart (nothing applied)
//!             ─> per service, in the new order:
//!                  new                      ─> created empty (a closed one publishes its drop table)
//!                  gone                     ─> table withdrawn (Publish None), state forgotten
//!                  definition / offer / T   ─> replaced: withdrawn, then created empty
//!                  password / group list /  ─> updated in place: the Router View stays; caches
//!                  closed                       outside the new group list become not usable
//!                                               (a membership change), usable caches must pass
//!                                               the new password with their next message, and
//!                                               the table is republished with the closed flag
//! ```
//!
//! A password change does not evict anyone at once: caches and router are rarely reconfigured
//! at the same instant, and a cache already given the new password keeps its buckets. Every
//! cache usable at the reload is marked; its next message either authenticates with the new
//! password (the mark goes) or fails, and then, unlike a forged message against an
//! authenticated member, it makes the cache not usable (`md5_failure`). A cache that sends
//! nothing times out as usual. (While marked, a forged message from the cache's address can
//! evict it too; it rejoins with its next authenticated HERE_I_AM.)

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, RouterConfig, ServiceConfig};
use super::group::{Ctx, Group};
use super::Router;
use crate::Instant;

/// What a reload changed in the router's service groups.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadSummary {
    /// Services created (`"dynamic 80"`).
    pub added: Vec<String>,
    /// Services removed: their tables were withdrawn.
    pub removed: Vec<String>,
    /// Services kept, with what changed.
    pub updated: Vec<ServiceUpdate>,
}

impl ReloadSummary {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.updated.is_empty()
    }
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no service changed");
        }
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", self.removed.join(", ")));
        }
        for u in &self.updated {
            parts.push(u.to_string());
        }
        f.write_str(&parts.join("; "))
    }
}

/// One service kept across a reload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceUpdate {
    /// The service (`"standard 0"`).
    pub service: String,
    /// What changed: `definition`, `offer`, `timer`, `password`, `allowed_caches`, `closed`.
    pub changed: Vec<String>,
    /// The definition, offer or timer changed: the group was started afresh (its caches
    /// join again).
    pub replaced: bool,
    /// Caches outside the new group list, now not usable (`not_allowed`).
    pub not_allowed: Vec<Ipv4Addr>,
    /// Usable caches that must authenticate with the new password in their next message.
    pub reauthenticate: Vec<Ipv4Addr>,
}

impl fmt::Display for ServiceUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.service, self.changed.join(", "))?;
        if self.replaced {
            f.write_str(" (group restarted)")?;
        }
        if !self.not_allowed.is_empty() {
            write!(
                f,
                " ({} cache(s) no longer allowed)",
                self.not_allowed.len()
            )?;
        }
        if !self.reauthenticate.is_empty() {
            write!(
                f,
                " ({} cache(s) must re-authenticate)",
                self.reauthenticate.len()
            )?;
        }
        Ok(())
    }
}

/// Why [`Router::reconfigure`] applied nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadError {
    /// The new configuration is invalid.
    Invalid(ConfigError),
    /// Something that only a restart can change differs (each entry names it).
    NeedsRestart(Vec<String>),
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReloadError::Invalid(e) => write!(f, "invalid configuration: {e}"),
            ReloadError::NeedsRestart(what) => {
                write!(f, "needs a restart: {}", what.join(", "))
            }
        }
    }
}

impl std::error::Error for ReloadError {}

/// Differences between two configurations of one service, by name.
fn changed_fields(old: &ServiceConfig, new: &ServiceConfig) -> Vec<String> {
    let mut v = Vec::new();
    let mut diff = |differs: bool, name: &str| {
        if differs {
            v.push(name.to_owned());
        }
    };
    diff(old.definition != new.definition, "definition");
    diff(old.offer != new.offer, "offer");
    diff(old.timer_base != new.timer_base, "timer");
    diff(old.password != new.password, "password");
    diff(old.allowed_caches != new.allowed_caches, "allowed_caches");
    diff(old.closed != new.closed, "closed");
    v
}

/// Whether a change of these fields starts the group afresh.
fn replaces(changed: &[String]) -> bool {
    changed
        .iter()
        .any(|c| matches!(c.as_str(), "definition" | "offer" | "timer"))
}

impl Router {
    /// Applies `cfg` to the running router (hot reload). Services are matched by key; what did
    /// not change keeps its state, and a service whose table does not change is not
    /// republished (see the module documentation for each kind of change). Outputs (table
    /// publications, unsolicited I_SEE_YOUs after a membership change) are queued as after any
    /// input.
    ///
    /// # Errors
    /// [`ReloadError::Invalid`] when `cfg` does not validate, [`ReloadError::NeedsRestart`]
    /// when the addresses or the Router ID differ (the driver has bound its sockets on them).
    /// Either way nothing is changed.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        cfg: RouterConfig,
    ) -> Result<ReloadSummary, ReloadError> {
        cfg.validate().map_err(ReloadError::Invalid)?;
        let mut restart = Vec::new();
        if cfg.addresses != self.addresses {
            restart.push("router addresses".to_owned());
        }
        if cfg.router_id != self.router_id {
            restart.push("router id".to_owned());
        }
        if !restart.is_empty() {
            return Err(ReloadError::NeedsRestart(restart));
        }
        self.last_now = self.last_now.max(now);
        let mut ctx = Ctx {
            now: self.last_now,
            out: &mut self.out,
            addresses: &self.addresses,
            router_id: self.router_id,
            limiter: &mut self.limiter,
        };
        let mut old = std::mem::take(&mut self.groups);
        let mut groups = Vec::with_capacity(cfg.services.len());
        let mut summary = ReloadSummary::default();
        for s in cfg.services {
            let Some(i) = old.iter().position(|g| g.key() == s.key) else {
                summary.added.push(s.key.to_string());
                let mut g = Group::new(s);
                g.initial_publish(&mut ctx);
                groups.push(g);
                continue;
            };
            let mut g = old.remove(i);
            let changed = changed_fields(&g.cfg, &s);
            if changed.is_empty() {
                groups.push(g);
            } else if replaces(&changed) {
                g.withdraw(&mut ctx);
                let mut fresh = Group::new(s);
                fresh.initial_publish(&mut ctx);
                summary.updated.push(ServiceUpdate {
                    service: fresh.key().to_string(),
                    changed,
                    replaced: true,
                    ..ServiceUpdate::default()
                });
                groups.push(fresh);
            } else {
                let (not_allowed, reauthenticate) = g.reconfigure(&mut ctx, s);
                summary.updated.push(ServiceUpdate {
                    service: g.key().to_string(),
                    changed,
                    replaced: false,
                    not_allowed,
                    reauthenticate,
                });
                groups.push(g);
            }
        }
        for mut g in old {
            g.withdraw(&mut ctx);
            summary.removed.push(g.key().to_string());
        }
        self.groups = groups;
        Ok(summary)
    }
}
