//! The caller's input batches and output array, checked and borrowed.

use std::ffi::c_char;
use std::mem::size_of;

use super::status::{Failure, jclip_status::*};
use crate::embed::Embedding;
use crate::preprocess::RgbImage;

/// One UTF-8 text: `length` bytes at `data`, not necessarily NUL-terminated.
/// `data` may be NULL when `length` is 0.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct jclip_text {
    pub data: *const c_char,
    pub length: usize,
}

/// One encoded image file in memory (JPEG, PNG, WebP, GIF, BMP or TIFF):
/// `length` bytes at `data`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct jclip_image_bytes {
    pub data: *const u8,
    pub length: usize,
}

/// One decoded image of `height` rows of `width` pixels, each pixel three
/// bytes R, G, B. Row `y` starts at `data + y * stride`; `stride` is in bytes
/// and at least `width * 3`, and 0 means `width * 3` (tightly packed rows).
/// `data` must hold `stride * (height - 1) + width * 3` bytes, and may be NULL
/// when `width` or `height` is 0 (such an image fails with `JCLIP_ERR_IMAGE`).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct jclip_rgb_image {
    pub data: *const u8,
    pub width: u32,
    pub height: u32,
    pub stride: usize,
}

/// Borrows the caller's array of `count` items.
///
/// # Safety
/// A non-NULL `items` must point to `count` initialised values of `T` that
/// stay unchanged for `'a`.
pub(crate) unsafe fn borrow_array<'a, T>(items: *const T, count: usize, name: &str) -> Result<&'a [T], Failure> {
    if items.is_null() {
        return Err(Failure::null(&format!("{name} (an array of {count} items)")));
    }
    if !items.is_aligned() {
        return Err(Failure::invalid(format!("{name} is misaligned for its element type")));
    }
    if count.checked_mul(size_of::<T>()).is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(Failure::invalid(format!("count {count} is larger than any array of {name} can be")));
    }
    // SAFETY: non-NULL, aligned, and the size fits in isize; the caller
    // guarantees `count` initialised values that outlive 'a.
    Ok(unsafe { std::slice::from_raw_parts(items, count) })
}

/// Borrows `length` bytes at `data`; `input` names it in errors.
///
/// # Safety
/// A non-NULL `data` must point to `length` readable bytes that stay
/// unchanged for `'a`.
unsafe fn borrow_bytes<'a>(data: *const u8, length: usize, input: &str) -> Result<&'a [u8], Failure> {
    if length == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Failure::null(&format!("{input}: data (with length {length})")));
    }
    if length > isize::MAX as usize {
        return Err(Failure::invalid(format!("{input}: length {length} is larger than any buffer can be")));
    }
    // SAFETY: non-NULL, size within isize::MAX, and the caller guarantees
    // `length` readable bytes that outlive 'a; u8 needs no alignment.
    Ok(unsafe { std::slice::from_raw_parts(data, length) })
}

impl jclip_text {
    /// Returns the text as `&str`; `index` is its position in the batch.
    ///
    /// # Safety
    /// As for [`borrow_bytes`] with this text's `data` and `length`.
    pub(crate) unsafe fn to_str<'a>(self, index: usize) -> Result<&'a str, Failure> {
        let input = format!("text {index}");
        // SAFETY: forwarded from this function's contract.
        let bytes = unsafe { borrow_bytes(self.data.cast::<u8>(), self.length, &input) }?;
        std::str::from_utf8(bytes).map_err(|error| {
            Failure::new(
                JCLIP_ERR_INVALID_UTF8,
                format!("{input}: invalid UTF-8 at byte {} of {}", error.valid_up_to(), bytes.len()),
            )
        })
    }
}

