// SPDX-License-Identifier: GPL-2.0
//! Host tests of the policy core: each rule on its own, then a model-based
//! property test over random sequences of register, unregister, SYN,
//! connection end and allocation failure.

use crate::kunit::{gone, handle, Classes, Group};
use crate::listener::Listener;
use crate::listener::{Bell, Room};
use crate::table::{check_mask, max_mask_words, Input, Pick, Policy, Table};
use kernel::alloc::{self as mem, flags::GFP_KERNEL as G};
use kernel::error::code::{EINVAL, ENOMEM};
use kernel::sync::{Arc, ArcBorrow};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

/// A listener's state, as C holds it.
type ListenerRef = Arc<Listener>;

fn mask_of(cpus: &[usize]) -> Vec<u64> {
    let words = cpus.iter().max().map_or(1, |c| c / 64 + 1);
    let mut m = vec![0u64; words];
    for &c in cpus {
        m[c / 64] |= 1 << (c % 64);
    }
    m
}

fn lref(cap: u32) -> ListenerRef {
    Listener::new(cap, G).unwrap()
}

/// Marks a listener unregistered or registered again, with its cap.
fn set_gone(l: &Listener, g: bool) {
    l.configure(l.info().max_conns, g);
}

/// Sets a listener's cap, keeping its registration.
fn set_max_conns(l: &Listener, cap: u32) {
    l.configure(cap, gone(l));
}

/// The handles a group's table lists for `cpu`, in order.
fn on(t: &Group, cpu: usize) -> Vec<usize> {
    t.cpu_handles(cpu, G).unwrap().to_vec()
}

/// A group of listeners (handle = index) with the given CPU sets, joining
/// one after the other.
fn table(policy: Policy, sets: &[&[usize]], caps: &[u32]) -> (Group, Vec<ListenerRef>) {
    let ls: Vec<_> = caps.iter().map(|&c| lref(c)).collect();
    let mut t = Group::new(policy, 0, &ls[0], &mask_of(sets[0]), G).unwrap();
    for (h, set) in sets.iter().enumerate().skip(1) {
        t = t.with_member(h, &ls[h], &mask_of(set), G).unwrap();
    }
    (t, ls)
}

#[test]
fn mask_checks() {
    assert_eq!(check_mask(&[], 4), Err(EINVAL));
    assert_eq!(check_mask(&[0], 4), Err(EINVAL));
    assert_eq!(check_mask(&[0, 0, 0], 4), Err(EINVAL));
    assert_eq!(check_mask(&[0b1111], 4), Ok(1));
    assert_eq!(check_mask(&[0b1_0000], 4), Err(EINVAL));
    assert_eq!(check_mask(&[1 << 63], 64), Ok(1));
    assert_eq!(check_mask(&[0, 1], 64), Err(EINVAL));
    assert_eq!(check_mask(&[0, 1], 65), Ok(2));
    // Trailing zero words are allowed (a cpu_set_t) and do not count.
    assert_eq!(check_mask(&[1, 0, 0, 0], 4), Ok(1));
    assert_eq!(check_mask(&[1; 16], 4), Err(EINVAL));
    assert_eq!(max_mask_words(4), 16);
    assert_eq!(max_mask_words(8192), 128);
    assert_eq!(check_mask(&vec![0u64; 16], 4), Err(EINVAL));
    assert_eq!(check_mask(&vec![0u64; 17], 4), Err(EINVAL));
    let mut big = vec![0u64; 128];
    big[127] = 1 << 63;
    assert_eq!(check_mask(&big, 8192), Ok(128));
    assert_eq!(check_mask(&big, 8191), Err(EINVAL));
}

#[test]
fn policy_values() {
    assert_eq!(Policy::from_uapi(0), Ok(Policy::RoundRobin));
    assert_eq!(Policy::from_uapi(1), Ok(Policy::FillFirst));
    assert_eq!(Policy::from_uapi(2), Ok(Policy::LeastConns));
    assert_eq!(Policy::from_uapi(3), Err(EINVAL));
    assert_eq!(Policy::from_uapi(u32::MAX), Err(EINVAL));
}

