//! Requests that change the control plane (a configuration reload), run on the control lcore.
//!
//! [`super::StatusRequest`]s only read the router; a reload must change it, its topology and
//! the published tables, which only the control lcore may touch. The control socket thread
//! (or the SIGHUP handler) sends a [`ControlRequest`] through a channel; [`RequestHook`], the
//! control loop's [`MainHook`], runs each between two iterations of the loop, with the loop's
//! clock and an allocator on the data plane's mempool (for the I_SEE_YOUs a membership change
//! sends). The frames it builds are injected right after the hook returns.

use std::sync::mpsc::Receiver;

use dpdk::mbuf::Mbuf;

use super::{HookCtx, HookFlow, MainHook, PoolAlloc};
use crate::control::{Alloc, ControlPlane};

/// A closure run on the control lcore with the control plane, the loop's clock and an
/// allocator for the frames it makes the control plane build.
pub type ControlRequest =
    Box<dyn FnOnce(&mut ControlPlane<Mbuf>, control::Instant, &mut dyn Alloc<Buf = Mbuf>) + Send>;

/// Runs the [`ControlRequest`]s that arrive on a channel; pass it as [`super::RunOptions::hook`].
#[derive(Debug)]
pub struct RequestHook {
    requests: Receiver<ControlRequest>,
}

impl RequestHook {
    /// A hook running what arrives on `requests`.
    pub fn new(requests: Receiver<ControlRequest>) -> RequestHook {
        RequestHook { requests }
    }
}

impl MainHook for RequestHook {
    fn poll(&mut self, cx: &mut HookCtx<'_>) -> HookFlow {
        let mut ran = false;
        while let Ok(request) = self.requests.try_recv() {
            let mut alloc = PoolAlloc(cx.pool);
            request(&mut *cx.control, cx.now, &mut alloc);
            ran = true;
        }
        if ran {
            HookFlow::Busy
        } else {
            HookFlow::Idle
        }
    }
}
