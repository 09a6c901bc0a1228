// SPDX-License-Identifier: GPL-2.0

//! Tests of the C interface of the policy core.

use kernel::prelude::*;

/// KUnit suite `reuserps_ffi`: the C interface, used as the socket code
/// uses it.
#[kunit_tests(reuserps_ffi)]
mod ffi_tests {
    use crate::*;

    fn fake_sock(x: &u8) -> *const bindings::sock {
        core::ptr::from_ref(x).cast()
    }

    /// Bad requests are refused with -EINVAL, whatever the machine's CPUs.
    #[test]
    fn check_req() -> Result {
        let nr = kernel::cpu::nr_cpu_ids();
        // SAFETY: No requirement.
        let words = unsafe { reuserps_max_mask_words(nr) } as usize;
        assert!(words >= 16);
        let mut m = KVec::from_elem(0u64, words + 1, GFP_KERNEL)?;
        let check = |policy: u32, flags: u32, m: &[u64]| -> c_int {
            let n = u32::try_from(m.len()).unwrap_or(u32::MAX);
            // SAFETY: `m` has `n` readable words.
            unsafe { reuserps_check_req(policy, flags, m.as_ptr(), n, nr) }
        };
        let rr = bindings::REUSERPS_ROUND_ROBIN;
        let ff = bindings::REUSERPS_FILL_FIRST;
        let inval = EINVAL.to_errno();

        m[0] = 1;
        assert_eq!(check(rr, 0, &m[..1]), 0);
        assert_eq!(check(ff, 0, &m[..words]), 0);
        assert_eq!(check(bindings::REUSERPS_LEAST_CONNS, 0, &m[..1]), 0);
        assert_eq!(check(bindings::REUSERPS_LEAST_CONNS + 1, 0, &m[..1]), inval);
        assert_eq!(check(rr, 1, &m[..1]), inval);
        assert_eq!(check(rr, 0, &m[..0]), inval);
        assert_eq!(check(rr, 0, &m[..words + 1]), inval);
        m[0] = 0;
        assert_eq!(check(rr, 0, &m[..1]), inval);

        // The last possible CPU is accepted; the first past it is refused
        // when it can be named within the longest mask (when nr_cpu_ids
        // fills the longest mask exactly, it cannot: that mask is one
        // word too long, refused above).
        let last = nr as usize - 1;
        m[last / 64] = 1 << (last % 64);
        assert_eq!(check(rr, 0, &m[..last / 64 + 1]), 0);
        m[last / 64] = 0;
        let past = nr as usize;
        if past / 64 < words {
            m[past / 64] = 1 << (past % 64);
            assert_eq!(check(rr, 0, &m[..past / 64 + 1]), inval);
            assert_eq!(check(rr, 0, &m[..words]), inval);
        }
        Ok(())
    }

