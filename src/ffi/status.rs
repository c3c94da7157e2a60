//! Status codes, the thread-local last error, and the guard that every
//! exported function runs its body in.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::panic::{AssertUnwindSafe, catch_unwind};

use jclip_kernels::IsaError;

use crate::error::Error;

/// The result of a call. `JCLIP_OK` is 0 and every error is positive; the
/// message of the last error is available from `jclip_last_error()`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum jclip_status {
    /// The call succeeded.
    JCLIP_OK = 0,
    /// A required pointer argument is NULL.
    JCLIP_ERR_NULL_POINTER = 1,
    /// An argument or option has an invalid value (also a misaligned pointer).
    JCLIP_ERR_INVALID_ARGUMENT = 2,
    /// The model pointer is not a handle returned by `jclip_open`.
    JCLIP_ERR_INVALID_HANDLE = 3,
    /// The model handle was already closed by `jclip_close`.
    JCLIP_ERR_CLOSED_HANDLE = 4,
    /// The output array has fewer floats than the embeddings need.
    JCLIP_ERR_BUFFER_TOO_SMALL = 5,
    /// A text is not valid UTF-8.
    JCLIP_ERR_INVALID_UTF8 = 6,
    /// A text has more tokens than `max_length` and truncation is off.
    JCLIP_ERR_INPUT_TOO_LONG = 7,
    /// An image could not be decoded or preprocessed (corrupt, unsupported,
    /// empty or too large).
    JCLIP_ERR_IMAGE = 8,
    /// Images were given to a text-only model.
    JCLIP_ERR_NO_IMAGE_TOWER = 9,
    /// A file of the model directory is missing or could not be read.
    JCLIP_ERR_IO = 10,
    /// The model directory is invalid: a config, checkpoint or tokenizer file
    /// is corrupt or does not match the others.
    JCLIP_ERR_MODEL = 11,
    /// The request is valid but this build or CPU cannot serve it (a
    /// precision or kernel tier).
    JCLIP_ERR_UNSUPPORTED = 12,
    /// An embedding came out with NaN or infinite values.
    JCLIP_ERR_NON_FINITE = 13,
    /// The worker threads could not be started.
    JCLIP_ERR_THREAD_POOL = 14,
    /// A bug: jclip panicked inside the call. The panic was caught, and the
    /// message is in `jclip_last_error()`.
    JCLIP_ERR_PANIC = 15,
}

use jclip_status::*;

impl jclip_status {
    /// Every status, in numeric order.
    pub const ALL: [jclip_status; 16] = [
        JCLIP_OK,
        JCLIP_ERR_NULL_POINTER,
        JCLIP_ERR_INVALID_ARGUMENT,
        JCLIP_ERR_INVALID_HANDLE,
        JCLIP_ERR_CLOSED_HANDLE,
        JCLIP_ERR_BUFFER_TOO_SMALL,
        JCLIP_ERR_INVALID_UTF8,
        JCLIP_ERR_INPUT_TOO_LONG,
        JCLIP_ERR_IMAGE,
        JCLIP_ERR_NO_IMAGE_TOWER,
        JCLIP_ERR_IO,
        JCLIP_ERR_MODEL,
        JCLIP_ERR_UNSUPPORTED,
        JCLIP_ERR_NON_FINITE,
        JCLIP_ERR_THREAD_POOL,
        JCLIP_ERR_PANIC,
    ];

    /// Returns the constant's name as a NUL-terminated string.
    pub fn name(self) -> &'static CStr {
        match self {
            JCLIP_OK => c"JCLIP_OK",
            JCLIP_ERR_NULL_POINTER => c"JCLIP_ERR_NULL_POINTER",
            JCLIP_ERR_INVALID_ARGUMENT => c"JCLIP_ERR_INVALID_ARGUMENT",
            JCLIP_ERR_INVALID_HANDLE => c"JCLIP_ERR_INVALID_HANDLE",
            JCLIP_ERR_CLOSED_HANDLE => c"JCLIP_ERR_CLOSED_HANDLE",
            JCLIP_ERR_BUFFER_TOO_SMALL => c"JCLIP_ERR_BUFFER_TOO_SMALL",
            JCLIP_ERR_INVALID_UTF8 => c"JCLIP_ERR_INVALID_UTF8",
            JCLIP_ERR_INPUT_TOO_LONG => c"JCLIP_ERR_INPUT_TOO_LONG",
            JCLIP_ERR_IMAGE => c"JCLIP_ERR_IMAGE",
            JCLIP_ERR_NO_IMAGE_TOWER => c"JCLIP_ERR_NO_IMAGE_TOWER",
            JCLIP_ERR_IO => c"JCLIP_ERR_IO",
            JCLIP_ERR_MODEL => c"JCLIP_ERR_MODEL",
            JCLIP_ERR_UNSUPPORTED => c"JCLIP_ERR_UNSUPPORTED",
            JCLIP_ERR_NON_FINITE => c"JCLIP_ERR_NON_FINITE",
            JCLIP_ERR_THREAD_POOL => c"JCLIP_ERR_THREAD_POOL",
            JCLIP_ERR_PANIC => c"JCLIP_ERR_PANIC",
        }
    }
}

