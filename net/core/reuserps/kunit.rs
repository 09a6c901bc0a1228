// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the policy core, run in the kernel on `KVec`/`KBox`.
//!
//! 6.12 has no `#[kunit_tests]`: each test is an `extern "C"` function
//! returning 0, or the line of the first check that failed, and
//! net/core/reuserps_kunit.c registers them as KUnit cases.

use crate::listener::ListenerRef;
use crate::table::{check_mask, Error, Pick, Policy, Table};
use core::ffi::c_int;
use kernel::alloc::flags::GFP_KERNEL;

macro_rules! check {
    ($cond:expr) => {
        if !$cond {
            return line!() as c_int;
        }
    };
}

macro_rules! ok {
    ($res:expr) => {
        match $res {
            Ok(v) => v,
            Err(_) => return line!() as c_int,
        }
    };
}

fn mask_of(cpus: &[usize]) -> [u64; 4] {
    let mut m = [0u64; 4];
    for &c in cpus {
        if let Some(w) = m.get_mut(c / 64) {
            *w |= 1 << (c % 64);
        }
    }
    m
}

fn handle(p: Pick) -> usize {
    match p {
        Pick::Cpu(h) | Pick::Other(h) | Pick::Full(h) => h,
        Pick::Empty => usize::MAX,
    }
}

/// Masks: empty, out of range, too long, trailing zero words.
#[no_mangle]
pub extern "C" fn reuserps_kunit_masks() -> c_int {
    check!(check_mask(&[], 4) == Err(Error::Inval));
    check!(check_mask(&[0, 0], 4) == Err(Error::Inval));
    check!(check_mask(&[0b10000], 4) == Err(Error::Inval));
    check!(check_mask(&[0b1111, 0, 0], 4) == Ok(1));
    check!(check_mask(&[0, 1], 65) == Ok(2));
    check!(check_mask(&[0, 1], 64) == Err(Error::Inval));
    check!(check_mask(&[1; 17], 4) == Err(Error::Inval));
    0
}

/// Round robin: strict rotation, k/n each, full ones skipped and counted.
#[no_mangle]
pub extern "C" fn reuserps_kunit_round_robin() -> c_int {
    let a = ok!(ListenerRef::new(0, GFP_KERNEL));
    let b = ok!(ListenerRef::new(1, GFP_KERNEL));
    let c = ok!(ListenerRef::new(0, GFP_KERNEL));
    let m = mask_of(&[0, 65]);
    let t = ok!(Table::new(Policy::RoundRobin, 10, &a, &m, GFP_KERNEL));
    let t = ok!(t.with_member(11, &b, &m, GFP_KERNEL));
    let t = ok!(t.with_member(12, &c, &m, GFP_KERNEL));
    let mut got = [0usize; 3];
    let mut last = usize::MAX;
    for i in 0..30 {
        let h = handle(t.select(65, 0));
        check!((10..13).contains(&h));
        check!(h != last);
        if i >= 3 {
            // The rotation repeats every three.
            check!(got.iter().sum::<usize>() == i);
        }
        if let Some(g) = got.get_mut(h - 10) {
            *g += 1;
        }
        last = h;
    }
    check!(got == [10, 10, 10]);
    check!(b.admit());
    for _ in 0..10 {
        check!(t.select(0, 0) != Pick::Cpu(11));
    }
    check!(b.info().full_skips > 0);
    0
}

/// Fill first: registration order, caps, release gives room back.
#[no_mangle]
pub extern "C" fn reuserps_kunit_fill_first() -> c_int {
    let a = ok!(ListenerRef::new(2, GFP_KERNEL));
    let b = ok!(ListenerRef::new(1, GFP_KERNEL));
    let m = mask_of(&[3]);
    let t = ok!(Table::new(Policy::FillFirst, 1, &a, &m, GFP_KERNEL));
    let t = ok!(t.with_member(2, &b, &m, GFP_KERNEL));
    for want in [1, 1, 2] {
        let h = handle(t.select(3, 0));
        check!(h == want);
        check!(if h == 1 { a.admit() } else { b.admit() });
    }
    // All full: the hash's member, whose admission refuses.
    check!(matches!(t.select(3, 0), Pick::Full(_)));
    check!(!a.admit() && !b.admit());
    check!(a.release());
    check!(t.select(3, 0) == Pick::Cpu(1));
    check!(a.release() && !a.release());
    check!(b.release());
    check!(a.info().active_conns == 0 && a.info().total_conns == 2);
    0
}

/// Fallback: a CPU without listeners goes to a member with room.
#[no_mangle]
pub extern "C" fn reuserps_kunit_fallback() -> c_int {
    let a = ok!(ListenerRef::new(1, GFP_KERNEL));
    let b = ok!(ListenerRef::new(0, GFP_KERNEL));
    let t = ok!(Table::new(
        Policy::RoundRobin,
        1,
        &a,
        &mask_of(&[0]),
        GFP_KERNEL
    ));
    let t = ok!(t.with_member(2, &b, &mask_of(&[1]), GFP_KERNEL));
    check!(matches!(t.select(7, 0), Pick::Other(_)));
    check!(a.admit());
    check!(t.select(0, 0) == Pick::Other(2));
    check!(t.select(0, u32::MAX) == Pick::Other(2));
    let t = ok!(t.without_member(2, GFP_KERNEL));
    check!(t.select(0, 0) == Pick::Full(1));
    check!(a.release());
    0
}

/// 256 listeners over 256 CPUs, one rebuild per join, then selection.
#[no_mangle]
pub extern "C" fn reuserps_kunit_many() -> c_int {
    let first = ok!(ListenerRef::new(0, GFP_KERNEL));
    let mut t = ok!(Table::new(
        Policy::RoundRobin,
        0,
        &first,
        &mask_of(&[0]),
        GFP_KERNEL
    ));
    for h in 1..256usize {
        let l = ok!(ListenerRef::new(0, GFP_KERNEL));
        let m = mask_of(&[h, (h * 7) % 256]);
        t = ok!(t.with_member(h, &l, &m, GFP_KERNEL));
    }
    for cpu in 0..256 {
        let mut prev = None;
        for h in t.cpu_handles(cpu) {
            check!(prev.map_or(true, |p| p < h));
            prev = Some(h);
        }
        check!(matches!(t.select(cpu, 0), Pick::Cpu(_)));
    }
    for h in 0..256usize {
        t = ok!(t.without_member(h, GFP_KERNEL));
    }
    check!(t.select(0, 0) == Pick::Empty);
    0
}
