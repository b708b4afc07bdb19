//! TODO(hctlr)
/// Placeholder until the table module lands.
#[derive(Debug)]
pub struct RedirectTable;
