// SPDX-License-Identifier: GPL-2.0

//! Tests of the policy core.
//!
//! In the kernel they are the KUnit suite `reuserps` (`#[kunit_tests]`,
//! with `CONFIG_REUSERPS_KUNIT_TEST`); on the host the same module runs
//! under `cargo test`, with the host stand-in of the `kernel` crate.
//!
//! [`Group`] keeps a group's members as C does and builds its tables as C
//! does, so that the tests drive the core through what the kernel calls
//! and nothing else: the core has no test-only code.

use crate::{
    listener::{
        Bell,
        Info,
        Listener, //
    },
    table::{
        Input,
        Pick,
        Policy,
        Table,
        Topology, //
    }, //
};
use kernel::{
    alloc::{
        Flags,
        KVec, //
    },
    error::Result,
    sync::Arc, //
};

/// No topology: the fallback goes from a CPU's listeners to the group.
pub(crate) struct Flat;

impl Topology for Flat {
    fn share_cache(&self, _a: usize, _b: usize) -> bool {
        false
    }

    fn same_node(&self, _a: usize, _b: usize) -> bool {
        false
    }
}

/// A topology given per CPU as the id of its cache and of its node; a CPU
/// past either list, or whose id is past it, shares nothing.
pub(crate) struct Classes<'a> {
    /// Per CPU, its last level cache.
    pub(crate) llc: &'a [u32],
    /// Per CPU, its NUMA node.
    pub(crate) node: &'a [u32],
}

impl Classes<'_> {
    fn same(ids: &[u32], a: usize, b: usize) -> bool {
        match (ids.get(a), ids.get(b)) {
            (Some(&x), Some(&y)) => x == y && (x as usize) < ids.len(),
            _ => false,
        }
    }
}

impl Topology for Classes<'_> {
    fn share_cache(&self, a: usize, b: usize) -> bool {
        Self::same(self.llc, a, b)
    }

    fn same_node(&self, a: usize, b: usize) -> bool {
        Self::same(self.node, a, b)
    }
}

/// The handle a pick names, `usize::MAX` for none.
pub(crate) fn handle(p: Pick) -> usize {
    match p {
        Pick::Cpu(h) | Pick::Other(h) | Pick::Full(h) => h,
        Pick::Empty => usize::MAX,
    }
}

/// One member of a [`Group`].
struct Member {
    handle: usize,
    listener: Arc<Listener>,
    mask: KVec<u64>,
}

/// A group's members in registration order and its current table, as C
/// keeps them: every change builds a new table from all the members and
/// carries the round-robin turns over.
pub(crate) struct Group {
    policy: Policy,
    members: KVec<Member>,
    table: Table,
    bell: Option<Arc<Bell>>,
}

