//! Weight precisions and which matrices use them.
//!
//! A precision names how the large matrices of the linear layers are stored
//! for the kernels. LayerNorm, softmax, residuals, biases and pooling always
//! run in f32, whatever the precision.

use std::fmt;
use std::str::FromStr;

use jclip_kernels::WeightFormat;

/// Storage precision of the linear layers' weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// 32-bit floats: the reference.
    #[default]
    F32,
    /// IEEE half precision weights, f32 arithmetic.
    F16,
    /// 16-bit weights: bfloat16 in the image tower, with bf16 dot products
    /// and f32 accumulation where the CPU has them; IEEE half in the text
    /// tower (see [`Precision::format_for`]).
    BF16,
    /// Signed 8-bit weights with one scale per output feature. Activations
    /// are quantised per token at run time, and the integer dot products
    /// are summed exactly in i32 (AMX, AVX-512 VNNI, AVX2, NEON `smmla` or `sdot`).
    Int8,
}

impl Precision {
    /// Every precision, in order of decreasing size.
    pub const ALL: &'static [Precision] = &[Precision::F32, Precision::F16, Precision::BF16, Precision::Int8];

    /// Returns the name used on the command line and in converted files.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::BF16 => "bf16",
            Precision::Int8 => "int8",
        }
    }

    /// Parses a name as [`Precision::name`] writes it (`fp32`, `fp16` and `float32` also work).
    pub fn from_name(name: &str) -> Option<Precision> {
        match name.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Some(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Some(Precision::F16),
            "bf16" | "bfloat16" => Some(Precision::BF16),
            "int8" | "i8" => Some(Precision::Int8),
            _ => None,
        }
    }

    /// Returns the packed format of a matrix with role `role` at this precision.
    ///
    /// Measured on the full-size synthetic checkpoint (BENCHMARKS.md,
    /// "Accuracy of each precision"): bf16 weights keep the image embedding
    /// at or above 0.99993 cosine to f32 (on AMX tiles, 0.99995 widened to
    /// f32), but the text embedding falls to 0.99983, below the 0.9999 we
    /// promise. The text tower therefore stores IEEE half weights under
    /// `bf16` (0.999998), which take the same memory.
    pub fn format_for(self, role: MatrixRole) -> WeightFormat {
        match (self, role.tower) {
            (Precision::F32, _) => WeightFormat::F32,
            (Precision::F16, _) | (Precision::BF16, Tower::Text) => WeightFormat::F16,
            (Precision::BF16, Tower::Vision) => WeightFormat::BF16,
            (Precision::Int8, _) => int8_plan(role),
        }
    }
}

/// The format of each matrix under [`Precision::Int8`], chosen by
/// measurement on the full-size synthetic checkpoint (`examples/accuracy.rs`,
/// minimum cosine to f32 over 8 short texts and 8 photos):
///
/// - every matrix int8 except the patch projection: short texts 0.99707,
///   below the 0.998 floor; photos 0.99897;
/// - no single kind of text matrix kept in f16 lifts short texts above
///   0.9978 (query-key-value 0.99776, attention output 0.99758, GEGLU
///   0.99740, feed-forward output 0.99751; the first or last layers less);
/// - the text tower's attention output and feed-forward output in f16:
///   0.99891. They hold 31 % of the text tower's matrix weights;
///   query-key-value and the GEGLU matrices, 69 %, are int8.
/// - the same two in bf16 instead: 0.99874 on the `amx` tier (AMX tiles,
///   activations rounded to bfloat16) and 0.99867 on `avx512` (weights
///   widened to f32). Both clear the floor, and on AMX the two run on
///   `tdpbf16ps` instead of widening to f32: 64-token texts took 0.62 of
///   the time in an A/B run of `jclip bench`. So those two are bf16.
///
/// The patch projection stays in f16: it sees raw pixels and costs 1/80 of
/// the image tower's arithmetic. The image tower is int8 everywhere else.
fn int8_plan(role: MatrixRole) -> WeightFormat {
    match (role.tower, role.kind) {
        (_, MatrixKind::PatchEmbed) => WeightFormat::F16,
        (Tower::Text, MatrixKind::AttentionOut | MatrixKind::Down) => WeightFormat::BF16,
        _ => WeightFormat::Int8,
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Precision, String> {
        Precision::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Precision::ALL.iter().map(|p| p.name()).collect();
            format!("unknown precision {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// The tower a matrix belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tower {
    Text,
    Vision,
}

/// Role of a matrix in its tower, so a precision can keep sensitive ones wider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixRole {
    pub tower: Tower,
    /// Block index, or `None` outside the blocks (the patch projection).
    pub layer: Option<usize>,
    /// Layers in the tower.
    pub layers: usize,
    pub kind: MatrixKind,
}

/// Kinds of matrices in the two towers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixKind {
    /// The image patch projection (the conv as a matrix).
    PatchEmbed,
    /// Query, key and value projections, stacked.
    Qkv,
    /// Attention output projection.
    AttentionOut,
    /// The gated half of GEGLU or SwiGLU.
    Gate,
    /// The value half of GEGLU or SwiGLU.
    Up,
    /// The feed-forward output projection.
    Down,
}
