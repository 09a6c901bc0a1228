// SPDX-License-Identifier: GPL-2.0

//! Connection accounting of one SO_REUSERPS listener: its cap, its counts.
//!
//! A [`Listener`] is shared by the listening socket, by every match table
//! that names it and by every connection handed to it, and a connection
//! may outlive its listening socket.  So it lives in an [`Arc`], whose
//! saturating reference count frees it at the last drop, in whatever
//! context that happens: counting and releasing never sleep, lock or
//! allocate.
//!
//! The counters and the gate word (cap and registration) are LKMM atomics.
//! Every access is relaxed: the cap is a limit on `active` alone, enforced
//! by the compare-and-swap in [`Listener::admit`]; no other memory is
//! published through them.  The gate word, which every selection reads,
//! the counts, which every connection writes, and the full skips, which
//! other listeners' connections write, are on cache lines of their own.

use core::cell::Cell;
use kernel::{
    alloc::Flags,
    error::Result,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            Relaxed,
            Release, //
        },
        Arc, //
    }, //
};

/// What getsockopt(SO_REUSERPS) reports of a listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Info {
    /// Cap on active connections, 0 for none.
    pub(crate) max_conns: u32,
    /// Connections handed to the listener that have not ended.
    pub(crate) active_conns: u32,
    /// Connections ever handed to the listener.
    pub(crate) total_conns: u64,
    /// Times a connection on one of its CPUs went elsewhere: it was full.
    pub(crate) full_skips: u64,
}

/// The shared state of one registered listener.
///
/// # Invariants
///
/// `active` is at most the cap in `gate` whenever that is non-zero and was
/// not lowered below `active` by a reconfiguration; `total >= active`.
pub(crate) struct Listener {
    /// Its cap (high 32 bits, 0 for none) and its registration (low 32
    /// bits): even while registered in a group, odd once it left; each
    /// new registration takes the next even value.  A table names it with
    /// the value of the registration it was built for, so that a table of
    /// a group it left never picks it again, even once it is registered
    /// in another group.  One word, so that selection reads both with one
    /// load: with a GCC build every atomic is a call.
    gate: Line<Gate>,
    counts: Line<Counts>,
}

/// What selection reads, and only reconfiguration writes.
struct Gate {
    /// The cap and the registration, see [`Listener`].
    word: Atomic<u64>,
    /// The address of the group's [`Bell`], 0 for none.
    ///
    /// # Invariants
    ///
    /// 0, or the address of a `Bell` that stays alive while any call of
    /// [`Listener::release`] may read it (see [`Listener::set_bell`]).
    bell: Atomic<u64>,
    /// The full skips of the tables it was in, once they are gone.
    full_skips: Atomic<u64>,
    /// Unaccepted connections at which selection passes the listener
    /// over while another has room (SO_REUSERPS `max_pending`); 0 for no
    /// limit.
    max_pending: Atomic<u32>,
    /// The address of the socket's accept queue length, 0 for none.
    ///
    /// # Invariants
    ///
    /// 0, or the address of an aligned `u32` that stays readable while a
    /// published table names the listener in an even registration that
    /// is still its own, and for an RCU grace period after (see
    /// [`Listener::set_backlog`]); others only write it atomically then.
    backlog: Atomic<usize>,
}

/// What the connections handed to a listener write.
struct Counts {
    active: Atomic<u32>,
    total: Atomic<u64>,
}

/// A group's count of its listeners getting room again.
///
/// Each CPU remembers which of its listeners it found full, and believes
/// it until this changes: [`Listener::release`] rings it when it leaves a
/// cap, [`Listener::configure`] when it raises one.  Written only then,
/// read by selections that pass a full listener.
pub(crate) struct Bell(Line<Atomic<u32>>);

