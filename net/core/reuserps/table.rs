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
//! For the fallback, when none of the CPU's listeners has room, the table
//! also lists the members registered for each last level cache and each
//! NUMA node ([`Topology`]), so that a connection first tries the
//! listeners nearest its CPU: that costs two class ids and two ranges
//! per CPU of the topology, and a slot per (member, class) pair.

use crate::listener::{
    Listener,
    Room, //
};
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

/// Where each CPU is, as input to a build: per CPU, the id of its last
/// level cache and of its NUMA node.
///
/// An id is a CPU number (C gives the first CPU of the cache or node), so
/// ids stay below the number of entries; an id at or beyond it (C passes
/// `u32::MAX`) means the CPU is in no class (offline, or not known), and
/// its fallback goes straight to the whole group.  Empty slices: no
/// topology at all.
#[derive(Clone, Copy, Default)]
pub(crate) struct Topology<'a> {
    /// Per CPU, its last level cache.
    pub(crate) llc: &'a [u32],
    /// Per CPU, its NUMA node.
    pub(crate) node: &'a [u32],
}

/// The members registered for one class of CPUs: a range of `near_slots`.
#[derive(Clone, Copy, Default)]
struct ClassRange {
    first: u32,
    len: u32,
}

/// What [`Table::build_near`] makes: the fields of the same names.
struct NearLists {
    ids: KVVec<u32>,
    classes: KVVec<ClassRange>,
    near_slots: KVVec<u32>,
}

/// The kinds of class, nearest first: the fallback tries them in order.
const KINDS: usize = 2;

/// Calls `f` with the index in a table's class ranges of each class that
/// member `i`, with `mask`, is in, once each.  `ids` holds `KINDS` runs of
/// `len` class ids; `last`, one entry per range, the last member reported
/// there.  CPUs at or beyond `len`, and ids at or beyond it, are in no
/// class.
fn each_class(
    ids: &[u32],
    len: usize,
    last: &mut [u32],
    i: u32,
    mask: &[u64],
    mut f: impl FnMut(usize) -> Result,
) -> Result {
    for_each_cpu(mask, |cpu| {
        if cpu >= len {
            return Ok(());
        }
        for kind in 0..KINDS {
            // `kind * len + cpu < ids.len()`, which the caller sized:
            // no overflow.
            let base = kind * len;
            let Some(&id) = ids.get(base + cpu) else {
                continue;
            };
            if id as usize >= len {
                continue;
            }
            let c = base + id as usize;
            let seen = last.get_mut(c).ok_or(EINVAL)?;
            if *seen != i {
                *seen = i;
                f(c)?;
            }
        }
        Ok(())
    })
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

#[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
impl Pick {
    /// Returns the handle picked, `usize::MAX` for none; for tests.
    pub(crate) fn handle(self) -> usize {
        match self {
            Pick::Cpu(h) | Pick::Other(h) | Pick::Full(h) => h,
            Pick::Empty => usize::MAX,
        }
    }
}

/// A member of the table.
struct Member {
    listener: Arc<Listener>,
    /// What selection returns for it.
    handle: usize,
    /// The listener's registration this table was built for.
    reg: u32,
    /// Where its mask starts in `masks`, for tests.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    mask_first: usize,
    /// How many words its mask has, for tests.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    mask_len: u32,
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
    /// Index of its cursor, `NO_CURSOR` if it needs none.
    cursor: u32,
}

const NO_CURSOR: u32 = u32::MAX;

/// `CpuEntry::head` of a CPU without listeners.
const NONE: u32 = u32::MAX;

/// A round-robin cursor, on 64 bytes of its own, so that CPUs do not
/// share one cache line on most machines (it is 128 bytes or more on
/// some arm64, ppc64 and s390 ones).
///
/// It holds the CPU's next turn: the position in its range (high 32 bits)
/// and the index in `members` of the listener there (low 32 bits), so
/// that selection reads the member without going through `slots`.  Least
/// connections keeps `NONE` there instead: no single listener is its
/// choice, so the kernel's fast path ([`Table::pick_first`]) finds none
/// and the whole selection runs.
#[repr(align(64))]
struct Cursor(Atomic<u64>);

/// A cursor's value.
const fn turn_at(pos: u32, member: u32) -> u64 {
    ((pos as u64) << 32) | member as u64
}

/// One member as input to [`Table::build`].
#[derive(Clone, Copy)]
pub(crate) struct Input<'a> {
    /// What selection returns for this member (the socket's address).
    pub(crate) handle: usize,
    /// Its state: caps and counts.
    pub(crate) listener: &'a Arc<Listener>,
    /// Its CPUs; must have passed [`check_mask`].
    pub(crate) mask: &'a [u64],
}

