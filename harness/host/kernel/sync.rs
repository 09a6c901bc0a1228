// SPDX-License-Identifier: GPL-2.0
//! `kernel::sync` on the host: `Arc`, `ArcBorrow` and `atomic`.

use crate::alloc::{charge, live_add, AllocError, Flags};
use core::marker::PhantomData;
use core::ops::Deref;

/// Makes the last drop of an [`Arc`] visible to [`crate::alloc::live`].
#[repr(transparent)]
struct Tracked<T>(T);

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        live_add(-1);
    }
}

/// `kernel::sync::Arc`: a reference-counted allocation.
pub struct Arc<T>(std::sync::Arc<Tracked<T>>);

impl<T> Arc<T> {
    /// Allocates `contents` with one reference.
    pub fn new(contents: T, _flags: Flags) -> Result<Self, AllocError> {
        charge()?;
        live_add(1);
        Ok(Self(std::sync::Arc::new(Tracked(contents))))
    }

    /// Gives up this reference as a pointer to the contents.
    pub fn into_raw(self) -> *const T {
        // CAST: `Tracked<T>` is a transparent wrapper of `T`.
        std::sync::Arc::into_raw(self.0).cast()
    }

    /// Takes back a reference given up by [`Arc::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Arc::into_raw`], its reference not yet
    /// taken back.
    pub unsafe fn from_raw(ptr: *const T) -> Self {
        // SAFETY: The caller passes a pointer from `into_raw`; the cast
        // undoes the one there.
        Self(unsafe { std::sync::Arc::from_raw(ptr.cast::<Tracked<T>>()) })
    }

    /// Whether both point to the same allocation.
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&this.0, &other.0)
    }
}

impl<T> Clone for Arc<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Deref for Arc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0 .0
    }
}

/// `kernel::sync::ArcBorrow`: an `Arc` known alive, without a reference.
pub struct ArcBorrow<'a, T> {
    ptr: *const T,
    _p: PhantomData<&'a T>,
}

impl<T> ArcBorrow<'_, T> {
    /// Borrows the `Arc` that [`Arc::into_raw`] gave up as `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must come from [`Arc::into_raw`] and its reference count
    /// must stay above zero for the borrow's lifetime.
    pub unsafe fn from_raw(ptr: *const T) -> Self {
        Self {
            ptr,
            _p: PhantomData,
        }
    }
}

impl<T> Deref for ArcBorrow<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: By `from_raw`'s contract the contents are alive.
        unsafe { &*self.ptr }
    }
}

impl<T> From<ArcBorrow<'_, T>> for Arc<T> {
    fn from(b: ArcBorrow<'_, T>) -> Self {
        // SAFETY: The borrow guarantees a live reference from `into_raw`.
        unsafe { std::sync::Arc::increment_strong_count(b.ptr.cast::<Tracked<T>>()) };
        // SAFETY: The increment above is the reference taken back here.
        unsafe { Arc::from_raw(b.ptr) }
    }
}

pub mod atomic {
    //! `kernel::sync::atomic` over `core::sync::atomic`, with the kernel's
    //! ordering types and the same restrictions on which method takes
    //! which ordering (rust/kernel/sync/atomic/ordering.rs).

    use core::sync::atomic::Ordering as O;

    mod sealed {
        pub trait Sealed {}
    }

    /// No ordering.
    #[derive(Clone, Copy)]
    pub struct Relaxed;
    /// Acquire.
    #[derive(Clone, Copy)]
    pub struct Acquire;
    /// Release.
    #[derive(Clone, Copy)]
    pub struct Release;
    /// Fully ordered.
    #[derive(Clone, Copy)]
    pub struct Full;

    /// Any ordering.
    pub trait Ordering: sealed::Sealed {
        /// The std ordering standing for it.
        const STD: O;
    }
    /// What `load` takes.
    pub trait AcquireOrRelaxed: Ordering {}
    /// What `store` takes.
    pub trait ReleaseOrRelaxed: Ordering {}

    macro_rules! ordering {
        ($t:ident, $o:expr) => {
            impl sealed::Sealed for $t {}
            impl Ordering for $t {
                const STD: O = $o;
            }
        };
    }
    ordering!(Relaxed, O::Relaxed);
    ordering!(Acquire, O::Acquire);
    ordering!(Release, O::Release);
    ordering!(Full, O::SeqCst);
    impl AcquireOrRelaxed for Relaxed {}
    impl AcquireOrRelaxed for Acquire {}
    impl ReleaseOrRelaxed for Relaxed {}
    impl ReleaseOrRelaxed for Release {}

