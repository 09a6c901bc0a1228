// SPDX-License-Identifier: GPL-2.0

//! SO_REUSERPS: steer the connections of a SO_REUSEPORT group to the
//! listeners registered for the CPU that processed their SYN.
//!
//! This is the policy core: the match table ([`table`]), the round-robin
//! and fill-first policies, the caps and the connection accounting
//! ([`listener`]).  C does what must be C (see
//! [`include/net/reuserps.h`](srctree/include/net/reuserps.h)): socket
//! fields, RCU publication of tables, the group's lock, the hooks in the
//! lookup and close paths.  It calls the `extern "C"` entry points below,
//! whose signatures `#[export]` checks against that header; they check
//! their arguments and call safe code.
//!
//! The core uses the kernel crate's LKMM atomics, `Arc` and `KVec`.  The
//! files under `reuserps/` also build on the host for `cargo test`, with
//! a stand-in for the few `kernel` items they use.  Selection and the
//! connection paths never allocate, lock or panic.

#[cfg(CONFIG_REUSERPS_KUNIT_TEST)]
#[path = "reuserps/ffi_kunit.rs"]
mod ffi_kunit;
#[cfg(CONFIG_REUSERPS_KUNIT_TEST)]
#[path = "reuserps/kunit.rs"]
mod kunit;
#[path = "reuserps/listener.rs"]
mod listener;
#[path = "reuserps/table.rs"]
mod table;

use core::mem::offset_of;
use kernel::{
    bindings,
    error::from_result,
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    },
    types::ForeignOwnable, //
};
use listener::{
    Bell,
    Listener,
    Room, //
};
use table::{
    Input,
    Pick,
    Policy,
    Table,
    Topology, //
};

/// The topology as the kernel knows it when the fallback asks.
struct KernelTopology;

impl KernelTopology {
    /// `a` and `b` as C CPU numbers, if both are possible CPUs.
    fn cpus(a: usize, b: usize) -> Option<(c_int, c_int)> {
        let nr = kernel::cpu::nr_cpu_ids() as usize;
        if a >= nr || b >= nr {
            return None;
        }
        Some((c_int::try_from(a).ok()?, c_int::try_from(b).ok()?))
    }
}

impl Topology for KernelTopology {
    fn share_cache(&self, a: usize, b: usize) -> bool {
        // SAFETY: Both are possible CPUs; any context.
        Self::cpus(a, b).is_some_and(|(a, b)| unsafe { bindings::cpus_share_cache(a, b) })
    }

    fn same_node(&self, a: usize, b: usize) -> bool {
        Self::cpus(a, b).is_some_and(|(a, b)| {
            // SAFETY: Both are possible CPUs; any context.
            unsafe { bindings::cpu_to_node(a) == bindings::cpu_to_node(b) }
        })
    }
}

// The uapi layouts and values the C side and user space rely on: a
// change that would break them fails the build.
const _: () = {
    assert!(size_of::<bindings::reuserps_req>() == bindings::REUSERPS_REQ_SIZE_VER1 as usize);
    assert!(offset_of!(bindings::reuserps_req, policy) == 0);
    assert!(offset_of!(bindings::reuserps_req, max_conns) == 4);
    assert!(offset_of!(bindings::reuserps_req, flags) == 8);
    assert!(offset_of!(bindings::reuserps_req, cpus_len) == 12);
    assert!(offset_of!(bindings::reuserps_req, cpus) == 16);
    assert!(offset_of!(bindings::reuserps_req, max_pending) == 24);
    assert!(offset_of!(bindings::reuserps_req, reserved) == 28);
    assert!(size_of::<bindings::reuserps_info>() == bindings::REUSERPS_INFO_SIZE_VER1 as usize);
    assert!(offset_of!(bindings::reuserps_info, policy) == 0);
    assert!(offset_of!(bindings::reuserps_info, max_conns) == 4);
    assert!(offset_of!(bindings::reuserps_info, flags) == 8);
    assert!(offset_of!(bindings::reuserps_info, cpus_len) == 12);
    assert!(offset_of!(bindings::reuserps_info, cpus) == 16);
    assert!(offset_of!(bindings::reuserps_info, active_conns) == 24);
    assert!(offset_of!(bindings::reuserps_info, total_conns) == 32);
    assert!(offset_of!(bindings::reuserps_info, full_skips) == 40);
    assert!(offset_of!(bindings::reuserps_info, max_pending) == 48);
    assert!(offset_of!(bindings::reuserps_info, pending) == 52);
    assert!(matches!(
        Policy::from_uapi(bindings::REUSERPS_ROUND_ROBIN),
        Ok(Policy::RoundRobin)
    ));
    assert!(matches!(
        Policy::from_uapi(bindings::REUSERPS_FILL_FIRST),
        Ok(Policy::FillFirst)
    ));
    assert!(matches!(
        Policy::from_uapi(bindings::REUSERPS_LEAST_CONNS),
        Ok(Policy::LeastConns)
    ));
};

