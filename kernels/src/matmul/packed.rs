//! Packed weights: the panel layout, its storage formats, and owned or shared storage.
//!
//! W is `[n, k]` (PyTorch `Linear` layout, one row per output feature).
//! Packing groups the output features into panels of [`NR`] features; panel
//! `p` stores, for every `kk` in `0..k`, the `NR` weights `W[p·NR + j][kk]`
//! contiguously, with zeros past `n`. Panels follow each other without gaps.
//! One layout serves every tier, so packed bytes written on one CPU run on
//! any other. Values are little-endian.

use std::fmt;
use std::sync::Arc;

use half::{bf16, f16};

use super::NR;

/// Required alignment, in bytes, of packed bytes that a [`PackedMatrix`]
/// borrows from shared storage. Misaligned bytes are copied instead.
pub const PACKED_ALIGN: usize = 64;

/// Storage format of packed weights.
///
/// Each format fixes the bytes per weight and how many consecutive input
/// features form one group inside a panel (`k_group`). A panel stores
/// `ceil(k / k_group)` groups of `NR × k_group` values, lane-major within a
/// group. Every format so far has groups of 1, so a panel is `k` rows of `NR`
/// weights. Formats for dot-product instructions (int8, bf16 pairs) will
/// group 4 or 2 input features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WeightFormat {
    /// 32-bit floats.
    F32,
    /// IEEE half precision, widened to f32 in the kernels.
    F16,
    /// bfloat16, widened to f32 in the kernels.
    BF16,
}

impl WeightFormat {
    /// Returns the format's name: `f32`, `f16` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::F16 => "f16",
            WeightFormat::BF16 => "bf16",
        }
    }

    /// Returns the bytes of one stored weight.
    pub fn bytes_per_weight(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::F16 | WeightFormat::BF16 => 2,
        }
    }

    /// Returns how many consecutive input features a panel stores together per output feature.
    pub fn k_group(self) -> usize {
        1
    }

    /// Returns the bytes of one panel for `k` input features.
    pub fn panel_bytes(self, k: usize) -> usize {
        k.div_ceil(self.k_group()) * self.k_group() * NR * self.bytes_per_weight()
    }

    /// Returns the bytes of a packed `[n, k]` matrix.
    pub fn packed_bytes(self, n: usize, k: usize) -> usize {
        n.div_ceil(NR) * self.panel_bytes(k)
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why packed bytes could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    /// The storage ends before the packed matrix does.
    OutOfBounds { offset: usize, needed: usize, available: usize },
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::OutOfBounds { offset, needed, available } => write!(
                f,
                "packed matrix needs {needed} bytes at offset {offset}, but the storage holds {available} bytes"
            ),
        }
    }
}

impl std::error::Error for PackError {}

/// Shared read-only bytes, e.g. a memory-mapped file.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One cache line; owned storage is a vector of these so it is 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine([u8; PACKED_ALIGN]);

#[derive(Clone)]
enum Storage {
    /// `len` bytes at the start of the lines.
    Owned { lines: Vec<CacheLine>, len: usize },
    /// `len` bytes at `offset` of `source`, aligned to [`PACKED_ALIGN`].
    Shared { source: SharedBytes, offset: usize, len: usize },
}

impl Storage {
    fn zeroed(len: usize) -> Storage {
        Storage::Owned { lines: vec![CacheLine([0; PACKED_ALIGN]); len.div_ceil(PACKED_ALIGN)], len }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Owned { lines, len } => {
                // SAFETY: `lines` is a contiguous allocation of
                // `lines.len()·64 ≥ len` initialised bytes borrowed for the
                // lifetime of `self`.
                unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u8>(), *len) }
            }
            Storage::Shared { source, offset, len } => &(**source).as_ref()[*offset..*offset + *len],
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Storage::Owned { lines, len } => {
                // SAFETY: as in `bytes`, borrowed mutably through `self`.
                unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), *len) }
            }
            Storage::Shared { .. } => unreachable!("shared packed storage is read-only"),
        }
    }
}

/// Weights of one linear layer in the packed panel layout.
///
/// The storage is either owned or borrowed from shared bytes (see
/// [`PackedMatrix::from_shared`]); either way it starts at a multiple of
/// [`PACKED_ALIGN`] bytes.
#[derive(Clone)]
pub struct PackedMatrix {
    n: usize,
    k: usize,
    format: WeightFormat,
    storage: Storage,
}

impl fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedMatrix")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("format", &self.format)
            .field("shared", &self.is_shared())
            .finish()
    }
}

impl PackedMatrix {
    /// Packs a row-major `[n, k]` matrix as f32.
    ///
    /// # Panics
    /// If `w.len() != n·k`.
    pub fn from_f32(w: &[f32], n: usize, k: usize) -> PackedMatrix {
        PackedMatrix::from_f32_as(WeightFormat::F32, w, n, k)
    }

    /// Packs a row-major `[n, k]` matrix in `format`, rounding to nearest even.
    ///
    /// # Panics
    /// If `w.len() != n·k`.
    pub fn from_f32_as(format: WeightFormat, w: &[f32], n: usize, k: usize) -> PackedMatrix {
        assert_eq!(w.len(), n * k, "weight matrix has {} values, expected {n}×{k}", w.len());
        PackedMatrix::from_rows_as(format, n, k, |row, out| out.copy_from_slice(&w[row * k..(row + 1) * k]))
    }

