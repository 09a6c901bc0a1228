// SPDX-License-Identifier: GPL-2.0

//! The match table of a SO_REUSERPS group: which listeners serve which CPU.
//!
//! A table never changes once built.  C builds a new one from the group's
//! members whenever they change, in process context outside the group's
//! lock (kvmalloc-backed, charged to the memory cgroup), and publishes it
//! with RCU; builders of one group take turns.  Selection runs
//! in softirq on whatever table it finds: it indexes the entry of the
//! current CPU and reads its listeners' state; it takes no lock, writes
//! and allocates nothing and cannot panic.  The listener that takes the
//! connection request then moves the CPU's round-robin cursor and counts
//! the full listeners it passed over ([`Table::turn`]).
//!
//! Layout: per CPU (up to the highest registered one) the range of its
//! listeners in `slots`, in registration order, and its first listener;
//! one cache-line-sized round-robin cursor per CPU that has two listeners
//! or more.  Memory grows with what is registered, not with the number
//! of CPUs times a fixed number of slots.  With one listener per CPU,
//! selection reads the CPU's entry, the member it names and one word of
//! the listener's state.
//!
//! When none of the CPU's listeners has room, the fallback tries the
//! listeners of the CPUs nearest it first: those that share its last level
//! cache, then its NUMA node, as the kernel tells it when it runs
//! ([`Topology`]).  Nothing in a table depends on the topology.

use crate::listener::{
    Bell,
    Info,
    Listener,
    Room,
    Stall, //
};
use core::cell::Cell;
use kernel::{
    alloc::{
        Flags,
        KVVec, //
    },
    error::{
        code::EINVAL,
        Result, //
    },
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc, //
    }, //
};

/// How a connection picks among the listeners registered for its CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Rotate over those with room (`REUSERPS_ROUND_ROBIN`).
    RoundRobin,
    /// The first registered that has room (`REUSERPS_FILL_FIRST`).
    FillFirst,
    /// The one with room and the fewest active connections, ties in
    /// rotation (`REUSERPS_LEAST_CONNS`).
    LeastConns,
}

impl Policy {
    /// The policy of a uapi value; `EINVAL` for an unknown one.
    pub(crate) const fn from_uapi(value: u32) -> Result<Self> {
        match value {
            0 => Ok(Self::RoundRobin),
            1 => Ok(Self::FillFirst),
            2 => Ok(Self::LeastConns),
            _ => Err(EINVAL),
        }
    }

    /// Whether a CPU with several listeners keeps a turn that moves past
    /// each listener that takes a connection.
    const fn rotates(self) -> bool {
        matches!(self, Self::RoundRobin | Self::LeastConns)
    }

    /// What a cursor names for the turn of member `i`: `i` itself, so
    /// that the fast path reads it, or `NONE` for least connections,
    /// where no single listener is the choice (see [`Cursor`]).
    const fn turn_member(self, i: u32) -> u32 {
        match self {
            Self::LeastConns => NONE,
            Self::RoundRobin | Self::FillFirst => i,
        }
    }
}

/// The position after `pos` in a CPU's range of `n` listeners, wrapping
/// to 0; `pos < n`, so it cannot overflow.
#[inline]
fn next_pos(pos: usize, n: usize) -> usize {
    let p = pos.wrapping_add(1);
    if p >= n {
        0
    } else {
        p
    }
}

/// Above this many listeners on one CPU, least connections compares two
/// of them (the one whose turn it is and one the flow hash picks) rather
/// than all: the cost of a selection stays bounded.
const LEAST_SCAN: usize = 8;

/// Most 64-bit words a CPU mask may have: enough for every possible CPU,
/// and never fewer than a glibc `cpu_set_t` (1024 CPUs) holds.
pub(crate) fn max_mask_words(nr_cpu_ids: usize) -> usize {
    nr_cpu_ids.div_ceil(64).max(16)
}

/// Checks a CPU mask from user space.
///
/// Returns how many words matter (up to the last non-zero one).  An empty
/// mask, a bit at or beyond `nr_cpu_ids` or too many words is `EINVAL`.
pub(crate) fn check_mask(words: &[u64], nr_cpu_ids: usize) -> Result<usize> {
    if words.is_empty() || words.len() > max_mask_words(nr_cpu_ids) {
        return Err(EINVAL);
    }
    let mut used = 0;
    for (i, &word) in words.iter().enumerate() {
        if word == 0 {
            continue;
        }
        let top = 63 - word.leading_zeros() as usize;
        let cpu = i.checked_mul(64).and_then(|b| b.checked_add(top));
        if cpu.is_none_or(|cpu| cpu >= nr_cpu_ids) {
            return Err(EINVAL);
        }
        used = i + 1;
    }
    if used == 0 {
        return Err(EINVAL);
    }
    Ok(used)
}

