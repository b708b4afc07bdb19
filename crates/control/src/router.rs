//! Router side: per-service Router View, I_SEE_YOU, REMOVAL_QUERY, REDIRECT_ASSIGN acceptance.
