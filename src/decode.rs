//! `wccpd decode`: render WCCP messages and GRE-redirected packets as a tree or JSON.

use std::io::Write;

/// Entry point of `wccpd decode`. Returns an error (non-zero exit) on malformed input or a bad
/// digest.
pub fn run_cli(
    input: &str,
    password: Option<&[u8]>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let _ = (password, json, out);
    anyhow::bail!("decode not implemented yet ({input})")
}