/// An immutable match table.
///
/// # Invariants
///
/// Every index in `slots` is below `members.len()` and names a member
/// whose `reg` is even; the `CpuEntry` ranges tile `slots`, and a
/// non-empty one's `head` equals `slots[first]`, an empty one's is `NONE`;
/// every cursor index other than `NO_CURSOR` is below `cursors.len()`, and
/// every cursor names, in its low half, the member at the position its
/// high half gives in its CPU's range (`NONE` with least connections);
/// `members.len()` fits in a `u32` (so `NONE` is no member's index).
/// `classes` has as many ranges as `ids` has entries; they lie in
/// `near_slots`, whose entries are indexes of registered members.
pub(crate) struct Table {
    /// Read off the fast path only: by least connections' full selection,
    /// and by tests, which rebuild a table from another.
    policy: Policy,
    members: KVVec<Member>,
    /// The members' masks, for tests, which rebuild a table from another.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    masks: KVVec<u64>,
    cpus: KVVec<CpuEntry>,
    slots: KVVec<u32>,
    cursors: KVVec<Cursor>,
    /// Per kind of class, per CPU: its class id ([`Topology`]), stored
    /// one kind after the other, the same number of entries each.
    ids: KVVec<u32>,
    /// Per kind, per class id: its members' range of `near_slots`.
    classes: KVVec<ClassRange>,
    /// Indexes in `members` of each class's registered members, in
    /// registration order, each once per class.
    near_slots: KVVec<u32>,
}

