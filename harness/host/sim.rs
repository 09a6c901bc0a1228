// SPDX-License-Identifier: GPL-2.0
//! A simulator of one large SO_REUSERPS group over the real Rust core.
//!
//! Beyond what a guest here can show: a group of many listeners on a
//! machine of many CPUs, fed SYNs the way a NIC's RSS spreads them, with
//! connections whose lifetimes are heavy-tailed.  Every decision is the
//! core's own (`Table::pick`, `Listener::admit`, `Table::turn`,
//! `Listener::release`), built as the kernel builds the table; only the
//! traffic is made up.  For `make bench` (harness/host/simulate.rs).

use crate::{listener::Listener, table};
use kernel::{alloc::flags::GFP_KERNEL, sync::Arc};
use std::{cmp::Reverse, collections::BinaryHeap};

/// xorshift64*: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
}

/// How the group picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Plain SO_REUSEPORT: the flow hash over all members.
    Hash,
    /// SO_REUSERPS round robin.
    RoundRobin,
    /// SO_REUSERPS fill first.
    FillFirst,
    /// SO_REUSERPS least connections.
    LeastConns,
}

/// One simulated run's setup.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub cpus: usize,
    pub listeners: usize,
    pub mode: Mode,
    /// Cap per listener, 0 for none.
    pub cap: u32,
    /// Entries of the RSS indirection table (a CPU each, in turn).
    pub rss_entries: usize,
    /// New connections per unit of time.
    pub rate: f64,
    /// Pareto shape and scale of connection lifetimes.
    pub alpha: f64,
    pub xm: f64,
    /// Connections offered.
    pub conns: u64,
    pub seed: u64,
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub offered: u64,
    /// Taken by a listener of the SYN's CPU.
    pub local: u64,
    /// Taken by another member because all of the CPU's listeners were
    /// full (SO_REUSERPS only: the hash ignores CPUs).
    pub fallback: u64,
    /// Refused: every member full.
    pub dropped: u64,
    /// Over samples after the first tenth: the worst and mean max/mean of
    /// active connections per listener, and the mean coefficient of
    /// variation.
    pub worst_max_over_mean: f64,
    pub mean_max_over_mean: f64,
    pub mean_cv: f64,
    /// Over the same samples: the mean and worst max/min of active
    /// connections per listener, over samples whose least loaded
    /// listener has one at least.
    pub mean_max_over_min: f64,
    pub worst_max_over_min: f64,
    /// Highest active count of any listener, and whether any cap was
    /// exceeded.
    pub max_active: u32,
    pub over_cap: bool,
}

/// The CPU listener `i` of `n` serves on a machine of `cpus` CPUs.
pub fn cpu_of(i: usize, n: usize, cpus: usize) -> usize {
    i * cpus / n
}

/// Builds the group's table as the kernel does: all members, in order.
fn build(setup: &Setup, ls: &[Arc<Listener>]) -> table::Table {
    let policy = match setup.mode {
        Mode::FillFirst => table::Policy::FillFirst,
        Mode::LeastConns => table::Policy::LeastConns,
        Mode::Hash | Mode::RoundRobin => table::Policy::RoundRobin,
    };
    crate::table_one_cpu_each(policy, ls, setup.cpus)
}

