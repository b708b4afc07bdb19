//! `wccpd check -c FILE`: validate a router or cache configuration without starting anything.
//! Every problem is printed at once as `FILE:LINE:COLUMN: key.path: message`, the way
//! compilers report, so editors can jump to it.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

/// Checks `path`; writes a one-line summary (valid) or every problem (invalid) to `out`.
///
/// # Errors
/// The file cannot be read, is neither a router nor a cache file, or has problems (the error
/// says how many; the problems themselves are written to `out`).
pub fn run(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let shown = path.display();
    let result = match config::kind_of(&text) {
        Some(config::Kind::Router) => config::router_from_str(&text).map(|r| {
            let dp = r.dataplane.as_ref().map_or_else(
                || "no data plane (control over kernel sockets)".to_string(),
                |d| {
                    let capture = match (d.capture, d.file_prefix()) {
                        (true, Some(p)) => format!(
                            ", packet capture on (dpdk-dumpcap --file-prefix={p} -i DEVICE)"
                        ),
                        _ => String::new(),
                    };
                    format!(
                        "data plane: {} ports, {} worker(s){capture}",
                        d.ports.len(),
                        d.workers
                    )
                },
            );
            let open = r.services.iter().filter(|s| s.password.is_none()).count();
            let warn = if open > 0 {
                format!(
                    "; warning: {open} service(s) without a password (anyone who reaches UDP 2048 can join)"
                )
            } else {
                String::new()
            };
            format!(
                "router configuration, {} service(s), {dp}{warn}",
                r.services.len()
            )
        }),
        Some(config::Kind::Cache) => config::cache_from_str(&text)
            .map(|c| format!("cache configuration, {} service(s)", c.services.len())),
        None => anyhow::bail!("{shown}: neither a `router:` nor a `cache:` configuration"),
    };
    match result {
        Ok(summary) => {
            writeln!(out, "{shown}: OK: {summary}")?;
            Ok(())
        }
        Err(e) => {
            let problems = e.problems();
            if problems.is_empty() {
                anyhow::bail!("{shown}: {e}");
            }
            for p in problems {
                writeln!(out, "{}", problem_line(&shown, p))?;
            }
            anyhow::bail!("{shown}: {} problem(s)", problems.len())
        }
    }
}

/// One problem as `FILE:LINE:COLUMN: key.path: message` (the form `wccpd check` prints and a
/// refused `wccpd reload` reports).
pub fn problem_line(file: &dyn std::fmt::Display, p: &config::Problem) -> String {
    match (p.line, p.column) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}: {}: {}", p.path, p.message),
        (Some(l), None) => format!("{file}:{l}: {}: {}", p.path, p.message),
        _ => format!("{file}: {}: {}", p.path, p.message),
    }
}
