// SPDX-License-Identifier: GPL-2.0

//! The match table of a SO_REUSERPS group: which listeners serve which CPU.
//!
//! A table never changes once built.  C builds a new one from the group's
//! members whenever they change, in process context outside the group's
//! lock (kvmalloc-backed, charged to the memory cgroup), and publishes it
//! with RCU if the group has not changed meanwhile.  Selection runs
//! in softirq on whatever table it finds: it indexes the entry of the
//! current CPU, reads the listeners' counters and bumps a round-robin
//! cursor; it takes no lock, allocates nothing and cannot panic.
//!
//! Layout: per CPU (up to the highest registered one) the range of its
//! listeners in `slots`, in registration order; one cache-line-sized
//! round-robin cursor per CPU that has two listeners or more.  Memory
//! grows with what is registered, not with the number of CPUs times a
//! fixed number of slots.

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
}

impl Policy {
    /// The policy of a uapi value; `EINVAL` for an unknown one.
    pub(crate) const fn from_uapi(value: u32) -> Result<Self> {
        match value {
            0 => Ok(Self::RoundRobin),
            1 => Ok(Self::FillFirst),
            _ => Err(EINVAL),
        }
    }
}

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

struct Member {
    handle: usize,
    listener: Arc<Listener>,
    /// The listener's registration this table was built for.
    reg: u32,
    mask_first: usize,
    mask_len: usize,
}

#[derive(Clone, Copy, Default)]
struct CpuEntry {
    /// Start of the CPU's listeners in `slots`.
    first: u32,
    /// How many listeners the CPU has.
    len: u32,
    /// Index of its round-robin cursor, `NO_CURSOR` if it needs none.
    cursor: u32,
}

const NO_CURSOR: u32 = u32::MAX;

/// A round-robin cursor, on 64 bytes of its own, so that CPUs do not
/// share one cache line on most machines (it is 128 bytes or more on
/// some arm64, ppc64 and s390 ones).
#[repr(align(64))]
struct Cursor(Atomic<u32>);

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
/// Every index in `slots` is below `members.len()`; every `CpuEntry`
/// range lies within `slots`; every cursor index other than `NO_CURSOR`
/// is below `cursors.len()`; `members.len()` fits in a `u32`.
pub(crate) struct Table {
    policy: Policy,
    members: KVVec<Member>,
    masks: KVVec<u64>,
    cpus: KVVec<CpuEntry>,
    slots: KVVec<u32>,
    cursors: KVVec<Cursor>,
}

