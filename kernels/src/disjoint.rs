//! A raw output pointer shared by parallel tasks that write disjoint regions.

use std::marker::PhantomData;

/// Lets parallel tasks write non-overlapping parts of one output slice.
#[derive(Clone, Copy)]
pub(crate) struct DisjointOutput<'a> {
    ptr: *mut f32,
    len: usize,
    _output: PhantomData<&'a mut [f32]>,
}

// SAFETY: the only access is through `slice`, whose callers guarantee that no
// two tasks touch the same element, and the lifetime ties the pointer to the
// borrowed output.
unsafe impl Send for DisjointOutput<'_> {}
// SAFETY: as above.
unsafe impl Sync for DisjointOutput<'_> {}

impl<'a> DisjointOutput<'a> {
    pub(crate) fn new(output: &'a mut [f32]) -> DisjointOutput<'a> {
        DisjointOutput { ptr: output.as_mut_ptr(), len: output.len(), _output: PhantomData }
    }

    /// Returns `output[start..start + len]`.
    ///
    /// # Safety
    /// No other task may access any element of `start..start + len` while the
    /// returned slice lives.
    ///
    /// # Panics
    /// If the range lies outside the output.
    pub(crate) unsafe fn slice(self, start: usize, len: usize) -> &'a mut [f32] {
        assert!(start.checked_add(len).is_some_and(|end| end <= self.len), "write outside the output");
        // SAFETY: the range is inside the output (checked above) and exclusive
        // to the caller (this function's contract).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