/// Borrows the words of a CPU mask from C.
///
/// An empty mask if `cpus` is NULL or `words` is 0.
///
/// # Safety
///
/// Unless `cpus` is NULL or `words` is 0, `cpus` must point to `words`
/// properly aligned `u64`s that stay readable and unchanged for `'a`.
unsafe fn mask<'a>(cpus: *const u64, words: u32) -> &'a [u64] {
    if cpus.is_null() || words == 0 {
        return &[];
    }
    // SAFETY: The caller guarantees `words` readable words at `cpus`.
    unsafe { core::slice::from_raw_parts(cpus, words as usize) }
}

/// Borrows the listener behind a pointer C holds.
///
/// # Safety
///
/// `l` must come from [`reuserps_listener_new`] or [`reuserps_listener_get`]
/// and the caller must hold that reference for `'a`.
unsafe fn listener<'a>(l: *mut bindings::reuserps_listener) -> ArcBorrow<'a, Listener> {
    // SAFETY: `l` came from `into_foreign()` and a reference is held for
    // `'a`, by the caller's contract.
    unsafe { <Arc<Listener> as ForeignOwnable>::borrow(l.cast()) }
}

/// Hands a reference to a listener to C.
fn listener_into_foreign(l: Arc<Listener>) -> *mut bindings::reuserps_listener {
    l.into_foreign().cast()
}

/// Borrows a table C holds; `None` for NULL.
///
/// # Safety
///
/// `t` must be NULL or come from [`reuserps_table_build`] and not be
/// freed for `'a`.
unsafe fn table<'a>(t: *const bindings::reuserps_table) -> Option<&'a Table> {
    if t.is_null() {
        return None;
    }
    // SAFETY: By the caller's contract `t` came from `into_foreign()` and
    // is not freed for `'a`.
    Some(unsafe { <KBox<Table> as ForeignOwnable>::borrow(t.cast_mut().cast()) })
}

/// Boxes a table for C, in process context.
fn table_into_foreign(t: Table) -> Result<*const bindings::reuserps_table> {
    Ok(KBox::new(t, GFP_KERNEL_ACCOUNT)?
        .into_foreign()
        .cast_const()
        .cast())
}

/// Returns the most words a CPU mask may have on this machine.
///
/// # Safety
///
/// None; `unsafe` only because `#[export]` requires it.
#[export]
pub unsafe extern "C" fn reuserps_max_mask_words(nr_cpu_ids: u32) -> u32 {
    let words = table::max_mask_words(nr_cpu_ids as usize);
    u32::try_from(words).unwrap_or(u32::MAX)
}