impl Table {
    /// Builds a table of `inputs`, in that order (registration order).
    ///
    /// May sleep with `GFP_KERNEL` flags; every allocation happens before
    /// anything is shared, so a failure leaves nothing behind.
    pub(crate) fn from_members<'a>(
        policy: Policy,
        inputs: impl Iterator<Item = Input<'a>> + Clone,
        flags: Flags,
    ) -> Result<Self> {
        Self::build(policy, inputs, flags)
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
            if let Some(o) = from {
                c.0.store(o.0.load(Relaxed), Relaxed);
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
        Self::build(policy, one.iter().copied(), flags)
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
        let t = Self::build(self.policy, kept.chain(added), flags)?;
        t.carry_cursors(self);
        Ok(t)
    }

    /// Builds a copy of this table without `handle` nor unregistered listeners.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn without_member(&self, handle: usize, flags: Flags) -> Result<Self> {
        let kept = self.inputs().filter(move |i| i.handle != handle);
        let t = Self::build(self.policy, kept, flags)?;
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
    /// listeners by policy, skipping full ones; then any member with room,
    /// starting where reuseport's hash points (a scan of the group, only
    /// when the CPU's listeners are all full or absent); then, all full,
    /// that hash's member.
    ///
    /// Writes nothing: a lookup is not a connection (an ACK of a SYN
    /// cookie, netfilter's socket match, a SYN dropped later all look
    /// listeners up).  The listener that takes a connection request calls
    /// [`Table::turn`].
    pub(crate) fn pick(&self, cpu: usize, hash: u32) -> Pick {
        match self.pick_cpu(cpu) {
            Some(handle) => Pick::Cpu(handle),
            None => self.fallback(hash),
        }
    }

    /// A connection request picked by [`Table::pick`] and taken by
    /// `handle`: for tests, which model the kernel's SYN path.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn select(&self, cpu: usize, hash: u32) -> Pick {
        let p = self.pick(cpu, hash);
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

    /// Where the CPU's turn starts: below `n` unless the cursor came from
    /// an older table, so no division on this path.
    fn start(cursor: Option<&Cursor>, n: usize) -> usize {
        let pos = cursor.map_or(0, |c| c.0.load(Relaxed) as usize);
        if pos >= n {
            0
        } else {
            pos
        }
    }

    fn pick_cpu(&self, cpu: usize) -> Option<usize> {
        // One entry read; a round-robin cursor exists only for a CPU
        // with two listeners or more in a round-robin table.
        let (slots, cursor) = self.cpu_range(cpu)?;
        let n = slots.len();
        let mut pos = Self::start(cursor, n);
        for _ in 0..n {
            if let Some(m) = slots.get(pos).and_then(|&i| self.members.get(i as usize)) {
                if m.listener.room_in(m.reg) == Room::Yes {
                    return Some(m.handle);
                }
            }
            // `pos < n`, so `pos + 1` cannot overflow.
            pos += 1;
            if pos == n {
                pos = 0;
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
        let mut pos = Self::start(cursor, n);
        for _ in 0..n {
            if let Some(m) = slots.get(pos).and_then(|&i| self.members.get(i as usize)) {
                if m.handle == handle {
                    // `pos + 1 <= n`, which fits in a u32 (see the
                    // invariants).
                    if let Some(c) = cursor {
                        c.0.store(u32::try_from(pos + 1).unwrap_or(0), Relaxed);
                    }
                    return;
                }
                if m.listener.room_in(m.reg) == Room::Full {
                    m.listener.note_full_skip();
                }
            }
            pos += 1;
            if pos == n {
                pos = 0;
            }
        }
    }

    fn fallback(&self, hash: u32) -> Pick {
        let n = self.members.len();
        // reciprocal_scale(hash, n) as reuseport's hash selection does:
        // both factors are below 2^32, so the product fits in 64 bits.
        let start = ((u64::from(hash) * n as u64) >> 32) as usize;
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
                .and_then(|s| s.get(..m.mask_len))
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
        flags: Flags,
    ) -> Result<Self> {
        // Pass 1: sizes.
        let (mut n, mut words, mut nslots, mut ncpus) = (0usize, 0usize, 0usize, 0usize);
        for input in inputs.clone() {
            n = n.checked_add(1).ok_or(EINVAL)?;
            words = words.checked_add(input.mask.len()).ok_or(EINVAL)?;
            for_each_cpu(input.mask, |cpu| {
                nslots = nslots.checked_add(1).ok_or(EINVAL)?;
                ncpus = ncpus.max(cpu.checked_add(1).ok_or(EINVAL)?);
                Ok(())
            })?;
        }
        if u32::try_from(n).is_err() || u32::try_from(nslots).is_err() {
            return Err(EINVAL);
        }
        let mut members = KVVec::with_capacity(n, flags)?;
        let mut masks = KVVec::with_capacity(words, flags)?;
        let mut cpus = KVVec::from_elem(CpuEntry::default(), ncpus, flags)?;
        let mut slots = KVVec::from_elem(0u32, nslots, flags)?;

        // Pass 2: members, masks, per-CPU counts.
        for input in inputs.clone() {
            let mask_first = masks.len();
            masks.extend_from_slice(input.mask, flags)?;
            members.push(
                Member {
                    handle: input.handle,
                    listener: input.listener.clone(),
                    reg: input.listener.registration(),
                    mask_first,
                    mask_len: input.mask.len(),
                },
                flags,
            )?;
            for_each_cpu(input.mask, |cpu| {
                let e = cpus.get_mut(cpu).ok_or(EINVAL)?;
                e.len = e.len.checked_add(1).ok_or(EINVAL)?;
                Ok(())
            })?;
        }

        // Each CPU's range ends at the running sum; filling members from
        // the last backwards moves `first` down to the range's start and
        // leaves each range in registration order.
        let mut end = 0u32;
        let mut nrr = 0usize;
        for e in cpus.iter_mut() {
            end = end.checked_add(e.len).ok_or(EINVAL)?;
            e.first = end;
            if policy == Policy::RoundRobin && e.len > 1 {
                nrr += 1;
            }
        }
        for (i, m) in members.iter().enumerate().rev() {
            let mask = masks.get(m.mask_first..).and_then(|s| s.get(..m.mask_len));
            let i = u32::try_from(i).map_err(|_| EINVAL)?;
            for_each_cpu(mask.unwrap_or(&[]), |cpu| {
                let e = cpus.get_mut(cpu).ok_or(EINVAL)?;
                e.first = e.first.checked_sub(1).ok_or(EINVAL)?;
                *slots.get_mut(e.first as usize).ok_or(EINVAL)? = i;
                Ok(())
            })?;
        }

        // Round-robin cursors, which the caller may carry over from the
        // table this one replaces (`carry_cursors()`).
        let mut cursors = KVVec::with_capacity(nrr, flags)?;
        for e in cpus.iter_mut() {
            e.cursor = NO_CURSOR;
            if policy != Policy::RoundRobin || e.len < 2 {
                continue;
            }
            e.cursor = u32::try_from(cursors.len()).map_err(|_| EINVAL)?;
            cursors.push(Cursor(Atomic::new(0)), flags)?;
        }
        // INVARIANT: `slots` holds member indexes below `n`, written within
        // the ranges computed from the same counts; cursor indexes are
        // pushed positions; `n` fits in a `u32` (checked above).
        Ok(Self {
            policy,
            members,
            masks,
            cpus,
            slots,
            cursors,
        })
    }
}
