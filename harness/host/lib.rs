// SPDX-License-Identifier: GPL-2.0
//! Host build of the SO_REUSERPS policy core for `cargo test`.
//!
//! The files under net/core/reuserps/ use `core` and `crate::mem` only;
//! the kernel's crate root (net/core/reuserps.rs) gives them a `mem` on
//! `KVec`/`KBox`, this one gives them one on std with two test hooks:
//! allocation failure on demand and a count of live listeners.
#![cfg_attr(not(test), allow(dead_code))]

#[path = "../../net/core/reuserps/listener.rs"]
mod listener;
#[path = "../../net/core/reuserps/table.rs"]
mod table;

#[cfg(test)]
mod tests;

pub(crate) mod mem {
    use crate::table::Error;
    use std::cell::Cell;

    pub(crate) type Vec<T> = std::vec::Vec<T>;
    pub(crate) type Box<T> = std::boxed::Box<T>;

    /// Stands for the kernel's GFP flags.
    #[derive(Clone, Copy, Debug, Default)]
    pub(crate) struct Gfp;

    thread_local! {
        /// Allocations left before the next one fails; None: never.
        static FAIL_AFTER: Cell<Option<usize>> = const { Cell::new(None) };
        /// Boxes allocated and not freed (listeners).
        static LIVE_BOXES: Cell<isize> = const { Cell::new(0) };
    }

    /// Makes the allocation after the next `n` fail (once).
    pub(crate) fn fail_after(n: Option<usize>) {
        FAIL_AFTER.with(|f| f.set(n));
    }

    /// Boxes allocated and not yet freed on this thread.
    pub(crate) fn live_boxes() -> isize {
        LIVE_BOXES.with(|l| l.get())
    }

    fn charge() -> Result<(), Error> {
        FAIL_AFTER.with(|f| match f.get() {
            Some(0) => {
                f.set(None);
                Err(Error::NoMem)
            }
            Some(n) => {
                f.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        })
    }

    pub(crate) fn new_box<T>(x: T, _: Gfp) -> Result<Box<T>, Error> {
        charge()?;
        LIVE_BOXES.with(|l| l.set(l.get() + 1));
        Ok(Box::new(x))
    }

    pub(crate) fn box_into_raw<T>(b: Box<T>) -> *mut T {
        Box::into_raw(b)
    }

    /// # Safety
    ///
    /// `p` must come from [`box_into_raw`]; the box is being freed.
    pub(crate) unsafe fn box_from_raw<T>(p: *mut T) -> Box<T> {
        LIVE_BOXES.with(|l| l.set(l.get() - 1));
        // SAFETY: The caller passes a pointer from `box_into_raw`.
        unsafe { Box::from_raw(p) }
    }

    pub(crate) fn vec_with_capacity<T>(n: usize, _: Gfp) -> Result<Vec<T>, Error> {
        charge()?;
        let mut v = Vec::new();
        v.try_reserve_exact(n).map_err(|_| Error::NoMem)?;
        Ok(v)
    }

    pub(crate) fn vec_filled<T: Clone>(x: T, n: usize, gfp: Gfp) -> Result<Vec<T>, Error> {
        let mut v = vec_with_capacity(n, gfp)?;
        v.resize(n, x);
        Ok(v)
    }

    pub(crate) fn vec_push<T>(v: &mut Vec<T>, x: T, _: Gfp) -> Result<(), Error> {
        if v.len() == v.capacity() {
            charge()?;
            v.try_reserve(1).map_err(|_| Error::NoMem)?;
        }
        v.push(x);
        Ok(())
    }

    pub(crate) fn vec_extend<T: Clone>(v: &mut Vec<T>, s: &[T], _: Gfp) -> Result<(), Error> {
        if v.capacity() - v.len() < s.len() {
            charge()?;
            v.try_reserve(s.len()).map_err(|_| Error::NoMem)?;
        }
        v.extend_from_slice(s);
        Ok(())
    }
}

/// For `make bench`: a round-robin table of `n` listeners, listener `i`
/// serving CPU `i * ncpus / n`, as the guest benchmark lays them out.
pub struct BenchTable {
    table: table::Table,
    _listeners: Vec<listener::ListenerRef>,
}

impl BenchTable {
    /// Builds the table; panics on bad input (a bench, not the kernel).
    pub fn new(n: usize, ncpus: usize) -> Self {
        let mut listeners = Vec::new();
        let mut t: Option<table::Table> = None;
        for i in 0..n {
            let cpu = i * ncpus / n;
            let mut mask = vec![0u64; cpu / 64 + 1];
            mask[cpu / 64] |= 1 << (cpu % 64);
            let l = listener::ListenerRef::new(0, mem::Gfp).expect("memory");
            let next = match &t {
                None => table::Table::new(table::Policy::RoundRobin, i, &l, &mask, mem::Gfp),
                Some(t) => t.with_member(i, &l, &mask, mem::Gfp),
            };
            t = Some(next.expect("table"));
            listeners.push(l);
        }
        Self {
            table: t.expect("n > 0"),
            _listeners: listeners,
        }
    }

    /// One selection for a SYN processed on `cpu`: the listener's index.
    pub fn select(&self, cpu: usize, hash: u32) -> usize {
        match self.table.select(cpu, hash) {
            table::Pick::Cpu(h) | table::Pick::Other(h) | table::Pick::Full(h) => h,
            table::Pick::Empty => usize::MAX,
        }
    }
}
