//! Packed weights: the panel layout, its storage formats, and owned or shared storage.
//!
//! W is `[n, k]` (PyTorch `Linear` layout, one row per output feature).
//! Packing groups the output features into panels of [`NR`] features. Within
//! a panel, the input features form groups of `g = k_group()` consecutive
//! features, and group `q` stores `W[p·NR + j][q·g + t]` at position
//! `(q·NR + j)·g + t`: the `g` weights of lane `j` side by side, lanes in
//! order. Zeros pad past `n` and past `k` up to a whole group. Panels follow
//! each other without gaps, and every panel is a multiple of 64 bytes. One
//! layout serves every tier, so packed bytes written on one CPU run on any
//! other. Values are little-endian.
//!
//! [`WeightFormat::Int8`] groups 4 input features, so one group is one
//! 64-byte vector for `vpdpbusd` or four 16-byte vectors for `sdot`. After
//! the last panel follow the f32 scales and then the i32 sums
//! `Σ_k q[row][k]` of every row, `NR` per panel with zeros past `n`. Every
//! panel and both trailing arrays start at a multiple of 64 bytes.

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
/// group. F32 and F16 have groups of 1, so a panel is `k` rows of `NR`
/// weights. BF16 has groups of 2, the operand layout of the bf16 pair dot
/// products (`vdpbf16ps`, `bfdot`): each 64-byte group holds, for each of the
/// 16 lanes, the weights of two consecutive input features.
/// [`WeightFormat::Int8`] groups 4 input features for the int8 dot-product
/// instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WeightFormat {
    /// 32-bit floats.
    F32,
    /// IEEE half precision, widened to f32 in the kernels.
    F16,
    /// bfloat16 in pairs of input features, multiplied with bf16 dot-product
    /// instructions where the tier has them (see `Kernels::bf16_dot`) and
    /// widened to f32 otherwise.
    BF16,
    /// Signed 8-bit integers with one f32 scale per output feature
    /// (symmetric per-channel quantisation, see [`quantize_row`]). The
    /// kernels quantise X per row at run time and sum the products exactly
    /// in i32.
    Int8,
}

/// Largest magnitude of a quantised value. The range is symmetric, so -128
/// never occurs and negating a value cannot overflow.
pub const INT8_MAX: f32 = 127.0;

/// Quantises `values` to `out` with one symmetric scale and returns the scale.
///
/// The scale is `max|value| / 127` and `q = round_ties_even(value / scale)`
/// clamped to `[-127, 127]`, computed in f32, so `value ≈ q·scale`. A row of
/// zeros, or one whose scale underflows to 0 (every value below 9e-44 in
/// magnitude), gets scale 0 and zeros. A row that contains an
/// infinity or NaN gets a NaN scale and zeros, so products with it are NaN.
pub fn quantize_row(values: &[f32], out: &mut [i8]) -> f32 {
    quantize_row_inline(values, out)
}

/// [`quantize_row`], inlined so that each kernel tier compiles it with its own
/// instructions. The operations are exactly rounded IEEE operations, so every
/// vector width gives the same results.
#[inline(always)]
pub(crate) fn quantize_row_inline(values: &[f32], out: &mut [i8]) -> f32 {
    assert_eq!(values.len(), out.len(), "quantised row has {} values, expected {}", out.len(), values.len());
    let Some(max) = max_abs(values) else {
        out.fill(0);
        return f32::NAN;
    };
    let scale = max / INT8_MAX;
    if scale == 0.0 {
        out.fill(0);
        return 0.0;
    }
    for (q, &value) in out.iter_mut().zip(values) {
        *q = round_to_i8(value / scale);
    }
    scale
}

/// Returns `max|value|`, or `None` if a value is infinite or NaN.
///
/// Works on the bits of `|value|`: for non-negative floats they order as
/// the values do, and the bits of infinity and of every NaN lie above those
/// of every finite value. An integer maximum is one plain reduction, which
/// the compiler vectorises, and it checks finiteness in the same pass.
#[inline(always)]
fn max_abs(values: &[f32]) -> Option<f32> {
    const MAGNITUDE_BITS: u32 = 0x7fff_ffff;
    let max = values.iter().fold(0u32, |max, &value| max.max(value.to_bits() & MAGNITUDE_BITS));
    (max < f32::INFINITY.to_bits()).then(|| f32::from_bits(max))
}

