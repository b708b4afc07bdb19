//! `wccpd router`, `wccpd cache` and `wccpd show`: config -> state machine -> UDP driver, plus the
//! local Unix control socket.

use std::io::Write;
use std::path::Path;

/// Where `wccpd show` looks for the daemon unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/wccpd/wccpd.sock";

/// Run the router until a signal or a fatal error.
pub fn run_router(config: &Path) -> anyhow::Result<()> {
    anyhow::bail!("router not implemented yet ({})", config.display())
}

/// Run the cache agent until a signal or a fatal error.
pub fn run_cache(config: &Path) -> anyhow::Result<()> {
    anyhow::bail!("cache agent not implemented yet ({})", config.display())
}

/// Ask the daemon at `socket` for its state and print it.
pub fn show(socket: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let _ = (json, out);
    anyhow::bail!("show not implemented yet ({})", socket.display())
}
