// SPDX-License-Identifier: GPL-2.0

//! SO_REUSERPS: steer the connections of a SO_REUSEPORT group to the
//! listeners registered for the CPU that processed their SYN.
//!
//! This is the policy core: the match table ([`table`]), the round-robin
//! and fill-first policies, the caps and the connection accounting
//! ([`listener`]).  C does what must be C (see
//! [`include/net/reuserps.h`](srctree/include/net/reuserps.h)): socket
//! fields, RCU publication of tables, the group's lock, the hooks in the
//! lookup and close paths.  It calls the thin `extern "C"` entry points
//! below, which check their arguments and call safe code.
//!
//! The core uses `core` atomics and plain data through a small [`mem`]
//! module, so the same files also build on the host for `cargo test`.
//! Selection and the connection paths never allocate, lock or panic.

#[cfg(CONFIG_REUSERPS_KUNIT_TEST)]
#[path = "reuserps/kunit.rs"]
mod kunit;
#[path = "reuserps/listener.rs"]
mod listener;
#[path = "reuserps/table.rs"]
mod table;

// The KUnit suite (net/core/reuserps_kunit.c) calls these by name.
#[cfg(CONFIG_REUSERPS_KUNIT_TEST)]
pub use kunit::{
    reuserps_kunit_fallback, reuserps_kunit_fill_first, reuserps_kunit_many, reuserps_kunit_masks,
    reuserps_kunit_round_robin,
};

use core::ffi::{c_int, c_void};
use kernel::alloc::flags::{GFP_ATOMIC, GFP_KERNEL};
use kernel::error::code::{EINVAL, ENOMEM};
use listener::ListenerRef;
use table::{Error, Pick, Policy, Table};

/// Allocation for the core, on the kernel's `KVec` and `KBox`.
mod mem {
    use crate::table::Error;
    use kernel::alloc::{Flags, KBox, KVec};

    pub(crate) type Vec<T> = KVec<T>;
    pub(crate) type Box<T> = KBox<T>;
    pub(crate) type Gfp = Flags;

    pub(crate) fn new_box<T>(x: T, gfp: Gfp) -> Result<Box<T>, Error> {
        KBox::new(x, gfp).map_err(|_| Error::NoMem)
    }

    pub(crate) fn box_into_raw<T>(b: Box<T>) -> *mut T {
        KBox::into_raw(b)
    }

    /// # Safety
    ///
    /// `p` must come from [`box_into_raw`] and not be used again.
    pub(crate) unsafe fn box_from_raw<T>(p: *mut T) -> Box<T> {
        // SAFETY: The caller passes a pointer from `box_into_raw`.
        unsafe { KBox::from_raw(p) }
    }

    pub(crate) fn vec_with_capacity<T>(n: usize, gfp: Gfp) -> Result<Vec<T>, Error> {
        KVec::with_capacity(n, gfp).map_err(|_| Error::NoMem)
    }

    pub(crate) fn vec_filled<T: Clone>(x: T, n: usize, gfp: Gfp) -> Result<Vec<T>, Error> {
        KVec::from_elem(x, n, gfp).map_err(|_| Error::NoMem)
    }

    pub(crate) fn vec_push<T>(v: &mut Vec<T>, x: T, gfp: Gfp) -> Result<(), Error> {
        v.push(x, gfp).map_err(|_| Error::NoMem)
    }

    pub(crate) fn vec_extend<T: Clone>(v: &mut Vec<T>, s: &[T], gfp: Gfp) -> Result<(), Error> {
        v.extend_from_slice(s, gfp).map_err(|_| Error::NoMem)
    }
}

fn errno(e: Error) -> c_int {
    match e {
        Error::Inval => EINVAL.to_errno(),
        Error::NoMem => ENOMEM.to_errno(),
    }
}

fn gfp(may_sleep: bool) -> mem::Gfp {
    if may_sleep {
        GFP_KERNEL
    } else {
        GFP_ATOMIC
    }
}

/// Borrows the words of a CPU mask from C.
///
/// # Safety
///
/// `cpus` must point to `words` readable `u64`s, or `words` must be 0.
unsafe fn mask<'a>(cpus: *const u64, words: u32) -> &'a [u64] {
    if cpus.is_null() || words == 0 {
        return &[];
    }
    // SAFETY: The caller guarantees `words` readable words at `cpus`.
    unsafe { core::slice::from_raw_parts(cpus, words as usize) }
}

/// Most words a CPU mask may have on this machine.
#[no_mangle]
pub extern "C" fn reuserps_max_mask_words(nr_cpu_ids: u32) -> u32 {
    let words = table::max_mask_words(nr_cpu_ids as usize);
    u32::try_from(words).unwrap_or(u32::MAX)
}