#[test]
fn order_is_registration_order_and_kept_on_removal() {
    let (t, _ls) = table(
        Policy::FillFirst,
        &[&[0, 1], &[1], &[0, 1, 70], &[2]],
        &[0, 0, 0, 0],
    );
    assert_eq!(on(&t, 0), [0, 2]);
    assert_eq!(on(&t, 1), [0, 1, 2]);
    assert_eq!(on(&t, 70), [2]);
    assert_eq!(on(&t, 3).len(), 0);
    assert_eq!(on(&t, 1000).len(), 0);
    let t = t.without_member(0, G).unwrap();
    assert_eq!(on(&t, 1), [1, 2]);
    assert_eq!(t.handles().collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn reconfiguration_keeps_position() {
    let (t, ls) = table(Policy::FillFirst, &[&[0], &[0], &[0]], &[0, 0, 0]);
    let t = t.with_member(0, &ls[0], &mask_of(&[1]), G).unwrap();
    assert_eq!(on(&t, 0), [1, 2]);
    let t = t.with_member(0, &ls[0], &mask_of(&[0]), G).unwrap();
    assert_eq!(on(&t, 0), [0, 1, 2]);
}

#[test]
fn round_robin_is_strict() {
    let (t, _ls) = table(Policy::RoundRobin, &[&[0], &[0, 1], &[0]], &[0, 0, 0]);
    let seq: Vec<_> = (0..9).map(|_| handle(t.select(0, 0))).collect();
    // A rotation: each listener once per round, in the same order.
    assert_eq!(seq[0..3], seq[3..6]);
    assert_eq!(seq[3..6], seq[6..9]);
    let mut round = seq[0..3].to_vec();
    round.sort();
    assert_eq!(round, [0, 1, 2]);
    // One listener on a CPU needs no cursor and always gets it.
    assert!((0..5).all(|_| t.select(1, 7) == Pick::Cpu(1)));
}

#[test]
fn round_robin_balance_k_over_n() {
    for n in 1..6usize {
        let sets: Vec<&[usize]> = vec![&[3]; n];
        let (t, _ls) = table(Policy::RoundRobin, &sets, &vec![0; n]);
        for k in [0usize, 1, 7, 100] {
            let mut got = vec![0usize; n];
            for _ in 0..k {
                got[handle(t.select(3, 0))] += 1;
            }
            for g in got {
                assert!(g == k / n || g == k.div_ceil(n), "n={n} k={k}");
            }
        }
    }
}

#[test]
fn round_robin_skips_full_and_counts_it() {
    let (t, ls) = table(Policy::RoundRobin, &[&[0], &[0], &[0]], &[0, 1, 0]);
    assert!(ls[1].admit());
    let picks: Vec<_> = (0..6).map(|_| handle(t.select(0, 0))).collect();
    // The two with room alternate: the full one's turns are not handed
    // to its neighbour.
    assert!(!picks.contains(&1));
    assert!(picks.windows(2).all(|w| w[0] != w[1]), "{picks:?}");
    assert_eq!(picks.iter().filter(|&&h| h == 0).count(), 3);
    assert_eq!(t.info(&ls[1]).full_skips, 3);
}

/// Takes a connection on CPU `cpu` as the kernel would: select, admit.
fn connect(t: &Group, ls: &[ListenerRef], cpu: usize, hash: u32) -> usize {
    let h = handle(t.select(cpu, hash));
    assert!(ls[h].admit(), "picked listener {h} refused");
    ls[h].hand();
    h
}

#[test]
fn least_conns_takes_the_fewest_and_rotates_ties() {
    let (t, ls) = table(Policy::LeastConns, &[&[0], &[0], &[0]], &[0, 0, 0]);
    // Equal counts: each in turn, as round robin.
    let first: Vec<_> = (0..3).map(|_| connect(&t, &ls, 0, 0)).collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 1, 2]);
    // Two of listener 0's connections end: it gets the next two.
    assert!(ls[0].release());
    connect(&t, &ls, 0, 0);
    assert!(ls[1].release() && ls[2].release());
    let next: Vec<_> = (0..2).map(|_| connect(&t, &ls, 0, 0)).collect();
    assert!(next.contains(&1) && next.contains(&2), "{next:?}");
    // Live counts never differ by more than one under steady arrivals.
    let live = |l: &ListenerRef| l.info().active_conns;
    for i in 0..60u32 {
        let h = connect(&t, &ls, 0, i);
        if i % 3 == 0 {
            assert!(ls[h].release());
        }
        let (lo, hi) = ls
            .iter()
            .map(live)
            .fold((u32::MAX, 0), |(a, b), x| (a.min(x), b.max(x)));
        assert!(
            hi - lo <= 1,
            "{:?}",
            ls.iter().map(live).collect::<Vec<_>>()
        );
    }
}

#[test]
fn least_conns_skips_full_and_falls_back() {
    let (t, ls) = table(Policy::LeastConns, &[&[0], &[0], &[1]], &[1, 2, 0]);
    assert_eq!(connect(&t, &ls, 0, 0), 0);
    assert_eq!(connect(&t, &ls, 0, 0), 1);
    // Listener 0 is full with 1: listener 1 has room at 1 too.
    assert_eq!(connect(&t, &ls, 0, 0), 1);
    // Both full: another member of the group, as every policy does.
    assert_eq!(t.select(0, 0), Pick::Other(2));
    assert!(ls[0].release());
    assert_eq!(t.select(0, 0), Pick::Cpu(0));
    // A single listener on a CPU needs no comparison.
    assert!((0..3).all(|_| t.select(1, 0) == Pick::Cpu(2)));
}

#[test]
fn least_conns_many_listeners_compares_two() {
    // 12 listeners on CPU 5: beyond the bounded scan, the listener whose
    // turn it is against one the flow hash picks.
    let n = 12;
    let sets: Vec<&[usize]> = vec![&[5]; n];
    let (t, ls) = table(Policy::LeastConns, &sets, &vec![0; n]);
    let mut seed = 0x9e37_79b9u32;
    for _ in 0..2000 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        connect(&t, &ls, 5, seed);
        // Three in four steps, a connection of a random listener ends:
        // the counts climb to about 42 each.
        if seed % 4 != 0 {
            let k = (seed >> 8) as usize % n;
            if ls[k].info().active_conns > 0 {
                assert!(ls[k].release());
            }
        }
    }
    let live: Vec<_> = ls.iter().map(|l| l.info().active_conns).collect();
    let (lo, hi) = (*live.iter().min().unwrap(), *live.iter().max().unwrap());
    assert!(hi - lo <= 4, "{live:?}");
    // Full ones are never picked while another has room.
    let (t, ls) = table(Policy::LeastConns, &sets, &[&[1u32; 11][..], &[0]].concat());
    for l in &ls[..11] {
        assert!(l.admit());
    }
    assert!((0..50u32).all(|i| t.select(5, i.wrapping_mul(0x0101_0101)) == Pick::Cpu(11)));
}

#[test]
fn fill_first_takes_first_with_room() {
    let (t, ls) = table(Policy::FillFirst, &[&[0], &[0], &[0]], &[2, 1, 0]);
    let mut order = vec![];
    for _ in 0..5 {
        let h = handle(t.select(0, 0));
        assert!(ls[h].admit());
        order.push(h);
    }
    assert_eq!(order, [0, 0, 1, 2, 2]);
    assert_eq!(ls[0].info().active_conns, 2);
    assert!(ls[0].release());
    assert_eq!(t.select(0, 0), Pick::Cpu(0));
}