    /// Packs an `[n, k]` matrix as f32, with rows produced by `fill_row(row, out)`,
    /// so callers can convert from any storage type without a full f32 copy.
    pub fn from_rows(n: usize, k: usize, fill_row: impl FnMut(usize, &mut [f32])) -> PackedMatrix {
        PackedMatrix::from_rows_as(WeightFormat::F32, n, k, fill_row)
    }

    /// Packs an `[n, k]` matrix in `format`, with rows produced by
    /// `fill_row(row, out)`, rounding to nearest even.
    pub fn from_rows_as(
        format: WeightFormat,
        n: usize,
        k: usize,
        mut fill_row: impl FnMut(usize, &mut [f32]),
    ) -> PackedMatrix {
        let mut storage = Storage::zeroed(format.packed_bytes(n, k));
        let bytes = storage.bytes_mut();
        let width = format.bytes_per_weight();
        let mut row = vec![0.0f32; k];
        for r in 0..n {
            fill_row(r, &mut row);
            let (panel, lane) = (r / NR, r % NR);
            for (kk, &value) in row.iter().enumerate() {
                let at = panel * format.panel_bytes(k) + (kk * NR + lane) * width;
                let slot = &mut bytes[at..at + width];
                match format {
                    WeightFormat::F32 => slot.copy_from_slice(&value.to_le_bytes()),
                    WeightFormat::F16 => slot.copy_from_slice(&f16::from_f32(value).to_le_bytes()),
                    WeightFormat::BF16 => slot.copy_from_slice(&bf16::from_f32(value).to_le_bytes()),
                }
            }
        }
        PackedMatrix { n, k, format, storage }
    }

    /// Uses packed bytes at `offset` of `source`, as written from
    /// [`PackedMatrix::as_bytes`] of a matrix with the same `format`, `n` and `k`.
    ///
    /// The matrix borrows the bytes (no copy) when `source[offset..]` starts at
    /// a multiple of [`PACKED_ALIGN`] bytes in memory, and copies them
    /// otherwise. The kernels read them without alignment requirements, so
    /// alignment only matters for speed; `source` must return the same bytes
    /// from every `as_ref` call, as a memory map or a `Vec` does.
    ///
    /// # Errors
    /// [`PackError::OutOfBounds`] if the source is too short.
    pub fn from_shared(
        source: SharedBytes,
        offset: usize,
        format: WeightFormat,
        n: usize,
        k: usize,
    ) -> Result<PackedMatrix, PackError> {
        let len = format.packed_bytes(n, k);
        let available = (*source).as_ref().len();
        let bytes = offset
            .checked_add(len)
            .filter(|&end| end <= available)
            .map(|end| &(*source).as_ref()[offset..end])
            .ok_or(PackError::OutOfBounds { offset, needed: len, available })?;
        let aligned = (bytes.as_ptr() as usize).is_multiple_of(PACKED_ALIGN);
        if aligned {
            return Ok(PackedMatrix { n, k, format, storage: Storage::Shared { source, offset, len } });
        }
        let mut storage = Storage::zeroed(len);
        storage.bytes_mut().copy_from_slice(bytes);
        Ok(PackedMatrix { n, k, format, storage })
    }

    /// Returns the packed bytes, to be stored and read back with [`PackedMatrix::from_shared`].
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// Reports whether the matrix borrows its bytes from shared storage.
    pub fn is_shared(&self) -> bool {
        matches!(self.storage, Storage::Shared { .. })
    }

    /// Output features (rows of W).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input features (columns of W), the reduction length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Storage format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Bytes of packed storage.
    pub fn storage_bytes(&self) -> usize {
        self.storage.bytes().len()
    }

    /// Returns `W[row][col]` as f32, for tests and debugging.
    ///
    /// # Panics
    /// If the index lies outside the matrix.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        assert!(row < self.n && col < self.k, "index ({row}, {col}) outside {}×{}", self.n, self.k);
        let width = self.format.bytes_per_weight();
        let at = (row / NR) * self.format.panel_bytes(self.k) + (col * NR + row % NR) * width;
        let bytes = &self.as_bytes()[at..at + width];
        match self.format {
            WeightFormat::F32 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            WeightFormat::F16 => f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            WeightFormat::BF16 => bf16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
        }
    }

    pub(crate) fn panel_count(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Returns a pointer to the first value of panel `panel` at input feature `kk`.
    ///
    /// # Panics
    /// If the panel or row lies outside the matrix (`kk == k` is allowed).
    pub(crate) fn panel_ptr(&self, panel: usize, kk: usize) -> *const u8 {
        assert!(panel < self.panel_count() && kk <= self.k, "panel {panel}, row {kk} outside the matrix");
        let at = panel * self.format.panel_bytes(self.k) + kk * NR * self.format.bytes_per_weight();
        // SAFETY: `at` is at most the storage length (the end of the last panel).
        unsafe { self.as_bytes().as_ptr().add(at) }
    }
}
