//! The kernel table of every tier.
//!
//! The scalar table points at plain Rust functions. Each SIMD table is made
//! by [`simd_tier!`], which instantiates the generic kernels with the tier's
//! vector type inside `#[target_feature]` functions, so the whole generic
//! body is compiled for that instruction set and nothing else is.

use crate::activation::{self, Elementwise};
use crate::attention::{self, AttentionJob, Task};
use crate::convert::{self, Half};
use crate::isa::Isa;
use crate::matmul::int8::{self, Int8Kernels};
use crate::matmul::{self, MatmulJob, MatmulKernels, Tile};
use crate::{norm, rope, vector};

/// The functions of one tier. Every entry has the same contract in every
/// tier. The entries are `unsafe` because a SIMD entry may only run on a CPU
/// with the tier's features, which `Kernels` guarantees.
pub(crate) struct Table {
    pub isa: Isa,
    pub matmul: MatmulKernels,
    /// The int8 matmul kernel that runs on every CPU of the tier.
    pub matmul_int8: Int8Kernels,
    /// Faster int8 matmul kernels for CPUs of the tier with more features,
    /// fastest first: the first one that is [`Int8Kernels::available`] runs.
    pub matmul_int8_dot: &'static [Int8Kernels],
    /// Normalises one row in place: `(row, gamma, beta, eps)`.
    pub layer_norm: unsafe fn(&mut [f32], &[f32], &[f32], f32),
    /// Softmax of one row in place.
    pub softmax: unsafe fn(&mut [f32]),
    pub erf: unsafe fn(&mut [f32]),
    pub gelu: unsafe fn(&mut [f32]),
    pub silu: unsafe fn(&mut [f32]),
    /// Rotates one head vector in place: `(x, cos, sin)`.
    pub rope: unsafe fn(&mut [f32], &[f32], &[f32]),
    pub dot: unsafe fn(&[f32], &[f32]) -> f32,
    pub l2_normalize: unsafe fn(&mut [f32]),
    pub attention: attention::TaskKernel,
    /// Half-precision bytes to f32: `(format, bytes, out)`.
    pub widen: unsafe fn(Half, &[u8], &mut [f32]),
    /// f32 to half-precision bytes: `(format, values, bytes)`.
    pub narrow: unsafe fn(Half, &[f32], &mut [u8]),
}

pub(crate) static SCALAR: Table = SCALAR_TABLE;

const SCALAR_TABLE: Table = Table {
    isa: Isa::Scalar,
    matmul: matmul::scalar::KERNELS,
    matmul_int8: int8::SCALAR,
    matmul_int8_dot: &[],
    layer_norm: norm::layer_norm_row_scalar,
    softmax: activation::softmax_row_scalar,
    erf: activation::erf_scalar,
    gelu: activation::gelu_in_place,
    silu: activation::silu_in_place,
    rope: rope::rope_row_scalar,
    dot: vector::dot_scalar,
    l2_normalize: vector::l2_normalize_scalar,
    attention: attention::task_scalar,
    widen: convert::widen_scalar,
    narrow: convert::narrow_scalar,
};

/// The scalar table with the scalar twin of the bf16 dot-product tiers:
/// what [`crate::Kernels::scalar_twin`] returns for those tiers.
pub(crate) static SCALAR_BF16_DOT: Table = Table {
    matmul: MatmulKernels { bf16_dot: Some(matmul::bf16::SCALAR_TWIN), ..SCALAR_TABLE.matmul },
    ..SCALAR_TABLE
};

/// The scalar table with the scalar twin of the AMX tier's `tdpbf16ps`.
pub(crate) static SCALAR_AMX: Table =
    Table { matmul: MatmulKernels { bf16_dot: Some(matmul::amx::SCALAR_TWIN), ..SCALAR_TABLE.matmul }, ..SCALAR_TABLE };