#[test]
fn a_lookup_is_not_a_connection() {
    // Two round-robin listeners on CPU 0, the first full.
    let (t, ls) = table(Policy::RoundRobin, &[&[0], &[0], &[1]], &[1, 0, 0]);
    assert!(ls[0].admit());
    // Lookups that no listener takes (a cookie ACK, a dropped SYN) move
    // no turn and count no skip, however many.
    for _ in 0..5 {
        assert_eq!(t.pick(0, 0), Pick::Cpu(1));
    }
    assert_eq!(t.info(&ls[0]).full_skips, 0);
    // The request listener 1 takes moves the turn past it, over the full
    // one: the next pick starts from listener 0 again, still full.
    t.table().turn(0, 1);
    assert_eq!(t.info(&ls[0]).full_skips, 1);
    assert!(ls[0].release());
    assert_eq!(t.pick(0, 0), Pick::Cpu(0));
    // Taken by a member of another CPU: each of CPU 0's full listeners
    // is passed over once, and its turn does not move.
    assert!(ls[0].admit());
    t.table().turn(0, 2);
    assert_eq!(t.info(&ls[0]).full_skips, 2);
    assert_eq!(t.pick(0, 0), Pick::Cpu(1));
}

#[test]
fn a_left_group_never_picks_a_relistened_listener() {
    // Listener 1 leaves this group's table and registers elsewhere: this
    // table, which may stay published for a while, must not pick it.
    let (t, ls) = table(Policy::RoundRobin, &[&[0], &[0]], &[0, 0]);
    set_gone(&ls[1], true);
    set_gone(&ls[1], false);
    assert!((0..4).all(|_| t.select(0, 0) == Pick::Cpu(0)));
    set_gone(&ls[0], true);
    assert_eq!(t.pick(0, 0), Pick::Empty);
    // A table built for its new registration picks it.
    let t2 = Group::new(Policy::RoundRobin, 1, &ls[1], &mask_of(&[0]), G).unwrap();
    assert_eq!(t2.pick(0, 0), Pick::Cpu(1));
}

#[test]
fn a_build_leaves_out_who_left_before_it() {
    // Listener 1 leaves between the snapshot and the build: the build
    // reads an odd registration and gives it no place on its CPUs, so it
    // is never picked, not even once it registers again (elsewhere).
    let (l0, l1) = (Listener::new(0, G).unwrap(), Listener::new(0, G).unwrap());
    set_gone(&l1, true);
    let (m0, m1) = (mask_of(&[0, 1]), mask_of(&[1]));
    let t = Group::of(Policy::RoundRobin, &[(0, &l0, &m0), (1, &l1, &m1)], G).unwrap();
    assert!(on(&t, 1) == [0]);
    assert!(on(&t, 0) == [0]);
    // Listener 0 full: nothing of CPU 1 has room, and listener 1, still
    // gone, is not picked instead (selection tests no parity).
    set_max_conns(&l0, 1);
    assert!(l0.admit());
    assert_eq!(t.pick(1, 0), Pick::Full(0));
    // Registered again, it is still not this table's.
    set_gone(&l1, false);
    assert_eq!(t.pick(1, 0), Pick::Full(0));
    assert!(l0.release());
    assert!((0..4).all(|_| t.select(1, 0) == Pick::Cpu(0)));
}

#[test]
fn a_table_names_the_registration_its_caller_saw() {
    // C saw listener 1 a member, registered; before the build read it, it
    // left and registered again, in another group: this table, built for
    // the registration C saw, must never pick it.
    let (l0, l1) = (lref(0), lref(0));
    let saw = l1.registration();
    set_gone(&l1, true);
    set_gone(&l1, false);
    let (m0, m1) = (mask_of(&[0]), mask_of(&[1]));
    let inputs = [(0, &l0, &m0, l0.registration()), (1, &l1, &m1, saw)].map(
        |(handle, listener, mask, reg)| Input {
            handle,
            listener,
            mask,
            reg,
        },
    );
    let t = Table::build(Policy::RoundRobin, inputs.into_iter(), None, G).unwrap();
    assert_eq!(t.pick(0, 0, &crate::NoTopology, true), Pick::Cpu(0));
    assert_eq!(t.pick(1, 0, &crate::NoTopology, true), Pick::Other(0));
}

#[test]
fn one_build_equals_registrations_in_turn() {
    let sets: [&[usize]; 4] = [&[0, 1], &[1], &[0, 70], &[3]];
    let (chained, ls) = table(Policy::RoundRobin, &sets, &[0; 4]);
    let once = group_at_once(Policy::RoundRobin, &sets, &ls);
    for cpu in 0..72 {
        assert_eq!(on(&once, cpu), on(&chained, cpu), "CPU {cpu}");
    }
    assert!(once.handles().eq(chained.handles()));
}

#[test]
fn fallback_order_and_full() {
    // CPU 0: listener 0 (cap 1). Others elsewhere.
    let (t, ls) = table(Policy::FillFirst, &[&[0], &[1], &[2]], &[1, 1, 1]);
    assert_eq!(t.select(0, 0), Pick::Cpu(0));
    assert!(ls[0].admit());
    // Full: the member reuseport's hash points at, if it has room.
    assert_eq!(t.select(0, 0), Pick::Other(1));
    assert_eq!(t.select(0, u32::MAX), Pick::Other(2));
    // A CPU nobody registered for: the same fallback.
    assert_eq!(t.select(3, 0), Pick::Other(1));
    assert!(ls[1].admit());
    assert!(ls[2].admit());
    // All full: the hash's member, whose admission then refuses.
    assert_eq!(t.select(0, u32::MAX), Pick::Full(2));
    assert!(!ls[2].admit());
    // Passed over on its own CPU for two connections; neither CPU 3's
    // nor the SYN dropped with every member full counts.
    assert_eq!(t.info(&ls[0]).full_skips, 2);
}