/// A failed call: the status to return and the message for `jclip_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: jclip_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: jclip_status, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub fn null(argument: &str) -> Failure {
        Failure::new(JCLIP_ERR_NULL_POINTER, format!("{argument} is NULL"))
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(JCLIP_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let status = match &error {
            Error::Io { .. } | Error::Write { .. } | Error::MissingFile { .. } => JCLIP_ERR_IO,
            Error::InvalidConfig { .. }
            | Error::UnsupportedConfig { .. }
            | Error::InvalidCheckpoint { .. }
            | Error::MissingTensor { .. }
            | Error::TensorShape { .. }
            | Error::TensorDtype { .. }
            | Error::Tokenizer { .. }
            | Error::TokenOutOfRange { .. }
            | Error::Preprocess(_) => JCLIP_ERR_MODEL,
            Error::InputTooLong { .. } => JCLIP_ERR_INPUT_TOO_LONG,
            Error::InvalidOption { .. } => JCLIP_ERR_INVALID_ARGUMENT,
            Error::MissingTower(_) => JCLIP_ERR_NO_IMAGE_TOWER,
            Error::Image { .. } => JCLIP_ERR_IMAGE,
            Error::NonFinite { .. } => JCLIP_ERR_NON_FINITE,
            // An unknown name can only come from the JCLIP_ISA variable.
            Error::Isa(IsaError::Unknown { .. }) => JCLIP_ERR_INVALID_ARGUMENT,
            Error::Isa(IsaError::Unsupported { .. }) => JCLIP_ERR_UNSUPPORTED,
            Error::ThreadPool { .. } => JCLIP_ERR_THREAD_POOL,
        };
        Failure { status, message: error.to_string() }
    }
}

thread_local! {
    /// The message of the last failed call on this thread, empty after a success.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Replaces this thread's last error message.
fn set_last_error(message: &str) {
    // C strings end at the first NUL, so an interior NUL (from a quoted input)
    // would cut the message short.
    let bytes: Vec<u8> = message.replace('\0', "\\0").into_bytes();
    let message = CString::new(bytes).expect("interior NULs were replaced");
    // During thread teardown the slot may be gone; the status still reports the failure.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = message);
}

/// Returns a pointer to this thread's last error message, valid until the
/// message is replaced.
pub(crate) fn last_error_ptr() -> *const std::ffi::c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// Runs the body of an exported function: clears the last error, catches
/// any panic, and turns the outcome into a status.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> jclip_status {
    set_last_error("");
    // Unwind safety: a body shares the model only as `&Model`, and jclip's
    // model keeps no interior mutable state (no Cell, Mutex or RefCell), so a
    // panic cannot leave it half-updated for later calls.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => JCLIP_OK,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            set_last_error(&format!("internal error: jclip panicked: {}", panic_message(payload.as_ref())));
            JCLIP_ERR_PANIC
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: the pointer comes from this thread's slot, which no other
        // call replaces before the copy.
        unsafe { CStr::from_ptr(last_error_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn guard_catches_panic() {
        let status = guard(|| panic!("index 7 out of range"));
        assert_eq!(status, JCLIP_ERR_PANIC);
        assert_eq!(last_error(), "internal error: jclip panicked: index 7 out of range");
    }

    #[test]
    fn guard_catches_formatted_panic() {
        let status = guard(|| panic!("worker {} failed", 3));
        assert_eq!(status, JCLIP_ERR_PANIC);
        assert_eq!(last_error(), "internal error: jclip panicked: worker 3 failed");
    }

    #[test]
    fn guard_catches_panic_on_worker_thread() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let status = guard(|| pool.install(|| panic!("inside a worker")));
        assert_eq!(status, JCLIP_ERR_PANIC);
        assert!(last_error().ends_with("inside a worker"), "{}", last_error());
    }

    #[test]
    fn success_clears_last_error() {
        guard(|| Err(Failure::invalid("bad value")));
        assert_eq!(last_error(), "bad value");
        assert_eq!(guard(|| Ok(())), JCLIP_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn interior_nul_is_escaped() {
        guard(|| Err(Failure::invalid("text \"a\0b\" is bad")));
        assert_eq!(last_error(), "text \"a\\0b\" is bad");
    }

    #[test]
    fn status_names_match_values() {
        for (value, status) in jclip_status::ALL.into_iter().enumerate() {
            assert_eq!(status as usize, value);
            assert!(status.name().to_str().unwrap().starts_with("JCLIP_"));
        }
    }
}
