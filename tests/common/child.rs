//! Child processes of a test: this test binary re-run inside a network namespace as a helper,
//! and the one "wait for a child with a deadline" loop. `std` only: `crates/dpdk/tests/common`
//! compiles this file too.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a waiting test polls its child.
const POLL: Duration = Duration::from_millis(50);

/// `ip netns exec NS <this test binary> --exact TEST --nocapture --test-threads=1`: the test
/// re-run inside `ns`, where it acts as a helper (tests mark the helper run with an environment
/// variable of their own).
pub fn rerun_in_netns(ns: &str, test: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(std::env::current_exe().expect("own path"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"]);
    cmd
}

/// Runs this test binary as a helper in `ns` ([`rerun_in_netns`]) with the environment `env`,
/// to completion within `timeout` ([`finish`]); the test fails, naming `what`, if it cannot
/// start or does not finish in time.
pub fn run_helper(
    ns: &str,
    test: &str,
    env: &[(&str, String)],
    timeout: Duration,
    what: &str,
) -> Finished {
    let child = rerun_in_netns(ns, test)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    finish(child, timeout, what)
}

/// Waits up to `timeout` for `child` to exit: its status, or `None` if it is still running
/// then (it is left running).
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("cannot wait for child {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits up to `timeout` for `child` to exit. One still running then is killed and reaped, and
/// the test fails naming `what`.
pub fn wait_or_kill(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    wait_timeout(child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {timeout:?}");
    })
}

/// A child that has exited, and what it printed.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// [`wait_or_kill`] for a child spawned with piped stdout and stderr: both are read while it
/// runs (a full pipe cannot stall it) and returned with its status.
pub fn finish(mut child: Child, timeout: Duration, what: &str) -> Finished {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_or_kill(&mut child, timeout, what);
    Finished {
        status,
        stdout: joined(stdout),
        stderr: joined(stderr),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<String>> {
    pipe.map(|mut r| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    })
}

fn joined(reader: Option<JoinHandle<String>>) -> String {
    reader
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default()
}

/// The environment variable `name` a helper run was given; the helper fails without it.
pub fn env_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}
