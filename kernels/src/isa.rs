//! CPU detection and the kernel table.
//!
//! The CPU features are detected once and cached, and so is the tier chosen
//! from them. The `JCLIP_ISA` environment variable forces a tier (for tests
//! and bug reports); asking for a tier the CPU lacks is an error, never a
//! silent fallback.

use std::fmt;
use std::sync::OnceLock;

use crate::tiers::Table;

/// The environment variable that forces a kernel tier, e.g. `JCLIP_ISA=scalar`.
pub const ISA_ENV: &str = "JCLIP_ISA";

/// An instruction-set tier with its own kernels.
///
/// A tier fixes the vector width and the f32 kernels. Optional features
/// within a tier (VNNI, dot-product and bf16 instructions) are reported by
/// [`CpuFeatures`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, the fallback and the test oracle of every other tier.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C: 8 f32 lanes.
    Avx2,
    /// x86-64 with AVX-512F, BW and VL (plus AVX2, FMA and F16C): 16 f32 lanes.
    Avx512,
    /// The AVX-512 tier plus AVX-512 BF16: matrices stored as
    /// [`crate::WeightFormat::BF16`] are multiplied with `vdpbf16ps` on
    /// activations rounded to bfloat16; everything else runs as in
    /// [`Isa::Avx512`].
    Avx512Bf16,
    /// The `avx512bf16` tier plus AMX: matrices stored as
    /// [`crate::WeightFormat::BF16`] are multiplied on AMX tiles with
    /// `tdpbf16ps`, on activations rounded to bfloat16, and matrices stored
    /// as [`crate::WeightFormat::Int8`] with `tdpbssd` where the CPU has
    /// AMX-INT8; everything else runs as in [`Isa::Avx512`]. Needs AMX-TILE
    /// and AMX-BF16 in CPUID and the Linux permission to use the tile data
    /// state.
    Amx,
    /// AArch64 Advanced SIMD: 4 f32 lanes.
    Neon,
}

impl Isa {
    /// Every tier this build has kernels for, lowest first.
    #[cfg(target_arch = "x86_64")]
    pub const ALL: &'static [Isa] = &[Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx];
    /// Every tier this build has kernels for, lowest first.
    #[cfg(target_arch = "aarch64")]
    pub const ALL: &'static [Isa] = &[Isa::Scalar, Isa::Neon];
    /// Every tier this build has kernels for, lowest first.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub const ALL: &'static [Isa] = &[Isa::Scalar];

    /// Every tier of every architecture, for parsing names.
    const KNOWN: &'static [Isa] = &[Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx, Isa::Neon];

    /// Returns the tier's name as accepted by `JCLIP_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Amx => "amx",
            Isa::Neon => "neon",
        }
    }

    /// Parses a tier name as accepted by `JCLIP_ISA`, including tiers of
    /// other architectures (which [`Isa::is_supported`] then rejects).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::KNOWN.iter().copied().find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Reports whether this build has the tier's kernels and this CPU can run them.
    pub fn is_supported(self) -> bool {
        let features = CpuFeatures::detect();
        Isa::ALL.contains(&self)
            && match self {
                Isa::Scalar => true,
                Isa::Avx2 => features.avx2 && features.fma && features.f16c,
                Isa::Avx512 => features.has_avx512_tier(),
                Isa::Avx512Bf16 => features.has_avx512_tier() && features.avx512bf16,
                Isa::Amx => {
                    features.has_avx512_tier()
                        && features.avx512bf16
                        && features.amx_tile
                        && features.amx_bf16
                        && amx_permitted()
                }
                Isa::Neon => features.neon,
            }
    }

    /// Returns every tier this CPU can run, lowest first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.iter().copied().filter(|isa| isa.is_supported()).collect()
    }

    /// Returns the best tier this CPU can run, the one chosen when
    /// `JCLIP_ISA` is unset: the highest supported tier except
    /// [`Isa::Avx512Bf16`], which is used only when requested. Where the
    /// CPU and the operating system allow AMX, that is [`Isa::Amx`].
    pub fn best_supported() -> Isa {
        Isa::supported().into_iter().rev().find(|&isa| !isa.is_opt_in()).unwrap_or(Isa::Scalar)
    }

    /// Reports whether the tier runs only when requested by name.
    ///
    /// `avx512bf16` is such a tier, because it was slower than f32 where it
    /// was measured. On the development machine (a KVM guest reporting
    /// CPUID family 6 model 167 with AVX-512 BF16), a loop of independent
    /// `vdpbf16ps` ran one instruction per two cycles, half the arithmetic
    /// rate of 512-bit FMAs. The tier's BF16 matmul ran at 0.6 to 0.7 times
    /// the f32 rate at 64 and 197 rows on one thread (`cargo bench --bench
    /// kernels -- matmul-bf16`).
    ///
    /// `amx` is not opt-in: on the same machine its BF16 matmul ran at 3.0
    /// to 6.8 times the f32 rate of `avx512` from 16 to 512 rows, and at
    /// 1.9 to 2.9 times at one row, on one thread (same command). Its f32
    /// and f16 matmuls are those of `avx512`.
    pub fn is_opt_in(self) -> bool {
        self == Isa::Avx512Bf16
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The CPU features the kernels use now or are meant to use, as detected at
/// run time. Features of the other architecture are always false.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// x86-64 AVX2.
    pub avx2: bool,
    /// x86-64 fused multiply-add (FMA3).
    pub fma: bool,
    /// x86-64 half-precision conversion.
    pub f16c: bool,
    /// x86-64 AVX-512 Foundation.
    pub avx512f: bool,
    /// x86-64 AVX-512 byte and word instructions.
    pub avx512bw: bool,
    /// x86-64 AVX-512 on 128- and 256-bit registers.
    pub avx512vl: bool,
    /// x86-64 AVX-512 int8 dot products (`vpdpbusd`).
    pub avx512vnni: bool,
    /// x86-64 AVX-512 bfloat16 dot products (`vdpbf16ps`).
    pub avx512bf16: bool,
    /// x86-64 AMX tile registers (CPUID leaf 7, EDX bit 24). The operating
    /// system must also permit their use, which [`Isa::Amx`] checks.
    pub amx_tile: bool,
    /// x86-64 AMX bfloat16 tile products (`tdpbf16ps`, CPUID leaf 7, EDX bit 22).
    pub amx_bf16: bool,
    /// x86-64 AMX int8 tile products (`tdpbusd` and relatives, CPUID leaf 7, EDX bit 25).
    pub amx_int8: bool,
    /// AArch64 Advanced SIMD.
    pub neon: bool,
    /// AArch64 half-precision arithmetic (FEAT_FP16).
    pub fp16: bool,
    /// AArch64 int8 dot products (`sdot`, FEAT_DotProd).
    pub dotprod: bool,
    /// AArch64 int8 matrix multiply (`smmla`, FEAT_I8MM).
    pub i8mm: bool,
    /// AArch64 bfloat16 dot products (`bfdot`, FEAT_BF16).
    pub bf16: bool,
}

