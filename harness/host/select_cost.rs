// SPDX-License-Identifier: GPL-2.0
//! `select_cost N ITERS`: builds a round-robin table of N listeners over
//! 4 CPUs and makes ITERS selections.  `select_cost build N ITERS`: builds
//! it ITERS more times, as listen() does.  Run under callgrind with ITERS 0
//! and ITERS > 0: the difference over ITERS is the instructions of one
//! selection, or of one build, a count that does not depend on the
//! machine's load.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let build = args.get(1).is_some_and(|a| a == "build");
    let args = if build { &args[1..] } else { &args[..] };
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let iters: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut t = reuserps_host::BenchTable::new(n, 4);
    let mut acc = 0usize;
    for i in 0..iters {
        if build {
            t.rebuild(4);
            continue;
        }
        let cpu = (i % 4) as usize;
        acc = acc.wrapping_add(t.select(cpu, i.wrapping_mul(2_654_435_761)));
    }
    std::hint::black_box(acc);
}