impl Group {
    fn inputs(members: &[Member]) -> impl Iterator<Item = Input<'_>> + Clone {
        members.iter().map(|m| Input {
            handle: m.handle,
            listener: &m.listener,
            mask: &m.mask,
            reg: m.listener.registration(),
        })
    }

    fn member(handle: usize, l: &Arc<Listener>, mask: &[u64], f: Flags) -> Result<Member> {
        let mut m = KVec::with_capacity(mask.len(), f)?;
        m.extend_from_slice(mask, f)?;
        Ok(Member {
            handle,
            listener: l.clone(),
            mask: m,
        })
    }

    fn copy(&self, keep: impl Fn(&Member) -> bool, f: Flags) -> Result<KVec<Member>> {
        let mut out = KVec::with_capacity(self.members.len() + 1, f)?;
        for m in self.members.iter().filter(|m| keep(m)) {
            out.push(Self::member(m.handle, &m.listener, &m.mask, f)?, f)?;
        }
        Ok(out)
    }

    fn rebuilt(&self, members: KVec<Member>, f: Flags) -> Result<Self> {
        let table = Table::build(self.policy, Self::inputs(&members), self.bell.as_ref(), f)?;
        table.carry_cursors(&self.table);
        Ok(Self {
            policy: self.policy,
            members,
            table,
            bell: self.bell.clone(),
        })
    }

    /// A group of the members given at once, in order.
    pub(crate) fn of(
        policy: Policy,
        members: &[(usize, &Arc<Listener>, &[u64])],
        f: Flags,
    ) -> Result<Self> {
        let mut ms = KVec::with_capacity(members.len(), f)?;
        for &(h, l, m) in members {
            ms.push(Self::member(h, l, m, f)?, f)?;
        }
        let table = Table::build(policy, Self::inputs(&ms), None, f)?;
        Ok(Self {
            policy,
            members: ms,
            table,
            bell: None,
        })
    }

    /// A group of one listener.
    pub(crate) fn new(
        policy: Policy,
        handle: usize,
        l: &Arc<Listener>,
        mask: &[u64],
        f: Flags,
    ) -> Result<Self> {
        Self::of(policy, &[(handle, l, mask)], f)
    }

    /// The group once `handle` has registered (again) with `l` and `mask`:
    /// it keeps its place, or comes last; members that left are dropped.
    pub(crate) fn with_member(
        &self,
        handle: usize,
        l: &Arc<Listener>,
        mask: &[u64],
        f: Flags,
    ) -> Result<Self> {
        let mut ms = self.copy(|m| m.handle == handle || !gone(&m.listener), f)?;
        match ms.iter_mut().find(|m| m.handle == handle) {
            Some(m) => *m = Self::member(handle, l, mask, f)?,
            None => ms.push(Self::member(handle, l, mask, f)?, f)?,
        }
        self.rebuilt(ms, f)
    }

    /// The group without `handle` nor the members that left.
    pub(crate) fn without_member(&self, handle: usize, f: Flags) -> Result<Self> {
        let ms = self.copy(|m| m.handle != handle && !gone(&m.listener), f)?;
        self.rebuilt(ms, f)
    }

    /// The group with `bell`, which its tables keep, so that each CPU
    /// remembers who it found full until the bell rings.  Its members
    /// ring it only once they were told of it ([`Listener::set_bell`]).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn with_bell(&self, bell: &Arc<Bell>, f: Flags) -> Result<Self> {
        let table = Table::build(self.policy, Self::inputs(&self.members), Some(bell), f)?;
        Ok(Self {
            policy: self.policy,
            members: self.copy(|_| true, f)?,
            table,
            bell: Some(bell.clone()),
        })
    }

    /// The current table.
    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// A lookup without a topology, on `cpu` itself.
    pub(crate) fn pick(&self, cpu: usize, hash: u32) -> Pick {
        self.table.pick(cpu, hash, &Flat, true)
    }

    /// A listener's counts, with its full skips in the current table.
    pub(crate) fn info(&self, l: &Listener) -> Info {
        self.table.info(l)
    }

    /// A SYN on `cpu` as the kernel handles it: the lookup, then the turn
    /// of the listener that takes it.
    pub(crate) fn select(&self, cpu: usize, hash: u32) -> Pick {
        let p = self.pick(cpu, hash);
        // The kernel's fast path agrees whenever it answers.
        if let Some(h) = self.table.pick_first(cpu) {
            assert!(p == Pick::Cpu(h));
        }
        if let Pick::Cpu(h) | Pick::Other(h) = p {
            self.table.turn(cpu, h);
        }
        p
    }

    /// The members' handles, in registration order.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn handles(&self) -> impl Iterator<Item = usize> + '_ {
        self.members.iter().map(|m| m.handle)
    }

    /// Calls `f` with the handles the table lists for `cpu`, in order.
    ///
    /// Found by selection alone: a fill-first table of the same members,
    /// each a fresh listener with a cap of one (none for those that
    /// left), answers the CPU's listeners one by one as each fills.
    pub(crate) fn cpu_handles(&self, cpu: usize, f: Flags) -> Result<KVec<usize>> {
        let mut fresh = KVec::with_capacity(self.members.len(), f)?;
        for m in self.members.iter() {
            let l = Listener::new(1, f)?;
            l.configure(1, gone(&m.listener));
            fresh.push(Self::member(m.handle, &l, &m.mask, f)?, f)?;
        }
        let t = Table::build(Policy::FillFirst, Self::inputs(&fresh), None, f)?;
        let mut out = KVec::with_capacity(fresh.len(), f)?;
        while let Pick::Cpu(h) = t.pick(cpu, 0, &Flat, false) {
            out.push(h, f)?;
            let m = fresh.iter().find(|m| m.handle == h);
            assert!(m.is_some_and(|m| m.listener.admit()));
        }
        Ok(out)
    }
}

/// Whether a listener left its group.
pub(crate) fn gone(l: &Listener) -> bool {
    l.registration() & 1 != 0
}

#[cfg_attr(not(test), kernel::prelude::kunit_tests(reuserps))]
mod tests {
    use super::{
        handle,
        Classes,
        Group, //
    };
    use crate::{
        listener::{
            Bell,
            Listener, //
        },
        table::{
            check_mask,
            Pick,
            Policy, //
        }, //
    };
    use core::cell::Cell;
    use kernel::{
        alloc::flags::GFP_KERNEL,
        error::{
            code::EINVAL,
            Result, //
        }, //
    };