/// Runs one simulation.
pub fn run(setup: &Setup) -> Outcome {
    let mut rng = Rng::new(setup.seed);
    let ls: Vec<Arc<Listener>> = (0..setup.listeners)
        .map(|_| Listener::new(setup.cap, GFP_KERNEL).expect("memory"))
        .collect();
    let t = build(setup, &ls);
    let rss: Vec<usize> = (0..setup.rss_entries).map(|e| e % setup.cpus).collect();
    let mut ends: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut out = Outcome {
        offered: setup.conns,
        ..Default::default()
    };
    let mut active = vec![0u32; ls.len()];
    let (mut now, mut samples, mut sum_mm, mut sum_cv) = (0f64, 0u64, 0f64, 0f64);
    let (mut min_samples, mut sum_mn) = (0u64, 0f64);
    let sample_every = (setup.conns / 1000).max(1);
    for k in 0..setup.conns {
        now += -rng.unit().ln() / setup.rate;
        // Time in integer ticks for the heap: 2^-20 units.
        let tick = (now * (1u64 << 20) as f64) as u64;
        while let Some(&Reverse((end, i))) = ends.peek() {
            if end > tick {
                break;
            }
            ends.pop();
            assert!(ls[i].release());
            active[i] -= 1;
        }
        let hash = rng.next_u64() as u32;
        let cpu = rss[(hash as usize) % rss.len()];
        let (h, local) = match setup.mode {
            Mode::Hash => {
                let h = ((u64::from(hash) * ls.len() as u64) >> 32) as usize;
                (h, cpu_of(h, ls.len(), setup.cpus) == cpu)
            }
            _ => match t.pick(cpu, hash, &crate::NoTopology, true) {
                table::Pick::Cpu(h) => (h, true),
                table::Pick::Other(h) => (h, false),
                table::Pick::Full(_) | table::Pick::Empty => {
                    out.dropped += 1;
                    continue;
                }
            },
        };
        if !ls[h].admit() {
            out.dropped += 1;
            continue;
        }
        ls[h].hand();
        if setup.mode != Mode::Hash {
            t.turn(cpu, h);
        }
        if local {
            out.local += 1;
        } else if setup.mode != Mode::Hash {
            out.fallback += 1;
        }
        active[h] += 1;
        out.max_active = out.max_active.max(active[h]);
        let life = setup.xm / rng.unit().powf(1.0 / setup.alpha);
        let end = ((now + life) * (1u64 << 20) as f64) as u64;
        ends.push(Reverse((end, h)));
        if k > setup.conns / 10 && k % sample_every == 0 {
            let n = active.len() as f64;
            let mean = active.iter().map(|&a| f64::from(a)).sum::<f64>() / n;
            if mean > 0.0 {
                let max = f64::from(*active.iter().max().unwrap_or(&0));
                let var = active
                    .iter()
                    .map(|&a| (f64::from(a) - mean).powi(2))
                    .sum::<f64>()
                    / n;
                sum_mm += max / mean;
                sum_cv += var.sqrt() / mean;
                out.worst_max_over_mean = out.worst_max_over_mean.max(max / mean);
                samples += 1;
                let min = f64::from(*active.iter().min().unwrap_or(&0));
                if min > 0.0 {
                    sum_mn += max / min;
                    out.worst_max_over_min = out.worst_max_over_min.max(max / min);
                    min_samples += 1;
                }
            }
        }
    }
    if samples > 0 {
        out.mean_max_over_mean = sum_mm / samples as f64;
        out.mean_cv = sum_cv / samples as f64;
    }
    if min_samples > 0 {
        out.mean_max_over_min = sum_mn / min_samples as f64;
    }
    out.over_cap = setup.cap != 0 && out.max_active > setup.cap;
    // Every connection ends: counts must return to zero.
    while let Some(Reverse((_, i))) = ends.pop() {
        assert!(ls[i].release());
    }
    assert!(ls.iter().all(|l| l.info().active_conns == 0));
    out
}

/// Seconds to build the table of a group of `n` listeners over `cpus`
/// CPUs, the work of one join at that size (host time).
pub fn build_secs(n: usize, cpus: usize) -> f64 {
    let setup = Setup {
        cpus,
        listeners: n,
        mode: Mode::RoundRobin,
        cap: 0,
        rss_entries: cpus,
        rate: 1.0,
        alpha: 1.5,
        xm: 1.0,
        conns: 0,
        seed: 1,
    };
    let ls: Vec<Arc<Listener>> = (0..n)
        .map(|_| Listener::new(0, GFP_KERNEL).expect("memory"))
        .collect();
    let reps = (4096 / n).max(3);
    std::hint::black_box(build(&setup, &ls));
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        std::hint::black_box(build(&setup, &ls));
    }
    t0.elapsed().as_secs_f64() / reps as f64
}