/// Calls `f` with every CPU set in `mask`, in ascending order.
fn for_each_cpu(mask: &[u64], mut f: impl FnMut(usize) -> Result) -> Result {
    for (i, &word) in mask.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let cpu = i.checked_mul(64).and_then(|b| b.checked_add(bit));
            f(cpu.ok_or(EINVAL)?)?;
        }
    }
    Ok(())
}

/// Where CPUs are relative to each other, asked by the fallback only.
pub(crate) trait Topology {
    /// Whether CPUs `a` and `b` share a last level cache.
    fn share_cache(&self, a: usize, b: usize) -> bool;
    /// Whether CPUs `a` and `b` are on one NUMA node.
    fn same_node(&self, a: usize, b: usize) -> bool;
}

/// What selection decided for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// A listener registered for the CPU, with room.
    Cpu(usize),
    /// None of the CPU's listeners had room (or it has none): another
    /// member of the group with room.
    Other(usize),
    /// Every member is at its cap: the member reuseport's hash would have
    /// picked, whose admission will refuse the connection.
    Full(usize),
    /// No live member at all.
    Empty,
}

/// A member of the table.
struct Member {
    listener: Arc<Listener>,
    /// What selection returns for it.
    handle: usize,
    /// The listener's registration this table was built for.
    reg: u32,
}

/// One CPU's listeners: 16 bytes, four to a cache line.
#[derive(Clone, Copy, Default)]
struct CpuEntry {
    /// Index in `members` of its first listener; `NONE` when it has none,
    /// which no lookup finds, so selection needs no test of `len`.
    head: u32,
    /// How many listeners the CPU has.
    len: u32,
    /// Start of the CPU's listeners in `slots`.
    first: u32,
    /// Index of its state in `states`; `NONE` when it has no listener.
    state: u32,
}

/// `CpuEntry::head` of a CPU without listeners, and a position or index
/// that names nothing.
const NONE: u32 = u32::MAX;

/// What one CPU's connection requests write, on 64 bytes of its own, so
/// that CPUs do not share a cache line on most machines (it is 128 bytes
/// or more on some arm64, ppc64 and s390 ones).  Only the CPU itself
/// writes it, but for a race with its own backlog processing, whose worst
/// outcome is one listener chosen twice or a full skip miscounted.
#[repr(align(64))]
struct CpuState {
    /// The CPU's next turn, with a rotating policy and two listeners or
    /// more: the position in its range (high 32 bits) and the index in
    /// `members` of the listener there (low 32 bits), so that selection
    /// reads the member without going through `slots`.  Least connections
    /// keeps `NONE` there instead: no single listener is its choice, so
    /// the kernel's fast path ([`Table::pick_first`]) finds none and the
    /// whole selection runs.
    turn: Atomic<u64>,
    /// One more than the bell's value under which the full bits were
    /// found; 0 for none.
    seen: Atomic<u64>,
    /// The last selection that went past the CPU's first choice: the
    /// position it started from (high 32 bits) and the one it chose (low),
    /// `NONE` when none of the CPU's listeners had room.
    last: Atomic<u64>,
    /// Where the CPU's words start in `words`: `bits` words of full bits,
    /// then `len + 1` differences of full skips.
    words: u32,
    /// How many words of full bits: one bit per position, set for a
    /// listener found without room, good while the bell keeps the value
    /// in `seen`; none for a CPU with one listener.
    bits: u32,
}

/// A turn's value.
const fn turn_at(pos: u32, member: u32) -> u64 {
    ((pos as u64) << 32) | member as u64
}

/// Words per 64 bytes: each CPU's words start on a cache line of their own.
const LINE_WORDS: usize = 8;