/// Checks the fields of a `struct reuserps_req`: 0, or `-EINVAL`.
///
/// # Safety
///
/// `cpus` must point to `mask_words` readable words.
#[export]
pub unsafe extern "C" fn reuserps_check_req(
    policy: u32,
    flags: u32,
    cpus: *const u64,
    mask_words: u32,
    nr_cpu_ids: u32,
) -> c_int {
    from_result(|| {
        if flags != 0 {
            return Err(EINVAL);
        }
        Policy::from_uapi(policy)?;
        // SAFETY: The caller guarantees the mask is readable.
        let words = unsafe { mask(cpus, mask_words) };
        table::check_mask(words, nr_cpu_ids as usize)?;
        Ok(0)
    })
}

/// Allocates a listener's state with one reference; NULL without memory.
/// `backlog` is where its socket counts unaccepted connections, which
/// `max_pending` limits (NULL: nowhere).
///
/// May sleep (`GFP_KERNEL`).
///
/// # Safety
///
/// `backlog` must be NULL or meet what [`Listener::set_backlog`] asks:
/// the listening socket's `sk_ack_backlog`.
#[export]
pub unsafe extern "C" fn reuserps_listener_new(
    max_conns: u32,
    backlog: *const u32,
) -> *mut bindings::reuserps_listener {
    let Ok(l) = Listener::new(max_conns, GFP_KERNEL) else {
        return core::ptr::null_mut();
    };
    // SAFETY: The caller guarantees what `set_backlog()` requires.
    unsafe { l.set_backlog(backlog) };
    listener_into_foreign(l)
}

/// Takes one more reference to `l` and returns it.
///
/// # Safety
///
/// `l` must be a listener the caller holds a reference to.
#[export]
pub unsafe extern "C" fn reuserps_listener_get(
    l: *mut bindings::reuserps_listener,
) -> *mut bindings::reuserps_listener {
    // SAFETY: The caller holds a reference for the duration of the call.
    listener_into_foreign(Arc::from(unsafe { listener(l) }))
}

/// Drops a reference to `l`; the last one frees it.  Any context.
///
/// # Safety
///
/// `l` must be a reference the caller holds and gives up.
#[export]
pub unsafe extern "C" fn reuserps_listener_put(l: *mut bindings::reuserps_listener) {
    // SAFETY: The caller gives up a reference that came from
    // `into_foreign()`.
    drop(unsafe { <Arc<Listener> as ForeignOwnable>::from_foreign(l.cast()) });
}

/// Counts a new connection on `l` if its cap allows; false if full.
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[export]
pub unsafe extern "C" fn reuserps_listener_admit(l: *mut bindings::reuserps_listener) -> bool {
    // SAFETY: The caller holds a reference for the duration of the call.
    unsafe { listener(l) }.admit()
}

/// Counts in `l`'s total the connection a slot was taken for, once it is
/// settled that the connection exists and is `l`'s.
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[export]
pub unsafe extern "C" fn reuserps_listener_hand(l: *mut bindings::reuserps_listener) {
    // SAFETY: The caller holds a reference to `l` for the whole call.
    unsafe { listener(l) }.hand()
}

/// Ends a connection counted on `l`; false if none was active (a bug).
///
/// One that leaves `l`'s cap rings its group's bell.
///
/// # Safety
///
/// The caller must hold a reference to `l`, and be in an RCU read-side
/// critical section (the bell stays alive for it).
#[export]
pub unsafe extern "C" fn reuserps_listener_release(l: *mut bindings::reuserps_listener) -> bool {
    // SAFETY: The caller holds a reference for the duration of the call.
    unsafe { listener(l) }.release()
}

/// The registration of `l` now, for a table to name (see `struct
/// reuserps_member`).
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[export]
pub unsafe extern "C" fn reuserps_listener_registration(
    l: *mut bindings::reuserps_listener,
) -> u32 {
    // SAFETY: The caller holds a reference for the duration of the call.
    unsafe { listener(l) }.registration()
}