/// The scalar table with the scalar twin of `bfdot`, the NEON tier's bf16
/// dot product on CPUs with FEAT_BF16.
pub(crate) static SCALAR_BFDOT: Table = Table {
    matmul: MatmulKernels { bf16_dot: Some(matmul::bfdot::SCALAR_TWIN), ..SCALAR_TABLE.matmul },
    ..SCALAR_TABLE
};

/// The NEON table with `bfdot` for matrices stored as BF16, which runs on
/// CPUs with FEAT_BF16 (see [`matmul::bf16::Bf16DotKernels::available`]).
#[cfg(target_arch = "aarch64")]
static NEON: Table = Table {
    matmul: MatmulKernels { bf16_dot: Some(matmul::bfdot::neon::KERNELS), ..neon::TABLE.matmul },
    ..neon::TABLE
};

/// The AVX-512 table with AMX tiles for matrices stored as BF16 or int8.
#[cfg(target_arch = "x86_64")]
static AMX: Table = Table {
    isa: Isa::Amx,
    matmul: MatmulKernels { bf16_dot: Some(matmul::amx::x86::KERNELS), ..avx512::TABLE.matmul },
    matmul_int8_dot: &[int8::amx::KERNELS, int8::x86::VNNI],
    ..avx512::TABLE
};

/// The AVX-512 table with `vdpbf16ps` for matrices stored as BF16.
#[cfg(target_arch = "x86_64")]
static AVX512_BF16: Table = Table {
    isa: Isa::Avx512Bf16,
    matmul: MatmulKernels { bf16_dot: Some(matmul::bf16::avx512::KERNELS), ..avx512::TABLE.matmul },
    ..avx512::TABLE
};