impl CpuFeatures {
    /// Reports whether the features of the [`Isa::Avx512`] tier are present.
    fn has_avx512_tier(&self) -> bool {
        self.avx512f && self.avx512bw && self.avx512vl && self.avx2 && self.fma && self.f16c
    }

    /// Returns the features of this CPU, detected on the first call.
    pub fn detect() -> CpuFeatures {
        static DETECTED: OnceLock<CpuFeatures> = OnceLock::new();
        *DETECTED.get_or_init(CpuFeatures::detect_uncached)
    }

    #[cfg(target_arch = "x86_64")]
    fn detect_uncached() -> CpuFeatures {
        // Rust's `is_x86_feature_detected!` detects the AMX features only
        // behind an unstable flag, so they are read from CPUID directly.
        let max_leaf = std::arch::x86_64::__cpuid(0).eax;
        let amx_edx = if max_leaf >= 7 { std::arch::x86_64::__cpuid_count(7, 0).edx } else { 0 };
        CpuFeatures {
            avx2: is_x86_feature_detected!("avx2"),
            fma: is_x86_feature_detected!("fma"),
            f16c: is_x86_feature_detected!("f16c"),
            avx512f: is_x86_feature_detected!("avx512f"),
            avx512bw: is_x86_feature_detected!("avx512bw"),
            avx512vl: is_x86_feature_detected!("avx512vl"),
            avx512vnni: is_x86_feature_detected!("avx512vnni"),
            avx512bf16: is_x86_feature_detected!("avx512bf16"),
            amx_tile: amx_edx & (1 << 24) != 0,
            amx_bf16: amx_edx & (1 << 22) != 0,
            amx_int8: amx_edx & (1 << 25) != 0,
            ..CpuFeatures::default()
        }
    }

