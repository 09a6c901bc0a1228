// SPDX-License-Identifier: GPL-2.0
//! Host build of the SO_REUSERPS policy core for `cargo test`.
//!
//! The files under net/core/reuserps/ are compiled here exactly as the
//! kernel compiles them; they use the `kernel` crate, which on the host
//! is the stand-in in harness/host/kernel/ (same paths and signatures,
//! over std, with test hooks for allocation failures and leaks).  The
//! kernel's crate root, net/core/reuserps.rs, adds the `extern "C"`
//! interface, which only the kernel builds.
#![cfg_attr(not(test), allow(dead_code))]

#[path = "../../net/core/reuserps/listener.rs"]
mod listener;
#[path = "../../net/core/reuserps/table.rs"]
mod table;

// The KUnit suite `reuserps` runs here as ordinary tests.
#[cfg(test)]
#[path = "../../net/core/reuserps/kunit.rs"]
mod kunit;
#[cfg(test)]
mod tests;

/// No topology: the benchmarks' and the simulator's fallback goes from a
/// CPU's listeners to the whole group.
pub struct NoTopology;

impl table::Topology for NoTopology {
    fn share_cache(&self, _a: usize, _b: usize) -> bool {
        false
    }

    fn same_node(&self, _a: usize, _b: usize) -> bool {
        false
    }
}

/// Builds a table of `listeners` as the kernel does (all members at once,
/// in order), listener `i` of `n` serving CPU `i * ncpus / n` alone, as the
/// guest benchmark and the simulator lay them out.  Panics on bad input
/// (a bench, not the kernel).
fn table_one_cpu_each(
    policy: table::Policy,
    listeners: &[kernel::sync::Arc<listener::Listener>],
    ncpus: usize,
) -> table::Table {
    use kernel::alloc::flags::GFP_KERNEL;
    let n = listeners.len();
    let masks: Vec<Vec<u64>> = (0..n)
        .map(|i| {
            let cpu = sim::cpu_of(i, n, ncpus);
            let mut mask = vec![0u64; cpu / 64 + 1];
            mask[cpu / 64] |= 1 << (cpu % 64);
            mask
        })
        .collect();
    let inputs = listeners
        .iter()
        .zip(&masks)
        .enumerate()
        .map(|(i, (l, m))| table::Input {
            handle: i,
            listener: l,
            mask: m,
            reg: l.registration(),
        });
    table::Table::build(policy, inputs, None, GFP_KERNEL).expect("table")
}

/// For `make bench`: a round-robin table of `n` listeners, listener `i`
/// serving CPU `i * ncpus / n`, as the guest benchmark lays them out.
pub struct BenchTable {
    table: table::Table,
    _listeners: Vec<kernel::sync::Arc<listener::Listener>>,
}

impl BenchTable {
    /// Builds the table; panics on bad input (a bench, not the kernel).
    pub fn new(n: usize, ncpus: usize) -> Self {
        use kernel::alloc::flags::GFP_KERNEL;
        let listeners: Vec<_> = (0..n)
            .map(|_| listener::Listener::new(0, GFP_KERNEL).expect("memory"))
            .collect();
        let table = table_one_cpu_each(table::Policy::RoundRobin, &listeners, ncpus);
        Self {
            table,
            _listeners: listeners,
        }
    }

    /// Builds the table again, as a listen() of one of its members would:
    /// the cost of a build of `n` listeners, for the build curve.
    pub fn rebuild(&mut self, ncpus: usize) {
        self.table = table_one_cpu_each(table::Policy::RoundRobin, &self._listeners, ncpus);
    }

    /// One selection for a SYN processed on `cpu`: the listener's index.
    pub fn select(&self, cpu: usize, hash: u32) -> usize {
        match self.table.pick(cpu, hash, &NoTopology, true) {
            table::Pick::Cpu(h) | table::Pick::Other(h) | table::Pick::Full(h) => h,
            table::Pick::Empty => usize::MAX,
        }
    }
}

#[path = "sim.rs"]
pub mod sim;
