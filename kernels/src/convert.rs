//! Conversion of stored half-precision values to f32.
//!
//! Inputs are little-endian bytes because memory-mapped checkpoints give no
//! alignment guarantee for 16-bit tensors.

use half::{bf16, f16};

/// Converts little-endian IEEE half-precision values to f32.
///
/// # Panics
/// If `bytes.len() != 2·out.len()`.
pub fn f16_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "f16 conversion of {} bytes into {} values", bytes.len(), out.len());
    for (pair, out) in bytes.chunks_exact(2).zip(out) {
        *out = f16::from_bits(u16::from_le_bytes([pair[0], pair[1]])).to_f32();
    }
}

/// Converts little-endian bfloat16 values to f32.
///
/// # Panics
/// If `bytes.len() != 2·out.len()`.
pub fn bf16_bytes_to_f32(bytes: &[u8], out: &mut [f32]) {
    assert_eq!(bytes.len(), 2 * out.len(), "bf16 conversion of {} bytes into {} values", bytes.len(), out.len());
    for (pair, out) in bytes.chunks_exact(2).zip(out) {
        *out = bf16::from_bits(u16::from_le_bytes([pair[0], pair[1]])).to_f32();
    }
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