/// A group of `ls` (handle = index) with the given CPU sets, built at once
/// as the kernel builds a table from all its members.
fn group_at_once(policy: Policy, sets: &[&[usize]], ls: &[ListenerRef]) -> Group {
    let masks: Vec<_> = sets.iter().map(|s| mask_of(s)).collect();
    let members: Vec<_> = ls
        .iter()
        .zip(&masks)
        .enumerate()
        .map(|(h, (l, m))| (h, l, m.as_slice()))
        .collect();
    Group::of(policy, &members, G).unwrap()
}

/// A group whose fallback sees a topology.
struct Topo {
    g: Group,
    llc: Vec<u32>,
    node: Vec<u32>,
}

impl Topo {
    fn pick(&self, cpu: usize, hash: u32) -> Pick {
        let topo = Classes {
            llc: &self.llc,
            node: &self.node,
        };
        self.g.table().pick(cpu, hash, &topo, true)
    }

    fn with_member(&self, h: usize, l: &ListenerRef, mask: &[u64]) -> Topo {
        Topo {
            g: self.g.with_member(h, l, mask, G).unwrap(),
            llc: self.llc.clone(),
            node: self.node.clone(),
        }
    }

    fn without_member(&self, h: usize) -> Topo {
        Topo {
            g: self.g.without_member(h, G).unwrap(),
            llc: self.llc.clone(),
            node: self.node.clone(),
        }
    }
}

/// A group of listeners (handle = index, no cap unless given) built at
/// once, with a topology.
fn table_topo(
    policy: Policy,
    sets: &[&[usize]],
    caps: &[u32],
    llc: &[u32],
    node: &[u32],
) -> (Topo, Vec<ListenerRef>) {
    let ls: Vec<_> = caps.iter().map(|&c| lref(c)).collect();
    let g = group_at_once(policy, sets, &ls);
    let (llc, node) = (llc.to_vec(), node.to_vec());
    (Topo { g, llc, node }, ls)
}

/// Eight CPUs: caches {0,1} {2,3} {4,5} {6,7}, nodes {0-3} {4-7}.
const LLC8: [u32; 8] = [0, 0, 2, 2, 4, 4, 6, 6];
const NODE8: [u32; 8] = [0, 0, 0, 0, 4, 4, 4, 4];

/// Hashes spread over the whole range, as flows give.
fn hashes() -> impl Iterator<Item = u32> {
    (0..64u32).map(|i| i.wrapping_mul(0x9e37_79b9))
}

#[test]
fn fallback_nearest_first() {
    // 0 on CPU 0, 1 on CPU 1 (same cache), 2 on CPU 2 (same node), 3 on
    // CPU 4 and 4 on CPU 6 (the other node).  Each takes one connection.
    let sets: [&[usize]; 5] = [&[0], &[1], &[2], &[4], &[6]];
    let (t, ls) = table_topo(Policy::RoundRobin, &sets, &[1; 5], &LLC8, &NODE8);
    assert!(ls[0].admit());
    // CPU 0 full: its cache's listener, whatever the hash.
    assert!(hashes().all(|h| t.pick(0, h) == Pick::Other(1)));
    assert!(ls[1].admit());
    // Its cache full too: its node's.
    assert!(hashes().all(|h| t.pick(0, h) == Pick::Other(2)));
    // A CPU without listeners goes the same way: CPU 3 shares CPU 2's
    // cache, which is full now, so its node's member with room.
    assert!(ls[2].admit());
    // Node 0 full: any member, by hash.
    let far: Vec<_> = hashes().map(|h| t.pick(0, h)).collect();
    assert!(far.iter().all(|p| matches!(p, Pick::Other(3 | 4))));
    assert!(far.contains(&Pick::Other(3)) && far.contains(&Pick::Other(4)));
    assert!(hashes().all(|h| matches!(t.pick(3, h), Pick::Other(3 | 4))));
    // CPU 7 (node 1): its cache's listener 4 first.
    assert!(hashes().all(|h| t.pick(7, h) == Pick::Other(4)));
    assert!(ls[3].admit());
    assert!(ls[4].admit());
    assert!(hashes().all(|h| matches!(t.pick(0, h), Pick::Full(_))));
}

#[test]
fn fallback_spreads_over_a_near_cpus_listeners() {
    // Listener 0 on CPUs 0 and 1 (full); 1 and 2 on CPU 1 with room: the
    // scan of CPU 1, CPU 0's cache neighbour, starts where the hash
    // points among {0, 1, 2}, so the hash spreads over 1 and 2.
    let sets: [&[usize]; 3] = [&[0, 1], &[1], &[1]];
    let (t, ls) = table_topo(Policy::FillFirst, &sets, &[1, 0, 0], &LLC8, &NODE8);
    assert!(ls[0].admit());
    let picks: Vec<_> = (0..3000u32)
        .map(|i| t.pick(0, i.wrapping_mul(0x9e37_79b9)))
        .collect();
    let n1 = picks.iter().filter(|&&p| p == Pick::Other(1)).count();
    let n2 = picks.iter().filter(|&&p| p == Pick::Other(2)).count();
    assert_eq!(n1 + n2, 3000);
    // Starts 1 and 2 send to 1 and 2, start 0 (full) on to 1: 2/3, 1/3.
    assert!((1900..2100).contains(&n1), "{n1}");
}

#[test]
fn fallback_without_class() {
    // CPU 0 offline or unknown (no class), CPU 9 past the topology: the
    // whole group, as without a topology.
    let llc = [u32::MAX, 0, 2, 2];
    let node = [u32::MAX, 0, 0, 0];
    let sets: [&[usize]; 3] = [&[0], &[1], &[9]];
    let (t, ls) = table_topo(Policy::RoundRobin, &sets, &[1, 0, 0], &llc, &node);
    assert!(ls[0].admit());
    let picks: Vec<_> = hashes().map(|h| t.pick(0, h)).collect();
    assert!(picks.contains(&Pick::Other(1)) && picks.contains(&Pick::Other(2)));
    let picks: Vec<_> = hashes().map(|h| t.pick(8, h)).collect();
    assert!(picks.contains(&Pick::Other(1)) && picks.contains(&Pick::Other(2)));
    // Ids out of range are no class either.
    let llc = [7, 7, 7, 7];
    let (t, ls) = table_topo(Policy::RoundRobin, &sets, &[1, 0, 0], &llc, &llc);
    assert!(ls[0].admit());
    let picks: Vec<_> = hashes().map(|h| t.pick(0, h)).collect();
    assert!(picks.contains(&Pick::Other(1)) && picks.contains(&Pick::Other(2)));
}