/// Checks a `struct reuserps_req`: 0, or `-EINVAL`.
///
/// # Safety
///
/// `cpus` must point to `mask_words` readable words.
#[no_mangle]
pub unsafe extern "C" fn reuserps_check_req(
    policy: u32,
    flags: u32,
    cpus: *const u64,
    mask_words: u32,
    nr_cpu_ids: u32,
) -> c_int {
    if flags != 0 || Policy::from_uapi(policy).is_err() {
        return EINVAL.to_errno();
    }
    // SAFETY: The caller guarantees the mask is readable.
    let words = unsafe { mask(cpus, mask_words) };
    match table::check_mask(words, nr_cpu_ids as usize) {
        Ok(_) => 0,
        Err(e) => errno(e),
    }
}

/// Allocates a listener's state with one reference; NULL without memory.
#[no_mangle]
pub extern "C" fn reuserps_listener_new(max_conns: u32) -> *const c_void {
    ListenerRef::new(max_conns, GFP_KERNEL).map_or(core::ptr::null(), |l| l.into_raw().cast())
}

/// Takes one more reference to `l` and returns it.
///
/// # Safety
///
/// `l` must be a listener the caller holds a reference to.
#[no_mangle]
pub unsafe extern "C" fn reuserps_listener_get(l: *const c_void) -> *const c_void {
    // SAFETY: The caller holds a reference, so `l` came from `into_raw`
    // and stays valid while we clone it.
    let held = core::mem::ManuallyDrop::new(unsafe { ListenerRef::from_raw(l.cast()) });
    ListenerRef::into_raw((*held).clone()).cast()
}

/// Drops a reference to `l`; the last one frees it.  Any context.
///
/// # Safety
///
/// `l` must be a reference the caller holds and gives up.
#[no_mangle]
pub unsafe extern "C" fn reuserps_listener_put(l: *const c_void) {
    // SAFETY: The caller gives up a reference that came from `into_raw`.
    drop(unsafe { ListenerRef::from_raw(l.cast()) });
}

/// Counts a new connection on `l` if its cap allows; false if full.
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[no_mangle]
pub unsafe extern "C" fn reuserps_listener_admit(l: *const c_void) -> bool {
    // SAFETY: The caller holds a reference for the duration of the call.
    unsafe { ListenerRef::borrow_raw(l.cast()) }.admit()
}

/// Takes back the admission of a SYN answered with a cookie; false if no
/// connection was active (a bug).
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[no_mangle]
pub unsafe extern "C" fn reuserps_listener_withdraw(l: *const c_void) -> bool {
    // SAFETY: The caller holds a reference for the duration of the call.
    unsafe { ListenerRef::borrow_raw(l.cast()) }.withdraw()
}

/// Ends a connection counted on `l`; false if none was active (a bug).
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[no_mangle]
pub unsafe extern "C" fn reuserps_listener_release(l: *const c_void) -> bool {
    // SAFETY: The caller holds a reference for the duration of the call.
    unsafe { ListenerRef::borrow_raw(l.cast()) }.release()
}

/// Sets the cap of `l` and marks it registered (`gone` false) or not.
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[no_mangle]
pub unsafe extern "C" fn reuserps_listener_configure(l: *const c_void, max_conns: u32, gone: bool) {
    // SAFETY: The caller holds a reference for the duration of the call.
    let l = unsafe { ListenerRef::borrow_raw(l.cast()) };
    l.set_max_conns(max_conns);
    l.set_gone(gone);
}

/// Fills a `struct reuserps_info`, whose layout this matches.
#[repr(C)]
pub struct ReuserpsInfo {
    policy: u32,
    max_conns: u32,
    active_conns: u32,
    flags: u32,
    total_conns: u64,
    full_skips: u64,
}

/// Reads the counters of `l` into `info`.
///
/// # Safety
///
/// The caller must hold a reference to `l`; `info` must be writable.
#[no_mangle]
pub unsafe extern "C" fn reuserps_listener_info(
    l: *const c_void,
    policy: u32,
    info: *mut ReuserpsInfo,
) {
    // SAFETY: The caller holds a reference for the duration of the call.
    let i = unsafe { ListenerRef::borrow_raw(l.cast()) }.info();
    let out = ReuserpsInfo {
        policy,
        max_conns: i.max_conns,
        active_conns: i.active_conns,
        flags: 0,
        total_conns: i.total_conns,
        full_skips: i.full_skips,
    };
    // SAFETY: The caller guarantees `info` is valid for a write.
    unsafe { info.write(out) };
}