    fn mask_of(cpus: &[usize]) -> [u64; 4] {
        let mut m = [0u64; 4];
        for &c in cpus {
            if let Some(w) = m.get_mut(c / 64) {
                *w |= 1 << (c % 64);
            }
        }
        m
    }

    /// Masks: empty, out of range, too long, trailing zero words.
    #[test]
    fn masks() {
        assert_eq!(check_mask(&[], 4), Err(EINVAL));
        assert_eq!(check_mask(&[0, 0], 4), Err(EINVAL));
        assert_eq!(check_mask(&[0b10000], 4), Err(EINVAL));
        assert_eq!(check_mask(&[0b1111, 0, 0], 4), Ok(1));
        assert_eq!(check_mask(&[0, 1], 65), Ok(2));
        assert_eq!(check_mask(&[0, 1], 64), Err(EINVAL));
        assert_eq!(check_mask(&[1; 17], 4), Err(EINVAL));
    }

    /// Round robin: strict rotation, k/n each, full ones skipped and counted.
    #[test]
    fn round_robin() -> Result {
        let a = Listener::new(0, GFP_KERNEL)?;
        let b = Listener::new(1, GFP_KERNEL)?;
        let c = Listener::new(0, GFP_KERNEL)?;
        let m = mask_of(&[0, 65]);
        let t = Group::new(Policy::RoundRobin, 10, &a, &m, GFP_KERNEL)?;
        let t = t.with_member(11, &b, &m, GFP_KERNEL)?;
        let t = t.with_member(12, &c, &m, GFP_KERNEL)?;
        let mut got = [0usize; 3];
        let mut last = usize::MAX;
        for i in 0..30 {
            let h = handle(t.select(65, 0));
            assert!((10..13).contains(&h));
            assert!(h != last);
            if i >= 3 {
                // The rotation repeats every three.
                assert_eq!(got.iter().sum::<usize>(), i);
            }
            if let Some(g) = got.get_mut(h - 10) {
                *g += 1;
            }
            last = h;
        }
        assert_eq!(got, [10, 10, 10]);
        assert!(b.admit());
        for _ in 0..10 {
            assert!(t.select(0, 0) != Pick::Cpu(11));
        }
        assert!(t.info(&b).full_skips > 0);
        Ok(())
    }

    /// Fill first: registration order, caps, release gives room back.
    #[test]
    fn fill_first() -> Result {
        let a = Listener::new(2, GFP_KERNEL)?;
        let b = Listener::new(1, GFP_KERNEL)?;
        let m = mask_of(&[3]);
        let t = Group::new(Policy::FillFirst, 1, &a, &m, GFP_KERNEL)?;
        let t = t.with_member(2, &b, &m, GFP_KERNEL)?;
        for want in [1, 1, 2] {
            let h = handle(t.select(3, 0));
            assert_eq!(h, want);
            let l = if h == 1 { &a } else { &b };
            assert!(l.admit());
            l.hand();
        }
        // All full: the hash's member, whose admission refuses.
        assert!(matches!(t.select(3, 0), Pick::Full(_)));
        assert!(!a.admit() && !b.admit());
        assert!(a.release());
        assert_eq!(t.select(3, 0), Pick::Cpu(1));
        assert!(a.release() && !a.release());
        assert!(b.release());
        assert_eq!(a.info().active_conns, 0);
        assert_eq!(a.info().total_conns, 2);
        Ok(())
    }

    /// Least connections: the fewest live, ties in turn, caps honoured.
    #[test]
    fn least_conns() -> Result {
        let a = Listener::new(0, GFP_KERNEL)?;
        let b = Listener::new(0, GFP_KERNEL)?;
        let c = Listener::new(1, GFP_KERNEL)?;
        let m = mask_of(&[2]);
        let t = Group::new(Policy::LeastConns, 1, &a, &m, GFP_KERNEL)?;
        let t = t.with_member(2, &b, &m, GFP_KERNEL)?;
        let t = t.with_member(3, &c, &m, GFP_KERNEL)?;
        // None live: each in turn.
        let mut seen = [false; 3];
        for _ in 0..3 {
            let h = handle(t.select(2, 0));
            if let Some(s) = seen.get_mut(h.wrapping_sub(1)) {
                *s = true;
            }
        }
        assert_eq!(seen, [true; 3]);
        // Listener 1 has two, listener 3 is at its cap: listener 2.
        assert!(a.admit() && a.admit() && c.admit());
        for _ in 0..3 {
            assert_eq!(t.select(2, 0), Pick::Cpu(2));
        }
        assert!(b.admit() && b.admit() && b.admit());
        assert_eq!(t.select(2, 0), Pick::Cpu(1));
        for l in [&a, &a, &b, &b, &b, &c] {
            assert!(l.release());
        }
        Ok(())
    }