    /// A type with an atomic form.
    pub trait AtomicType: Copy + sealed::Sealed {
        #[doc(hidden)]
        type Std;
        #[doc(hidden)]
        fn new(v: Self) -> Self::Std;
        #[doc(hidden)]
        fn load(a: &Self::Std, o: O) -> Self;
        #[doc(hidden)]
        fn store(a: &Self::Std, v: Self, o: O);
        #[doc(hidden)]
        fn xchg(a: &Self::Std, v: Self, o: O) -> Self;
        #[doc(hidden)]
        fn cmpxchg(a: &Self::Std, old: Self, new: Self, o: O) -> Result<Self, Self>;
    }

    /// A type with atomic arithmetic.
    pub trait AtomicAdd: AtomicType {
        #[doc(hidden)]
        fn fetch_add(a: &Self::Std, v: Self, o: O) -> Self;
        #[doc(hidden)]
        fn fetch_sub(a: &Self::Std, v: Self, o: O) -> Self;
    }

    macro_rules! atomic_type {
        ($t:ty, $std:ty) => {
            impl sealed::Sealed for $t {}
            impl AtomicType for $t {
                type Std = $std;
                fn new(v: Self) -> $std {
                    <$std>::new(v)
                }
                fn load(a: &$std, o: O) -> Self {
                    a.load(o)
                }
                fn store(a: &$std, v: Self, o: O) {
                    a.store(v, o)
                }
                fn xchg(a: &$std, v: Self, o: O) -> Self {
                    a.swap(v, o)
                }
                fn cmpxchg(a: &$std, old: Self, new: Self, o: O) -> Result<Self, Self> {
                    // A failed cmpxchg is a relaxed load, as in the kernel.
                    a.compare_exchange(old, new, o, O::Relaxed)
                }
            }
        };
    }
    macro_rules! atomic_add {
        ($t:ty, $std:ty) => {
            atomic_type!($t, $std);
            impl AtomicAdd for $t {
                fn fetch_add(a: &$std, v: Self, o: O) -> Self {
                    a.fetch_add(v, o)
                }
                fn fetch_sub(a: &$std, v: Self, o: O) -> Self {
                    a.fetch_sub(v, o)
                }
            }
        };
    }
    atomic_type!(bool, core::sync::atomic::AtomicBool);
    atomic_add!(u32, core::sync::atomic::AtomicU32);
    atomic_add!(u64, core::sync::atomic::AtomicU64);
    atomic_add!(usize, core::sync::atomic::AtomicUsize);

    /// `kernel::sync::atomic::Atomic`.
    #[repr(transparent)]
    pub struct Atomic<T: AtomicType>(T::Std);

    impl<T: AtomicType> Atomic<T> {
        /// A new atomic holding `v`.
        pub fn new(v: T) -> Self {
            Self(T::new(v))
        }

        /// The atomic at `ptr`, as the kernel's `Atomic::from_ptr()`.
        ///
        /// # Safety
        ///
        /// `ptr` must be aligned, valid for `'a` and accessed only
        /// atomically meanwhile.
        pub unsafe fn from_ptr<'a>(ptr: *mut T) -> &'a Self {
            // SAFETY: `Self` is `repr(transparent)` over `T::Std`, which has
            // the size and alignment of `T`; the caller guarantees the rest.
            unsafe { &*ptr.cast::<Self>() }
        }

        /// Loads the value.
        pub fn load<Ord: AcquireOrRelaxed>(&self, _: Ord) -> T {
            T::load(&self.0, Ord::STD)
        }

        /// Stores `v`.
        pub fn store<Ord: ReleaseOrRelaxed>(&self, v: T, _: Ord) {
            T::store(&self.0, v, Ord::STD)
        }

        /// Stores `v`, returns the old value.
        pub fn xchg<Ord: Ordering>(&self, v: T, _: Ord) -> T {
            T::xchg(&self.0, v, Ord::STD)
        }

        /// Stores `new` if the value is `old`: `Ok(old)`, else `Err(value)`.
        pub fn cmpxchg<Ord: Ordering>(&self, old: T, new: T, _: Ord) -> Result<T, T> {
            T::cmpxchg(&self.0, old, new, Ord::STD)
        }
    }

    impl<T: AtomicAdd> Atomic<T> {
        /// Adds `v`, wrapping.
        pub fn add(&self, v: T, _: Relaxed) {
            T::fetch_add(&self.0, v, O::Relaxed);
        }

        /// Adds `v`, wrapping; returns the old value.
        pub fn fetch_add<Ord: Ordering>(&self, v: T, _: Ord) -> T {
            T::fetch_add(&self.0, v, Ord::STD)
        }

        /// Subtracts `v`, wrapping; returns the old value.
        pub fn fetch_sub<Ord: Ordering>(&self, v: T, _: Ord) -> T {
            T::fetch_sub(&self.0, v, Ord::STD)
        }
    }
}
