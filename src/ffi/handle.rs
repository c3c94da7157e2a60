//! The model handle that C callers hold, and its checks.

use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use super::status::{Failure, jclip_status::*};
use crate::model::Model;

/// Marks a live `jclip_model` allocation ("jclipmdl" in ASCII).
const HANDLE_MAGIC: u64 = u64::from_be_bytes(*b"jclipmdl");

/// A model opened by `jclip_open`. Opaque to C.
///
/// `jclip_close` drops the model but never frees this shell (at most 64
/// bytes), so that a later call with the same pointer reads valid
/// memory and reports `JCLIP_ERR_CLOSED_HANDLE` instead of using freed memory.
#[allow(non_camel_case_types)]
pub struct jclip_model {
    magic: u64,
    /// `None` once closed. Calls hold the read lock while they run, so
    /// `jclip_close` (the only writer) waits for them.
    model: RwLock<Option<Box<Model>>>,
}

/// A model borrowed for the length of one call; the handle cannot be closed meanwhile.
pub(crate) struct OpenModel<'a>(RwLockReadGuard<'a, Option<Box<Model>>>);

impl std::ops::Deref for OpenModel<'_> {
    type Target = Model;

    fn deref(&self) -> &Model {
        self.0.as_deref().expect("OpenModel is only built for an open handle")
    }
}

impl jclip_model {
    /// Moves `model` into a new heap handle and returns its pointer.
    pub(crate) fn into_raw(model: Model) -> *mut jclip_model {
        Box::into_raw(Box::new(jclip_model { magic: HANDLE_MAGIC, model: RwLock::new(Some(Box::new(model))) }))
    }

    /// Checks `handle` and returns the handle it points to.
    ///
    /// # Safety
    /// `handle` must be NULL or a pointer returned by `jclip_open`, closed or
    /// not. Other non-NULL pointers are detected only when they are
    /// misaligned or the memory they point to lacks the magic number, and
    /// reading that memory may itself be undefined behaviour.
    pub(crate) unsafe fn from_ptr<'a>(handle: *const jclip_model) -> Result<&'a jclip_model, Failure> {
        if handle.is_null() {
            return Err(Failure::null("model"));
        }
        if !handle.is_aligned() {
            return Err(Failure::new(
                JCLIP_ERR_INVALID_HANDLE,
                "model is not a handle from jclip_open (misaligned pointer)",
            ));
        }
        // SAFETY: non-NULL and aligned; by the caller's contract it points to
        // a jclip_model, and shells are never freed, so the memory is valid.
        let handle = unsafe { &*handle };
        if handle.magic != HANDLE_MAGIC {
            return Err(Failure::new(
                JCLIP_ERR_INVALID_HANDLE,
                "model is not a handle from jclip_open (wrong magic number)",
            ));
        }
        Ok(handle)
    }

    /// Borrows the open model for one call.
    pub(crate) fn open_model(&self) -> Result<OpenModel<'_>, Failure> {
        // The write lock is only held for `Option::take`, which cannot panic,
        // so a poisoned lock still guards a consistent slot.
        let guard = self.model.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(Failure::new(JCLIP_ERR_CLOSED_HANDLE, "model was already closed by jclip_close"));
        }
        Ok(OpenModel(guard))
    }

    /// Drops the model once calls in progress on other threads have returned.
    pub(crate) fn close(&self) -> Result<(), Failure> {
        let model = self.model.write().unwrap_or_else(PoisonError::into_inner).take();
        match model {
            Some(model) => {
                drop(model);
                Ok(())
            }
            None => Err(Failure::new(JCLIP_ERR_CLOSED_HANDLE, "model was already closed by jclip_close")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_shell_is_small() {
        // The header promises at most 64 bytes per closed handle.
        assert!(std::mem::size_of::<jclip_model>() <= 64, "{} bytes", std::mem::size_of::<jclip_model>());
    }
}
