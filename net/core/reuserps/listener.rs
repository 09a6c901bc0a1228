// SPDX-License-Identifier: GPL-2.0

//! Connection accounting of one SO_REUSERPS listener: its cap, its counts.
//!
//! A [`Listener`] is shared by the listening socket, by every match table
//! that names it and by every connection handed to it, and a connection
//! may outlive its listening socket.  So it is reference counted
//! ([`ListenerRef`]) and freed by the last reference dropped, in whatever
//! context that happens: counting and releasing never sleep and never
//! allocate.
//!
//! Counters only use atomics; nothing here takes a lock.

use crate::mem;
use crate::table::Error;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

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
/// `refs` counts the [`ListenerRef`]s in existence; the memory is freed
/// when it drops to zero.  `active <= max_conns` whenever `max_conns` is
/// non-zero and was not lowered below `active` by a reconfiguration.
pub(crate) struct Listener {
    refs: AtomicU32,
    max_conns: AtomicU32,
    active: AtomicU32,
    total: AtomicU64,
    full_skips: AtomicU64,
    /// Unregistered: tables that still name it must not pick it.
    gone: AtomicBool,
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

impl Listener {
    /// Whether a new connection may be handed to this listener now.
    ///
    /// Only a hint for selection: [`Listener::admit`] decides.
    pub(crate) fn room(&self) -> Room {
        if self.gone.load(Ordering::Relaxed) {
            return Room::Gone;
        }
        let max = self.max_conns.load(Ordering::Relaxed);
        if max == 0 || self.active.load(Ordering::Relaxed) < max {
            Room::Yes
        } else {
            Room::Full
        }
    }

    /// Whether the listener was unregistered.
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    /// Counts a new connection if the cap allows it.
    ///
    /// Atomic with respect to the cap: concurrent admissions never take
    /// `active` past `max_conns`.  Returns false, counting nothing, when
    /// the listener is full.
    pub(crate) fn admit(&self) -> bool {
        let ok = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| {
                let max = self.max_conns.load(Ordering::Relaxed);
                if max != 0 && a >= max {
                    return None;
                }
                a.checked_add(1)
            })
            .is_ok();
        if ok {
            self.total.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Takes back an admission whose connection was never handed over: a
    /// SYN answered with a SYN cookie, counted again if its ACK comes.
    ///
    /// Returns false if no connection was active: a caller bug.
    pub(crate) fn withdraw(&self) -> bool {
        if !self.release() {
            return false;
        }
        // Every withdrawn admission was counted in `total` first.
        let _ = self
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1));
        true
    }

    /// Ends a connection counted by [`Listener::admit`].
    ///
    /// Returns false if no connection was active: a caller bug, reported
    /// rather than wrapped around.
    pub(crate) fn release(&self) -> bool {
        self.active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| a.checked_sub(1))
            .is_ok()
    }

    /// Notes that a connection on one of its CPUs went elsewhere.
    pub(crate) fn note_full_skip(&self) {
        // Wraps after 2^64 skips, which is fine for a statistic.
        self.full_skips.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the cap; existing connections are kept even above it.
    pub(crate) fn set_max_conns(&self, max_conns: u32) {
        self.max_conns.store(max_conns, Ordering::Relaxed);
    }

    /// Marks the listener unregistered, or registered again.
    pub(crate) fn set_gone(&self, gone: bool) {
        self.gone.store(gone, Ordering::Relaxed);
    }

    /// A snapshot of the counters (each read atomically on its own).
    pub(crate) fn info(&self) -> Info {
        Info {
            max_conns: self.max_conns.load(Ordering::Relaxed),
            active_conns: self.active.load(Ordering::Relaxed),
            total_conns: self.total.load(Ordering::Relaxed),
            full_skips: self.full_skips.load(Ordering::Relaxed),
        }
    }
}

/// A counted reference to a [`Listener`].
///
/// # Invariants
///
/// `ptr` points to a live [`Listener`] whose `refs` counts this value.
pub(crate) struct ListenerRef {
    ptr: NonNull<Listener>,
}

// SAFETY: `Listener` is made of atomics only, and the reference count
// keeps it alive for as long as any `ListenerRef` exists on any thread.
unsafe impl Send for ListenerRef {}
// SAFETY: As above: shared access only ever goes through atomics.
unsafe impl Sync for ListenerRef {}

impl ListenerRef {
    /// Allocates a listener with one reference, registered, no counts.
    pub(crate) fn new(max_conns: u32, gfp: mem::Gfp) -> Result<Self, Error> {
        let listener = Listener {
            refs: AtomicU32::new(1),
            max_conns: AtomicU32::new(max_conns),
            active: AtomicU32::new(0),
            total: AtomicU64::new(0),
            full_skips: AtomicU64::new(0),
            gone: AtomicBool::new(false),
        };
        let ptr = mem::box_into_raw(mem::new_box(listener, gfp)?);
        // INVARIANT: A fresh allocation with `refs` == 1 for this value.
        Ok(Self {
            // SAFETY: `box_into_raw` never returns null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
        })
    }

    /// Gives up ownership of this reference, for C to keep.
    pub(crate) fn into_raw(self) -> *const Listener {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
    }

    /// Takes back a reference given up by [`ListenerRef::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`ListenerRef::into_raw`] and its reference
    /// must not have been taken back already.
    pub(crate) unsafe fn from_raw(ptr: *const Listener) -> Self {
        // INVARIANT: The caller hands over the reference `into_raw` kept.
        Self {
            // SAFETY: `into_raw` returned a non-null pointer.
            ptr: unsafe { NonNull::new_unchecked(ptr.cast_mut()) },
        }
    }

    /// Borrows a listener through a raw pointer without taking a reference.
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`ListenerRef::into_raw`] and its reference
    /// must be held for at least `'a`.
    pub(crate) unsafe fn borrow_raw<'a>(ptr: *const Listener) -> &'a Listener {
        // SAFETY: The caller guarantees a reference is held for `'a`.
        unsafe { &*ptr }
    }
}

impl core::ops::Deref for ListenerRef {
    type Target = Listener;

    fn deref(&self) -> &Listener {
        // SAFETY: By the type invariant the listener is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl Clone for ListenerRef {
    fn clone(&self) -> Self {
        // Relaxed as for any reference count increment: the new reference
        // comes from an existing one.  It cannot overflow: every reference
        // is owned by a socket or a table, far fewer than 2^32.
        self.refs.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: The increment above counts the new value.
        Self { ptr: self.ptr }
    }
}

impl Drop for ListenerRef {
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Pairs with the Release above in the other droppers: every use
        // of the listener happens before it is freed.
        fence(Ordering::Acquire);
        // SAFETY: This was the last reference, so nothing else can reach
        // the listener; it was allocated by `new_box` in `new`.
        drop(unsafe { mem::box_from_raw(self.ptr.as_ptr()) });
    }
}
