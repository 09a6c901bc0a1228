// SPDX-License-Identifier: GPL-2.0
//! `kernel::error` on the host: a negative errno.

use crate::alloc::AllocError;
use core::ffi::c_int;

/// A negative errno, as `kernel::error::Error` holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Error(c_int);

impl Error {
    /// The errno as C returns it (negative).
    pub fn to_errno(self) -> c_int {
        self.0
    }
}

impl core::fmt::Debug for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match -self.0 {
            12 => "ENOMEM",
            22 => "EINVAL",
            _ => "E?",
        };
        write!(f, "{name}({})", self.0)
    }
}

impl From<AllocError> for Error {
    fn from(_: AllocError) -> Self {
        code::ENOMEM
    }
}

/// `kernel::error::Result`.
pub type Result<T = (), E = Error> = core::result::Result<T, E>;

/// The errno codes the core uses.
pub mod code {
    use super::Error;

    /// Out of memory.
    pub const ENOMEM: Error = Error(-12);
    /// Invalid argument.
    pub const EINVAL: Error = Error(-22);
}