    /// Build, select, count and tear down through the C interface.
    #[test]
    fn lifecycle() -> Result {
        let (x, y) = (0u8, 0u8);
        let (sx, sy) = (fake_sock(&x), fake_sock(&y));
        let mask = [1u64];
        let m = mask.as_ptr();
        let ff = bindings::REUSERPS_FILL_FIRST;
        let (mut t1, mut t2, mut t3) = (core::ptr::null(), core::ptr::null(), core::ptr::null());

        // SAFETY: No backlog: nothing to keep readable.
        let a = unsafe { reuserps_listener_new(1, core::ptr::null()) };
        // SAFETY: No backlog: nothing to keep readable.
        let b = unsafe { reuserps_listener_new(0, core::ptr::null()) };
        assert!(!a.is_null() && !b.is_null());

        let member = |sk: *const bindings::sock, l| bindings::reuserps_member {
            sk: sk.cast_mut(),
            listener: l,
            cpus: m,
            mask_words: 1,
            seq: 0,
            // SAFETY: `l` is held.
            reg: unsafe { reuserps_listener_registration(l) },
        };
        let both = [member(sx, a), member(sy, b)];
        // SAFETY: `both` has two members with held listeners and masks.
        let err =
            unsafe { reuserps_table_build(ff, both.as_ptr(), 2, core::ptr::null_mut(), &mut t2) };
        assert_eq!(err, 0);
        // SAFETY: `both` as above; the policy is unknown.
        let err =
            unsafe { reuserps_table_build(7, both.as_ptr(), 2, core::ptr::null_mut(), &mut t3) };
        assert_eq!(err, EINVAL.to_errno());
        assert!(t3.is_null());

        // Fill first: `a` until its cap of 1, then `b`.
        // SAFETY: `t2` is live.
        assert!(unsafe { reuserps_table_select(t2, 0, 0, false) }.cast_const() == sx);
        // SAFETY: `t2` is live and not NULL.
        assert!(unsafe { reuserps_table_pick(t2, 0) }.cast_const() == sx);
        // SAFETY: `a` is held; no table.
        assert!(unsafe { reuserps_table_syn(core::ptr::null(), 0, sx, a) });
        // SAFETY: `a` is held.
        assert!(unsafe { reuserps_listener_admit(a) });
        // SAFETY: `a` is held.
        unsafe { reuserps_listener_hand(a) };
        // SAFETY: `a` is held; no table.
        assert!(!unsafe { reuserps_table_syn(core::ptr::null(), 0, sx, a) });
        // SAFETY: `a` is held.
        assert!(!unsafe { reuserps_listener_admit(a) });
        // SAFETY: `t2` is live.
        assert!(unsafe { reuserps_table_select(t2, 0, 0, false) }.cast_const() == sy);
        // The fast path tries `a` alone, and leaves the rest to select.
        // SAFETY: `t2` is live and not NULL.
        assert!(unsafe { reuserps_table_pick(t2, 0) }.is_null());
        // SAFETY: `t2` is live and not NULL; CPU 5 has no listener.
        assert!(unsafe { reuserps_table_pick(t2, 5) }.is_null());
        // Only a request taken counts a full skip: `a`, passed over.
        // SAFETY: `a` is held.
        assert_eq!(unsafe { listener(a) }.info().full_skips, 0);
        // SAFETY: `t2` is live; `b` is held.
        assert!(unsafe { reuserps_table_syn(t2, 0, sy, b) });
        // A CPU without listeners: the member with room.
        // SAFETY: `t2` is live.
        assert!(unsafe { reuserps_table_select(t2, 5, 0, false) }.cast_const() == sy);

        let mut info = core::mem::MaybeUninit::<bindings::reuserps_info>::uninit();
        // SAFETY: `a` is held; `t2` is live; `info` is writable.
        unsafe { reuserps_listener_info(a, t2, ff, info.as_mut_ptr()) };
        // SAFETY: `reuserps_listener_info()` wrote it whole.
        let info = unsafe { info.assume_init() };
        assert_eq!(info.policy, ff);
        assert_eq!(info.max_conns, 1);
        assert_eq!(info.active_conns, 1);
        assert_eq!(info.total_conns, 1);
        assert_eq!(info.full_skips, 1);

        // A connection outlives its listener's place in the table.
        let one = &both[1..];
        // SAFETY: `one` has one member, `b`, held.
        let err =
            unsafe { reuserps_table_build(ff, one.as_ptr(), 1, core::ptr::null_mut(), &mut t1) };
        assert_eq!(err, 0);
        // SAFETY: Both are live.
        unsafe { reuserps_table_carry(t1, t2) };
        // SAFETY: `t1` is live.
        assert!(unsafe { reuserps_table_select(t1, 0, 0, false) }.cast_const() == sy);
        // SAFETY: Neither is used again.
        unsafe {
            reuserps_table_free(t1);
            reuserps_table_free(t2);
        }
        // SAFETY: `a` is held.
        assert!(unsafe { reuserps_listener_release(a) });
        // SAFETY: `a` is held.
        assert!(!unsafe { reuserps_listener_release(a) });

        // A second reference keeps the state alive after the first.
        // SAFETY: `a` is held.
        let a2 = unsafe { reuserps_listener_get(a) };
        assert!(a2 == a);
        // SAFETY: The reference from `reuserps_listener_new()`, given up.
        unsafe { reuserps_listener_put(a) };
        // SAFETY: `a2` is held.
        assert!(unsafe { reuserps_listener_admit(a2) });
        // SAFETY: `a2` is held.
        assert!(unsafe { reuserps_listener_release(a2) });
        // SAFETY: The last references, given up.
        unsafe {
            reuserps_listener_put(a2);
            reuserps_listener_put(b);
        }
        Ok(())
    }
}