impl Table {
    /// Builds a table of `inputs`, in that order (registration order).
    ///
    /// Every clone of `inputs` must yield the same members; a build that
    /// finds otherwise fails with `EINVAL`.
    ///
    /// May sleep with `GFP_KERNEL` flags; every allocation happens before
    /// anything is shared, so a failure leaves nothing behind.
    pub(crate) fn from_members<'a>(
        policy: Policy,
        inputs: impl Iterator<Item = Input<'a>> + Clone,
        topo: Topology<'_>,
        flags: Flags,
    ) -> Result<Self> {
        Self::build(policy, inputs, topo, flags)
    }

    /// The topology this table was built with, for tests' rebuilds.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    fn topology(&self) -> Topology<'_> {
        let half = self.ids.len() / KINDS;
        let (llc, node) = self.ids.split_at(half);
        Topology { llc, node }
    }

    /// Carries the round-robin cursors of `old` over to this new table, so
    /// that a change elsewhere does not restart a CPU's rotation.
    ///
    /// Allocates nothing: done when the table replaces `old`.
    pub(crate) fn carry_cursors(&self, old: &Table) {
        for (cpu, e) in self.cpus.iter().enumerate() {
            let Some(c) = self.cursors.get(e.cursor as usize) else {
                continue;
            };
            let from = old
                .cpus
                .get(cpu)
                .and_then(|o| old.cursors.get(o.cursor as usize));
            // The same position, now naming this table's listener there.
            if let Some(o) = from {
                let pos = (o.0.load(Relaxed) >> 32) as usize;
                if let Some(v) = self.turn_value(e, pos) {
                    c.0.store(v, Relaxed);
                }
            }
        }
    }

    /// Builds a table with one listener.
    ///
    /// `mask` must have passed [`check_mask`].
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn new(
        policy: Policy,
        handle: usize,
        listener: &Arc<Listener>,
        mask: &[u64],
        flags: Flags,
    ) -> Result<Self> {
        let one = [Input {
            handle,
            listener,
            mask,
        }];
        Self::build(policy, one.iter().copied(), Topology::default(), flags)
    }

    /// Builds a copy of this table where `handle` has `listener` and `mask`.
    ///
    /// The member keeps its place if registered, else comes last.  `mask`
    /// must have passed [`check_mask`].  Unregistered listeners are left
    /// out.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn with_member(
        &self,
        handle: usize,
        listener: &Arc<Listener>,
        mask: &[u64],
        flags: Flags,
    ) -> Result<Self> {
        let new = Input {
            handle,
            listener,
            mask,
        };
        let present = self.contains(handle);
        // The member being registered keeps its place even if it was
        // marked gone; other gone members are dropped.
        let kept = self
            .members
            .iter()
            .filter(move |m| m.handle == handle || !m.listener.is_gone())
            .map(move |m| {
                if m.handle == handle {
                    new
                } else {
                    self.input(m)
                }
            });
        let added = core::iter::once(new).filter(move |_| !present);
        let t = Self::build(self.policy, kept.chain(added), self.topology(), flags)?;
        t.carry_cursors(self);
        Ok(t)
    }

    /// Builds a copy of this table without `handle` nor unregistered listeners.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn without_member(&self, handle: usize, flags: Flags) -> Result<Self> {
        let kept = self.inputs().filter(move |i| i.handle != handle);
        let t = Self::build(self.policy, kept, self.topology(), flags)?;
        t.carry_cursors(self);
        Ok(t)
    }

    /// The group's policy.
    #[cfg(test)]
    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    /// Whether `handle` is a member (registered or not yet dropped).
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn contains(&self, handle: usize) -> bool {
        self.members.iter().any(|m| m.handle == handle)
    }

    /// The members' handles, in registration order.
    #[cfg(test)]
    pub(crate) fn handles(&self) -> impl Iterator<Item = usize> + '_ {
        self.members.iter().map(|m| m.handle)
    }

    /// Returns the handles of the listeners registered for `cpu`, in order.
    ///
    /// For tests only: the lookup uses [`Table::select`].
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn cpu_handles(&self, cpu: usize) -> impl Iterator<Item = usize> + '_ {
        let slots = self.cpus.get(cpu).and_then(|e| {
            self.slots
                .get(e.first as usize..)
                .and_then(|s| s.get(..e.len as usize))
        });
        slots
            .unwrap_or(&[])
            .iter()
            .filter_map(|&i| self.members.get(i as usize).map(|m| m.handle))
    }

    /// Picks the listener for a connection whose SYN is processed on `cpu`.
    ///
    /// `hash` is the flow hash reuseport would use.  Order: the CPU's
    /// listeners by policy, skipping full ones; then, only when those are
    /// all full or absent, a member with room registered for a CPU of the
    /// same last level cache, then of the same NUMA node, then any member
    /// with room, each scan starting where the hash points; then, all
    /// full, the hash's member.
    ///
    /// Writes nothing: a lookup is not a connection (an ACK of a SYN
    /// cookie, netfilter's socket match, a SYN dropped later all look
    /// listeners up).  The listener that takes a connection request calls
    /// [`Table::turn`].
    #[inline]
    pub(crate) fn pick(&self, cpu: usize, hash: u32) -> Pick {
        match self.pick_cpu(cpu, hash) {
            Some(handle) => Pick::Cpu(handle),
            None => self.fallback(cpu, hash),
        }
    }

    /// A connection request picked by [`Table::pick`] and taken by
    /// `handle`: for tests, which model the kernel's SYN path.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn select(&self, cpu: usize, hash: u32) -> Pick {
        let p = self.pick(cpu, hash);
        // The kernel's fast path agrees whenever it answers.
        #[cfg(test)]
        if let Some(h) = self.pick_first(cpu) {
            assert_eq!(p, Pick::Cpu(h));
        }
        if let Pick::Cpu(h) | Pick::Other(h) = p {
            self.turn(cpu, h);
        }
        p
    }

    /// The CPU's listeners: the range of `slots` and its cursor.
    fn cpu_range(&self, cpu: usize) -> Option<(&[u32], Option<&Cursor>)> {
        let e = self.cpus.get(cpu)?;
        let slots = self.slots.get(e.first as usize..)?.get(..e.len as usize)?;
        Some((slots, self.cursors.get(e.cursor as usize)))
    }

    /// The cursor value for position `pos` of the CPU's range, wrapped to
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

    /// Where the CPU's turn is: its position and the member there.  The
    /// position is checked against `len` by the callers that use it.
    #[inline]
    fn start(&self, e: &CpuEntry) -> (usize, u32) {
        match self.cursors.get(e.cursor as usize) {
            Some(c) => {
                let v = c.0.load(Relaxed);
                ((v >> 32) as usize, v as u32)
            }
            None => (0, e.head),
        }
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

    /// The CPU's listener to try first, and whether it has room: with one
    /// listener per CPU, or a first one with room, this is the whole
    /// selection.  It reads the CPU's entry, the member it names and that
    /// listener's gate word (plus the cursor of a round-robin CPU with
    /// several listeners, and the count of a capped listener).
    #[inline]
    fn pick_cpu(&self, cpu: usize, hash: u32) -> Option<usize> {
        let e = self.cpus.get(cpu)?;
        let (pos, i) = self.start(e);
        if let Some(m) = self.members.get(i as usize) {
            if m.listener.has_room(m.reg) {
                return Some(m.handle);
            }
        }
        if self.policy == Policy::LeastConns && e.len > 1 {
            return self.pick_least(e, pos, hash);
        }
        self.pick_cpu_rest(e, pos)
    }

    /// Least connections among the CPU's listeners, from the one whose
    /// turn it is: the first with the fewest wins, so that equal listeners
    /// take turns.  All of them up to `LEAST_SCAN`, else that one and one
    /// the flow hash picks among the others (two random choices keep the
    /// spread of counts small at a bounded cost); when both are full, the
    /// first in turn with room.
    #[inline(never)]
    fn pick_least(&self, e: &CpuEntry, pos: usize, hash: u32) -> Option<usize> {
        let n = e.len as usize;
        let pos = if pos >= n { 0 } else { pos };
        let mut best: Option<(u32, usize)> = None;
        let mut consider = |p: usize| {
            if let Some(m) = self.at(e, p) {
                if let Some(a) = m.listener.load_in(m.reg) {
                    if best.is_none_or(|(b, _)| a < b) {
                        best = Some((a, m.handle));
                    }
                }
            }
        };
        if n <= LEAST_SCAN {
            let mut p = pos;
            for _ in 0..n {
                consider(p);
                p = next_pos(p, n);
            }
            return best.map(|(_, h)| h);
        }
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
        match best {
            Some((_, h)) => Some(h),
            None => self.pick_cpu_rest(e, pos),
        }
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
        m.listener.has_room(m.reg).then_some(m.handle)
    }

    /// The CPU's other listeners, in turn after `pos`: out of line, so
    /// that the common case stays small, but not cold (fill first comes
    /// here whenever its first listener is full).
    #[inline(never)]
    fn pick_cpu_rest(&self, e: &CpuEntry, mut pos: usize) -> Option<usize> {
        let n = e.len as usize;
        if pos >= n {
            pos = 0;
        }
        for _ in 1..n {
            pos = next_pos(pos, n);
            if let Some(m) = self.at(e, pos) {
                if m.listener.has_room(m.reg) {
                    return Some(m.handle);
                }
            }
        }
        None
    }

    /// `handle` took a connection request picked on `cpu`.
    ///
    /// The CPU's turn moves past it, so listeners skipped for being full
    /// do not hand theirs to a neighbour, and each full listener passed
    /// over before it (all of the CPU's, when another member took it)
    /// counts a full skip.  Only this CPU's softirq moves its cursor; were
    /// two to race, the worst outcome is one listener chosen twice.
    pub(crate) fn turn(&self, cpu: usize, handle: usize) {
        let Some((slots, cursor)) = self.cpu_range(cpu) else {
            return;
        };
        let n = slots.len();
        let Some(e) = self.cpus.get(cpu) else {
            return;
        };
        let mut pos = self.start(e).0;
        if pos >= n {
            pos = 0;
        }
        for _ in 0..n {
            if let Some(m) = slots.get(pos).and_then(|&i| self.members.get(i as usize)) {
                if m.handle == handle {
                    if let Some(c) = cursor {
                        if let Some(v) = self.turn_value(e, pos.wrapping_add(1)) {
                            c.0.store(v, Relaxed);
                        }
                    }
                    return;
                }
                if m.listener.room_in(m.reg) == Room::Full {
                    m.listener.note_full_skip();
                }
            }
            pos = next_pos(pos, n);
        }
    }

    /// The members of `cpu`'s class of kind `kind`: empty if it has none.
    fn class_of(&self, kind: usize, cpu: usize) -> &[u32] {
        let len = self.ids.len() / KINDS;
        let id = match self.ids.get(kind.wrapping_mul(len).wrapping_add(cpu)) {
            Some(&id) if cpu < len && (id as usize) < len => id as usize,
            _ => return &[],
        };
        // `kind < KINDS` and `id < len`: within `classes` by the invariants.
        self.classes
            .get(kind.wrapping_mul(len).wrapping_add(id))
            .and_then(|r| {
                self.near_slots
                    .get(r.first as usize..)?
                    .get(..r.len as usize)
            })
            .unwrap_or(&[])
    }

    /// Only when the CPU's listeners are all full or absent: kept out of
    /// line so that the common path stays small.  Nearest first: the
    /// CPU's last level cache, its NUMA node, then the whole group.
    #[cold]
    #[inline(never)]
    fn fallback(&self, cpu: usize, hash: u32) -> Pick {
        let mut tried: &[u32] = &[];
        for kind in 0..KINDS {
            let near = self.class_of(kind, cpu);
            // A node with one cache lists the same members, in the same
            // order: scanned once.
            if near == tried {
                continue;
            }
            tried = near;
            // reciprocal_scale(hash, n), as below.
            let start = (u64::from(hash).wrapping_mul(near.len() as u64) >> 32) as usize;
            let (Some(head), Some(tail)) = (near.get(start..), near.get(..start)) else {
                continue;
            };
            for &i in head.iter().chain(tail) {
                if let Some(m) = self.members.get(i as usize) {
                    if m.listener.room_in(m.reg) == Room::Yes {
                        return Pick::Other(m.handle);
                    }
                }
            }
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
                Room::Yes => return Pick::Other(m.handle),
                Room::Full => {
                    first_live.get_or_insert(m.handle);
                }
                Room::Gone => {}
            }
        }
        first_live.map_or(Pick::Empty, Pick::Full)
    }

    /// A member as build input.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    fn input<'a>(&'a self, m: &'a Member) -> Input<'a> {
        Input {
            handle: m.handle,
            listener: &m.listener,
            mask: self
                .masks
                .get(m.mask_first..)
                .and_then(|s| s.get(..m.mask_len as usize))
                .unwrap_or(&[]),
        }
    }

    /// The live members as build input, in order.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    fn inputs(&self) -> impl Iterator<Item = Input<'_>> + Clone + '_ {
        self.members
            .iter()
            .filter(|m| !m.listener.is_gone())
            .map(|m| self.input(m))
    }

    /// Builds a table from its members.
    ///
    /// Every allocation happens before anything is shared, so a failure
    /// leaves nothing behind.
    fn build<'a>(
        policy: Policy,
        inputs: impl Iterator<Item = Input<'a>> + Clone,
        topo: Topology<'_>,
        flags: Flags,
    ) -> Result<Self> {
        // Pass 1: sizes.
        let (mut n, mut ncpus) = (0usize, 0usize);
        #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
        let mut words = 0usize;
        for input in inputs.clone() {
            n = n.checked_add(1).ok_or(EINVAL)?;
            #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
            {
                words = words.checked_add(input.mask.len()).ok_or(EINVAL)?;
            }
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
        #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
        let mut masks = KVVec::with_capacity(words, flags)?;
        let mut cpus = KVVec::from_elem(CpuEntry::default(), ncpus, flags)?;

        // Pass 2: members, per-CPU counts.
        for input in inputs.clone() {
            members.push(
                Member {
                    listener: input.listener.clone(),
                    handle: input.handle,
                    reg: input.listener.registration(),
                    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
                    mask_len: u32::try_from(input.mask.len()).map_err(|_| EINVAL)?,
                    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
                    mask_first: masks.len(),
                },
                flags,
            )?;
            #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
            masks.extend_from_slice(input.mask, flags)?;
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

        // Each CPU's range starts at the running sum; `head` counts the
        // listeners placed so far while the slots are filled, in
        // registration order.
        let mut start = 0u32;
        let mut nrr = 0usize;
        for e in cpus.iter_mut() {
            e.first = start;
            start = start.checked_add(e.len).ok_or(EINVAL)?;
            if policy.rotates() && e.len > 1 {
                nrr = nrr.checked_add(1).ok_or(EINVAL)?;
            }
        }
        let mut slots = KVVec::from_elem(0u32, start as usize, flags)?;
        for (i, input) in inputs.clone().enumerate() {
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

        // Round-robin cursors, which the caller may carry over from the
        // table this one replaces (`carry_cursors()`), and each CPU's
        // first listener.
        let mut cursors = KVVec::with_capacity(nrr, flags)?;
        for e in cpus.iter_mut() {
            if e.head != e.len {
                return Err(EINVAL);
            }
            e.head = if e.len > 0 {
                *slots.get(e.first as usize).ok_or(EINVAL)?
            } else {
                NONE
            };
            e.cursor = NO_CURSOR;
            if !policy.rotates() || e.len < 2 {
                continue;
            }
            e.cursor = u32::try_from(cursors.len()).map_err(|_| EINVAL)?;
            let first = policy.turn_member(e.head);
            cursors.push(Cursor(Atomic::new(turn_at(0, first))), flags)?;
        }
        let NearLists {
            ids,
            classes,
            near_slots,
        } = Self::build_near(&members, inputs, topo, flags)?;
        // INVARIANT: the ranges tile `slots` (running sums of the counts);
        // each was filled exactly (`head == len` checked) with indexes
        // below `n` of members whose stored, even `reg` both the count and
        // the fill tested; `head` is then `slots[first]`, or `NONE`; cursor
        // indexes are pushed positions, each cursor starting at position 0
        // and `head` (`NONE` for least connections); `n` fits in a `u32`
        // (checked above) and is at most `u32::MAX - 1`, since `NONE`
        // indexes nothing (below); `build_near()` gives the rest.
        Ok(Self {
            policy,
            members,
            #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
            masks,
            cpus,
            slots,
            cursors,
            ids,
            classes,
            near_slots,
        })
    }

    /// The fallback's lists: for each kind of class and each class, the
    /// registered members with a CPU in it, in order and each once.
    ///
    /// Returns the class ids, `KINDS` runs of one length (the shorter of
    /// `topo`'s), the ranges, `KINDS` runs of that length indexed by id,
    /// and the slots they cover.
    fn build_near<'a>(
        members: &[Member],
        inputs: impl Iterator<Item = Input<'a>> + Clone,
        topo: Topology<'_>,
        flags: Flags,
    ) -> Result<NearLists> {
        let len = topo.llc.len().min(topo.node.len());
        let all = len.checked_mul(KINDS).ok_or(EINVAL)?;
        let mut ids = KVVec::with_capacity(all, flags)?;
        for kind in [topo.llc, topo.node] {
            for &id in kind.iter().take(len) {
                ids.push(id, flags)?;
            }
        }
        let mut classes = KVVec::from_elem(ClassRange::default(), all, flags)?;
        // The last member added to each class, so that a member with
        // several CPUs in one class is listed once.
        let mut last = KVVec::from_elem(NONE, all, flags)?;
        let registered = |i: usize| members.get(i).is_some_and(|m| m.reg & 1 == 0);

        // Sizes, then running sums, then the fill (`len` counts back up).
        for (i, input) in inputs.clone().enumerate() {
            if registered(i) {
                each_class(&ids, len, &mut last, i as u32, input.mask, |c| {
                    let r = classes.get_mut(c).ok_or(EINVAL)?;
                    r.len = r.len.checked_add(1).ok_or(EINVAL)?;
                    Ok(())
                })?;
            }
        }
        let mut start = 0u32;
        for r in classes.iter_mut() {
            r.first = start;
            start = start.checked_add(r.len).ok_or(EINVAL)?;
            r.len = 0;
        }
        let mut near_slots = KVVec::from_elem(0u32, start as usize, flags)?;
        last.iter_mut().for_each(|l| *l = NONE);
        for (i, input) in inputs.enumerate() {
            if registered(i) {
                each_class(&ids, len, &mut last, i as u32, input.mask, |c| {
                    let r = classes.get_mut(c).ok_or(EINVAL)?;
                    let at = r.first.checked_add(r.len).ok_or(EINVAL)?;
                    *near_slots.get_mut(at as usize).ok_or(EINVAL)? = i as u32;
                    r.len = r.len.checked_add(1).ok_or(EINVAL)?;
                    Ok(())
                })?;
            }
        }
        // Every range filled to its size: the fill met what was counted.
        let mut next = 0u32;
        for r in classes.iter() {
            if r.first != next {
                return Err(EINVAL);
            }
            next = r.first.checked_add(r.len).ok_or(EINVAL)?;
        }
        if next != start {
            return Err(EINVAL);
        }
        // INVARIANT: `classes` has `KINDS * len` ranges tiling
        // `near_slots` (checked just above), filled with indexes of
        // registered members.
        Ok(NearLists {
            ids,
            classes,
            near_slots,
        })
    }
}
