// SPDX-License-Identifier: GPL-2.0

//! Tests of the policy core.
//!
//! In the kernel they are the KUnit suite `reuserps` (`#[kunit_tests]`,
//! with `CONFIG_REUSERPS_KUNIT_TEST`); on the host the same module runs
//! under `cargo test`, with the host stand-in of the `kernel` crate.

#[cfg_attr(not(test), kernel::prelude::kunit_tests(reuserps))]
mod tests {
    use crate::{
        listener::Listener,
        table::{
            check_mask,
            Input,
            Pick,
            Policy,
            Table,
            Topology, //
        }, //
    };
    use kernel::{
        alloc::flags::GFP_KERNEL,
        error::{
            code::EINVAL,
            Result, //
        }, //
    };

    fn mask_of(cpus: &[usize]) -> [u64; 4] {
        let mut m = [0u64; 4];
        for &c in cpus {
            if let Some(w) = m.get_mut(c / 64) {
                *w |= 1 << (c % 64);
            }
        }
        m
    }

    /// Masks: empty, out of range, too long, trailing zero words.
    #[test]
    fn masks() {
        assert_eq!(check_mask(&[], 4), Err(EINVAL));
        assert_eq!(check_mask(&[0, 0], 4), Err(EINVAL));
        assert_eq!(check_mask(&[0b10000], 4), Err(EINVAL));
        assert_eq!(check_mask(&[0b1111, 0, 0], 4), Ok(1));
        assert_eq!(check_mask(&[0, 1], 65), Ok(2));
        assert_eq!(check_mask(&[0, 1], 64), Err(EINVAL));
        assert_eq!(check_mask(&[1; 17], 4), Err(EINVAL));
    }

    /// Round robin: strict rotation, k/n each, full ones skipped and counted.
    #[test]
    fn round_robin() -> Result {
        let a = Listener::new(0, GFP_KERNEL)?;
        let b = Listener::new(1, GFP_KERNEL)?;
        let c = Listener::new(0, GFP_KERNEL)?;
        let m = mask_of(&[0, 65]);
        let t = Table::new(Policy::RoundRobin, 10, &a, &m, GFP_KERNEL)?;
        let t = t.with_member(11, &b, &m, GFP_KERNEL)?;
        let t = t.with_member(12, &c, &m, GFP_KERNEL)?;
        let mut got = [0usize; 3];
        let mut last = usize::MAX;
        for i in 0..30 {
            let h = t.select(65, 0).handle();
            assert!((10..13).contains(&h));
            assert!(h != last);
            if i >= 3 {
                // The rotation repeats every three.
                assert_eq!(got.iter().sum::<usize>(), i);
            }
            if let Some(g) = got.get_mut(h - 10) {
                *g += 1;
            }
            last = h;
        }
        assert_eq!(got, [10, 10, 10]);
        assert!(b.admit());
        for _ in 0..10 {
            assert!(t.select(0, 0) != Pick::Cpu(11));
        }
        assert!(b.info().full_skips > 0);
        Ok(())
    }

    /// Fill first: registration order, caps, release gives room back.
    #[test]
    fn fill_first() -> Result {
        let a = Listener::new(2, GFP_KERNEL)?;
        let b = Listener::new(1, GFP_KERNEL)?;
        let m = mask_of(&[3]);
        let t = Table::new(Policy::FillFirst, 1, &a, &m, GFP_KERNEL)?;
        let t = t.with_member(2, &b, &m, GFP_KERNEL)?;
        for want in [1, 1, 2] {
            let h = t.select(3, 0).handle();
            assert_eq!(h, want);
            let l = if h == 1 { &a } else { &b };
            assert!(l.admit());
            l.hand();
        }
        // All full: the hash's member, whose admission refuses.
        assert!(matches!(t.select(3, 0), Pick::Full(_)));
        assert!(!a.admit() && !b.admit());
        assert!(a.release());
        assert_eq!(t.select(3, 0), Pick::Cpu(1));
        assert!(a.release() && !a.release());
        assert!(b.release());
        assert_eq!(a.info().active_conns, 0);
        assert_eq!(a.info().total_conns, 2);
        Ok(())
    }