/// One member as input to [`Table::build`].
#[derive(Clone, Copy)]
pub(crate) struct Input<'a> {
    /// What selection returns for this member (the socket's address).
    pub(crate) handle: usize,
    /// Its state: caps and counts.
    pub(crate) listener: &'a Arc<Listener>,
    /// Its CPUs; must have passed [`check_mask`].
    pub(crate) mask: &'a [u64],
    /// Its registration when the caller found it a member (see
    /// [`Listener::registration`]): the table names it for that one, and
    /// leaves it out if that one had ended.
    pub(crate) reg: u32,
}

/// An immutable match table.
///
/// # Invariants
///
/// Every index in `slots` is below `members.len()` and names a member
/// whose `reg` is even; the `CpuEntry` ranges tile `slots`, and a
/// non-empty one's `head` equals `slots[first]` and its `state` is below
/// `states.len()`, an empty one's `head` and `state` are `NONE`; each
/// state's `bits + len + 1` words from `words` lie in `words`; every turn
/// names, in its low half, the member at the position its high half gives
/// in its CPU's range (`NONE` with least connections); `members.len()` is
/// below `NONE`.
pub(crate) struct Table {
    /// Read off the fast path only: by least connections' selection.
    policy: Policy,
    members: KVVec<Member>,
    cpus: KVVec<CpuEntry>,
    slots: KVVec<u32>,
    states: KVVec<CpuState>,
    words: KVVec<Atomic<u64>>,
    /// Rung when a listener of the group gets room again; `None`: the
    /// CPUs keep no full bits.
    bell: Option<Arc<Bell>>,
}

/// The position after `pos` in a range of `n`, wrapping; `pos < n`.
#[inline]
fn step(pos: usize, n: usize) -> usize {
    next_pos(pos, n)
}