/// Returns the table of `isa` if this build has one.
pub(crate) fn table(isa: Isa) -> Option<&'static Table> {
    match isa {
        Isa::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(&avx2::TABLE),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(&avx512::TABLE),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Bf16 => Some(&AVX512_BF16),
        #[cfg(target_arch = "x86_64")]
        Isa::Amx => Some(&AMX),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(&NEON),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Defines module `$module` with the kernels of one SIMD tier and its `TABLE`.
///
/// `$token` is the tier's [`crate::simd::Simd`] type, `$features` the
/// `#[target_feature]` list its token vouches for, `MR`, `NP`, `VPP` the
/// matmul register tile (rows, panels, vectors per panel), and `int8`,
/// `int8_dot` the tier's int8 matmul kernels.
macro_rules! simd_tier {
    (
        $module:ident,
        $isa:expr,
        $token:ty,
        $features:literal,
        MR = $mr:literal,
        NP = $np:literal,
        VPP = $vpp:literal,
        int8 = $int8:expr,
        int8_dot = $int8_dot:expr
    ) => {
        pub(crate) mod $module {
            use super::*;

            type Token = $token;

            /// Returns the tier's token.
            ///
            /// # Safety
            /// Only for the functions below: each is compiled with
            /// `$features` and reached only through `TABLE`, which
            /// `Kernels` hands out only when the CPU has those features.
            #[inline(always)]
            unsafe fn token() -> Token {
                // SAFETY: see this function's contract.
                unsafe { Token::new_unchecked() }
            }

            #[target_feature(enable = $features)]
            unsafe fn matmul_tile(job: &MatmulJob<'_>, tile: Tile) {
                // SAFETY: the register tile fits MAX_MR, MAX_NP and NR; the
                // caller reserved the tile's output.
                unsafe { matmul::simd::tile::<Token, $mr, $np, $vpp>(token(), job, tile) }
            }

            #[target_feature(enable = $features)]
            unsafe fn layer_norm(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
                // SAFETY: see `token`.
                norm::layer_norm_row_simd(unsafe { token() }, row, gamma, beta, eps)
            }

            #[target_feature(enable = $features)]
            unsafe fn softmax(row: &mut [f32]) {
                // SAFETY: see `token`.
                activation::softmax_row_simd(unsafe { token() }, row)
            }

            #[target_feature(enable = $features)]
            unsafe fn erf(values: &mut [f32]) {
                // SAFETY: see `token`.
                activation::elementwise_simd(unsafe { token() }, Elementwise::Erf, values)
            }

            #[target_feature(enable = $features)]
            unsafe fn gelu(values: &mut [f32]) {
                // SAFETY: see `token`.
                activation::elementwise_simd(unsafe { token() }, Elementwise::Gelu, values)
            }

            #[target_feature(enable = $features)]
            unsafe fn silu(values: &mut [f32]) {
                // SAFETY: see `token`.
                activation::elementwise_simd(unsafe { token() }, Elementwise::Silu, values)
            }

            #[target_feature(enable = $features)]
            unsafe fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
                // SAFETY: see `token`.
                rope::rope_row_simd(unsafe { token() }, x, cos, sin)
            }

            #[target_feature(enable = $features)]
            unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
                // SAFETY: see `token`.
                vector::dot_simd(unsafe { token() }, a, b)
            }

            #[target_feature(enable = $features)]
            unsafe fn l2_normalize(x: &mut [f32]) {
                // SAFETY: see `token`.
                vector::l2_normalize_simd(unsafe { token() }, x)
            }

            #[target_feature(enable = $features)]
            unsafe fn attention_task(job: &AttentionJob<'_>, task: &Task) {
                // SAFETY: as `matmul_tile`; the caller reserved the task's output.
                unsafe { attention::task_simd::<Token, $mr, $np, $vpp>(token(), job, task) }
            }

            #[target_feature(enable = $features)]
            unsafe fn widen(format: Half, bytes: &[u8], out: &mut [f32]) {
                // SAFETY: see `token`.
                convert::widen_simd(unsafe { token() }, format, bytes, out)
            }

            #[target_feature(enable = $features)]
            unsafe fn narrow(format: Half, values: &[f32], bytes: &mut [u8]) {
                // SAFETY: see `token`.
                convert::narrow_simd(unsafe { token() }, format, values, bytes)
            }

            // A constant, so that other tables can start from it.
            pub(crate) const TABLE: Table = Table {
                isa: $isa,
                matmul: MatmulKernels { tile: matmul_tile, mr: $mr, packs_x: true, bf16_dot: None },
                matmul_int8: $int8,
                matmul_int8_dot: $int8_dot,
                layer_norm,
                softmax,
                erf,
                gelu,
                silu,
                rope,
                dot,
                l2_normalize,
                attention: attention_task,
                widen,
                narrow,
            };
        }
    };
}

// 8 rows × 3 panels = 24 of the 32 zmm registers accumulate, 3 hold weights.
#[cfg(target_arch = "x86_64")]
simd_tier!(
    avx512,
    Isa::Avx512,
    crate::simd::avx512::Avx512,
    "avx512f,avx512bw,avx512vl,avx2,fma,f16c",
    MR = 8,
    NP = 3,
    VPP = 1,
    // AVX-512 has no `vpsignb`, so CPUs without VNNI run the AVX2 int8 kernel.
    int8 = int8::x86::AVX2,
    int8_dot = &[int8::x86::VNNI]
);

// 6 rows × 1 panel (2 ymm) = 12 of the 16 ymm registers accumulate, 2 hold weights.
#[cfg(target_arch = "x86_64")]
simd_tier!(
    avx2,
    Isa::Avx2,
    crate::simd::avx2::Avx2,
    "avx2,fma,f16c",
    MR = 6,
    NP = 1,
    VPP = 2,
    int8 = int8::x86::AVX2,
    int8_dot = &[]
);

// 6 rows × 1 panel (4 q registers) = 24 of the 32 registers accumulate, 4 hold weights.
#[cfg(target_arch = "aarch64")]
simd_tier!(
    neon,
    Isa::Neon,
    crate::simd::neon::Neon,
    "neon",
    MR = 6,
    NP = 1,
    VPP = 4,
    int8 = int8::aarch64::NEON,
    int8_dot = &[int8::aarch64::I8MM, int8::aarch64::DOTPROD]
);
