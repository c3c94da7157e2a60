//! int8 microkernels for x86-64: AVX-512 VNNI and AVX2.

use std::arch::x86_64::*;

use super::{Int8Kernels, Int8Micro, MAX_NP, NR, XLayout, always, dispatch_rows};
use crate::isa::CpuFeatures;
use crate::matmul::{MatmulJob, Tile};
use crate::simd::avx2::Avx2;
use crate::simd::avx512::Avx512;

/// The AVX-512 VNNI kernel: `vpdpbusd` multiplies 4 unsigned bytes of X
/// (`q + 128`) by 4 signed weight bytes and adds the sum to an i32 lane,
/// so one 64-byte weight group is one instruction per row.
///
/// 8 rows × 3 panels = 24 of the 32 zmm registers accumulate, 3 hold weights.
#[derive(Clone, Copy)]
struct Vnni(());

impl Vnni {
    /// # Safety
    /// As [`Int8Micro::run`] with `ROWS` rows.
    #[inline(always)]
    unsafe fn micro<const ROWS: usize>(
        self,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        const NP: usize = 3;
        // SAFETY: the token proves AVX-512F, BW and VNNI; every pointer
        // stays inside the ranges of `Int8Micro::run`'s contract.
        unsafe {
            let mut c = [[_mm512_setzero_si512(); NP]; ROWS];
            for t in 0..groups {
                let mut b = [_mm512_setzero_si512(); NP];
                for p in 0..NP {
                    b[p] = _mm512_loadu_si512(w[p].add(64 * t).cast());
                }
                for i in 0..ROWS {
                    let a = _mm512_set1_epi32(x.add((t * Self::MR + i) * 4).cast::<i32>().read_unaligned());
                    for p in 0..NP {
                        c[i][p] = _mm512_dpbusd_epi32(c[i][p], a, b[p]);
                    }
                }
            }
            for i in 0..ROWS {
                for p in 0..NP {
                    let at = acc.add(i * acc_stride + p * NR);
                    let sum =
                        if accumulate { _mm512_add_epi32(c[i][p], _mm512_loadu_si512(at.cast())) } else { c[i][p] };
                    _mm512_storeu_si512(at.cast(), sum);
                }
            }
        }
    }
}

impl Int8Micro for Vnni {
    const MR: usize = 8;
    const NP: usize = 3;

    #[inline(always)]
    unsafe fn run(
        self,
        rows: usize,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        macro_rules! call {
            ($rows:literal) => {{
                // SAFETY: the caller's contract, with ROWS = rows.
                unsafe { self.micro::<$rows>(x, w, groups, acc, acc_stride, accumulate) }
            }};
        }
        dispatch_rows!(rows, call, [1, 2, 3, 4, 5, 6, 7, 8])
    }
}

/// The AVX2 kernel. `vpmaddubsw` multiplies unsigned by signed bytes and
/// saturates the pair sums to i16, so it gets `|x|` and the weights with
/// the sign of x applied (`vpsignb`): each pair sum is at most
/// 2·127·127 = 32258 in magnitude and never saturates. `vpmaddwd` with ones
/// then adds the pairs into i32 lanes.
///
/// 4 rows × 1 panel (2 ymm) = 8 of the 16 ymm registers accumulate.
#[derive(Clone, Copy)]
struct SignedBytes(());

impl SignedBytes {
    /// # Safety
    /// As [`Int8Micro::run`] with `ROWS` rows.
    #[inline(always)]
    unsafe fn micro<const ROWS: usize>(
        self,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        // SAFETY: the token proves AVX2; every pointer stays inside the
        // ranges of `Int8Micro::run`'s contract.
        unsafe {
            let ones = _mm256_set1_epi16(1);
            let mut c = [[_mm256_setzero_si256(); 2]; ROWS];
            for t in 0..groups {
                let b = [_mm256_loadu_si256(w[0].add(64 * t).cast()), _mm256_loadu_si256(w[0].add(64 * t + 32).cast())];
                for i in 0..ROWS {
                    let a = _mm256_set1_epi32(x.add((t * Self::MR + i) * 4).cast::<i32>().read_unaligned());
                    let magnitude = _mm256_abs_epi8(a);
                    for v in 0..2 {
                        let signed = _mm256_sign_epi8(b[v], a);
                        let pairs = _mm256_maddubs_epi16(magnitude, signed);
                        c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
            for i in 0..ROWS {
                for v in 0..2 {
                    let at = acc.add(i * acc_stride + v * 8);
                    let sum =
                        if accumulate { _mm256_add_epi32(c[i][v], _mm256_loadu_si256(at.cast())) } else { c[i][v] };
                    _mm256_storeu_si256(at.cast(), sum);
                }
            }
        }
    }
}

impl Int8Micro for SignedBytes {
    const MR: usize = 4;
    const NP: usize = 1;

    #[inline(always)]
    unsafe fn run(
        self,
        rows: usize,
        x: *const u8,
        w: &[*const u8; MAX_NP],
        groups: usize,
        acc: *mut i32,
        acc_stride: usize,
        accumulate: bool,
    ) {
        macro_rules! call {
            ($rows:literal) => {{
                // SAFETY: the caller's contract, with ROWS = rows.
                unsafe { self.micro::<$rows>(x, w, groups, acc, acc_stride, accumulate) }
            }};
        }
        dispatch_rows!(rows, call, [1, 2, 3, 4])
    }
}

/// # Safety
/// The CPU must support the AVX-512 tier and VNNI; no other task may write
/// the tile's part of the output meanwhile.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_vnni(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract covers both tokens and the tile.
    unsafe { super::tile(Avx512::new_unchecked(), Vnni(()), job, tile) }
}

/// # Safety
/// The CPU must support the AVX2 tier; no other task may write the tile's
/// part of the output meanwhile.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_avx2(job: &MatmulJob<'_>, tile: Tile) {
    // SAFETY: the caller's contract covers both tokens and the tile.
    unsafe { super::tile(Avx2::new_unchecked(), SignedBytes(()), job, tile) }
}

/// # Safety
/// The CPU must support the AVX-512 tier.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(super) unsafe fn quantize_avx512(
    x: &[f32],
    k: usize,
    unsigned: bool,
    group: &mut [u8],
    scales: &mut [f32],
    row_buffer: &mut [i8],
) {
    super::quantize_group(x, k, unsigned, group, scales, row_buffer);
}

/// # Safety
/// The CPU must support the AVX2 tier.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_avx2(
    x: &[f32],
    k: usize,
    unsigned: bool,
    group: &mut [u8],
    scales: &mut [f32],
    row_buffer: &mut [i8],
) {
    super::quantize_group(x, k, unsigned, group, scales, row_buffer);
}

fn has_vnni(features: &CpuFeatures) -> bool {
    features.avx512vnni
}

pub(crate) const VNNI: Int8Kernels = Int8Kernels {
    tile: tile_vnni,
    mr: Vnni::MR,
    unsigned: true,
    name: "avx512-vnni",
    available: has_vnni,
    layout: XLayout::Grouped,
    quantize: quantize_avx512,
};

pub(crate) const AVX2: Int8Kernels = Int8Kernels {
    tile: tile_avx2,
    mr: SignedBytes::MR,
    unsigned: false,
    name: "avx2",
    available: always,
    layout: XLayout::Grouped,
    quantize: quantize_avx2,
};
