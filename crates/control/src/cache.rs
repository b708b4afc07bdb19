//! Cache agent: HERE_I_AM, Cache View, designated-cache election and REDIRECT_ASSIGN.
