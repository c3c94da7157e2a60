//! CPU detection and the kernel table.
//!
//! The best tier is detected once and cached. The `JCLIP_ISA` environment
//! variable forces a lower tier (for tests and bug reports); asking for a
//! tier the CPU lacks is an error, never a silent fallback.

use std::fmt;
use std::sync::OnceLock;

use crate::{attention, matmul, norm, rope, vector};

/// The environment variable that forces a kernel tier, e.g. `JCLIP_ISA=scalar`.
pub const ISA_ENV: &str = "JCLIP_ISA";

/// An instruction-set tier with its own kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, the fallback and the test oracle of every other tier.
    Scalar,
}

impl Isa {
    /// Every tier this build knows, lowest first.
    pub const ALL: &'static [Isa] = &[Isa::Scalar];

    /// Returns the tier's name as accepted by `JCLIP_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
        }
    }

    /// Parses a tier name as accepted by `JCLIP_ISA`.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.iter().copied().find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Reports whether this CPU can run the tier.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
        }
    }

    /// Returns every tier this CPU can run, lowest first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.iter().copied().filter(|isa| isa.is_supported()).collect()
    }

    /// Returns the best tier this CPU can run.
    pub fn best_supported() -> Isa {
        Isa::supported().last().copied().unwrap_or(Isa::Scalar)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a kernel tier could not be selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsaError {
    /// The name is not a tier of this build.
    Unknown { name: String },
    /// The tier exists but this CPU lacks the instructions it needs.
    Unsupported { isa: Isa },
}

impl fmt::Display for IsaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsaError::Unknown { name } => {
                let names: Vec<&str> = Isa::ALL.iter().map(|isa| isa.name()).collect();
                write!(f, "unknown kernel tier {name:?} in {ISA_ENV}; expected one of: {}", names.join(", "))
            }
            IsaError::Unsupported { isa } => {
                let names: Vec<&str> = Isa::supported().iter().map(|isa| isa.name()).collect();
                write!(f, "kernel tier {isa} is not supported by this CPU; supported tiers: {}", names.join(", "))
            }
        }
    }
}

impl std::error::Error for IsaError {}

/// The functions of one tier. Every entry has the same contract in every tier.
pub(crate) struct Table {
    pub isa: Isa,
    pub matmul: matmul::TileKernels,
    pub layer_norm: fn(&mut [f32], &[f32], &[f32], f32),
    pub attention_row: attention::RowKernel,
    pub rope: fn(&mut [f32], &[f32], &[f32]),
    pub dot: fn(&[f32], &[f32]) -> f32,
}

static SCALAR: Table = Table {
    isa: Isa::Scalar,
    matmul: matmul::scalar::KERNELS,
    layer_norm: norm::layer_norm_row_scalar,
    attention_row: attention::attention_row_scalar,
    rope: rope::rope_row_scalar,
    dot: vector::dot_scalar,
};

fn table_for(isa: Isa) -> &'static Table {
    match isa {
        Isa::Scalar => &SCALAR,
    }
}

/// A handle to the kernel table of one tier. Cheap to copy.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub(crate) table: &'static Table,
}

impl fmt::Debug for Kernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernels").field("isa", &self.table.isa).finish()
    }
}

impl Kernels {
    /// Returns the kernels of the best tier, or of the tier forced by
    /// `JCLIP_ISA`. The choice is made once per process.
    pub fn detect() -> Result<Kernels, IsaError> {
        static CHOSEN: OnceLock<Result<Isa, IsaError>> = OnceLock::new();
        let chosen = CHOSEN.get_or_init(|| {
            let isa = match std::env::var(ISA_ENV) {
                Ok(name) if !name.trim().is_empty() => {
                    let isa = Isa::from_name(&name).ok_or(IsaError::Unknown { name })?;
                    if !isa.is_supported() {
                        return Err(IsaError::Unsupported { isa });
                    }
                    isa
                }
                _ => Isa::best_supported(),
            };
            log::debug!("jclip-kernels: using the {isa} tier");
            Ok(isa)
        });
        chosen.clone().map(|isa| Kernels { table: table_for(isa) })
    }

    /// Returns the kernels of one tier, for tests and benchmarks that compare tiers.
    pub fn for_isa(isa: Isa) -> Result<Kernels, IsaError> {
        if !isa.is_supported() {
            return Err(IsaError::Unsupported { isa });
        }
        Ok(Kernels { table: table_for(isa) })
    }

    /// Returns the scalar kernels, which run everywhere.
    pub fn scalar() -> Kernels {
        Kernels { table: &SCALAR }
    }

    /// Returns the tier of these kernels.
    pub fn isa(&self) -> Isa {
        self.table.isa
    }
}