impl Bell {
    /// A new bell; `GFP_ATOMIC` in the kernel, which makes one with a
    /// group, under the group's lock.
    pub(crate) fn new(flags: Flags) -> Result<Arc<Self>> {
        Ok(Arc::new(Self(Line(Atomic::new(0))), flags)?)
    }

    /// Its value, which every ring changes.  Acquire, paired with the ring:
    /// a selection that reads the new value sees the room that rang it.
    pub(crate) fn value(&self) -> u32 {
        self.0 .0.load(Acquire)
    }

    fn ring(&self) {
        self.0 .0.fetch_add(1, Release);
    }
}

/// A value on 64 bytes of its own, so that writers of one do not take the
/// cache line of another from its readers (128 bytes or more on some
/// arm64, ppc64 and s390 machines: there, two share a line).
#[repr(align(64))]
struct Line<T>(T);

/// The cap in a gate word.
const fn gate_cap(gate: u64) -> u32 {
    (gate >> 32) as u32
}

/// The registration in a gate word.
const fn gate_reg(gate: u64) -> u32 {
    gate as u32
}

/// A gate word.
const fn gate(cap: u32, reg: u32) -> u64 {
    ((cap as u64) << 32) | reg as u64
}

/// Whether a listener can take a connection, for selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Room {
    /// Registered and below its cap.
    Yes,
    /// Registered and at its cap.
    Full,
    /// Unregistered.
    Gone,
}

/// Whether a selection passes over stalled listeners (those holding
/// `max_pending` unaccepted connections or more), and if it does, where it
/// notes that it passed one: only then is a second look, without, worth
/// its cost.
pub(crate) type Stall<'a> = Option<&'a Cell<bool>>;

/// Replaces the value of `$a` by `$f(value)` unless that is `None`, with a
/// compare-and-swap loop (the kernel's atomics have no `fetch_update`).
/// The value replaced, if it was.
macro_rules! try_update {
    ($a:expr, $f:expr) => {{
        let a = &$a;
        let f = $f;
        let mut cur = a.load(Relaxed);
        loop {
            let Some(new) = f(cur) else {
                break None;
            };
            match a.cmpxchg(cur, new, Relaxed) {
                Ok(_) => break Some(cur),
                Err(seen) => cur = seen,
            }
        }
    }};
}

impl Listener {
    /// Allocates a listener's state with one reference.
    ///
    /// It starts registered, without connections, capped at `max_conns`
    /// (0 for no cap).
    pub(crate) fn new(max_conns: u32, flags: Flags) -> Result<Arc<Self>> {
        let l = Self {
            gate: Line(Gate {
                word: Atomic::new(gate(max_conns, 0)),
                bell: Atomic::new(0),
                full_skips: Atomic::new(0),
                max_pending: Atomic::new(0),
                backlog: Atomic::new(0),
            }),
            counts: Line(Counts {
                active: Atomic::new(0),
                total: Atomic::new(0),
            }),
        };
        Ok(Arc::new(l, flags)?)
    }

    /// Whether a new connection may be handed to this listener now.
    ///
    /// Only a hint, for selection and for a SYN: [`Listener::admit`],
    /// when the handshake completes, decides.
    pub(crate) fn room(&self) -> Room {
        self.room_in(self.registration())
    }

    /// As [`Listener::room`], for a table built for registration `reg`:
    /// `Gone` unless the listener is still in that registration.
    #[inline]
    pub(crate) fn room_in(&self, reg: u32) -> Room {
        let g = self.gate.0.word.load(Relaxed);
        if gate_reg(g) != reg || reg & 1 != 0 {
            return Room::Gone;
        }
        let max = gate_cap(g);
        if max == 0 || self.counts.0.active.load(Relaxed) < max {
            Room::Yes
        } else {
            Room::Full
        }
    }