#[test]
fn fallback_topology_survives_rebuilds_and_skips_the_gone() {
    let sets: [&[usize]; 3] = [&[0], &[1], &[4]];
    let (t, ls) = table_topo(Policy::RoundRobin, &sets, &[1, 1, 0], &LLC8, &NODE8);
    assert!(ls[0].admit());
    let l3 = lref(0);
    let t = t.with_member(3, &l3, &mask_of(&[3]));
    assert!(hashes().all(|h| t.pick(0, h) == Pick::Other(1)));
    assert!(ls[1].admit());
    // Listener 3 (CPU 3) is on node 0, listener 2 is not.
    assert!(hashes().all(|h| t.pick(0, h) == Pick::Other(3)));
    // Gone, it is skipped at once, then left out of the next build.
    set_gone(&l3, true);
    assert!(hashes().all(|h| t.pick(0, h) == Pick::Other(2)));
    let t = t.without_member(3);
    assert!(hashes().all(|h| t.pick(0, h) == Pick::Other(2)));
}

proptest! {
    /// Whatever the topology, members and counts, a connection that its
    /// CPU's listeners cannot take goes to a member with room of its
    /// cache if there is one, else of its node, else any.
    #[test]
    fn fallback_is_nearest_with_room(
        llc in proptest::collection::vec(0u32..10, 8),
        node in proptest::collection::vec(0u32..10, 8),
        sets in proptest::collection::vec(proptest::collection::btree_set(0usize..8, 1..3), 1..8),
        full in proptest::collection::vec(any::<bool>(), 8),
        cpu in 0usize..8,
        hash in any::<u32>(),
    ) {
        let sets: Vec<Vec<usize>> = sets.into_iter().map(|s| s.into_iter().collect()).collect();
        let refs: Vec<&[usize]> = sets.iter().map(|s| s.as_slice()).collect();
        let (t, ls) = table_topo(Policy::RoundRobin, &refs, &vec![1; sets.len()], &llc, &node);
        for (l, &f) in ls.iter().zip(&full) {
            if f {
                prop_assert!(l.admit());
            }
        }
        let room = |h: usize| !full.get(h).copied().unwrap_or(false);
        let near = |ids: &[u32], h: usize| {
            let id = ids[cpu];
            id < 8 && sets[h].iter().any(|&c| ids[c] == id)
        };
        let own: Vec<usize> = (0..sets.len()).filter(|&h| sets[h].contains(&cpu)).collect();
        let p = t.pick(cpu, hash);
        if own.iter().any(|&h| room(h)) {
            prop_assert!(matches!(p, Pick::Cpu(h) if own.contains(&h) && room(h)));
        } else if let Some(kind) = [&llc, &node]
            .into_iter()
            .position(|ids| (0..sets.len()).any(|h| room(h) && near(ids, h)))
        {
            let ids = [&llc, &node][kind];
            prop_assert!(matches!(p, Pick::Other(h) if room(h) && near(ids, h)), "{p:?}");
            // Nothing nearer had room.
            if kind == 1 {
                prop_assert!(!(0..sets.len()).any(|h| room(h) && near(&llc, h)));
            }
        } else if (0..sets.len()).any(room) {
            prop_assert!(matches!(p, Pick::Other(h) if room(h)));
        } else {
            prop_assert!(matches!(p, Pick::Full(_)));
        }
    }
}

#[test]
fn gone_listeners_are_never_picked() {
    let (t, ls) = table(Policy::RoundRobin, &[&[0], &[0]], &[0, 0]);
    set_gone(&ls[0], true);
    assert!((0..4).all(|_| t.select(0, 0) == Pick::Cpu(1)));
    set_gone(&ls[1], true);
    assert_eq!(t.select(0, 0), Pick::Empty);
    // A rebuild drops them.
    let t2 = t.without_member(99, G).unwrap();
    assert_eq!(t2.handles().count(), 0);
    assert_eq!(t2.select(0, 0), Pick::Empty);
}

#[test]
fn cursor_survives_unrelated_change() {
    let (t, ls) = table(Policy::RoundRobin, &[&[0], &[0], &[1]], &[0, 0, 0]);
    let a = handle(t.select(0, 0));
    let t = t.with_member(2, &ls[2], &mask_of(&[5]), G).unwrap();
    let b = handle(t.select(0, 0));
    assert_ne!(a, b);
}

#[test]
fn admission_respects_cap_and_release_floor() {
    let l = lref(2);
    assert_eq!(l.room(), Room::Yes);
    assert!(l.admit() && l.admit() && !l.admit());
    assert_eq!(l.room(), Room::Full);
    set_max_conns(&l, 1);
    assert!(!l.admit());
    assert_eq!(l.info().active_conns, 2);
    // Only slots handed to a connection count in the total.
    assert_eq!(l.info().total_conns, 0);
    l.hand();
    l.hand();
    assert!(l.release() && l.release());
    assert!(!l.release());
    assert_eq!(l.info().active_conns, 0);
    assert_eq!(l.info().total_conns, 2);
    set_max_conns(&l, 0);
    assert!((0..100).all(|_| l.admit()));
}