    /// Least connections: the fewest live, ties in turn, caps honoured.
    #[test]
    fn least_conns() -> Result {
        let a = Listener::new(0, GFP_KERNEL)?;
        let b = Listener::new(0, GFP_KERNEL)?;
        let c = Listener::new(1, GFP_KERNEL)?;
        let m = mask_of(&[2]);
        let t = Table::new(Policy::LeastConns, 1, &a, &m, GFP_KERNEL)?;
        let t = t.with_member(2, &b, &m, GFP_KERNEL)?;
        let t = t.with_member(3, &c, &m, GFP_KERNEL)?;
        // None live: each in turn.
        let mut seen = [false; 3];
        for _ in 0..3 {
            let h = t.select(2, 0).handle();
            if let Some(s) = seen.get_mut(h.wrapping_sub(1)) {
                *s = true;
            }
        }
        assert_eq!(seen, [true; 3]);
        // Listener 1 has two, listener 3 is at its cap: listener 2.
        assert!(a.admit() && a.admit() && c.admit());
        for _ in 0..3 {
            assert_eq!(t.select(2, 0), Pick::Cpu(2));
        }
        assert!(b.admit() && b.admit() && b.admit());
        assert_eq!(t.select(2, 0), Pick::Cpu(1));
        for l in [&a, &a, &b, &b, &b, &c] {
            assert!(l.release());
        }
        Ok(())
    }

    /// Fallback: a CPU without listeners goes to a member with room.
    #[test]
    fn fallback() -> Result {
        let a = Listener::new(1, GFP_KERNEL)?;
        let b = Listener::new(0, GFP_KERNEL)?;
        let t = Table::new(Policy::RoundRobin, 1, &a, &mask_of(&[0]), GFP_KERNEL)?;
        let t = t.with_member(2, &b, &mask_of(&[1]), GFP_KERNEL)?;
        assert!(matches!(t.select(7, 0), Pick::Other(_)));
        assert!(a.admit());
        assert_eq!(t.select(0, 0), Pick::Other(2));
        assert_eq!(t.select(0, u32::MAX), Pick::Other(2));
        let t = t.without_member(2, GFP_KERNEL)?;
        assert_eq!(t.select(0, 0), Pick::Full(1));
        assert!(a.release());
        Ok(())
    }

    /// Nearest fallback: the CPU's cache, then its node, then any member.
    #[test]
    fn fallback_nearest() -> Result {
        // CPUs 0-3, caches {0,1} {2,3}, nodes {0-2} {3}; a listener on
        // each CPU, one connection each.
        let llc = [0u32, 0, 2, 2];
        let node = [0u32, 0, 0, 3];
        let ls = [
            Listener::new(1, GFP_KERNEL)?,
            Listener::new(1, GFP_KERNEL)?,
            Listener::new(1, GFP_KERNEL)?,
            Listener::new(1, GFP_KERNEL)?,
        ];
        let masks = [mask_of(&[0]), mask_of(&[1]), mask_of(&[2]), mask_of(&[3])];
        let inputs = ls.iter().zip(&masks).enumerate().map(|(h, (l, m))| Input {
            handle: h,
            listener: l,
            mask: m,
        });
        let topo = Topology {
            llc: &llc,
            node: &node,
        };
        let t = Table::from_members(Policy::RoundRobin, inputs, topo, GFP_KERNEL)?;
        let spread = |h: u32| h.wrapping_mul(0x9e37_79b9);
        assert!(ls[0].admit());
        assert!((0..32).all(|i| t.pick(0, spread(i)) == Pick::Other(1)));
        assert!(ls[1].admit());
        assert!((0..32).all(|i| t.pick(0, spread(i)) == Pick::Other(2)));
        assert!(ls[2].admit());
        assert!((0..32).all(|i| t.pick(0, spread(i)) == Pick::Other(3)));
        assert!(ls[3].admit());
        assert!(matches!(t.pick(0, 0), Pick::Full(_)));
        for l in &ls {
            assert!(l.release());
        }
        Ok(())
    }

    /// 256 listeners over 256 CPUs, one rebuild per join, then selection.
    #[test]
    fn many() -> Result {
        let first = Listener::new(0, GFP_KERNEL)?;
        let mut t = Table::new(Policy::RoundRobin, 0, &first, &mask_of(&[0]), GFP_KERNEL)?;
        for h in 1..256usize {
            let l = Listener::new(0, GFP_KERNEL)?;
            let m = mask_of(&[h, (h * 7) % 256]);
            t = t.with_member(h, &l, &m, GFP_KERNEL)?;
        }
        for cpu in 0..256 {
            let mut prev = None;
            for h in t.cpu_handles(cpu) {
                assert!(prev.is_none_or(|p| p < h));
                prev = Some(h);
            }
            assert!(matches!(t.select(cpu, 0), Pick::Cpu(_)));
        }
        for h in 0..256usize {
            t = t.without_member(h, GFP_KERNEL)?;
        }
        assert_eq!(t.select(0, 0), Pick::Empty);
        Ok(())
    }
}
