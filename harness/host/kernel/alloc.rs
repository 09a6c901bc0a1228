// SPDX-License-Identifier: GPL-2.0
//! `kernel::alloc` on the host: `KBox` and `KVec` (and `KVVec`) over std, fallible, with
//! allocation flags, plus the test hooks [`fail_after`] and [`live`].

use core::ops::{Deref, DerefMut};
use std::cell::Cell;

/// Allocation flags (`gfp_t`); they change nothing on the host.
#[derive(Clone, Copy, PartialEq)]
pub struct Flags(u32);

/// The flags the core uses.
pub mod flags {
    use super::Flags;

    /// May sleep.
    pub const GFP_KERNEL: Flags = Flags(1);
    /// Must not sleep.
    pub const GFP_ATOMIC: Flags = Flags(2);
    /// May sleep; charged to the caller's memory cgroup.
    pub const GFP_KERNEL_ACCOUNT: Flags = Flags(3);
}

/// An allocation failed.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub struct AllocError;

thread_local! {
    /// Allocations left before the next one fails; None: never.
    static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
    /// `KBox`es and `Arc`s allocated and not yet freed.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Test hook: the allocation after the next `n` fails (once); None: none.
pub fn fail_after(n: Option<usize>) {
    FAIL_AFTER.with(|f| f.set(n));
}

/// Test hook: `KBox`es and `Arc`s allocated on this thread, not freed.
pub fn live() -> isize {
    LIVE.with(|l| l.get())
}

/// Every allocation asks here first.
pub(crate) fn charge() -> Result<(), AllocError> {
    FAIL_AFTER.with(|f| match f.get() {
        Some(0) => {
            f.set(None);
            Err(AllocError)
        }
        Some(n) => {
            f.set(Some(n - 1));
            Ok(())
        }
        None => Ok(()),
    })
}

pub(crate) fn live_add(d: isize) {
    LIVE.with(|l| l.set(l.get() + d));
}

/// `KBox<T>`: a box allocated with flags.
pub struct KBox<T>(Box<T>);

impl<T> KBox<T> {
    /// Allocates `x`.
    pub fn new(x: T, _flags: Flags) -> Result<Self, AllocError> {
        charge()?;
        live_add(1);
        Ok(Self(Box::new(x)))
    }

    /// Gives up the box as a raw pointer.
    pub fn into_raw(b: Self) -> *mut T {
        let b = core::mem::ManuallyDrop::new(b);
        // SAFETY: `b` is never dropped, so the inner box is moved out once.
        Box::into_raw(unsafe { core::ptr::read(&b.0) })
    }

    /// Takes back a box given up by [`KBox::into_raw`].
    ///
    /// # Safety
    ///
    /// `p` must come from [`KBox::into_raw`] and not be used again.
    pub unsafe fn from_raw(p: *mut T) -> Self {
        // SAFETY: The caller passes a pointer from `into_raw`.
        Self(unsafe { Box::from_raw(p) })
    }
}

impl<T> Drop for KBox<T> {
    fn drop(&mut self) {
        live_add(-1);
    }
}

impl<T> Deref for KBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for KBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// `KVVec<T>`: kvmalloc-backed in the kernel; the same vector here.
pub type KVVec<T> = KVec<T>;

/// `KVec<T>`: a vector whose every growth is a fallible allocation.
pub struct KVec<T>(Vec<T>);

impl<T> KVec<T> {
    /// An empty vector with room for `n` elements.
    pub fn with_capacity(n: usize, _flags: Flags) -> Result<Self, AllocError> {
        charge()?;
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|_| AllocError)?;
        Ok(Self(v))
    }

    /// Appends `x`, growing if needed.
    pub fn push(&mut self, x: T, _flags: Flags) -> Result<(), AllocError> {
        if self.0.len() == self.0.capacity() {
            charge()?;
            self.0.try_reserve(1).map_err(|_| AllocError)?;
        }
        self.0.push(x);
        Ok(())
    }
}

impl<T: Clone> KVec<T> {
    /// Appends a copy of `s`, growing if needed.
    pub fn extend_from_slice(&mut self, s: &[T], _flags: Flags) -> Result<(), AllocError> {
        if self.0.capacity() - self.0.len() < s.len() {
            charge()?;
            self.0.try_reserve(s.len()).map_err(|_| AllocError)?;
        }
        self.0.extend_from_slice(s);
        Ok(())
    }

    /// `n` copies of `x`.
    pub fn from_elem(x: T, n: usize, flags: Flags) -> Result<Self, AllocError> {
        let mut v = Self::with_capacity(n, flags)?;
        v.0.resize(n, x);
        Ok(v)
    }
}

impl<T> Deref for KVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T> DerefMut for KVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}