/// Builds a table with `handle` registered for the CPUs of the mask, its
/// place kept if it is there already, or a new table if `old` is NULL.
/// Stores it in `*new`; 0, or `-EINVAL` (policy differs from `old`'s,
/// bad mask) or `-ENOMEM`, leaving everything as it was.
///
/// # Safety
///
/// `old` is NULL or a live table; the caller holds a reference to `l`;
/// `cpus` points to `mask_words` readable words; `new` is writable.
#[no_mangle]
pub unsafe extern "C" fn reuserps_table_add(
    old: *const c_void,
    policy: u32,
    handle: *const c_void,
    l: *const c_void,
    cpus: *const u64,
    mask_words: u32,
    may_sleep: bool,
    new: *mut *const c_void,
) -> c_int {
    // SAFETY: The caller holds a reference to `l` for the whole call;
    // `ManuallyDrop` leaves that reference with the caller.
    let l = core::mem::ManuallyDrop::new(unsafe { ListenerRef::from_raw(l.cast()) });
    // SAFETY: The caller guarantees the mask is readable.
    let words = unsafe { mask(cpus, mask_words) };
    // SAFETY: `old` is NULL or a live table, by the caller's contract.
    let old = unsafe { old.cast::<Table>().as_ref() };
    let built = Policy::from_uapi(policy).and_then(|p| match old {
        Some(t) if t.policy() != p => Err(Error::Inval),
        Some(t) => t.with_member(handle as usize, &l, words, gfp(may_sleep)),
        None => Table::new(p, handle as usize, &l, words, gfp(may_sleep)),
    });
    match built.and_then(|t| mem::new_box(t, gfp(may_sleep))) {
        Ok(t) => {
            // SAFETY: The caller guarantees `new` is writable.
            unsafe { new.write(mem::box_into_raw(t).cast_const().cast()) };
            0
        }
        Err(e) => errno(e),
    }
}

/// Builds a copy of `old` without `handle` (and without listeners marked
/// gone) into `*new`, NULL if no member is left; 0 or `-ENOMEM`, leaving
/// `old` as it was.
///
/// # Safety
///
/// `old` must be a live table and `new` writable.
#[no_mangle]
pub unsafe extern "C" fn reuserps_table_remove(
    old: *const c_void,
    handle: *const c_void,
    may_sleep: bool,
    new: *mut *const c_void,
) -> c_int {
    // SAFETY: The caller guarantees `old` is a live table.
    let Some(old) = (unsafe { old.cast::<Table>().as_ref() }) else {
        return EINVAL.to_errno();
    };
    let t = match old.without_member(handle as usize, gfp(may_sleep)) {
        Ok(t) => t,
        Err(e) => return errno(e),
    };
    let out = if t.handles().next().is_none() {
        core::ptr::null()
    } else {
        match mem::new_box(t, gfp(may_sleep)) {
            Ok(b) => mem::box_into_raw(b).cast_const().cast(),
            Err(e) => return errno(e),
        }
    };
    // SAFETY: The caller guarantees `new` is writable.
    unsafe { new.write(out) };
    0
}

/// Frees a table: no reader may still use it (an RCU grace period has
/// passed since it was unpublished).  Drops its listener references.
///
/// # Safety
///
/// `t` must come from [`reuserps_table_add`] or [`reuserps_table_remove`]
/// and have no remaining users.
#[no_mangle]
pub unsafe extern "C" fn reuserps_table_free(t: *const c_void) {
    if !t.is_null() {
        // SAFETY: The caller guarantees sole ownership of a boxed table.
        drop(unsafe { mem::box_from_raw(t.cast_mut().cast::<Table>()) });
    }
}

/// The policy (uapi value) of a table.
///
/// # Safety
///
/// `t` must be a live table.
#[no_mangle]
pub unsafe extern "C" fn reuserps_table_policy(t: *const c_void) -> u32 {
    // SAFETY: The caller guarantees `t` is a live table.
    unsafe { &*t.cast::<Table>() }.policy().to_uapi()
}

/// Picks the listener for a SYN processed on `cpu` with flow hash `hash`.
///
/// Returns its handle and stores in `*kind` 0 (a listener of the CPU),
/// 1 (another member with room) or 2 (all full: the hash's member, whose
/// admission will refuse); NULL if no member is live.  Softirq, RCU read
/// side: no lock, no allocation.
///
/// # Safety
///
/// `t` must be a live table (RCU protected) and `kind` writable.
#[no_mangle]
pub unsafe extern "C" fn reuserps_table_select(
    t: *const c_void,
    cpu: u32,
    hash: u32,
    kind: *mut u32,
) -> *const c_void {
    // SAFETY: The caller guarantees `t` is live for the whole call.
    let (k, h) = match unsafe { &*t.cast::<Table>() }.select(cpu as usize, hash) {
        Pick::Cpu(h) => (0, h),
        Pick::Other(h) => (1, h),
        Pick::Full(h) => (2, h),
        Pick::Empty => (0, 0),
    };
    // SAFETY: The caller guarantees `kind` is writable.
    unsafe { kind.write(k) };
    h as *const c_void
}
