//! `wccpd decode`: render WCCP messages and GRE-redirected packets as a tree or JSON.