    /// Whether [`Listener::room_in`] would say `Room::Yes`, for an even
    /// `reg` only: it does not test the parity, so an odd `reg` may give
    /// a wrong `true`.  The selection's fast path; a table's CPU ranges
    /// name only even registrations.  With `stall`, a stalled listener
    /// has no room either, and `stall` notes that one was passed.
    #[inline]
    pub(crate) fn has_room(&self, reg: u32, stall: Stall<'_>) -> bool {
        let g = self.gate.0.word.load(Relaxed);
        if gate_reg(g) != reg {
            return false;
        }
        let max = gate_cap(g);
        (max == 0 || self.counts.0.active.load(Relaxed) < max) && !self.stalled(reg, stall)
    }

    /// Whether `stall` asks to pass over a stalled listener and this one
    /// is: its accept queue holds `max_pending` connections or more.  Only
    /// for a listener its caller found in registration `reg`, read from a
    /// table under RCU: then its socket is alive.
    #[inline]
    fn stalled(&self, reg: u32, stall: Stall<'_>) -> bool {
        let Some(seen) = stall else {
            return false;
        };
        // An odd registration is no member's: its socket may be gone.
        if reg & 1 != 0 {
            return false;
        }
        let max = self.gate.0.max_pending.load(Relaxed);
        if max == 0 || self.pending() < max {
            return false;
        }
        seen.set(true);
        true
    }

    /// The socket's unaccepted connections (its `sk_ack_backlog`), 0 if
    /// it has not said where they are.  Only as [`Listener::stalled`]
    /// calls it.
    fn pending(&self) -> u32 {
        let b = self.gate.0.backlog.load(Relaxed);
        if b == 0 {
            return 0;
        }
        let p = core::ptr::with_exposed_provenance_mut::<u32>(b);
        // SAFETY: By the invariants of `Gate::backlog`, a non-zero address
        // is that of an aligned `u32`, readable here: the caller found the
        // listener in its current, even registration through a table
        // under RCU.  Meanwhile the listening socket writes it only with
        // WRITE_ONCE() (sk_acceptq_added() and _removed()), so this reads
        // it as READ_ONCE() does.
        unsafe { Atomic::from_ptr(p) }.load(Relaxed)
    }

    /// Its active connections if it has room, as [`Listener::has_room`]
    /// (an even `reg` only); `None` if it has none.  For least
    /// connections: the count is read once, so that the choice and its
    /// cap test see the same value.
    #[inline]
    pub(crate) fn load_in(&self, reg: u32, stall: Stall<'_>) -> Option<u32> {
        let g = self.gate.0.word.load(Relaxed);
        if gate_reg(g) != reg {
            return None;
        }
        let max = gate_cap(g);
        let a = self.counts.0.active.load(Relaxed);
        ((max == 0 || a < max) && !self.stalled(reg, stall)).then_some(a)
    }

    /// Its current registration, for a table being built.
    pub(crate) fn registration(&self) -> u32 {
        gate_reg(self.gate.0.word.load(Relaxed))
    }

    /// Its cap, 0 for none.
    fn max_conns(&self) -> u32 {
        gate_cap(self.gate.0.word.load(Relaxed))
    }

    /// Takes a slot for a new connection if the cap allows it.
    ///
    /// Atomic with respect to the cap: concurrent admissions never take
    /// `active` past `max_conns`.  Returns false, counting nothing, when
    /// the listener is full.
    pub(crate) fn admit(&self) -> bool {
        try_update!(self.counts.0.active, |a: u32| {
            let max = self.max_conns();
            if max != 0 && a >= max {
                return None;
            }
            a.checked_add(1)
        })
        .is_some()
    }

    /// The connection a slot of [`Listener::admit`] was taken for exists
    /// and is this listener's: counts it in `total`.  A slot given back
    /// unused (an ACK that lost its request to another) is never counted.
    pub(crate) fn hand(&self) {
        // Wraps after 2^64 connections, which is fine for a statistic.
        self.counts.0.total.add(1, Relaxed);
    }

