//! Thin drivers: real UDP sockets and a clock around the sans-IO state machines.
