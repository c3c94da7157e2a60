//! The tiers and CPU features a test run expects are present.
//!
//! `JCLIP_REQUIRE_ISA` (comma-separated tier names, e.g. `avx2,avx512`) and
//! `JCLIP_REQUIRE_FEATURES` (comma-separated names as printed by `jclip
//! info`, e.g. `fp16,dotprod`) make this test fail when the CPU, or the
//! emulated CPU, lacks one of them, so a CI job never skips a tier silently.

use jclip_kernels::{CpuFeatures, Isa, Kernels};

fn required(variable: &str) -> Vec<String> {
    std::env::var(variable)
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn required_tiers_are_supported() {
    let supported: Vec<&str> = Isa::supported().iter().map(|isa| isa.name()).collect();
    for name in required("JCLIP_REQUIRE_ISA") {
        let isa = Isa::from_name(&name).unwrap_or_else(|| panic!("JCLIP_REQUIRE_ISA names unknown tier {name:?}"));
        assert!(isa.is_supported(), "required tier {name} is not supported here; supported: {}", supported.join(", "));
        assert_eq!(Kernels::for_isa(isa).map(|kernels| kernels.isa()), Ok(isa));
    }
}

#[test]
fn required_features_are_detected() {
    let features = CpuFeatures::detect();
    let known: Vec<&str> = features.list().iter().map(|&(name, _)| name).collect();
    for name in required("JCLIP_REQUIRE_FEATURES") {
        assert!(
            known.contains(&name.as_str()),
            "JCLIP_REQUIRE_FEATURES names {name:?}; known here: {}",
            known.join(", ")
        );
        assert!(
            features.names().contains(&name.as_str()),
            "required CPU feature {name} not detected; detected: {}",
            features.names().join(", ")
        );
    }
}

#[test]
fn best_tier_is_supported_and_scalar_always() {
    assert!(Isa::Scalar.is_supported());
    assert!(Isa::best_supported().is_supported());
    assert_eq!(Kernels::scalar().isa(), Isa::Scalar);
    assert_eq!(Isa::from_name(" AVX512 "), Some(Isa::Avx512));
    assert_eq!(Isa::from_name("sse9"), None);
    for isa in Isa::supported() {
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
    }
}

#[test]
fn features_imply_their_tiers() {
    let features = CpuFeatures::detect();
    if cfg!(target_arch = "x86_64") {
        assert_eq!(Isa::Avx2.is_supported(), features.avx2 && features.fma && features.f16c);
        assert_eq!(Isa::Avx512Bf16.is_supported(), Isa::Avx512.is_supported() && features.avx512bf16);
        if Isa::Amx.is_supported() {
            assert!(Isa::Avx512Bf16.is_supported());
            assert!(features.amx_tile);
            assert!(features.amx_bf16);
        }
        assert!(!Isa::Neon.is_supported());
    }
    if cfg!(target_arch = "aarch64") {
        assert!(features.neon);
        assert!(Isa::Neon.is_supported());
        assert!(!Isa::Avx2.is_supported());
        assert!(!Isa::Avx512.is_supported());
        assert!(!Isa::Avx512Bf16.is_supported());
        assert!(!Isa::Amx.is_supported());
    }
}

#[test]
fn opt_in_tier_never_chosen_by_default() {
    assert_eq!(Isa::from_name("avx512bf16"), Some(Isa::Avx512Bf16));
    assert!(Isa::Avx512Bf16.is_opt_in());
    assert!(!Isa::best_supported().is_opt_in());
    for isa in Isa::supported() {
        let kernels = Kernels::for_isa(isa).expect("a supported tier has kernels");
        let bfdot = isa == Isa::Neon && CpuFeatures::detect().bf16;
        assert_eq!(kernels.bf16_dot(), isa == Isa::Avx512Bf16 || isa == Isa::Amx || bfdot, "{isa}");
    }
}