#[test]
fn cap_holds_under_concurrency() {
    let l = std::sync::Arc::new(lref(3));
    let inside = std::sync::Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (l, inside) = (l.clone(), inside.clone());
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    if l.admit() {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 3, "cap exceeded: {now}");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        assert!(l.release());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(l.info().active_conns, 0);
}

#[test]
fn references_free_exactly_once() {
    let before = mem::live();
    let l = lref(0);
    let raw = ListenerRef::into_raw(l.clone());
    assert_eq!(mem::live(), before + 1);
    // SAFETY: `raw` holds a reference until `from_raw` below.
    assert!(unsafe { ArcBorrow::from_raw(raw) }.admit());
    assert_eq!(l.info().active_conns, 1);
    drop(l);
    assert_eq!(mem::live(), before + 1);
    // A new reference from a borrowed one, as reuserps_listener_get().
    // SAFETY: `raw` still holds its reference.
    let again = ListenerRef::from(unsafe { ArcBorrow::from_raw(raw) });
    // SAFETY: `raw` came from `into_raw` and is taken back once.
    drop(unsafe { ListenerRef::from_raw(raw) });
    assert_eq!(mem::live(), before + 1);
    drop(again);
    assert_eq!(mem::live(), before);
}

#[test]
fn failed_builds_leave_nothing_behind() {
    let (t, ls) = table(Policy::RoundRobin, &[&[0, 1], &[1], &[2]], &[0, 0, 0]);
    let before = mem::live();
    let extra = lref(0);
    for n in 0..8 {
        mem::fail_after(Some(n));
        let r = t.with_member(3, &extra, &mask_of(&[1, 2]), G);
        mem::fail_after(None);
        if let Err(e) = r {
            assert_eq!(e, ENOMEM);
        }
        mem::fail_after(Some(n));
        let r = t.without_member(1, G);
        mem::fail_after(None);
        if let Err(e) = r {
            assert_eq!(e, ENOMEM);
        }
    }
    assert_eq!(on(&t, 1), [0, 1]);
    drop(extra);
    assert_eq!(mem::live(), before);
    drop((t, ls));
    assert_eq!(mem::live(), before - 3);
}

#[test]
fn many_listeners_many_cpus() {
    let n = 256;
    let ls: Vec<_> = (0..n).map(|_| lref(0)).collect();
    let mut t = Group::new(Policy::RoundRobin, 0, &ls[0], &mask_of(&[0]), G).unwrap();
    for (h, l) in ls.iter().enumerate().skip(1) {
        t = t
            .with_member(h, l, &mask_of(&[h % 256, (h * 7) % 256]), G)
            .unwrap();
    }
    for cpu in 0..256 {
        let mine = on(&t, cpu);
        assert!(!mine.is_empty());
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        assert!(matches!(t.select(cpu, 0), Pick::Cpu(h) if mine.contains(&h)));
    }
}

/// `n` listeners of CPU 0 with a cap of one, all but the last full, in a
/// group with a bell that they ring.
fn all_but_last_full(policy: Policy, n: usize) -> (Group, Vec<ListenerRef>, Arc<Bell>) {
    let sets: Vec<&[usize]> = vec![&[0]; n];
    let (t, ls) = table(policy, &sets, &vec![1; n]);
    let bell = Bell::new(G).unwrap();
    let t = t.with_bell(&bell, G).unwrap();
    for l in &ls {
        // SAFETY: The callers keep `bell` until their last release.
        unsafe { l.set_bell(&*bell) };
    }
    for l in &ls[..n - 1] {
        assert!(l.admit());
    }
    (t, ls, bell)
}

#[test]
fn full_listeners_are_skipped_until_one_gets_room() {
    for policy in [Policy::FillFirst, Policy::RoundRobin, Policy::LeastConns] {
        let n = 200;
        let (t, ls, _bell) = all_but_last_full(policy, n);
        for _ in 0..5 {
            assert_eq!(t.select(0, 7), Pick::Cpu(n - 1), "{policy:?}");
        }
        // Room again: the bell rings, and the CPU looks again at once.
        assert!(ls[37].release());
        assert_eq!(t.select(0, 7), Pick::Cpu(37), "{policy:?}");
        // A raised cap rings it too; the rotations reach it after 199.
        assert!(ls[37].admit());
        ls[5].configure(2, false);
        if policy != Policy::FillFirst {
            assert_eq!(t.select(0, 7), Pick::Cpu(n - 1), "{policy:?}");
        }
        assert_eq!(t.select(0, 7), Pick::Cpu(5), "{policy:?}");
        // Each full listener passed over counts one skip per request;
        // least connections counts those it compared, up to eight.
        let skips: u64 = ls.iter().map(|l| t.info(l).full_skips).sum();
        let least = if policy == Policy::LeastConns {
            5
        } else {
            5 * (n as u64 - 1)
        };
        assert!(skips > least, "{policy:?}: {skips}");
    }
}

#[test]
fn a_cpu_believes_its_notes_until_the_bell_rings() {
    let n = 130;
    let (t, ls, _bell) = all_but_last_full(Policy::FillFirst, n);
    // The first selection notes listeners 1 to n - 2 full.
    assert_eq!(t.select(0, 0), Pick::Cpu(n - 1));
    // Room without a ring (a listener told of no bell): still skipped,
    // which shows that the CPU reads its notes, not the listeners.
    // SAFETY: NULL: no bell.
    unsafe { ls[99].set_bell(core::ptr::null()) };
    assert!(ls[99].release());
    assert_eq!(t.select(0, 0), Pick::Cpu(n - 1));
    // A lookup from elsewhere (not the CPU's own) reads the listeners.
    assert_eq!(
        t.table().pick(0, 0, &crate::NoTopology, false),
        Pick::Cpu(99)
    );
    // Any ring and the CPU looks again.
    assert!(ls[3].release());
    assert_eq!(t.select(0, 0), Pick::Cpu(3));
    assert!(ls[3].admit());
    assert_eq!(t.select(0, 0), Pick::Cpu(99));
}

