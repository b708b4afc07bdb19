//! TODO(hctlc)
