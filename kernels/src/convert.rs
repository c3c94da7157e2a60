//! Conversion between stored half-precision values and f32.
//!
//! Half-precision data are little-endian bytes because memory-mapped
//! checkpoints give no alignment guarantee for 16-bit tensors. Widening is
//! exact; narrowing rounds to nearest even and keeps NaN a NaN.

use half::{bf16, f16};

use crate::isa::Kernels;
use crate::simd::Simd;

/// Returns the kernels the free functions of this module use: the detected
/// tier, or scalar when `JCLIP_ISA` is invalid (conversions are exact, so
/// every tier gives the same values).
fn default_kernels() -> Kernels {
    Kernels::detect().unwrap_or_else(|_| Kernels::scalar())
}

/// Converts little-endian IEEE half-precision values to f32.
///
/// # Panics
/// If `bytes.len() != 2·out.len()`.
pub fn f16_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    default_kernels().f16_to_f32(bytes, out);
}

/// Converts little-endian bfloat16 values to f32.
///
/// # Panics
/// If `bytes.len() != 2·out.len()`.
pub fn bf16_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    default_kernels().bf16_to_f32(bytes, out);
}

/// Converts little-endian f32 values (of any alignment) to f32.
///
/// # Panics
/// If `bytes.len() != 4·out.len()`.
pub fn f32_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 4 * out.len(), "f32 conversion of {} bytes into {} values", bytes.len(), out.len());
    for (quad, out) in bytes.chunks_exact(4).zip(out) {
        *out = f32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]);
    }
}

/// The half-precision formats.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    F16,
    BF16,
}

impl Half {
    fn widen(self, pair: [u8; 2]) -> f32 {
        match self {
            Half::F16 => f16::from_le_bytes(pair).to_f32(),
            Half::BF16 => bf16::from_le_bytes(pair).to_f32(),
        }
    }

    fn narrow(self, value: f32) -> [u8; 2] {
        match self {
            Half::F16 => f16::from_f32(value).to_le_bytes(),
            Half::BF16 => bf16::from_f32(value).to_le_bytes(),
        }
    }
}

pub(crate) fn widen_scalar(format: Half, bytes: &[u8], out: &mut [f32]) {
    for (pair, out) in bytes.chunks_exact(2).zip(out) {
        *out = format.widen([pair[0], pair[1]]);
    }
}

pub(crate) fn narrow_scalar(format: Half, values: &[f32], bytes: &mut [u8]) {
    for (&value, pair) in values.iter().zip(bytes.chunks_exact_mut(2)) {
        pair.copy_from_slice(&format.narrow(value));
    }
}

/// Widens half-precision bytes to f32, full vectors in SIMD and the tail as
/// [`widen_scalar`].
#[inline(always)]
pub(crate) fn widen_simd<S: Simd>(s: S, format: Half, bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "{} bytes of 16-bit values for {} floats", bytes.len(), out.len());
    let full = out.len() / S::LANES * S::LANES;
    for c in (0..full).step_by(S::LANES) {
        // SAFETY: values c..c + LANES lie inside both slices; the half loads
        // accept any alignment. Bytes are little-endian, as the CPU is.
        unsafe {
            let source = bytes.as_ptr().add(2 * c).cast::<u16>();
            let v = if format == Half::F16 { s.load_f16(source) } else { s.load_bf16(source) };
            s.store(out.as_mut_ptr().add(c), v);
        }
    }
    widen_scalar(format, &bytes[2 * full..], &mut out[full..]);
}

/// Narrows f32 to half-precision bytes, full vectors in SIMD and the tail as [`narrow_scalar`].
#[inline(always)]
pub(crate) fn narrow_simd<S: Simd>(s: S, format: Half, values: &[f32], bytes: &mut [u8]) {
    assert_eq!(bytes.len(), 2 * values.len(), "{} bytes of 16-bit values for {} floats", bytes.len(), values.len());
    let full = values.len() / S::LANES * S::LANES;
    for c in (0..full).step_by(S::LANES) {
        // SAFETY: values c..c + LANES lie inside both slices; the half stores
        // accept any alignment.
        unsafe {
            let v = s.load(values.as_ptr().add(c));
            let target = bytes.as_mut_ptr().add(2 * c).cast::<u16>();
            if format == Half::F16 {
                s.store_f16(target, v);
            } else {
                s.store_bf16(target, v);
            }
        }
    }
    narrow_scalar(format, &values[full..], &mut bytes[2 * full..]);
}

impl Kernels {
    /// Converts little-endian IEEE half-precision values to f32.
    ///
    /// # Panics
    /// If `bytes.len() != 2·out.len()`.
    pub fn f16_to_f32(&self, bytes: &[u8], out: &mut [f32]) {
        assert_eq!(bytes.len(), 2 * out.len(), "f16 conversion of {} bytes into {} values", bytes.len(), out.len());
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        unsafe { (self.table.widen)(Half::F16, bytes, out) }
    }

    /// Converts little-endian bfloat16 values to f32.
    ///
    /// # Panics
    /// If `bytes.len() != 2·out.len()`.
    pub fn bf16_to_f32(&self, bytes: &[u8], out: &mut [f32]) {
        assert_eq!(bytes.len(), 2 * out.len(), "bf16 conversion of {} bytes into {} values", bytes.len(), out.len());
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        unsafe { (self.table.widen)(Half::BF16, bytes, out) }
    }

    /// Converts f32 values to little-endian IEEE half precision, rounding to nearest even.
    ///
    /// # Panics
    /// If `bytes.len() != 2·values.len()`.
    pub fn f32_to_f16(&self, values: &[f32], bytes: &mut [u8]) {
        assert_eq!(
            bytes.len(),
            2 * values.len(),
            "f16 conversion of {} values into {} bytes",
            values.len(),
            bytes.len()
        );
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        unsafe { (self.table.narrow)(Half::F16, values, bytes) }
    }

    /// Converts f32 values to little-endian bfloat16, rounding to nearest even.
    ///
    /// # Panics
    /// If `bytes.len() != 2·values.len()`.
    pub fn f32_to_bf16(&self, values: &[f32], bytes: &mut [u8]) {
        assert_eq!(
            bytes.len(),
            2 * values.len(),
            "bf16 conversion of {} values into {} bytes",
            values.len(),
            bytes.len()
        );
        // SAFETY: `Kernels` exists only for tiers the CPU supports.
        unsafe { (self.table.narrow)(Half::BF16, values, bytes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_known_bit_patterns() {
        let mut out = [0.0f32; 2];
        f16_bytes_to_f32(&[0x00, 0x3c, 0x00, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
        bf16_bytes_to_f32(&[0x80, 0x3f, 0x40, 0x40], &mut out);
        assert_eq!(out, [1.0, 3.0]);
        f32_bytes_to_f32(&[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
    }
}