// The model-based property test.

const NCPU: usize = 70; // Crosses a mask word boundary.
const NH: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    Register {
        h: usize,
        cpus: Vec<usize>,
        cap: u32,
    },
    Unregister {
        h: usize,
    },
    Syn {
        cpu: usize,
        hash: u32,
    },
    End {
        k: usize,
    },
    FailNextAlloc {
        after: usize,
    },
}

/// Mostly CPUs 0 to 3, so that CPUs often have several listeners and
/// SYNs often find them; sometimes any, across the mask word boundary.
fn cpu() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0..4usize, 1 => 0..NCPU]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..NH, prop::collection::vec(cpu(), 1..4), 0u32..4)
            .prop_map(|(h, cpus, cap)| Op::Register { h, cpus, cap }),
        1 => (0..NH).prop_map(|h| Op::Unregister { h }),
        6 => (cpu(), any::<u32>()).prop_map(|(cpu, hash)| Op::Syn { cpu, hash }),
        3 => any::<usize>().prop_map(|k| Op::End { k }),
        1 => (0usize..6).prop_map(|after| Op::FailNextAlloc { after }),
    ]
}

struct ModelListener {
    lref: ListenerRef,
    cpus: Vec<usize>,
    cap: u32,
    active: u32,
    total: u64,
    skips: u64,
    registered: bool,
}

struct Model {
    policy: Policy,
    table: Option<Group>,
    /// Handles in the table, in order (gone ones included until rebuilt).
    order: Vec<usize>,
    ls: Vec<Option<ModelListener>>,
    conns: Vec<(usize, ListenerRef)>,
    /// The table's round-robin cursors, by CPU.
    cursors: std::collections::HashMap<usize, u32>,
    /// The group's bell, which every listener rings: each CPU skips the
    /// listeners it found full until then, and the model must not see it.
    bell: Arc<Bell>,
}

impl Model {
    fn has_room(&self, h: usize) -> bool {
        let l = self.ls[h].as_ref().unwrap();
        l.registered && (l.cap == 0 || l.active < l.cap)
    }

    fn live(&self, h: usize) -> bool {
        self.ls[h].as_ref().is_some_and(|l| l.registered)
    }

    /// What the table must answer, and which listeners it passes over full.
    /// The handles registered for `cpu`, in table order.
    fn on(&self, cpu: usize) -> Vec<usize> {
        self.order
            .iter()
            .copied()
            .filter(|&h| self.ls[h].as_ref().unwrap().cpus.contains(&cpu))
            .collect()
    }

    /// The table's round-robin cursors: one per CPU with two listeners
    /// or more, carried over if the CPU had one, else starting at 0.
    fn rebuild_cursors(&mut self) {
        for cpu in 0..NCPU {
            let n = self.on(cpu).len();
            if self.policy != Policy::FillFirst && n > 1 {
                // Carried over at the same position, or back to the start
                // if the list got shorter than that.
                let c = self.cursors.entry(cpu).or_insert(0);
                if *c as usize >= n {
                    *c = 0;
                }
            } else {
                self.cursors.remove(&cpu);
            }
        }
    }

    /// The pick, the full listeners passed over, and the position chosen
    /// on the CPU's list.
    fn expect(&self, cpu: usize, hash: u32) -> (Pick, Vec<usize>, Option<usize>) {
        let on = self.on(cpu);
        let start = self
            .cursors
            .get(&cpu)
            .map_or(0, |&c| c as usize % on.len().max(1));
        let mut skipped = vec![];
        // Least connections (up to 8 listeners on a CPU: all compared):
        // the first in turn with the fewest.
        let least = (self.policy == Policy::LeastConns && on.len() > 1)
            .then(|| {
                (0..on.len())
                    .map(|i| (start + i) % on.len())
                    .filter(|&p| self.live(on[p]) && self.has_room(on[p]))
                    .min_by_key(|&p| {
                        let a = self.ls[on[p]].as_ref().unwrap().active;
                        (a, (p + on.len() - start) % on.len())
                    })
            })
            .flatten();
        for i in 0..on.len() {
            let pos = (start + i) % on.len();
            let h = on[pos];
            if !self.live(h) {
                continue;
            }
            if least == Some(pos) || (least.is_none() && self.has_room(h)) {
                return (Pick::Cpu(h), skipped, Some(pos));
            }
            if !self.has_room(h) {
                skipped.push(h);
            }
        }
        let n = self.order.len();
        let s = ((hash as u64 * n as u64) >> 32) as usize;
        let mut first_live = None;
        for i in 0..n {
            let h = self.order[(s + i) % n];
            if !self.live(h) {
                continue;
            }
            if self.has_room(h) {
                return (Pick::Other(h), skipped, None);
            }
            first_live.get_or_insert(h);
        }
        (first_live.map_or(Pick::Empty, Pick::Full), skipped, None)
    }

    fn check(&self) {
        let Some(t) = &self.table else {
            assert!(self.order.is_empty());
            return;
        };
        assert_eq!(t.handles().collect::<Vec<_>>(), self.order);
        for l in self.ls.iter().flatten() {
            let info = t.info(&l.lref);
            assert_eq!(info.active_conns, l.active);
            assert_eq!(info.total_conns, l.total);
            assert_eq!(info.full_skips, l.skips);
            assert_eq!(info.max_conns, l.cap);
        }
    }

    /// What the table lists for each CPU: found by building tables, so
    /// only once no allocation is made to fail.
    fn check_order(&self) {
        let Some(t) = &self.table else {
            return;
        };
        for cpu in (0..6).chain(NCPU - 8..NCPU + 2) {
            let want: Vec<_> = self
                .order
                .iter()
                .copied()
                .filter(|&h| self.live(h) && self.ls[h].as_ref().unwrap().cpus.contains(&cpu))
                .collect();
            assert_eq!(on(t, cpu), want, "cpu {cpu}");
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::FailNextAlloc { after } => mem::fail_after(Some(*after)),
            Op::Register { h, cpus, cap } => self.register(*h, cpus, *cap),
            Op::Unregister { h } => self.unregister(*h),
            Op::Syn { cpu, hash } => self.syn(*cpu, *hash),
            Op::End { k } => {
                if self.conns.is_empty() {
                    return;
                }
                let (h, l) = self.conns.swap_remove(k % self.conns.len());
                assert!(l.release());
                self.ls[h].as_mut().unwrap().active -= 1;
            }
        }
    }

