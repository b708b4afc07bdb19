//! `wccpd smoke`: forward packets between two vdevs and print counts.
