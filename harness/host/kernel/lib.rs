// SPDX-License-Identifier: GPL-2.0
//! Host stand-in for the kernel's `kernel` crate, for `cargo test`.
//!
//! It offers, with the same paths, names and signatures, only what
//! net/core/reuserps/*.rs use: LKMM-style atomics (`sync::atomic`), `Arc`
//! and `ArcBorrow`, `KBox`/`KVec` with allocation flags, and
//! `error::{Error, Result, code}`.  Behaviour follows rust/kernel/ of
//! Linux 7.3: the same orderings are accepted by the same methods, and a
//! refcount that would overflow saturates (and leaks) instead of
//! wrapping.  Two test hooks are added: allocation failure on demand
//! ([`alloc::fail_after`]) and a count of live allocations
//! ([`alloc::live`]), both per thread.

pub mod alloc;
pub mod error;
pub mod sync;

/// `kernel::prelude`, the subset the core uses.
pub mod prelude {
    pub use crate::alloc::{flags::*, KBox, KVec};
    pub use crate::error::{code::*, Error, Result};
    pub use core::ffi::{c_int, c_void};
}
