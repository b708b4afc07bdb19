//! TODO(hctlr)