/// Sets the cap and `max_pending` of `l` and marks it registered (`gone`
/// false) or not.
///
/// # Safety
///
/// The caller must hold a reference to `l`.
#[export]
pub unsafe extern "C" fn reuserps_listener_configure(
    l: *mut bindings::reuserps_listener,
    max_conns: u32,
    max_pending: u32,
    gone: bool,
) {
    // SAFETY: The caller holds a reference for the duration of the call.
    let l = unsafe { listener(l) };
    l.set_max_pending(max_pending);
    l.configure(max_conns, gone);
}

/// Makes `bell` (NULL: none) the one that releases of `l` ring.
///
/// # Safety
///
/// The caller must hold a reference to `l`.  `bell` must be NULL or come
/// from [`reuserps_bell_new`] and stay alive until this is called again
/// for `l` and an RCU grace period has passed (C: the group's bell is put
/// in the RCU callback that frees the group, after its last member left).
#[export]
pub unsafe extern "C" fn reuserps_listener_set_bell(
    l: *mut bindings::reuserps_listener,
    bell: *mut bindings::reuserps_bell,
) {
    let b = if bell.is_null() {
        core::ptr::null()
    } else {
        // SAFETY: By the caller's contract, `bell` came from `into_foreign()`
        // and is alive.
        let b = unsafe { <Arc<Bell> as ForeignOwnable>::borrow(bell.cast()) };
        core::ptr::from_ref::<Bell>(&b)
    };
    // SAFETY: The caller holds a reference to `l`; it guarantees the bell's
    // lifetime, which is what `set_bell()` requires.
    unsafe { listener(l).set_bell(b) };
}

/// A group's bell with one reference; NULL without memory.  Any context
/// (`GFP_ATOMIC`: C makes one with a group, under reuseport_lock).
///
/// # Safety
///
/// None; `unsafe` only because `#[export]` requires it.
#[export]
pub unsafe extern "C" fn reuserps_bell_new() -> *mut bindings::reuserps_bell {
    Bell::new(GFP_ATOMIC).map_or(core::ptr::null_mut(), |b| b.into_foreign().cast())
}

/// Drops a reference to a bell; the last one frees it.  Any context.
///
/// # Safety
///
/// `b` must be NULL or a reference from [`reuserps_bell_new`] that the
/// caller gives up.
#[export]
pub unsafe extern "C" fn reuserps_bell_put(b: *mut bindings::reuserps_bell) {
    if !b.is_null() {
        // SAFETY: The caller gives up a reference from `into_foreign()`.
        drop(unsafe { <Arc<Bell> as ForeignOwnable>::from_foreign(b.cast()) });
    }
}

/// Reads the counters of `l` into `info`, with its full skips in `t`, the
/// current table of its group (NULL: none).
///
/// # Safety
///
/// The caller must hold a reference to `l`; `t` must be NULL or a live
/// table (RCU protected); `info` must be writable.
#[export]
pub unsafe extern "C" fn reuserps_listener_info(
    l: *mut bindings::reuserps_listener,
    t: *const bindings::reuserps_table,
    policy: u32,
    info: *mut bindings::reuserps_info,
) {
    // SAFETY: The caller holds a reference for the duration of the call.
    let l = unsafe { listener(l) };
    // SAFETY: The caller guarantees `t` is NULL or live.
    let i = match unsafe { table(t) } {
        Some(t) => t.info(&l),
        None => l.info(),
    };
    // The mask is the C side's to report.
    let out = bindings::reuserps_info {
        policy,
        max_conns: i.max_conns,
        flags: 0,
        cpus_len: 0,
        cpus: 0,
        active_conns: i.active_conns,
        reserved: 0,
        total_conns: i.total_conns,
        full_skips: i.full_skips,
        // The request's and the socket's, for the C side to fill.
        max_pending: 0,
        pending: 0,
    };
    // SAFETY: The caller guarantees `info` is valid for a write.
    unsafe { info.write(out) };
}