    #[cfg(target_arch = "aarch64")]
    fn detect_uncached() -> CpuFeatures {
        use std::arch::is_aarch64_feature_detected;
        CpuFeatures {
            neon: is_aarch64_feature_detected!("neon"),
            fp16: is_aarch64_feature_detected!("fp16"),
            dotprod: is_aarch64_feature_detected!("dotprod"),
            i8mm: is_aarch64_feature_detected!("i8mm"),
            bf16: is_aarch64_feature_detected!("bf16"),
            ..CpuFeatures::default()
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn detect_uncached() -> CpuFeatures {
        CpuFeatures::default()
    }

    /// Returns every feature as `(name, detected)`, with the names of Rust's
    /// `is_*_feature_detected!` macros, for the features of this architecture.
    pub fn list(&self) -> Vec<(&'static str, bool)> {
        let x86 = [
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("f16c", self.f16c),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vl", self.avx512vl),
            ("avx512vnni", self.avx512vnni),
            ("avx512bf16", self.avx512bf16),
            ("amx-tile", self.amx_tile),
            ("amx-bf16", self.amx_bf16),
            ("amx-int8", self.amx_int8),
        ];
        let arm = [
            ("neon", self.neon),
            ("fp16", self.fp16),
            ("dotprod", self.dotprod),
            ("i8mm", self.i8mm),
            ("bf16", self.bf16),
        ];
        if cfg!(target_arch = "x86_64") {
            x86.to_vec()
        } else if cfg!(target_arch = "aarch64") {
            arm.to_vec()
        } else {
            Vec::new()
        }
    }

    /// Returns the names of the detected features.
    pub fn names(&self) -> Vec<&'static str> {
        self.list().into_iter().filter(|&(_, detected)| detected).map(|(name, _)| name).collect()
    }
}

/// Requests permission to use the AMX tile data state, once per process,
/// and reports whether it was granted.
///
/// Linux traps the first tile instruction of a process without this
/// permission, and grants it with `arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)` for every thread of the process (the kernel's
/// Documentation/arch/x86/xstate.rst).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_permitted() -> bool {
    static PERMITTED: OnceLock<bool> = OnceLock::new();
    *PERMITTED.get_or_init(|| {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let result: i64;
        // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM only changes which
        // register state the kernel lets this process use and touches no
        // memory. The syscall instruction clobbers rcx and r11, declared here.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => result,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, nomem),
            );
        }
        if result != 0 {
            log::debug!("jclip-kernels: the kernel denied the AMX tile data state (arch_prctl returned {result})");
        }
        result == 0
    })
}

/// Other systems are not known to allow AMX through this code.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_permitted() -> bool {
    false
}

/// Why a kernel tier could not be selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IsaError {
    /// The name is not a tier of any architecture.
    Unknown { name: String },
    /// The tier exists but this build or CPU cannot run it.
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

/// A handle to the kernel table of one tier. Cheap to copy.
///
/// Invariant: a `Kernels` exists only for a tier that [`Isa::is_supported`]
/// accepts, so its table's `unsafe fn` entries may be called.
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
            log::debug!(
                "jclip-kernels: using the {isa} tier; CPU features: {}",
                CpuFeatures::detect().names().join(" ")
            );
            Ok(isa)
        });
        chosen.clone().and_then(Kernels::for_isa)
    }

    /// Returns the kernels of one tier, for tests and benchmarks that compare tiers.
    pub fn for_isa(isa: Isa) -> Result<Kernels, IsaError> {
        if !isa.is_supported() {
            return Err(IsaError::Unsupported { isa });
        }
        let table = crate::tiers::table(isa).ok_or(IsaError::Unsupported { isa })?;
        Ok(Kernels { table })
    }

    /// Returns the scalar kernels, which run everywhere.
    pub fn scalar() -> Kernels {
        Kernels { table: &crate::tiers::SCALAR }
    }

    /// Returns the tier of these kernels.
    pub fn isa(&self) -> Isa {
        self.table.isa
    }

    /// Reports whether these kernels multiply matrices stored as
    /// [`crate::WeightFormat::BF16`] with bf16 dot products, on activations
    /// rounded to bfloat16 (round to nearest even, subnormals to zero): the
    /// `avx512bf16` and `amx` tiers, and the `neon` tier on CPUs with
    /// FEAT_BF16 (`bfdot`). The other tiers and CPUs widen BF16 weights to
    /// f32 and keep the activations in f32.
    pub fn bf16_dot(&self) -> bool {
        self.bf16_dot_kernels().is_some()
    }

    /// Returns the tier's bf16 dot-product matmul if this CPU has its features.
    pub(crate) fn bf16_dot_kernels(&self) -> Option<crate::matmul::bf16::Bf16DotKernels> {
        let features = CpuFeatures::detect();
        self.table.matmul.bf16_dot.filter(|dot| (dot.available)(&features))
    }

    /// Returns scalar kernels that compute what these kernels compute in
    /// plain Rust, for tests: for a bf16 dot-product tier, scalar kernels
    /// whose BF16 matmul emulates the tier's instruction (`vdpbf16ps`,
    /// `tdpbf16ps` or `bfdot`), and the plain scalar kernels otherwise. Their
    /// [`Kernels::isa`] is [`Isa::Scalar`].
    pub fn scalar_twin(&self) -> Kernels {
        if self.table.isa == Isa::Amx {
            Kernels { table: &crate::tiers::SCALAR_AMX }
        } else if self.table.isa == Isa::Neon && self.bf16_dot() {
            Kernels { table: &crate::tiers::SCALAR_BFDOT }
        } else if self.bf16_dot() {
            Kernels { table: &crate::tiers::SCALAR_BF16_DOT }
        } else {
            Kernels::scalar()
        }
    }
}