    /// Fallback: a CPU without listeners goes to a member with room.
    #[test]
    fn fallback() -> Result {
        let a = Listener::new(1, GFP_KERNEL)?;
        let b = Listener::new(0, GFP_KERNEL)?;
        let t = Group::new(Policy::RoundRobin, 1, &a, &mask_of(&[0]), GFP_KERNEL)?;
        let t = t.with_member(2, &b, &mask_of(&[1]), GFP_KERNEL)?;
        assert!(matches!(t.select(7, 0), Pick::Other(_)));
        assert!(a.admit());
        assert_eq!(t.select(0, 0), Pick::Other(2));
        assert_eq!(t.select(0, u32::MAX), Pick::Other(2));
        let t = t.without_member(2, GFP_KERNEL)?;
        assert_eq!(t.select(0, 0), Pick::Full(1));
        assert!(a.release());
        Ok(())
    }

    /// Nearest fallback: the CPU's cache, then its node, then any member.
    #[test]
    fn fallback_nearest() -> Result {
        // CPUs 0-3, caches {0,1} {2,3}, nodes {0-2} {3}; a listener on
        // each CPU, one connection each.
        let llc = [0u32, 0, 2, 2];
        let node = [0u32, 0, 0, 3];
        let ls = [
            Listener::new(1, GFP_KERNEL)?,
            Listener::new(1, GFP_KERNEL)?,
            Listener::new(1, GFP_KERNEL)?,
            Listener::new(1, GFP_KERNEL)?,
        ];
        let masks = [mask_of(&[0]), mask_of(&[1]), mask_of(&[2]), mask_of(&[3])];
        let members = [
            (0, &ls[0], &masks[0][..]),
            (1, &ls[1], &masks[1][..]),
            (2, &ls[2], &masks[2][..]),
            (3, &ls[3], &masks[3][..]),
        ];
        let g = Group::of(Policy::RoundRobin, &members, GFP_KERNEL)?;
        let topo = Classes {
            llc: &llc,
            node: &node,
        };
        let t = g.table();
        let spread = |h: u32| h.wrapping_mul(0x9e37_79b9);
        assert!(ls[0].admit());
        assert!((0..32).all(|i| t.pick(0, spread(i), &topo, true) == Pick::Other(1)));
        assert!(ls[1].admit());
        assert!((0..32).all(|i| t.pick(0, spread(i), &topo, true) == Pick::Other(2)));
        assert!(ls[2].admit());
        assert!((0..32).all(|i| t.pick(0, spread(i), &topo, true) == Pick::Other(3)));
        assert!(ls[3].admit());
        assert!(matches!(t.pick(0, 0, &topo, true), Pick::Full(_)));
        for l in &ls {
            assert!(l.release());
        }
        Ok(())
    }

