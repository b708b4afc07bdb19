//! `wccpd bench --seconds 1 --json` runs every phase (the real data plane and dpdk-testpmd on
//! the same replayed pcap, net_null, no hugepages, the table-swap check) and reports every
//! figure; the swap check's frame accounting must be exact. No time or rate is asserted:
//! benchmarks print figures, they do not pass or fail on them.
//! EAL: vdevs only, so every measured process gets --no-pci.

#![cfg(feature = "dpdk")]

mod common;

use std::process::Command;

use serde_json::Value;

const KEYS: &[&str] = &[
    "pipeline_mpps",
    "pipeline_ns_per_packet",
    "testpmd_io_mpps",
    "testpmd_5tswap_mpps",
    "ratio_vs_io",
    "ratio_vs_5tswap",
    "testpmd_io_null_egress_mpps",
    "ratio_vs_io_null_egress",
    "swaps",
    "swap_lost_packets",
    "swap_missent_packets",
    "swap_duplicated_packets",
    "imix_gbps",
    "imix_ratio_vs_io",
    "null_pipeline_mpps",
    "null_testpmd_io_mpps",
    "nohuge_pipeline_mpps",
    "nohuge_testpmd_io_mpps",
    "workers2_mpps",
    "multi_testpmd_io_mpps",
    "multi_ratio_vs_io",
    "multi_main_lcore_shares_cpu",
    "ratio_vs_io_rounds",
    "ratio_vs_5tswap_rounds",
    "imix_pipeline_verdicts",
    "stages",
    "stage_costs_ns",
    "stage_ratio_pipeline_vs_io_loop",
    "stage_ratio_minimal_gre_vs_io_loop",
    "stage_ratio_pipeline_vs_minimal_gre",
    "machine",
    "commands",
];