    fn register(&mut self, h: usize, cpus: &[usize], cap: u32) {
        let mask = mask_of(cpus);
        assert!(check_mask(&mask, NCPU).is_ok());
        let (l, fresh) = match self.ls[h].as_ref() {
            Some(m) => (m.lref.clone(), false),
            None => match Listener::new(cap, G) {
                Ok(l) => {
                    // SAFETY: The model's bell outlives every release of
                    // its listeners: all connections end before it goes.
                    unsafe { l.set_bell(&*self.bell) };
                    (l, true)
                }
                Err(e) => {
                    assert_eq!(e, ENOMEM);
                    return;
                }
            },
        };
        // C registers the listener when it joins, then builds the table
        // for that registration.
        let was_gone = gone(&l);
        set_gone(&l, false);
        let built = match &self.table {
            None => {
                Group::new(self.policy, h, &l, &mask, G).and_then(|g| g.with_bell(&self.bell, G))
            }
            Some(t) => t.with_member(h, &l, &mask, G),
        };
        let t = match built {
            Ok(t) => t,
            Err(e) => {
                // Nothing changed; a fresh listener is simply dropped.
                assert_eq!(e, ENOMEM);
                if was_gone {
                    set_gone(&l, true);
                }
                return;
            }
        };
        // Committed: what C does once the new table is published.
        set_max_conns(&l, cap);
        self.table = Some(t);
        if fresh {
            self.ls[h] = Some(ModelListener {
                lref: l,
                cpus: vec![],
                cap,
                active: 0,
                total: 0,
                skips: 0,
                registered: true,
            });
        }
        let m = self.ls[h].as_mut().unwrap();
        m.cpus = cpus.to_vec();
        m.cap = cap;
        m.registered = true;
        // Rebuilds drop the gone; a new member goes last.
        let ls = &self.ls;
        self.order
            .retain(|&o| o == h || ls[o].as_ref().unwrap().registered);
        if !self.order.contains(&h) {
            self.order.push(h);
        }
        self.rebuild_cursors();
    }

    fn unregister(&mut self, h: usize) {
        let Some(t) = &self.table else { return };
        if !self.live(h) {
            return;
        }
        match t.without_member(h, G) {
            Ok(t) => {
                self.table = Some(t);
                self.ls[h].as_mut().unwrap().registered = false;
                let ls = &self.ls;
                self.order.retain(|&o| ls[o].as_ref().unwrap().registered);
                self.rebuild_cursors();
            }
            Err(e) => {
                // C's fallback: keep the old table, mark the listener gone
                // once its full skips there are its own.
                assert_eq!(e, ENOMEM);
                t.table().fold(&self.ls[h].as_ref().unwrap().lref);
                set_gone(&self.ls[h].as_ref().unwrap().lref, true);
                self.ls[h].as_mut().unwrap().registered = false;
            }
        }
        set_gone(&self.ls[h].as_ref().unwrap().lref, true);
    }

    fn syn(&mut self, cpu: usize, hash: u32) {
        let Some(t) = &self.table else { return };
        let got = t.select(cpu, hash);
        let (want, skipped, pos) = self.expect(cpu, hash);
        assert_eq!(got, want, "select({cpu}, {hash})");
        // The turn moves past the listener chosen, wrapping at the end of
        // the CPU's list as it is now: a listener that joins later comes
        // after the wrap.
        let n = self.on(cpu).len();
        if let (Some(c), Some(pos)) = (self.cursors.get_mut(&cpu), pos) {
            *c = ((pos + 1) % n) as u32;
        }
        // Skips count for connection requests some listener took.
        if matches!(got, Pick::Cpu(_) | Pick::Other(_)) {
            for s in skipped {
                self.ls[s].as_mut().unwrap().skips += 1;
            }
        }
        match got {
            Pick::Cpu(h) | Pick::Other(h) => {
                let m = self.ls[h].as_mut().unwrap();
                assert!(m.lref.admit(), "picked listener {h} refused");
                m.lref.hand();
                m.active += 1;
                // Admission never takes a listener past its cap (a lowered
                // cap may leave it above, but then it admits nothing).
                assert!(m.cap == 0 || m.active <= m.cap, "cap exceeded");
                m.total += 1;
                self.conns.push((h, m.lref.clone()));
            }
            Pick::Full(h) => {
                assert!(!self.ls[h].as_ref().unwrap().lref.admit());
            }
            Pick::Empty => assert!(self.order.iter().all(|&h| !self.live(h))),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn model_holds(policy in 0u32..3,
                   ops in prop::collection::vec(op(), 1..120)) {
        let before = mem::live();
        let policy = Policy::from_uapi(policy).unwrap();
        let bell = Bell::new(G).unwrap();
        let mut m = Model { policy, table: None, order: vec![],
                            ls: (0..NH).map(|_| None).collect(), conns: vec![], cursors: Default::default(),
                            bell };
        for op in &ops {
            m.apply(op);
            m.check();
        }
        mem::fail_after(None);
        m.check_order();
        // Every end path gives its count back: all connections end.
        while !m.conns.is_empty() {
            m.apply(&Op::End { k: 0 });
        }
        m.check();
        for l in m.ls.iter().flatten() {
            prop_assert_eq!(l.lref.info().active_conns, 0);
        }
        drop(m);
        prop_assert_eq!(mem::live(), before);
    }
}