impl Table {
    /// Builds a table of `inputs`, in that order (registration order).
    ///
    /// Linear in the members and the CPUs they name: every pass reads each
    /// input once.  Every clone of `inputs` must yield the same members; a
    /// build that finds otherwise fails with `EINVAL`.  `bell` is the
    /// group's: with it, each CPU remembers which of its listeners it
    /// found full until the bell rings.  May sleep with `GFP_KERNEL`
    /// flags; every allocation happens before anything is shared, so a
    /// failure leaves nothing behind.
    pub(crate) fn build<'a>(
        policy: Policy,
        inputs: impl Iterator<Item = Input<'a>> + Clone,
        bell: Option<&Arc<Bell>>,
        flags: Flags,
    ) -> Result<Self> {
        // Pass 1: sizes.
        let (mut n, mut ncpus) = (0usize, 0usize);
        for input in inputs.clone() {
            n = n.checked_add(1).ok_or(EINVAL)?;
            for_each_cpu(input.mask, |cpu| {
                ncpus = ncpus.max(cpu.checked_add(1).ok_or(EINVAL)?);
                Ok(())
            })?;
        }
        // `NONE` must index no member.
        if n >= NONE as usize {
            return Err(EINVAL);
        }
        let mut members = KVVec::with_capacity(n, flags)?;
        let mut cpus = KVVec::from_elem(
            CpuEntry {
                head: 0,
                len: 0,
                first: 0,
                state: NONE,
            },
            ncpus,
            flags,
        )?;

        // Pass 2: members, per-CPU counts.
        for input in inputs.clone() {
            members.push(
                Member {
                    listener: input.listener.clone(),
                    handle: input.handle,
                    reg: input.reg,
                },
                flags,
            )?;
            // Only members registered when their registration was read
            // here go in their CPUs' ranges (a listener may leave at any
            // time: that is what `Member::reg` is for).
            if members.last().is_none_or(|m| m.reg & 1 != 0) {
                continue;
            }
            for_each_cpu(input.mask, |cpu| {
                let e = cpus.get_mut(cpu).ok_or(EINVAL)?;
                e.len = e.len.checked_add(1).ok_or(EINVAL)?;
                Ok(())
            })?;
        }

        // Each CPU's range starts at the running sum, and so do its words;
        // `head` counts the listeners placed so far while the slots are
        // filled, in registration order.
        let (mut start, mut nstates, mut nwords) = (0u32, 0usize, 0usize);
        for e in cpus.iter_mut() {
            e.first = start;
            start = start.checked_add(e.len).ok_or(EINVAL)?;
            if e.len > 0 {
                nstates = nstates.checked_add(1).ok_or(EINVAL)?;
                nwords = nwords
                    .checked_add(Self::state_words(e.len as usize).ok_or(EINVAL)?)
                    .ok_or(EINVAL)?;
            }
        }
        let mut slots = KVVec::from_elem(0u32, start as usize, flags)?;
        for (i, input) in inputs.enumerate() {
            let m = members.get(i).ok_or(EINVAL)?;
            if m.handle != input.handle {
                return Err(EINVAL);
            }
            if m.reg & 1 != 0 {
                continue;
            }
            let i = u32::try_from(i).map_err(|_| EINVAL)?;
            for_each_cpu(input.mask, |cpu| {
                let e = cpus.get_mut(cpu).ok_or(EINVAL)?;
                if e.head >= e.len {
                    return Err(EINVAL);
                }
                let at = e.first.checked_add(e.head).ok_or(EINVAL)?;
                *slots.get_mut(at as usize).ok_or(EINVAL)? = i;
                // `head < len`: no overflow.
                e.head += 1;
                Ok(())
            })?;
        }

        // Each CPU's first listener and state: its turn starts at its
        // first listener (the caller may carry the turns over from the
        // table this one replaces, `carry_cursors()`).
        let mut states = KVVec::with_capacity(nstates, flags)?;
        let mut words = KVVec::with_capacity(nwords, flags)?;
        for e in cpus.iter_mut() {
            if e.head != e.len {
                return Err(EINVAL);
            }
            if e.len == 0 {
                e.head = NONE;
                continue;
            }
            e.head = *slots.get(e.first as usize).ok_or(EINVAL)?;
            e.state = u32::try_from(states.len()).map_err(|_| EINVAL)?;
            let len = e.len as usize;
            let bits = if len > 1 { len.div_ceil(64) } else { 0 };
            states.push(
                CpuState {
                    turn: Atomic::new(turn_at(0, policy.turn_member(e.head))),
                    seen: Atomic::new(0),
                    last: Atomic::new(turn_at(0, NONE)),
                    words: u32::try_from(words.len()).map_err(|_| EINVAL)?,
                    bits: u32::try_from(bits).map_err(|_| EINVAL)?,
                },
                flags,
            )?;
            for _ in 0..Self::state_words(len).ok_or(EINVAL)? {
                words.push(Atomic::new(0), flags)?;
            }
        }
        // INVARIANT: the ranges tile `slots` (running sums of the counts);
        // each was filled exactly (`head == len` checked) with indexes
        // below `n` of members whose stored, even `reg` both the count and
        // the fill tested; `head` is then `slots[first]` and `state` a
        // pushed index, or both `NONE`; each state's words were pushed
        // after it, `state_words(len) >= bits + len + 1` of them; each
        // turn starts at position 0 and `head` (`NONE` for least
        // connections); `n` is below `NONE` (checked above).
        Ok(Self {
            policy,
            members,
            cpus,
            slots,
            states,
            words,
            bell: bell.cloned(),
        })
    }

    /// Words of a CPU with `len` listeners: its full bits and its `len + 1`
    /// skip differences, rounded up to whole cache lines.
    fn state_words(len: usize) -> Option<usize> {
        let bits = if len > 1 { len.div_ceil(64) } else { 0 };
        let w = bits.checked_add(len)?.checked_add(1)?;
        w.checked_next_multiple_of(LINE_WORDS)
    }

    /// Carries the round-robin turns of `old` over to this new table, so
    /// that a change elsewhere does not restart a CPU's rotation.
    ///
    /// Allocates nothing: done when the table replaces `old`.
    pub(crate) fn carry_cursors(&self, old: &Table) {
        if !self.policy.rotates() {
            return;
        }
        for (cpu, e) in self.cpus.iter().enumerate() {
            let Some(st) = self.states.get(e.state as usize) else {
                continue;
            };
            let from = old.cpus.get(cpu).and_then(|o| {
                old.states
                    .get(o.state as usize)
                    .filter(|_| o.len > 1 && e.len > 1)
            });
            // The same position, now naming this table's listener there.
            if let Some(o) = from {
                let pos = (o.turn.load(Relaxed) >> 32) as usize;
                if let Some(v) = self.turn_value(e, pos) {
                    st.turn.store(v, Relaxed);
                }
            }
        }
    }

    /// Picks the listener for a connection whose SYN is processed on `cpu`.
    ///
    /// `hash` is the flow hash reuseport would use.  Order: the CPU's
    /// listeners by policy, skipping full ones; then, only when those are
    /// all full or absent, a member with room registered for a CPU that
    /// shares `cpu`'s last level cache, then its NUMA node, then any member
    /// with room, each scan starting where the hash points; then, all
    /// full, the hash's member.
    ///
    /// A lookup is not a connection (an ACK of a SYN cookie, netfilter's
    /// socket match, a SYN dropped later all look listeners up): it moves
    /// no turn and counts nothing.  The listener that takes a connection
    /// request calls [`Table::turn`].  With `own`, the caller runs on
    /// `cpu` with BHs off, so it may note for it which listeners it found
    /// full and which it chose; else it writes nothing.
    ///
    /// A stalled listener (`max_pending`) counts as full while another
    /// has room; when none has, the choice is made again without
    /// `max_pending`, so that it moves connections but never refuses one.
    #[inline]
    pub(crate) fn pick(&self, cpu: usize, hash: u32, topo: &impl Topology, own: bool) -> Pick {
        let seen = Cell::new(false);
        match self.pick_as(cpu, hash, topo, own, Some(&seen)) {
            Pick::Full(_) | Pick::Empty if seen.get() => self.pick_as(cpu, hash, topo, false, None),
            p => p,
        }
    }

    /// [`Table::pick`], passing stalled listeners over with `stall`.
    #[inline]
    fn pick_as(
        &self,
        cpu: usize,
        hash: u32,
        topo: &impl Topology,
        own: bool,
        stall: Stall<'_>,
    ) -> Pick {
        let found = match self.cpus.get(cpu) {
            Some(e) => self.pick_cpu(e, hash, own, stall),
            None => None,
        };
        match found {
            Some(handle) => Pick::Cpu(handle),
            None => self.fallback(cpu, hash, topo, stall),
        }
    }

    /// The turn's value for position `pos` of the CPU's range, wrapped to
    /// 0 at its end; `None` if the range has no such listener.
    fn turn_value(&self, e: &CpuEntry, pos: usize) -> Option<u64> {
        let pos = if pos >= e.len as usize { 0 } else { pos };
        let i = if pos == 0 {
            e.head
        } else {
            *self.slots.get((e.first as usize).wrapping_add(pos))?
        };
        // `pos < len`, a u32.
        Some(turn_at(pos as u32, self.policy.turn_member(i)))
    }

    /// Where the CPU's turn is: its position, checked against `len`, and
    /// the member there.
    #[inline]
    fn start(&self, e: &CpuEntry) -> (usize, u32) {
        if self.policy.rotates() && e.len > 1 {
            if let Some(st) = self.states.get(e.state as usize) {
                let v = st.turn.load(Relaxed);
                let pos = (v >> 32) as usize;
                if pos < e.len as usize {
                    return (pos, v as u32);
                }
            }
        }
        (0, e.head)
    }

    /// The member at `pos` of the CPU's range; `pos` 0 is in the entry.
    #[inline]
    fn at(&self, e: &CpuEntry, pos: usize) -> Option<&Member> {
        let i = if pos == 0 {
            e.head
        } else {
            // Within `slots` by the invariants; a wrapped index would
            // only fail the lookup.
            *self.slots.get((e.first as usize).wrapping_add(pos))?
        };
        self.members.get(i as usize)
    }

    /// The CPU's words: its full bits and its skip differences.
    fn words_of(&self, e: &CpuEntry, st: &CpuState) -> (&[Atomic<u64>], &[Atomic<u64>]) {
        let all = self
            .words
            .get(st.words as usize..)
            .unwrap_or(&[])
            .split_at_checked(st.bits as usize)
            .unwrap_or((&[], &[]));
        (all.0, all.1.get(..=e.len as usize).unwrap_or(&[]))
    }

    /// The CPU's listener to try first, and whether it has room: with one
    /// listener per CPU, or a first one with room, this is the whole
    /// selection.  It reads the CPU's entry, the member it names and that
    /// listener's gate word (plus the turn of a round-robin CPU with
    /// several listeners, and the count of a capped listener).
    #[inline]
    fn pick_cpu(&self, e: &CpuEntry, hash: u32, own: bool, stall: Stall<'_>) -> Option<usize> {
        let (pos, i) = self.start(e);
        if let Some(m) = self.members.get(i as usize) {
            if m.listener.has_room(m.reg, stall) {
                return Some(m.handle);
            }
        }
        self.pick_slow(e, pos, hash, own, stall)
    }

    /// The CPU's first choice has no room (or, with least connections, is
    /// not a single listener): the rest of its listeners, then a note of
    /// what was chosen for [`Table::turn`].
    #[inline(never)]
    fn pick_slow(
        &self,
        e: &CpuEntry,
        pos: usize,
        hash: u32,
        own: bool,
        stall: Stall<'_>,
    ) -> Option<usize> {
        let st = self.states.get(e.state as usize)?;
        let chosen = if self.policy == Policy::LeastConns && e.len > 1 {
            self.pick_least(e, pos, hash, stall)
                .or_else(|| self.pick_rest(e, st, pos, own, stall))
        } else {
            self.pick_rest(e, st, pos, own, stall)
        };
        if own {
            // `pos < len`, a u32.
            let to = chosen.map_or(NONE, |(p, _)| p as u32);
            st.last.store(turn_at(pos as u32, to), Relaxed);
        }
        chosen.map(|(_, h)| h)
    }

    /// Least connections among the CPU's listeners, from the one whose
    /// turn it is: the first with the fewest wins, so that equal listeners
    /// take turns.  All of them up to `LEAST_SCAN`, else that one and one
    /// the flow hash picks among the others (two random choices keep the
    /// spread of counts small at a bounded cost).  `None` when those it
    /// compared are all full.
    fn pick_least(
        &self,
        e: &CpuEntry,
        pos: usize,
        hash: u32,
        stall: Stall<'_>,
    ) -> Option<(usize, usize)> {
        let n = e.len as usize;
        let mut best: Option<(u32, usize, usize)> = None;
        let mut consider = |p: usize| {
            if let Some(m) = self.at(e, p) {
                if let Some(a) = m.listener.load_in(m.reg, stall) {
                    if best.is_none_or(|(b, _, _)| a < b) {
                        best = Some((a, p, m.handle));
                    }
                }
            }
        };
        if n <= LEAST_SCAN {
            let mut p = pos;
            for _ in 0..n {
                consider(p);
                p = step(p, n);
            }
        } else {
            consider(pos);
            // Another of the `n - 1` others, as reciprocal_scale() picks:
            // both factors are below 2^32.
            let k = (u64::from(hash).wrapping_mul((n - 1) as u64) >> 32) as usize;
            // `pos, k < n`: no overflow.
            let mut other = pos.wrapping_add(1).wrapping_add(k);
            if other >= n {
                other = other.wrapping_sub(n);
            }
            consider(other);
        }
        best.map(|(_, p, h)| (p, h))
    }

    /// The CPU's listeners after `pos`, in turn: the first with room.
    ///
    /// With `own` and a bell, the CPU skips those it found full before,
    /// a word of bits at a time, until the bell rings; it marks those it
    /// finds full now.  So with k full listeners ahead of one with room,
    /// a selection reads a word of bits per 64 of them rather than their
    /// state, once each of them has been found full.
    fn pick_rest(
        &self,
        e: &CpuEntry,
        st: &CpuState,
        pos: usize,
        own: bool,
        stall: Stall<'_>,
    ) -> Option<(usize, usize)> {
        let n = e.len as usize;
        let (bits, _) = self.words_of(e, st);
        let bits = match &self.bell {
            Some(bell) if own && !bits.is_empty() => {
                let now = u64::from(bell.value()) + 1;
                if st.seen.load(Relaxed) != now {
                    bits.iter().for_each(|w| w.store(0, Relaxed));
                    st.seen.store(now, Relaxed);
                }
                bits
            }
            _ => &[],
        };
        let mut p = step(pos, n);
        let mut left = n.saturating_sub(1);
        while left > 0 {
            if let Some(w) = bits.get(p / 64) {
                // The run of full bits from `p`, within the word, the
                // range and what is left to look at.
                let run = (!(w.load(Relaxed) >> (p % 64))).trailing_zeros() as usize;
                let run = run.min(n - p).min(left);
                if run > 0 {
                    left -= run;
                    p += run;
                    if p >= n {
                        p = 0;
                    }
                    continue;
                }
            }
            if let Some(m) = self.at(e, p) {
                if m.listener.has_room(m.reg, stall) {
                    return Some((p, m.handle));
                }
                // Only a full listener rings the bell when it gets room:
                // a stalled one, which accept() frees, is looked at again.
                if let Some(w) = bits
                    .get(p / 64)
                    .filter(|_| m.listener.room_in(m.reg) != Room::Yes)
                {
                    w.store(w.load(Relaxed) | 1 << (p % 64), Relaxed);
                }
            }
            left -= 1;
            p = step(p, n);
        }
        None
    }

    /// What [`Table::pick`] returns when the first listener to try on
    /// `cpu` has room; `None` when it must look further.
    ///
    /// The kernel's fast path, so small that it needs few registers across
    /// its one call (with gcc, every atomic is a call).
    #[inline]
    pub(crate) fn pick_first(&self, cpu: usize) -> Option<usize> {
        let e = self.cpus.get(cpu)?;
        let m = self.members.get(self.start(e).1 as usize)?;
        let seen = Cell::new(false);
        m.listener.has_room(m.reg, Some(&seen)).then_some(m.handle)
    }

    /// `handle` took a connection request picked on `cpu`, which runs this.
    ///
    /// The CPU's turn moves past it, so listeners skipped for being full
    /// do not hand theirs to a neighbour, and the listeners passed over
    /// before it (all of the CPU's, when another member took it) count a
    /// full skip: two additions to the CPU's own words, whatever their
    /// number (up to `LEAST_SCAN` with least connections, which counts
    /// only those it compared and found full).
    pub(crate) fn turn(&self, cpu: usize, handle: usize) {
        let Some(e) = self.cpus.get(cpu) else {
            return;
        };
        let Some(st) = self.states.get(e.state as usize) else {
            return;
        };
        let n = e.len as usize;
        let (start, i) = self.start(e);
        let (from, to) = if self
            .members
            .get(i as usize)
            .is_some_and(|m| m.handle == handle)
        {
            (start, Some(start))
        } else {
            let last = st.last.load(Relaxed);
            let (from, to) = ((last >> 32) as usize, last as u32);
            let from = if from < n { from } else { start };
            match self.at(e, to as usize) {
                Some(m) if to != NONE && m.handle == handle => (from, Some(to as usize)),
                // A selection this did not note: its position, if it is
                // one of the CPU's.
                _ => (from, self.position(e, handle)),
            }
        };
        let (_, diffs) = self.words_of(e, st);
        let add = |p: usize, v: u64| {
            if let Some(d) = diffs.get(p) {
                d.add(v, Relaxed);
            }
        };
        // Counts each position of `[a, b)` once: +1 at `a`, -1 at `b`.
        let range = |a: usize, b: usize| {
            add(a, 1);
            add(b, u64::MAX);
        };
        let end = to.unwrap_or(from);
        if self.policy == Policy::LeastConns {
            let mut p = from;
            for _ in 0..n.min(LEAST_SCAN) {
                if to == Some(p) {
                    break;
                }
                if self.at(e, p).is_some_and(|m| {
                    m.listener.room_in(m.reg) != Room::Gone
                        && !m.listener.has_room(m.reg, Some(&Cell::new(false)))
                }) {
                    range(p, p + 1);
                }
                p = step(p, n);
            }
        } else if to.is_none() {
            range(0, n);
        } else if from == end {
            // The CPU's first choice took it: nobody was passed over.
        } else if from < end {
            range(from, end);
        } else {
            range(from, n);
            range(0, end);
        }
        if let (Some(to), true) = (to, self.policy.rotates() && n > 1) {
            if let Some(v) = self.turn_value(e, to.wrapping_add(1)) {
                st.turn.store(v, Relaxed);
            }
        }
    }

    /// The position of `handle` among the listeners of `e`, if any.
    fn position(&self, e: &CpuEntry, handle: usize) -> Option<usize> {
        (0..e.len as usize).find(|&p| self.at(e, p).is_some_and(|m| m.handle == handle))
    }

    /// Calls `f` with each member of a CPU's range and how many times a
    /// connection passed it over, for every CPU.
    fn each_skip(&self, mut f: impl FnMut(&Member, u64)) {
        for e in self.cpus.iter() {
            let Some(st) = self.states.get(e.state as usize) else {
                continue;
            };
            let (_, diffs) = self.words_of(e, st);
            let mut sum = 0u64;
            for (p, d) in diffs.iter().take(e.len as usize).enumerate() {
                sum = sum.wrapping_add(d.load(Relaxed));
                if let Some(m) = self.at(e, p) {
                    f(m, sum);
                }
            }
        }
    }

    /// The full skips of `l` in this table, while it is still registered
    /// as the table knows it.
    pub(crate) fn skips_of(&self, l: &Listener) -> u64 {
        let reg = l.registration();
        let mut total = 0u64;
        self.each_skip(|m, n| {
            if core::ptr::eq(&*m.listener, l) && m.reg == reg {
                total = total.wrapping_add(n);
            }
        });
        total
    }

    /// Moves the full skips of `l` in this table to `l` itself: it leaves
    /// its group, and later ones are not its.
    pub(crate) fn fold(&self, l: &Listener) {
        l.add_skips(self.skips_of(l));
    }

    /// A listener's counts, with its full skips in this table.
    pub(crate) fn info(&self, l: &Listener) -> Info {
        let mut i = l.info();
        i.full_skips = i.full_skips.wrapping_add(self.skips_of(l));
        i
    }

    /// A member with room among the listeners of `cpu`, in order from
    /// where the hash points.
    fn room_on(&self, cpu: usize, hash: u32, stall: Stall<'_>) -> Option<usize> {
        let e = self.cpus.get(cpu)?;
        let slots = self.slots.get(e.first as usize..)?.get(..e.len as usize)?;
        // reciprocal_scale(hash, len), as below.
        let start = (u64::from(hash).wrapping_mul(slots.len() as u64) >> 32) as usize;
        let (head, tail) = (slots.get(start..)?, slots.get(..start)?);
        head.iter()
            .chain(tail)
            .filter_map(|&i| self.members.get(i as usize))
            .find(|m| m.reg & 1 == 0 && m.listener.has_room(m.reg, stall))
            .map(|m| m.handle)
    }

    /// Only when the CPU's listeners are all full or absent: kept out of
    /// line so that the common path stays small.  Nearest first: the
    /// listeners of the CPUs that share `cpu`'s last level cache, then its
    /// NUMA node, each scan starting at the CPU the hash points to; then
    /// the whole group.  One pass over the CPUs that have listeners.
    #[cold]
    #[inline(never)]
    fn fallback(&self, cpu: usize, hash: u32, topo: &impl Topology, stall: Stall<'_>) -> Pick {
        let ncpus = self.cpus.len();
        // reciprocal_scale(hash, ncpus), as below.
        let start = (u64::from(hash).wrapping_mul(ncpus as u64) >> 32) as usize;
        let mut node = None;
        for k in 0..ncpus {
            // `start, k < ncpus`: no overflow.
            let mut c = start.wrapping_add(k);
            if c >= ncpus {
                c = c.wrapping_sub(ncpus);
            }
            // The CPU's own listeners were tried, and a CPU without
            // listeners has nothing to ask the topology about.
            if c == cpu || self.cpus.get(c).is_none_or(|e| e.len == 0) {
                continue;
            }
            if topo.share_cache(cpu, c) {
                if let Some(h) = self.room_on(c, hash, stall) {
                    return Pick::Other(h);
                }
            } else if node.is_none() && topo.same_node(cpu, c) {
                node = self.room_on(c, hash, stall);
            }
        }
        if let Some(h) = node {
            return Pick::Other(h);
        }
        let n = self.members.len();
        // reciprocal_scale(hash, n) as reuseport's hash selection does:
        // both factors are below 2^32, so the product fits in 64 bits.
        let start = (u64::from(hash).wrapping_mul(n as u64) >> 32) as usize;
        let (Some(head), Some(tail)) = (self.members.get(start..), self.members.get(..start))
        else {
            return Pick::Empty;
        };
        let mut first_live = None;
        for m in head.iter().chain(tail) {
            match m.listener.room_in(m.reg) {
                Room::Yes if m.listener.has_room(m.reg, stall) => return Pick::Other(m.handle),
                Room::Yes | Room::Full => {
                    first_live.get_or_insert(m.handle);
                }
                Room::Gone => {}
            }
        }
        first_live.map_or(Pick::Empty, Pick::Full)
    }
}

impl Drop for Table {
    /// The full skips counted here go to the listeners that are still
    /// registered as the table knows them (one that left took its own
    /// with it, [`Table::fold`]).
    fn drop(&mut self) {
        self.each_skip(|m, n| {
            if m.reg == m.listener.registration() {
                m.listener.add_skips(n);
            }
        });
    }
}
