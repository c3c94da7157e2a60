//! libjpeg-turbo's accurate integer inverse DCT (`jpeg_idct_islow` in `jidctint.c`, the
//! default `JDCT_ISLOW` method that Pillow uses), reproduced operation for operation.
//!
//! It is the Loeffler-Ligtenberg-Moschytz algorithm with 13-bit fixed-point constants: a
//! column pass that keeps [`PASS1_BITS`] extra bits, then a row pass that descales by
//! `CONST_BITS + PASS1_BITS + 3` bits and maps the result to a sample through libjpeg's
//! wrapping range-limit table.

/// Fraction bits of the multiplier constants.
const CONST_BITS: u32 = 13;
/// Extra precision bits kept between the two passes.
const PASS1_BITS: u32 = 2;

/// `FIX(x)` = `round(x * 2^13)` for the constants of `jidctint.c`.
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

/// Shifts right by `n` bits after adding one half, as libjpeg's `DESCALE`, and truncates to
/// 32 bits like its `(int)` cast.
fn descale(x: i64, n: u32) -> i32 {
    ((x + (1 << (n - 1))) >> n) as i32
}

/// Maps a descaled IDCT output to a sample like libjpeg's `IDCT_range_limit` table: the value
/// is centred by 128 and clamped, with the table's 10-bit wrap-around for values far outside
/// -512..=511 (which only corrupt data produces).
fn range_limit(x: i32) -> u8 {
    let index = x & 0x3FF;
    match index {
        0..=127 => (index + 128) as u8,
        128..=511 => 255,
        512..=895 => 0,
        _ => (index - 896) as u8,
    }
}

/// The even and odd halves shared by both passes; `input(i)` returns coefficient row or
/// column `i`, already dequantised. Returns the eight outputs before descaling. libjpeg
/// computes this in `JLONG`, which is 64 bits on the platforms Pillow ships for.
fn butterfly(input: impl Fn(usize) -> i64) -> [i64; 8] {
    // Even part: the rotator is sqrt(2) * c(-6).
    let (z2, z3) = (input(2), input(6));
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (input(0) + input(4)) << CONST_BITS;
    let tmp1 = (input(0) - input(4)) << CONST_BITS;
    let tmp10 = tmp0 + tmp3;
    let tmp13 = tmp0 - tmp3;
    let tmp11 = tmp1 + tmp2;
    let tmp12 = tmp1 - tmp2;

    // Odd part; i0..i3 are y7, y5, y3, y1.
    let (mut tmp0, mut tmp1, mut tmp2, mut tmp3) = (input(7), input(5), input(3), input(1));
    let z1 = tmp0 + tmp3;
    let z2 = tmp1 + tmp2;
    let z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    let z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    let z1 = z1 * -FIX_0_899976223;
    let z2 = z2 * -FIX_2_562915447;
    let z3 = z3 * -FIX_1_961570560 + z5;
    let z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;

    [tmp10 + tmp3, tmp11 + tmp2, tmp12 + tmp1, tmp13 + tmp0, tmp13 - tmp0, tmp12 - tmp1, tmp11 - tmp2, tmp10 - tmp3]
}

/// Dequantises and inverse-transforms one block of coefficients in natural (row-major) order
/// and writes 8 rows of 8 samples to `output` with row stride `stride`.
///
/// `quant` is the quantisation table as libjpeg stores it for this method, cast to
/// 16-bit signed integers (`ISLOW_MULT_TYPE`).
pub(super) fn idct_islow(coefficients: &[i16; 64], quant: &[i16; 64], output: &mut [u8], stride: usize) {
    let mut workspace = [0_i32; 64];

    // Pass 1: columns from the input into the workspace, keeping PASS1_BITS extra bits.
    for column in 0..8 {
        // DEQUANTIZE multiplies two 16-bit values in C `int`, which cannot overflow.
        let input = |row: usize| {
            let i = row * 8 + column;
            i64::from(i32::from(coefficients[i]) * i32::from(quant[i]))
        };
        // A column whose AC terms are all zero is its DC term, scaled (the general formula
        // gives the same value).
        if (1..8).all(|row| coefficients[row * 8 + column] == 0) {
            let dc = (input(0) << PASS1_BITS) as i32;
            for row in 0..8 {
                workspace[row * 8 + column] = dc;
            }
            continue;
        }
        let out = butterfly(input);
        for (row, value) in out.iter().enumerate() {
            workspace[row * 8 + column] = descale(*value, CONST_BITS - PASS1_BITS);
        }
    }

    // Pass 2: rows from the workspace to samples, removing the PASS1_BITS and the factor 8.
    for row in 0..8 {
        let ws = &workspace[row * 8..row * 8 + 8];
        let out_row = &mut output[row * stride..row * stride + 8];
        if ws[1..].iter().all(|&v| v == 0) {
            let dc = range_limit(descale(i64::from(ws[0]), PASS1_BITS + 3));
            out_row.fill(dc);
            continue;
        }
        let out = butterfly(|i| i64::from(ws[i]));
        for (sample, value) in out_row.iter_mut().zip(out) {
            *sample = range_limit(descale(value, CONST_BITS + PASS1_BITS + 3));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_limit_centres_clamps_and_wraps() {
        assert_eq!(range_limit(0), 128);
        assert_eq!(range_limit(-128), 0);
        assert_eq!(range_limit(127), 255);
        assert_eq!(range_limit(300), 255);
        assert_eq!(range_limit(-300), 0);
        // libjpeg's table only covers -512..=511 and wraps outside it.
        assert_eq!(range_limit(1024), 128);
    }

    #[test]
    fn dc_only_block_is_flat() {
        // DC 80 with quantiser 2: 160 / 8 = 20 above the 128 centre.
        let mut coefficients = [0_i16; 64];
        coefficients[0] = 80;
        let quant = [2_i16; 64];
        let mut output = [0_u8; 64];
        idct_islow(&coefficients, &quant, &mut output, 8);
        assert!(output.iter().all(|&v| v == 148), "{output:?}");
    }
}