impl jclip_image_bytes {
    /// Returns the encoded file; `index` is its position in the batch.
    ///
    /// # Safety
    /// As for [`borrow_bytes`] with this image's `data` and `length`.
    pub(crate) unsafe fn to_bytes<'a>(self, index: usize) -> Result<&'a [u8], Failure> {
        // SAFETY: forwarded from this function's contract.
        unsafe { borrow_bytes(self.data, self.length, &format!("image {index}")) }
    }
}

impl jclip_rgb_image {
    /// Copies the pixels into a tightly packed image; `index` is its position in the batch.
    ///
    /// # Safety
    /// A non-NULL `data` must point to `stride * (height - 1) + width * 3`
    /// readable bytes (with a `stride` of 0 read as `width * 3`).
    pub(crate) unsafe fn to_image(self, index: usize) -> Result<RgbImage, Failure> {
        let input = format!("image {index}");
        let row_bytes = self.width as usize * 3;
        let stride = if self.stride == 0 { row_bytes } else { self.stride };
        if stride < row_bytes {
            return Err(Failure::invalid(format!(
                "{input}: stride {stride} is less than width {} × 3 = {row_bytes} bytes",
                self.width
            )));
        }
        let height = self.height as usize;
        if row_bytes == 0 || height == 0 {
            // Preprocessing rejects the empty image with a message naming its size.
            return Ok(RgbImage { width: self.width, height: self.height, data: Vec::new() });
        }
        let extent = stride
            .checked_mul(height - 1)
            .and_then(|rows| rows.checked_add(row_bytes))
            .ok_or_else(|| Failure::invalid(format!("{input}: stride {stride} × height {height} overflows")))?;
        // SAFETY: the caller guarantees `extent` readable bytes at `data`.
        let source = unsafe { borrow_bytes(self.data, extent, &input) }?;
        let mut data = Vec::with_capacity(row_bytes * height);
        for row in source.chunks(stride) {
            data.extend_from_slice(&row[..row_bytes]);
        }
        Ok(RgbImage { width: self.width, height: self.height, data })
    }
}

/// The caller's output array, checked to have room for `rows` × `dim` floats.
pub(crate) struct Output {
    data: *mut f32,
    rows: usize,
    dim: usize,
}

impl Output {
    /// Checks `out` and `capacity` (in floats) against `rows` embeddings of
    /// `dim` values; `inputs` names the rows in the message ("texts", "images").
    pub fn new(out: *mut f32, capacity: usize, rows: usize, dim: usize, inputs: &str) -> Result<Output, Failure> {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if !out.is_aligned() {
            return Err(Failure::invalid("out is not aligned for float"));
        }
        let needed = rows.checked_mul(dim).filter(|&floats| floats <= isize::MAX as usize / size_of::<f32>());
        match needed {
            Some(needed) if needed <= capacity => Ok(Output { data: out, rows, dim }),
            Some(needed) => Err(Failure::new(
                JCLIP_ERR_BUFFER_TOO_SMALL,
                format!("out_capacity is {capacity} floats, but {rows} {inputs} × {dim} dimensions need {needed}"),
            )),
            None => Err(Failure::invalid(format!("{rows} {inputs} × {dim} dimensions overflow the address space"))),
        }
    }

    /// Writes the embeddings row after row.
    ///
    /// # Safety
    /// The pointer given to [`Output::new`] must be valid for writes of its
    /// `capacity` floats, and no input borrowed from the caller may overlap it.
    pub unsafe fn write(self, embeddings: &[Embedding]) {
        assert_eq!(embeddings.len(), self.rows, "one embedding per input");
        for (row, embedding) in embeddings.iter().enumerate() {
            assert_eq!(embedding.embedding.len(), self.dim, "embedding {row} has the model's width");
            // SAFETY: row < rows, so the destination lies within the
            // rows × dim floats that `new` checked against the capacity, and
            // the caller guarantees it is writable and overlaps no input.
            unsafe {
                std::ptr::copy_nonoverlapping(embedding.embedding.as_ptr(), self.data.add(row * self.dim), self.dim)
            };
        }
    }
}
