// SPDX-License-Identifier: GPL-2.0
//! `simulate`: one SO_REUSERPS group of 1024 listeners on 256 CPUs (four
//! per CPU), SYNs spread by a 512-entry RSS indirection table, Pareto
//! connection lifetimes, over the real Rust core (harness/host/sim.rs).
//! Prints "R key=value" lines for harness/bench.py.
use reuserps_host::sim::{self, Mode, Setup};

fn main() {
    let base = Setup {
        cpus: 256,
        listeners: 1024,
        mode: Mode::RoundRobin,
        cap: 0,
        rss_entries: 512,
        // About 64 live connections per listener on average (Little's
        // law: rate x mean lifetime, mean = alpha xm / (alpha - 1) = 3).
        rate: 1024.0 * 64.0 / 3.0,
        alpha: 1.5,
        xm: 1.0,
        conns: 2_000_000,
        seed: 0x5eed,
    };
    let runs = [
        ("hash", Mode::Hash, 0),
        ("rps_rr", Mode::RoundRobin, 0),
        // Caps a little above the mean load (64 per listener): the CPUs
        // RSS gives more than their share fill up and fall back.
        ("rps_ff", Mode::FillFirst, 72),
        ("rps_rr_cap", Mode::RoundRobin, 72),
    ];
    for (name, mode, cap) in runs {
        let o = sim::run(&Setup { mode, cap, ..base });
        let f = o.offered as f64;
        println!(
            "R test=sim mech={name} cpus={} listeners={} cap={cap} offered={} \
             local={:.5} fallback={:.5} dropped={:.5} worst_max_mean={:.3} \
             mean_max_mean={:.3} mean_cv={:.4} max_active={} over_cap={}",
            base.cpus,
            base.listeners,
            o.offered,
            o.local as f64 / f,
            o.fallback as f64 / f,
            o.dropped as f64 / f,
            o.worst_max_over_mean,
            o.mean_max_over_mean,
            o.mean_cv,
            o.max_active,
            u8::from(o.over_cap)
        );
    }
    // One CPU with four listeners, the same lifetimes, about 64 live
    // connections per listener: how far apart their live counts get.
    let one = Setup {
        cpus: 1,
        listeners: 4,
        rss_entries: 1,
        rate: 4.0 * 64.0 / 3.0,
        conns: 400_000,
        ..base
    };
    for (name, mode) in [
        ("hash", Mode::Hash),
        ("rps_rr", Mode::RoundRobin),
        ("rps_lc", Mode::LeastConns),
    ] {
        let o = sim::run(&Setup { mode, ..one });
        println!(
            "R test=sim_one_cpu mech={name} listeners=4 offered={} \
             mean_max_min={:.3} worst_max_min={:.3} mean_max_mean={:.3} \
             mean_cv={:.4}",
            o.offered, o.mean_max_over_min, o.worst_max_over_min, o.mean_max_over_mean, o.mean_cv
        );
    }
    for n in [1, 64, 256, 1024] {
        println!(
            "R test=sim_build cpus=256 listeners={n} us={:.2}",
            sim::build_secs(n, 256) * 1e6
        );
    }
}