    /// `max_pending`: a listener whose accept queue holds that many is
    /// passed over like a full one, under each policy and in the
    /// fallback, while another has room; never refused for it.
    #[test]
    fn max_pending() -> Result {
        let (qa, qb, qc) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
        let a = Listener::new(0, GFP_KERNEL)?;
        let b = Listener::new(2, GFP_KERNEL)?;
        let c = Listener::new(0, GFP_KERNEL)?;
        // SAFETY: The queues outlive the listeners' use here, and only
        // this thread touches them.
        unsafe {
            a.set_backlog(qa.as_ptr());
            b.set_backlog(qb.as_ptr());
            c.set_backlog(qc.as_ptr());
        }
        a.set_max_pending(2);
        b.set_max_pending(2);
        let (m0, m1) = (mask_of(&[0]), mask_of(&[1]));
        for policy in [Policy::FillFirst, Policy::RoundRobin, Policy::LeastConns] {
            let t = Group::new(policy, 10, &a, &m0, GFP_KERNEL)?;
            let t = t.with_member(11, &b, &m0, GFP_KERNEL)?;
            let t = t.with_member(12, &c, &m1, GFP_KERNEL)?;
            let bell = Bell::new(GFP_KERNEL)?;
            let t = t.with_bell(&bell, GFP_KERNEL)?;
            // A stalls: B takes every connection while it has room, even
            // with more of them (least connections).
            assert!(b.admit());
            qa.set(2);
            assert!((0..8).all(|i| t.select(0, i) == Pick::Cpu(11)));
            // Below the limit again: A is not kept as full, whatever
            // the CPU noted, and no bell rang.
            qa.set(1);
            assert!((0..8).any(|i| t.select(0, i) == Pick::Cpu(10)));
            // B full too: the other CPU's listener, which has room.
            qa.set(2);
            assert!(b.admit());
            assert_eq!(t.select(0, 0), Pick::Other(12));
            // Every listener with room stalled: the CPU's own stalled
            // one takes it rather than none.
            c.set_max_pending(1);
            qc.set(1);
            assert_eq!(t.select(0, 0), Pick::Cpu(10));
            // No limit: never stalled.
            c.set_max_pending(0);
            assert_eq!(t.select(0, 0), Pick::Other(12));
            c.set_max_pending(1);
            a.set_max_pending(0);
            assert_eq!(t.select(0, 0), Pick::Cpu(10));
            a.set_max_pending(2);
            // Caps hold: A at a cap of one, B full, C stalled: C.
            a.configure(1, false);
            assert!(a.admit());
            assert_eq!(t.select(0, 0), Pick::Other(12));
            a.configure(0, false);
            assert!(a.release() && b.release() && b.release());
            qa.set(0);
            qc.set(0);
            c.set_max_pending(0);
        }
        Ok(())
    }

    /// A stalled listener passed over after a full one is not noted as
    /// full: no bell rings when accept() empties its queue, and it must
    /// get connections again at once.
    #[test]
    fn max_pending_not_noted_full() -> Result {
        let qb = Cell::new(0u32);
        let a = Listener::new(1, GFP_KERNEL)?;
        let b = Listener::new(0, GFP_KERNEL)?;
        let c = Listener::new(0, GFP_KERNEL)?;
        // SAFETY: The queue outlives the listener's use here, and only
        // this thread touches it.
        unsafe { b.set_backlog(qb.as_ptr()) };
        b.set_max_pending(1);
        let m = mask_of(&[0]);
        let t = Group::new(Policy::FillFirst, 10, &a, &m, GFP_KERNEL)?;
        let t = t.with_member(11, &b, &m, GFP_KERNEL)?;
        let t = t.with_member(12, &c, &m, GFP_KERNEL)?;
        let bell = Bell::new(GFP_KERNEL)?;
        let t = t.with_bell(&bell, GFP_KERNEL)?;
        // SAFETY: The bell outlives the listeners' releases here.
        unsafe {
            a.set_bell(&*bell);
            b.set_bell(&*bell);
            c.set_bell(&*bell);
        }
        assert!(a.admit());
        qb.set(1);
        // A is full and noted so; B is stalled: C.
        assert_eq!(t.select(0, 0), Pick::Cpu(12));
        assert_eq!(t.select(0, 0), Pick::Cpu(12));
        let rung = bell.value();
        qb.set(0);
        // B's queue emptied, no bell: B, not C, and A still skipped.
        assert_eq!(t.select(0, 0), Pick::Cpu(11));
        assert_eq!(bell.value(), rung);
        assert!(a.release());
        assert_eq!(t.select(0, 0), Pick::Cpu(10));
        // SAFETY: No release reads the bell after this.
        unsafe {
            a.set_bell(core::ptr::null());
            b.set_bell(core::ptr::null());
            c.set_bell(core::ptr::null());
        }
        Ok(())
    }

    /// 256 listeners over 256 CPUs, one rebuild per join, then selection.
    #[test]
    fn many() -> Result {
        let first = Listener::new(0, GFP_KERNEL)?;
        let mut t = Group::new(Policy::RoundRobin, 0, &first, &mask_of(&[0]), GFP_KERNEL)?;
        for h in 1..256usize {
            let l = Listener::new(0, GFP_KERNEL)?;
            let m = mask_of(&[h, (h * 7) % 256]);
            t = t.with_member(h, &l, &m, GFP_KERNEL)?;
        }
        for cpu in 0..256 {
            let mut prev = None;
            for &h in t.cpu_handles(cpu, GFP_KERNEL)?.iter() {
                assert!(prev.is_none_or(|p| p < h));
                prev = Some(h);
            }
            assert!(matches!(t.select(cpu, 0), Pick::Cpu(_)));
        }
        for h in 0..256usize {
            t = t.without_member(h, GFP_KERNEL)?;
        }
        assert_eq!(t.select(0, 0), Pick::Empty);
        Ok(())
    }
}