/// Builds a table of `n` members, in the order given (registration order).
///
/// Stores it in `*new` and returns 0, or returns `-EINVAL` for an unknown
/// policy or `-ENOMEM`, leaving nothing behind; inconsistent members, a
/// bug of the caller, are reported with a warning and also `-ENOMEM`.
/// Process context, may sleep: the table is kvmalloc-backed and charged to
/// the caller's memory cgroup.
///
/// # Safety
///
/// `members` points to `n` readable members, each with a listener the
/// caller holds a reference to and a mask of `mask_words` readable words,
/// all unchanged during the call; `bell` is NULL or a bell the caller
/// holds a reference to; `new` is writable.
#[export]
pub unsafe extern "C" fn reuserps_table_build(
    policy: u32,
    members: *const bindings::reuserps_member,
    n: u32,
    bell: *mut bindings::reuserps_bell,
    new: *mut *const bindings::reuserps_table,
) -> c_int {
    from_result(|| {
        let policy = Policy::from_uapi(policy)?;
        let members = if n == 0 || members.is_null() {
            &[]
        } else {
            // SAFETY: The caller guarantees `n` readable members.
            unsafe { core::slice::from_raw_parts(members, n as usize) }
        };
        // A reference of our own to each listener, for the build's inputs.
        let mut ls = KVVec::with_capacity(members.len(), GFP_KERNEL_ACCOUNT)?;
        for m in members {
            // SAFETY: The caller holds a reference to `m.listener`.
            let l = unsafe { listener(m.listener) };
            ls.push(Arc::from(l), GFP_KERNEL_ACCOUNT)?;
        }
        let inputs = members.iter().zip(ls.iter()).map(|(m, l)| Input {
            handle: m.sk.expose_provenance(),
            listener: l,
            reg: m.reg,
            // SAFETY: The caller guarantees the mask is readable and
            // unchanged during the call.
            mask: unsafe { mask(m.cpus, m.mask_words) },
        });
        let bell = (!bell.is_null()).then(|| {
            // SAFETY: The caller holds a reference to `bell`, from
            // `into_foreign()`.
            Arc::from(unsafe { <Arc<Bell> as ForeignOwnable>::borrow(bell.cast()) })
        });
        let t = match Table::build(policy, inputs, bell.as_ref(), GFP_KERNEL_ACCOUNT) {
            Ok(t) => t,
            Err(e) if e == ENOMEM => return Err(e),
            // C passes checked masks that it keeps unchanged: anything else
            // is a bug here, not a bad request.  Say so; the caller keeps
            // the table it has, as without memory.
            Err(_) => {
                kernel::warn_on!(true);
                return Err(ENOMEM);
            }
        };
        let t = table_into_foreign(t)?;
        // SAFETY: The caller guarantees `new` is writable.
        unsafe { new.write(t) };
        Ok(0)
    })
}

/// Carries the round-robin positions of `old` over to `new`, which is
/// about to replace it.  Allocates nothing; under reuseport_lock.
///
/// # Safety
///
/// `new` and `old` must be live tables.
#[export]
pub unsafe extern "C" fn reuserps_table_carry(
    new: *const bindings::reuserps_table,
    old: *const bindings::reuserps_table,
) {
    // SAFETY: The caller guarantees both are NULL or live.
    if let (Some(new), Some(old)) = unsafe { (table(new), table(old)) } {
        new.carry_cursors(old);
    }
}

/// Frees a table and drops its listener references.
///
/// No reader may still use it: an RCU grace period has passed since it
/// was unpublished.
///
/// # Safety
///
/// `t` must be NULL or come from [`reuserps_table_build`], and have no
/// remaining users.
#[export]
pub unsafe extern "C" fn reuserps_table_free(t: *const bindings::reuserps_table) {
    if !t.is_null() {
        // SAFETY: The caller guarantees sole ownership of a table from
        // `into_foreign()`.
        drop(unsafe { <KBox<Table> as ForeignOwnable>::from_foreign(t.cast_mut().cast()) });
    }
}

