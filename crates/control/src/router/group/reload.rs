//! A service group's side of a hot reload ([`crate::router::Router::reconfigure`]): a new
//! password, group list or closed flag applied in place, the table withdrawn when the group
//! goes, and the re-authentication a password change asks of the caches already usable.

use std::net::Ipv4Addr;

use super::super::config::ServiceConfig;
use super::{Ctx, Group};
use crate::router::NotUsable;
use crate::Output;

impl Group {
    /// Applies a configuration with the same key, definition, offer and timer base: keeps the
    /// Router View, re-evaluates the caches and republishes the table (the closed flag).
    /// Returns the caches made not usable by the new group list and the usable caches that
    /// must authenticate with the new password.
    pub(in crate::router) fn reconfigure(
        &mut self,
        ctx: &mut Ctx<'_>,
        cfg: ServiceConfig,
    ) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
        let password_changed = self.cfg.password != cfg.password;
        self.cfg = cfg;
        let mut reauthenticate = Vec::new();
        if password_changed {
            for c in self
                .caches
                .values()
                .filter(|c| c.usable && c.gone_at.is_none())
            {
                self.reauth.insert(c.addr);
                reauthenticate.push(c.addr);
            }
        }
        let allowed = &self.cfg.allowed_caches;
        let outside: Vec<Ipv4Addr> = self
            .caches
            .values()
            .filter(|c| c.gone_at.is_none())
            .filter(|c| !allowed.is_empty() && !allowed.iter().any(|p| p.contains(&c.addr)))
            .map(|c| c.addr)
            .collect();
        for a in &outside {
            self.reauth.remove(a);
            reauthenticate.retain(|r| r != a);
            // A membership change when it was usable: the others are told at once.
            self.make_unusable(ctx, *a, NotUsable::NotAllowed);
        }
        // The closed flag (a no-op when the table is unchanged).
        self.republish(ctx);
        (outside, reauthenticate)
    }

    /// The group is going (removed, or replaced by a fresh one): the data plane forgets its
    /// table.
    pub(in crate::router) fn withdraw(&mut self, ctx: &mut Ctx<'_>) {
        if self.published.take().is_some() {
            ctx.out.push_back(Output::Publish {
                service: self.key(),
                table: None,
            });
        }
    }

    /// A message from `peer` authenticated: a cache asked to re-authenticate has done so.
    pub(in crate::router) fn authenticated(&mut self, peer: Ipv4Addr) {
        if self.reauth.is_empty() {
            return;
        }
        let caches = &self.caches;
        self.reauth.retain(|a| {
            caches
                .get(a)
                .is_none_or(|c| c.reply_to != peer && c.addr != peer)
        });
    }

    /// A message from `peer` failed authentication: a cache that has not authenticated since
    /// the password changed is not usable any more (a membership change).
    pub(super) fn reauthentication_failed(&mut self, ctx: &mut Ctx<'_>, peer: Ipv4Addr) {
        let Some(addr) = self
            .caches
            .values()
            .find(|c| (c.reply_to == peer || c.addr == peer) && self.reauth.contains(&c.addr))
            .map(|c| c.addr)
        else {
            return;
        };
        self.reauth.remove(&addr);
        self.make_unusable(ctx, addr, NotUsable::Md5Failure);
    }
}
