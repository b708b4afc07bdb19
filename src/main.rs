//! `wccpd`: WCCPv2 router (DPDK data plane) and cache agent.
//!
//! This file only parses the command line and dispatches to the library half (`src/lib.rs`).

#![forbid(unsafe_code)]
// Peer input and configuration are errors, never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "wccpd", version, about = "WCCPv2 router and cache agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the router: control plane (and the DPDK data plane when configured).
    Router {
        /// Configuration file (YAML).
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Run the cache agent: join routers, act as designated cache, return packets.
    Cache {
        /// Configuration file (YAML).
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Validate a router or cache configuration file without starting anything.
    Check {
        /// Configuration file (YAML).
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Ask a running daemon for its state (like `show ip wccp <service> detail`).
    Show {
        /// The daemon's control socket.
        #[arg(short = 's', long = "socket", default_value = wccpd::daemon::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a running router re-read and apply its configuration file (as SIGHUP does).
    Reload {
        /// The daemon's control socket.
        #[arg(short = 's', long = "socket", default_value = wccpd::daemon::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running router what its data plane does with one flow, and why (which service,
    /// bucket, cache and method, or why it is routed untouched).
    Explain {
        /// `tcp`, `udp` or a protocol number.
        protocol: String,
        /// Source address, optionally with `:port`.
        src: String,
        /// Destination address, optionally with `:port`.
        dst: String,
        /// The data-plane port the flow arrives on (default: the port towards the source).
        #[arg(long = "in")]
        in_port: Option<String>,
        /// The router's control socket.
        #[arg(short = 's', long = "socket", default_value = wccpd::daemon::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running router why a cache is or is not usable, with the last message it sent.
    Why {
        /// The cache's address.
        cache: std::net::Ipv4Addr,
        /// The router's control socket.
        #[arg(short = 's', long = "socket", default_value = wccpd::daemon::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Decode one WCCP message (hex) or every WCCP message and GRE-redirected packet in a pcap.
    Decode {
        /// MD5 password to verify signed messages with (at most 8 octets).
        #[arg(long)]
        password: Option<String>,
        /// Print JSON instead of a tree.
        #[arg(long)]
        json: bool,
        /// A hex string, a .hex file or a .pcap file.
        input: String,
    },
    /// Forward packets between two DPDK vdevs and print counts (installation check).
    #[cfg(feature = "dpdk")]
    Smoke(wccpd::smoke::SmokeArgs),
    /// Measure the data plane against dpdk-testpmd on the same replayed traffic, and check
    /// table swaps under load (docs/BENCHMARKS.md).
    #[cfg(feature = "dpdk")]
    Bench(wccpd::bench::BenchArgs),
    /// One measured data-plane run (spawned by `wccpd bench`).
    #[cfg(feature = "dpdk")]
    #[command(hide = true)]
    BenchRun(wccpd::bench::BenchRunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Router { config } => wccpd::daemon::run_router(&config),
        Command::Cache { config } => wccpd::daemon::run_cache(&config),
        Command::Check { config } => wccpd::check::run(&config, &mut std::io::stdout().lock()),
        Command::Show { socket, json } => {
            wccpd::daemon::show(&socket, json, &mut std::io::stdout().lock())
        }
        Command::Reload { socket, json } => {
            wccpd::reload::client(&socket, json, &mut std::io::stdout().lock())
        }
        Command::Explain {
            protocol,
            src,
            dst,
            in_port,
            socket,
            json,
        } => wccpd::explain::parse_flow(&protocol, &src, &dst).and_then(|flow| {
            wccpd::explain::client(&socket, flow, in_port, json, &mut std::io::stdout().lock())
        }),
        Command::Why { cache, socket } => {
            wccpd::why::client(&socket, cache, &mut std::io::stdout().lock())
        }
        Command::Decode {
            password,
            json,
            input,
        } => wccpd::decode::run_cli(
            &input,
            password.as_deref().map(str::as_bytes),
            json,
            &mut std::io::stdout().lock(),
        ),
        #[cfg(feature = "dpdk")]
        Command::Smoke(args) => wccpd::smoke::run_cli(&args),
        #[cfg(feature = "dpdk")]
        Command::Bench(args) => wccpd::bench::run(&args),
        #[cfg(feature = "dpdk")]
        Command::BenchRun(args) => wccpd::bench::run_child(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wccpd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