/// The listener for a SYN processed on `cpu` if the first one to try there
/// has room; NULL otherwise, and then [`reuserps_table_select`] decides.
///
/// The lookup's fast path: the CPU's entry, the member it names and one
/// word of its state (plus the CPU's round-robin cursor if it has several
/// listeners, and the count of a capped listener).  Softirq, RCU read
/// side: no lock, no allocation, no write.
///
/// # Safety
///
/// `t` must be a live table (RCU protected), not NULL: the one lookup
/// that calls this has tested it.
#[export]
pub unsafe extern "C" fn reuserps_table_pick(
    t: *const bindings::reuserps_table,
    cpu: u32,
) -> *mut bindings::sock {
    // SAFETY: The caller guarantees `t` is a live, non-NULL table from
    // `reuserps_table_build()` for the whole call.
    let t = unsafe { <KBox<Table> as ForeignOwnable>::borrow(t.cast_mut().cast()) };
    match t.pick_first(cpu as usize) {
        // Handles are the addresses of member sockets, exposed when added.
        Some(h) => core::ptr::with_exposed_provenance_mut(h),
        None => core::ptr::null_mut(),
    }
}

/// Picks the listener for a SYN processed on `cpu` with flow hash `hash`.
///
/// One registered for `cpu` with room, else another member with room,
/// else (all full) the hash's member, whose admission refuses; NULL if no
/// member is live.  RCU read side: no lock, no allocation; the listener
/// that takes the request calls [`reuserps_table_syn`].  With `own`, the
/// caller runs on `cpu` with BHs off, and the CPU notes which listeners it
/// found full and which it chose; else nothing is written.
///
/// # Safety
///
/// `t` must be a live table (RCU protected).
#[export]
pub unsafe extern "C" fn reuserps_table_select(
    t: *const bindings::reuserps_table,
    cpu: u32,
    hash: u32,
    own: bool,
) -> *mut bindings::sock {
    // SAFETY: The caller guarantees `t` is live for the whole call.
    let Some(t) = (unsafe { table(t) }) else {
        return core::ptr::null_mut();
    };
    match t.pick(cpu as usize, hash, &KernelTopology, own) {
        // Handles are the addresses of member sockets, exposed when added.
        Pick::Cpu(h) | Pick::Other(h) | Pick::Full(h) => core::ptr::with_exposed_provenance_mut(h),
        Pick::Empty => core::ptr::null_mut(),
    }
}

/// A SYN for the listener `sk`, with state `l`, processed on `cpu`: whether
/// `l` has room and, if it has, `sk` takes the request: in `t` (NULL:
/// none), the CPU's round-robin turn moves past it and the full listeners
/// passed over count.  One call for the SYN path.  Softirq, RCU read
/// side: no lock, no allocation.
///
/// # Safety
///
/// `t` must be NULL or a live table (RCU protected); the caller must hold
/// a reference to `l`.
#[export]
pub unsafe extern "C" fn reuserps_table_syn(
    t: *const bindings::reuserps_table,
    cpu: u32,
    sk: *const bindings::sock,
    l: *mut bindings::reuserps_listener,
) -> bool {
    // SAFETY: The caller holds a reference to `l` for the whole call.
    if unsafe { listener(l) }.room() != Room::Yes {
        return false;
    }
    // SAFETY: The caller guarantees `t` is NULL or live for the whole call.
    if let Some(t) = unsafe { table(t) } {
        t.turn(cpu as usize, sk.expose_provenance());
    }
    true
}

/// Moves `l`'s full skips in `t` to `l`, which leaves its group.  Under
/// the group's lock, before `l` is marked gone.
///
/// # Safety
///
/// `t` must be NULL or a live table; the caller must hold a reference to
/// `l`.
#[export]
pub unsafe extern "C" fn reuserps_table_fold(
    t: *const bindings::reuserps_table,
    l: *mut bindings::reuserps_listener,
) {
    // SAFETY: The caller guarantees `t` is NULL or live, and holds `l`.
    if let (Some(t), l) = unsafe { (table(t), listener(l)) } {
        t.fold(&l);
    }
}