/// Returns finite `value` clamped to `[-127, 127]` and rounded to the
/// nearest integer, ties to even.
///
/// Adding 1.5·2²³ to a value of magnitude below 2²² rounds it to an integer
/// in the FPU's rounding mode (to nearest even unless the program changed
/// it), and the integer is then the low bits of the sum. Unlike
/// `f32::round_ties_even` and a saturating `as` cast, this is plain
/// arithmetic that the compiler vectorises on the baseline x86-64 target.
/// Clamping first gives the same result as rounding first, because every
/// value in `[127, 127.5)` rounds to 127.
#[inline(always)]
fn round_to_i8(value: f32) -> i8 {
    const SHIFT: f32 = 12_582_912.0;
    let clamped = value.clamp(-INT8_MAX, INT8_MAX);
    ((clamped + SHIFT).to_bits() as i32 - SHIFT.to_bits() as i32) as i8
}

impl WeightFormat {
    /// Returns the format's name: `f32`, `f16`, `bf16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::F16 => "f16",
            WeightFormat::BF16 => "bf16",
            WeightFormat::Int8 => "int8",
        }
    }

    /// Returns the bytes of one stored weight.
    pub fn bytes_per_weight(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::F16 | WeightFormat::BF16 => 2,
            WeightFormat::Int8 => 1,
        }
    }

    /// Returns how many consecutive input features a panel stores together per output feature.
    pub fn k_group(self) -> usize {
        match self {
            WeightFormat::F32 | WeightFormat::F16 => 1,
            WeightFormat::BF16 => 2,
            WeightFormat::Int8 => 4,
        }
    }

    /// Returns the bytes of one panel for `k` input features.
    pub fn panel_bytes(self, k: usize) -> usize {
        k.div_ceil(self.k_group()) * self.k_group() * NR * self.bytes_per_weight()
    }

    /// Returns the bytes of a packed `[n, k]` matrix: the panels, and for
    /// [`WeightFormat::Int8`] the scales and row sums after them.
    pub fn packed_bytes(self, n: usize, k: usize) -> usize {
        n.div_ceil(NR) * (self.panel_bytes(k) + self.trailer_bytes_per_panel())
    }

    /// Returns the bytes stored after the panels per panel: `NR` f32 scales
    /// and `NR` i32 row sums for int8, nothing for the float formats.
    fn trailer_bytes_per_panel(self) -> usize {
        match self {
            WeightFormat::Int8 => NR * 8,
            _ => 0,
        }
    }

    /// Returns the byte offset of input feature `kk` of lane `lane` within a panel.
    fn offset_in_panel(self, kk: usize, lane: usize) -> usize {
        let group = self.k_group();
        ((kk / group * NR + lane) * group + kk % group) * self.bytes_per_weight()
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

    /// Packs a row-major `[n, k]` matrix in `format`, rounding to nearest
    /// even (for [`WeightFormat::Int8`], quantising each row with [`quantize_row`]).
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
    /// `fill_row(row, out)`, rounding to nearest even (for
    /// [`WeightFormat::Int8`], quantising each row with [`quantize_row`]).
    pub fn from_rows_as(
        format: WeightFormat,
        n: usize,
        k: usize,
        mut fill_row: impl FnMut(usize, &mut [f32]),
    ) -> PackedMatrix {
        let mut storage = Storage::zeroed(format.packed_bytes(n, k));
        let bytes = storage.bytes_mut();
        let width = format.bytes_per_weight();
        let panels_end = n.div_ceil(NR) * format.panel_bytes(k);
        let mut row = vec![0.0f32; k];
        let mut quantized = vec![0i8; k];
        for r in 0..n {
            fill_row(r, &mut row);
            let (panel, lane) = (r / NR, r % NR);
            let panel_start = panel * format.panel_bytes(k);
            if format == WeightFormat::Int8 {
                let scale = quantize_row(&row, &mut quantized);
                let sum: i32 = quantized.iter().map(|&q| i32::from(q)).sum();
                for (kk, &q) in quantized.iter().enumerate() {
                    bytes[panel_start + format.offset_in_panel(kk, lane)] = q as u8;
                }
                let scale_at = panels_end + 4 * r;
                bytes[scale_at..scale_at + 4].copy_from_slice(&scale.to_le_bytes());
                let sum_at = panels_end + 4 * (n.next_multiple_of(NR) + r);
                bytes[sum_at..sum_at + 4].copy_from_slice(&sum.to_le_bytes());
                continue;
            }
            for (kk, &value) in row.iter().enumerate() {
                let at = panel_start + format.offset_in_panel(kk, lane);
                let slot = &mut bytes[at..at + width];
                match format {
                    WeightFormat::F32 => slot.copy_from_slice(&value.to_le_bytes()),
                    WeightFormat::F16 => slot.copy_from_slice(&f16::from_f32(value).to_le_bytes()),
                    WeightFormat::BF16 => slot.copy_from_slice(&bf16::from_f32(value).to_le_bytes()),
                    WeightFormat::Int8 => unreachable!("int8 rows are quantised above"),
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

    /// Returns `W[row][col]` as f32 (for int8 the dequantised `q·scale`), for tests and debugging.
    ///
    /// # Panics
    /// If the index lies outside the matrix.
    pub fn get(&self, row: usize, col: usize) -> f32 {
        assert!(row < self.n && col < self.k, "index ({row}, {col}) outside {}×{}", self.n, self.k);
        let width = self.format.bytes_per_weight();
        let at = (row / NR) * self.format.panel_bytes(self.k) + self.format.offset_in_panel(col, row % NR);
        let bytes = &self.as_bytes()[at..at + width];
        match self.format {
            WeightFormat::F32 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            WeightFormat::F16 => f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            WeightFormat::BF16 => bf16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            WeightFormat::Int8 => f32::from(bytes[0] as i8) * self.int8_scales()[row],
        }
    }

    /// Returns the quantised value `q[row][col]` of an int8 matrix.
    ///
    /// # Panics
    /// If the matrix is not int8 or the index lies outside it.
    pub fn get_quantized(&self, row: usize, col: usize) -> i8 {
        assert_eq!(self.format, WeightFormat::Int8, "quantised values exist only in int8 matrices");
        assert!(row < self.n && col < self.k, "index ({row}, {col}) outside {}×{}", self.n, self.k);
        let at = (row / NR) * self.format.panel_bytes(self.k) + self.format.offset_in_panel(col, row % NR);
        self.as_bytes()[at] as i8
    }

    /// Returns the scale of every output feature of an int8 matrix, `NR` per
    /// panel with zeros past `n`.
    ///
    /// # Panics
    /// If the matrix is not int8.
    pub fn int8_scales(&self) -> &[f32] {
        self.int8_trailer(0).0
    }

    /// Returns `Σ_k q[row][k]` of every output feature of an int8 matrix,
    /// `NR` per panel with zeros past `n`.
    ///
    /// # Panics
    /// If the matrix is not int8.
    pub fn int8_row_sums(&self) -> &[i32] {
        self.int8_trailer(0).1
    }

    /// Returns the scales and row sums from panel `panel0` on.
    pub(crate) fn int8_trailer(&self, panel0: usize) -> (&[f32], &[i32]) {
        assert_eq!(self.format, WeightFormat::Int8, "scales exist only in int8 matrices");
        let padded = self.panel_count() * NR;
        let start = self.panel_count() * self.format.panel_bytes(self.k);
        let bytes = &self.as_bytes()[start..start + 8 * padded];
        assert!((bytes.as_ptr() as usize).is_multiple_of(4), "int8 trailer misaligned");
        // SAFETY: `bytes` holds `2·padded` 4-byte values at a 4-byte aligned
        // address (the storage starts 64-byte aligned and `start` is a
        // multiple of 64), every bit pattern is a valid f32 and i32, and the
        // crate only builds for little-endian targets, the byte order stored.
        unsafe {
            let scales = std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), padded);
            let sums = std::slice::from_raw_parts(bytes.as_ptr().add(4 * padded).cast::<i32>(), padded);
            (&scales[panel0 * NR..], &sums[panel0 * NR..])
        }
    }

    pub(crate) fn panel_count(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// Returns a pointer to the first value of panel `panel` at input feature
    /// `kk`, which must start a group of [`WeightFormat::k_group`] features.
    ///
    /// # Panics
    /// If the panel or row lies outside the matrix (`kk == k` is allowed), or
    /// `kk` is not a multiple of the format's `k_group`.
    pub(crate) fn panel_ptr(&self, panel: usize, kk: usize) -> *const u8 {
        assert!(panel < self.panel_count() && kk <= self.k, "panel {panel}, row {kk} outside the matrix");
        assert!(kk.is_multiple_of(self.format.k_group()), "row {kk} inside a group of {}", self.format.k_group());
        let at = panel * self.format.panel_bytes(self.k) + kk * NR * self.format.bytes_per_weight();
        // SAFETY: `at` is at most the storage length (the end of the last panel).
        unsafe { self.as_bytes().as_ptr().add(at) }
    }
}