#[test]
fn bench_reports_every_figure_and_exact_swaps() {
    if !common::prerequisites(&[]) {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_wccpd"))
        .args(["bench", "--seconds", "1", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wccpd bench failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\n{stderr}"));
    for k in KEYS {
        assert!(v.get(k).is_some(), "key {k} missing:\n{v:#}");
    }
    // Progress: a line per phase on stderr.
    assert!(stderr.contains("bench: [1/"), "{stderr}");
    // The swap check ran, published tables and accounted for every frame.
    let n = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{k} is not a count: {}\n{stderr}", v[k]))
    };
    assert!(n("swaps") > 0, "{v:#}");
    assert!(n("swap_sent_packets") > 0, "{v:#}");
    assert_eq!(n("swap_lost_packets"), 0, "{v:#}");
    assert_eq!(n("swap_missent_packets"), 0, "{v:#}");
    assert_eq!(n("swap_duplicated_packets"), 0, "{v:#}");
    assert_eq!(n("swap_dropped_packets"), 0, "{v:#}");
    // Every round measured both IMIX figures, and the reported IMIX rate is their median (one
    // round here: the sample itself).
    let rounds = n("rounds") as usize;
    for k in [
        "pipeline",
        "testpmd_io",
        "testpmd_5tswap",
        "testpmd_io_null_egress",
        "pipeline_imix",
        "testpmd_io_imix",
    ] {
        let samples = v["rounds_mpps"][k]
            .as_array()
            .unwrap_or_else(|| panic!("rounds_mpps.{k} missing: {v:#}"));
        assert_eq!(samples.len(), rounds, "rounds_mpps.{k}: {v:#}");
    }
    // The multi-worker phase: run with testpmd io on the same layout wherever each worker
    // has a CPU (the main lcore may share one: then a note says so), else skipped with a note.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = n("multi_workers") as usize;
    if cpus >= workers && v["multi_worker_mpps"].is_number() {
        // testpmd's run beside it, unless it failed on its own (then `errors` names it).
        let io_failed = v["errors"].get("testpmd-io-multi").is_some();
        assert!(v["multi_testpmd_io_mpps"].is_number() || io_failed, "{v:#}");
        assert!(v["multi_ratio_vs_io"].is_number() || io_failed, "{v:#}");
        let shares = v["multi_main_lcore_shares_cpu"].as_bool().unwrap();
        assert_eq!(shares, cpus < workers + 1, "{v:#}");
        assert_eq!(shares, v["workers2_note"].is_string(), "{v:#}");
    } else {
        assert!(v["workers2_note"].is_string(), "{v:#}");
    }
    // One ratio per round, from that round's own pair.
    for k in ["ratio_vs_io_rounds", "ratio_vs_5tswap_rounds"] {
        let r = v[k]
            .as_array()
            .unwrap_or_else(|| panic!("{k} missing: {v:#}"));
        assert_eq!(r.len(), rounds, "{k}: {v:#}");
        assert!(
            r.iter().all(|x| x.as_f64().is_some_and(|x| x > 0.0)),
            "{k}: {v:#}"
        );
    }
    let one = v["rounds_mpps"]["pipeline"][0].as_f64().unwrap()
        / v["rounds_mpps"]["testpmd_io"][0].as_f64().unwrap();
    let got = v["ratio_vs_io_rounds"][0].as_f64().unwrap();
    assert!((one - got).abs() < 2e-3, "{one} {got}: {v:#}");
    let sample = v["rounds_mpps"]["pipeline_imix"][0].as_f64().unwrap();
    let reported = v["imix_mpps"].as_f64().unwrap();
    assert!((sample - reported).abs() < 1e-3, "{v:#}");
    // The IMIX replay is traffic a router forwards whole: every frame is redirected, returned
    // or routed, none refused (until session 11 its 1518-octet frames held packets larger
    // than the server port's MTU: `frag_needed`).
    let imix = v["imix_pipeline_verdicts"]
        .as_object()
        .unwrap_or_else(|| panic!("imix_pipeline_verdicts missing: {v:#}"));
    assert!(
        imix.get("rx").and_then(Value::as_u64).unwrap_or(0) > 0,
        "{imix:?}"
    );
    for k in imix.keys() {
        assert!(
            ["rx", "redirected_gre", "returned_gre", "routed"].contains(&k.as_str()),
            "IMIX verdict {k}: {imix:?}"
        );
    }
    // The stage phase: one process took turns between the pipeline and its reference loops;
    // every stage had its slices and frames, and the ratios are those of the stages' rates
    // (none is compared with another: that would assert a time).
    let stages = v["stages"]
        .as_object()
        .unwrap_or_else(|| panic!("stages missing: {v:#}"));
    let names = [
        "io_loop",
        "forward",
        "read",
        "pre_pass",
        "pipeline",
        "minimal_gre",
    ];
    assert_eq!(stages.len(), names.len(), "{stages:?}");
    let rate = |s: &str| {
        let st = &stages[s];
        assert!(st["packets"].as_u64().unwrap_or(0) > 0, "{s}: {st}");
        assert!(st["seconds"].as_f64().unwrap_or(0.0) > 0.0, "{s}: {st}");
        st["mpps"]
            .as_f64()
            .filter(|m| *m > 0.0)
            .unwrap_or_else(|| panic!("{s}: {st}"))
    };
    for s in names {
        rate(s);
    }
    let r = v["stage_ratio_pipeline_vs_io_loop"].as_f64().unwrap();
    assert!(
        (r - rate("pipeline") / rate("io_loop")).abs() < 2e-3,
        "{v:#}"
    );
    for k in [
        "drivers",
        "worker_structure",
        "read_loop",
        "vector_pass",
        "decide_rewrite_count",
        "minimal_gre_over_forward",
    ] {
        assert!(
            v["stage_costs_ns"][k].is_number(),
            "stage_costs_ns.{k}: {v:#}"
        );
    }
    // The replayed traffic is the advertised mix: 80 % redirected, 5 % GRE returns.
    if let Some(r) = v["pipeline_verdicts"].as_object() {
        let get = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        if get("rx") > 0.0 {
            let share = get("redirected_gre") / get("rx");
            assert!((0.78..0.82).contains(&share), "{r:?}");
            let share = get("returned_gre") / get("rx");
            assert!((0.04..0.06).contains(&share), "{r:?}");
        }
    }
}
