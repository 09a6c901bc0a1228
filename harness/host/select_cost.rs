// SPDX-License-Identifier: GPL-2.0
//! `select_cost N ITERS`: builds a round-robin table of N listeners over
//! 4 CPUs and makes ITERS selections.  Run under callgrind with ITERS 0
//! and ITERS > 0: the difference over ITERS is the instructions of one
//! selection, a count that does not depend on the machine's load.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let iters: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let t = reuserps_host::BenchTable::new(n, 4);
    let mut acc = 0usize;
    for i in 0..iters {
        let cpu = (i % 4) as usize;
        acc = acc.wrapping_add(t.select(cpu, i.wrapping_mul(2_654_435_761)));
    }
    std::hint::black_box(acc);
}
