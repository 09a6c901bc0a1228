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
//! published through them.

use kernel::{
    alloc::Flags,
    error::Result,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
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
    gate: Atomic<u64>,
    active: Atomic<u32>,
    total: Atomic<u64>,
    full_skips: Atomic<u64>,
}

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

/// Replaces the value of `$a` by `$f(value)` unless that is `None`, with a
/// compare-and-swap loop (the kernel's atomics have no `fetch_update`).
/// Whether it was replaced.
macro_rules! try_update {
    ($a:expr, $f:expr) => {{
        let a = &$a;
        let f = $f;
        let mut cur = a.load(Relaxed);
        loop {
            let Some(new) = f(cur) else {
                break false;
            };
            match a.cmpxchg(cur, new, Relaxed) {
                Ok(_) => break true,
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
            gate: Atomic::new(gate(max_conns, 0)),
            active: Atomic::new(0),
            total: Atomic::new(0),
            full_skips: Atomic::new(0),
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
        let g = self.gate.load(Relaxed);
        if gate_reg(g) != reg || reg & 1 != 0 {
            return Room::Gone;
        }
        let max = gate_cap(g);
        if max == 0 || self.active.load(Relaxed) < max {
            Room::Yes
        } else {
            Room::Full
        }
    }

    /// Whether [`Listener::room_in`] would say `Room::Yes`, for an even
    /// `reg` only: it does not test the parity, so an odd `reg` may give
    /// a wrong `true`.  The selection's fast path; a table's CPU ranges
    /// name only even registrations.
    #[inline]
    pub(crate) fn has_room(&self, reg: u32) -> bool {
        let g = self.gate.load(Relaxed);
        if gate_reg(g) != reg {
            return false;
        }
        let max = gate_cap(g);
        max == 0 || self.active.load(Relaxed) < max
    }

    /// Its active connections if it has room, as [`Listener::has_room`]
    /// (an even `reg` only); `None` if it has none.  For least
    /// connections: the count is read once, so that the choice and its
    /// cap test see the same value.
    #[inline]
    pub(crate) fn load_in(&self, reg: u32) -> Option<u32> {
        let g = self.gate.load(Relaxed);
        if gate_reg(g) != reg {
            return None;
        }
        let max = gate_cap(g);
        let a = self.active.load(Relaxed);
        (max == 0 || a < max).then_some(a)
    }

    /// Its current registration, for a table being built.
    pub(crate) fn registration(&self) -> u32 {
        gate_reg(self.gate.load(Relaxed))
    }

    /// Its cap, 0 for none.
    fn max_conns(&self) -> u32 {
        gate_cap(self.gate.load(Relaxed))
    }

    /// Whether the listener was unregistered.
    #[cfg(any(test, CONFIG_REUSERPS_KUNIT_TEST))]
    pub(crate) fn is_gone(&self) -> bool {
        self.registration() & 1 != 0
    }

    /// Takes a slot for a new connection if the cap allows it.
    ///
    /// Atomic with respect to the cap: concurrent admissions never take
    /// `active` past `max_conns`.  Returns false, counting nothing, when
    /// the listener is full.
    pub(crate) fn admit(&self) -> bool {
        try_update!(self.active, |a: u32| {
            let max = self.max_conns();
            if max != 0 && a >= max {
                return None;
            }
            a.checked_add(1)
        })
    }

    /// The connection a slot of [`Listener::admit`] was taken for exists
    /// and is this listener's: counts it in `total`.  A slot given back
    /// unused (an ACK that lost its request to another) is never counted.
    pub(crate) fn hand(&self) {
        // Wraps after 2^64 connections, which is fine for a statistic.
        self.total.add(1, Relaxed);
    }

    /// Ends a connection counted by [`Listener::admit`].
    ///
    /// Returns false if no connection was active: a caller bug, reported
    /// rather than wrapped around.
    pub(crate) fn release(&self) -> bool {
        try_update!(self.active, |a: u32| a.checked_sub(1))
    }

    /// Notes that a connection on one of its CPUs went elsewhere.
    pub(crate) fn note_full_skip(&self) {
        // Wraps after 2^64 skips, which is fine for a statistic.
        self.full_skips.add(1, Relaxed);
    }

    /// Sets the cap (0 for none; existing connections are kept even
    /// above it) and marks the listener unregistered, or registered again
    /// (a new registration, which no older table names).
    ///
    /// Callers serialise this (C: under reuseport_lock).  One store, so
    /// that selection sees the cap and the registration change together.
    pub(crate) fn configure(&self, max_conns: u32, gone: bool) {
        let r = self.registration();
        let r = if gone == (r & 1 == 0) {
            r.wrapping_add(1)
        } else {
            r
        };
        self.gate.store(gate(max_conns, r), Relaxed);
    }

    /// Sets the cap alone; see [`Listener::configure`].  For host tests.
    #[cfg(test)]
    pub(crate) fn set_max_conns(&self, max_conns: u32) {
        self.configure(max_conns, self.registration() & 1 != 0);
    }

    /// Marks the listener unregistered or registered again; see
    /// [`Listener::configure`].  For host tests.
    #[cfg(test)]
    pub(crate) fn set_gone(&self, gone: bool) {
        self.configure(self.max_conns(), gone);
    }

    /// A snapshot of the counters (each read atomically on its own).
    pub(crate) fn info(&self) -> Info {
        Info {
            max_conns: self.max_conns(),
            active_conns: self.active.load(Relaxed),
            total_conns: self.total.load(Relaxed),
            full_skips: self.full_skips.load(Relaxed),
        }
    }
}