    /// Ends a connection counted by [`Listener::admit`]; one that leaves
    /// the cap rings the group's bell.
    ///
    /// Returns false if no connection was active: a caller bug, reported
    /// rather than wrapped around.
    pub(crate) fn release(&self) -> bool {
        let Some(was) = try_update!(self.counts.0.active, |a: u32| a.checked_sub(1)) else {
            return false;
        };
        let max = self.max_conns();
        if max != 0 && was >= max {
            self.ring();
        }
        true
    }

    /// Rings the group's bell, if the listener is in a group.
    fn ring(&self) {
        let b = self.gate.0.bell.load(Relaxed);
        if b != 0 {
            let bell = core::ptr::with_exposed_provenance::<Bell>(b as usize);
            // SAFETY: By the invariants of `Gate::bell`, a non-zero address
            // is that of a live `Bell`.
            unsafe { &*bell }.ring();
        }
    }

    /// Makes `bell` the one that [`Listener::release`] rings (NULL: none).
    ///
    /// # Safety
    ///
    /// `bell` must be NULL or point to a `Bell` that stays alive until this
    /// is called again and every [`Listener::release`] that may have read
    /// it has returned (C: the group's bell is freed an RCU grace period
    /// after its last member left, and releases run under RCU).
    pub(crate) unsafe fn set_bell(&self, bell: *const Bell) {
        // INVARIANT: the caller guarantees `bell` is NULL or stays alive.
        self.gate
            .0
            .bell
            .store(bell.expose_provenance() as u64, Relaxed);
    }

    /// Tells where the socket keeps its accept queue length, which
    /// `max_pending` is compared with (NULL: nowhere, never stalled).
    ///
    /// # Safety
    ///
    /// `backlog` must be NULL or point to an aligned `u32` that stays
    /// readable while a published table names the listener in its current
    /// registration, and for an RCU grace period after it is marked gone;
    /// written only atomically meanwhile (C: the socket's `sk_ack_backlog`:
    /// tables name a listener once it is hashed, TCP listeners are freed
    /// after a grace period, and selection runs under RCU).
    pub(crate) unsafe fn set_backlog(&self, backlog: *const u32) {
        // INVARIANT: the caller guarantees `backlog` is NULL or readable.
        self.gate
            .0
            .backlog
            .store(backlog.expose_provenance(), Relaxed);
    }

    /// Sets `max_pending` (0 for no limit), as [`Listener::configure`]
    /// sets the cap.
    pub(crate) fn set_max_pending(&self, max_pending: u32) {
        self.gate.0.max_pending.store(max_pending, Relaxed);
    }

    /// Adds the full skips of a table that goes, or that it leaves.
    pub(crate) fn add_skips(&self, n: u64) {
        // Wraps after 2^64 skips, which is fine for a statistic.
        self.gate.0.full_skips.add(n, Relaxed);
    }

    /// Sets the cap (0 for none; existing connections are kept even
    /// above it) and marks the listener unregistered, or registered again
    /// (a new registration, which no older table names).
    ///
    /// Callers serialise this (C: under reuseport_lock).  One store, so
    /// that selection sees the cap and the registration change together.
    pub(crate) fn configure(&self, max_conns: u32, gone: bool) {
        let r = self.registration();
        let old = self.max_conns();
        let r = if gone == (r & 1 == 0) {
            r.wrapping_add(1)
        } else {
            r
        };
        self.gate.0.word.store(gate(max_conns, r), Relaxed);
        // More room: the CPUs' notes of who is full are out of date.
        if old != 0 && (max_conns == 0 || max_conns > old) {
            self.ring();
        }
    }

    /// A snapshot of the counters (each read atomically on its own).
    pub(crate) fn info(&self) -> Info {
        Info {
            max_conns: self.max_conns(),
            active_conns: self.counts.0.active.load(Relaxed),
            total_conns: self.counts.0.total.load(Relaxed),
            full_skips: self.gate.0.full_skips.load(Relaxed),
        }
    }
}
