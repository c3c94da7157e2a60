//! The bf16 dot-product tiers and their scalar twin on values chosen to
//! expose rounding, flushing and summation order, and their distance from
//! f32 arithmetic.

mod common;

use common::*;
use jclip_kernels::{CpuFeatures, Epilogue, Isa, Kernels, PackedMatrix, WeightFormat};

/// Returns the tiers with a bf16 dot product and their scalar twins, which
/// emulate the instructions, each with the tier whose instruction it runs.
fn dot_tiers() -> Vec<(Isa, Kernels)> {
    let tiers: Vec<Kernels> = all_tiers().into_iter().filter(Kernels::bf16_dot).collect();
    let twins: Vec<(Isa, Kernels)> = tiers.iter().map(|kernels| (kernels.isa(), kernels.scalar_twin())).collect();
    tiers.into_iter().map(|kernels| (kernels.isa(), kernels)).chain(twins).collect()
}

/// Returns the NEON tier with `bfdot` and its scalar twin, or nothing on
/// CPUs without FEAT_BF16. Fails when `JCLIP_REQUIRE_FEATURES` names bf16
/// and `bfdot` does not run, so a test run meant for it never skips it.
fn bfdot_tiers() -> Vec<(&'static str, Kernels)> {
    let neon = Kernels::for_isa(Isa::Neon).ok().filter(Kernels::bf16_dot);
    if required_features().iter().any(|name| name == "bf16") {
        assert!(neon.is_some(), "bf16 is required, but the neon tier does not run bfdot here");
    }
    neon.into_iter().flat_map(|kernels| [("bfdot", kernels), ("scalar twin of bfdot", kernels.scalar_twin())]).collect()
}

/// Runs `x: [1, k]` times `w: [1, k]` stored as BF16 and returns the one output.
fn dot(kernels: &Kernels, x: &[f32], w: &[f32]) -> f32 {
    let packed = PackedMatrix::from_f32_as(WeightFormat::BF16, w, 1, w.len());
    let mut y = [f32::NAN];
    kernels.linear(x, 1, &packed, Epilogue::default(), &mut y);
    y[0]
}

#[test]
fn scalar_twin_of_dot_tier_emulates_dot() {
    for kernels in all_tiers() {
        assert_eq!(kernels.scalar_twin().bf16_dot(), kernels.bf16_dot(), "{}", kernels.isa());
    }
    assert!(!Kernels::scalar().bf16_dot());
}

#[test]
fn activations_round_to_nearest_even() {
    // bfloat16 keeps 7 fraction bits: 1 + 2⁻⁸ is halfway between 1 and
    // 1 + 2⁻⁷ and rounds to the even 1; 1 + 3·2⁻⁸ rounds up to 1 + 2⁻⁶.
    let cases = [
        (1.0 + 1.0 / 256.0, 1.0),
        (1.0 + 3.0 / 256.0, 1.0 + 1.0 / 64.0),
        (1.0 + 1.0 / 256.0 + 1.0 / 65536.0, 1.0 + 1.0 / 128.0),
        (-3.0, -3.0),
    ];
    for (isa, kernels) in dot_tiers() {
        for (x, expected) in cases {
            assert_eq!(dot(&kernels, &[x], &[1.0]), expected, "{isa} rounds {x}");
        }
    }
}

#[test]
fn subnormals_flush_to_zero() {
    let tiny = 1e-39f32;
    assert!(tiny.is_subnormal());
    for (isa, kernels) in dot_tiers() {
        // A subnormal activation is read as zero.
        assert_eq!(dot(&kernels, &[tiny], &[1e30]), 0.0, "{isa}: subnormal activation");
        // A subnormal weight is read as zero.
        assert_eq!(dot(&kernels, &[1e30], &[tiny]), 0.0, "{isa}: subnormal weight");
        // A product below the smallest normal f32 is flushed.
        assert_eq!(dot(&kernels, &[1e-20], &[1e-20]), 0.0, "{isa}: subnormal product");
        // Normal values still multiply exactly.
        assert_eq!(dot(&kernels, &[0.5], &[0.25]), 0.125, "{isa}: normal product");
    }
}

#[test]
fn second_of_pair_added_first() {
    // After the first pair the sum is 2²⁴. The second pair holds 1 and
    // −2²⁴: adding −2²⁴ first gives 0 + 1 = 1, while adding 1 first gives
    // 2²⁴ (2²⁴ + 1 rounds to even) and then 0.
    let big = 16_777_216.0f32;
    let x = [big, 0.0, 1.0, -big];
    let w = [1.0; 4];
    for (isa, kernels) in dot_tiers().into_iter().filter(|&(isa, _)| isa != Isa::Amx) {
        assert_eq!(dot(&kernels, &x, &w), 1.0, "{isa}");
    }
}

#[test]
fn amx_sums_first_and_second_values_apart() {
    let big = 16_777_216.0f32;
    // Within one instruction the first values of the pairs are summed
    // apart from the second values: 2²⁴ + 1 rounds to 2²⁴ before −2²⁴ is
    // added, so the first case gives 0, and 2²⁴ − 2²⁴ + 1 gives 1.
    let cases: [(&[f32], f32); 2] = [(&[big, 0.0, 1.0, -big], 0.0), (&[big, 1.0, -big, 0.0], 1.0)];
    // One instruction covers 16 pairs. The second adds its sum
    // 1 − 2²⁴ (exact) to the accumulator 2²⁴ of the first.
    let mut two_steps = vec![0.0f32; 34];
    two_steps[0] = big;
    (two_steps[32], two_steps[33]) = (1.0, -big);
    // The two sums of one instruction are added before the accumulator:
    // 2²⁴ + (1 + 1) is exact, while adding each 1 to 2²⁴ would round it away.
    let mut ones = vec![0.0f32; 34];
    ones[0] = big;
    (ones[32], ones[33]) = (1.0, 1.0);
    for (isa, kernels) in dot_tiers().into_iter().filter(|&(isa, _)| isa == Isa::Amx) {
        for (x, expected) in cases {
            assert_eq!(dot(&kernels, x, &[1.0; 4]), expected, "{isa}: {x:?}");
        }
        assert_eq!(dot(&kernels, &two_steps, &[1.0; 34]), 1.0, "{isa}: accumulator across instructions");
        assert_eq!(dot(&kernels, &ones, &[1.0; 34]), big + 2.0, "{isa}: sums added before the accumulator");
    }
}

#[test]
fn neon_runs_bfdot_where_cpu_has_bf16() {
    if let Ok(neon) = Kernels::for_isa(Isa::Neon) {
        assert_eq!(neon.bf16_dot(), CpuFeatures::detect().bf16);
    }
}

#[test]
fn bfdot_rounds_sums_to_odd() {
    let step = f32::EPSILON;
    let (half_step, eighth_step) = (step / 2.0, step / 8.0);
    // 1 + 2⁻²⁴ lies halfway between 1 and 1 + 2⁻²³. The pair's sum rounds to
    // odd, 1 + 2⁻²³; vdpbf16ps and AMX round to nearest even and give 1.
    let cases: [(&[f32], f32); 3] = [
        (&[1.0, half_step], 1.0 + step),
        // 1 − 2⁻²⁶ truncates to 1 − 2⁻²⁴, which is odd.
        (&[1.0, 0.0, -eighth_step, 0.0], 1.0 - half_step),
        // An exact sum stays as it is.
        (&[1.0, 0.5, 0.25, -2.0], -0.25),
    ];
    for (name, kernels) in bfdot_tiers() {
        for (x, expected) in cases {
            let w = vec![1.0; x.len()];
            assert_eq!(dot(&kernels, x, &w), expected, "{name}: {x:?}");
        }
    }
}

#[test]
fn bfdot_special_values_match_twin() {
    // Infinities, NaN, overflowing products, products below the normal
    // range and cancellations: each output must be bitwise the twin's,
    // NaN included (every NaN is the default NaN 0x7fc00000).
    let specials =
        [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 3e38, -3e38, 1e-30, -1e-30, 0.0, -0.0, 1.0, -1.0, 2e-38];
    // Finite values whose sums stay finite: products below the normal
    // range, signed zeros and cancellations.
    let ordinary = [1e-30, -1e-30, 0.0, -0.0, 1.0, -1.0, 2e-38, 3.5, -0.75, 1e-20, -1e-20];
    let (rows, n, k) = (7, 17, specials.len() + 3);
    // Rows from 4 and columns from 8 take only ordinary values, so their outputs are finite.
    let pick = |i: usize, stride: usize, ordinary_from: usize| {
        let set: &[f32] = if i / k >= ordinary_from { &ordinary } else { &specials };
        set[(i * stride + i / k) % set.len()]
    };
    let x: Vec<f32> = (0..rows * k).map(|i| pick(i, 5, 4)).collect();
    let w: Vec<f32> = (0..n * k).map(|i| pick(i, 7, 8)).collect();
    let packed = PackedMatrix::from_f32_as(WeightFormat::BF16, &w, n, k);

    let tiers = bfdot_tiers();
    let Some((_, twin)) = tiers.iter().find(|&&(name, _)| name != "bfdot") else {
        return;
    };
    let mut want = vec![f32::NAN; rows * n];
    twin.linear(&x, rows, &packed, Epilogue::default(), &mut want);
    assert!(want.iter().any(|v| v.is_nan()), "no NaN output: {want:?}");
    assert!(want.iter().any(|v| v.is_finite()), "no finite output: {want:?}");

    for (name, kernels) in &tiers {
        let mut got = vec![0.0f32; rows * n];
        kernels.linear(&x, rows, &packed, Epilogue::default(), &mut got);
        for (i, (&value, &expected)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                value.to_bits(),
                expected.to_bits(),
                "{name} y[{}][{}] = {value}, twin {expected}",
                i / n,
                i % n
            );
        }
    }
}

#[test]
fn dot_within_bf16_rounding_of_f32() {
    // Rounding both operands to bf16 changes each product by at most
    // (2u + u²)·|x·w| with u = 2⁻⁸; the f32 sums add their own rounding.
    let unit = 1.0 / 256.0f64;
    let operand_rounding = 2.0 * unit + unit * unit;
    for kernels in all_tiers().into_iter().filter(Kernels::bf16_dot) {
        for &(rows, n, k) in &[(1, 16, 768), (17, 33, 65), (197, 48, 768), (5, 20, 3072), (3, 7, 1)] {
            let seed = (rows * n + k) as u64;
            let x = values(rows * k, seed);
            let w = values(n * k, seed + 1);
            let f32_weights = PackedMatrix::from_f32(&w, n, k);
            let bf16_weights = PackedMatrix::from_f32_as(WeightFormat::BF16, &w, n, k);
            let mut exact = vec![f32::NAN; rows * n];
            let mut got = vec![f32::NAN; rows * n];
            Kernels::scalar().linear(&x, rows, &f32_weights, Epilogue::default(), &mut exact);
            kernels.linear(&x, rows, &bf16_weights, Epilogue::default(), &mut got);
            for r in 0..rows {
                for c in 0..n {
                    let magnitude: f64 = (0..k).map(|kk| (x[r * k + kk] as f64 * w[c * k + kk] as f64).abs()).sum();
                    let tolerance = operand_rounding * magnitude + 2.0 * sum_tolerance(k, magnitude);
                    let (want, value) = (exact[r * n + c] as f64, got[r * n + c] as f64);
                    assert!(
                        (value - want).abs() <= tolerance,
                        "{} {rows}×{n}×{k} y[{r}][{c}] = {value}, f32 {want} ± {tolerance}",
                        kernels.isa()
                    );
                }
            }
        }
    }
}

#[test]
fn amx_near_vdpbf16ps_twin() {
    // Both round the activations alike and differ only in the order of the
    // f32 sums, so the results stay within twice the rounding of a k-term sum.
    let Ok(amx) = Kernels::for_isa(Isa::Amx) else {
        return;
    };
    let vdpbf16ps_twin = Kernels::for_isa(Isa::Avx512Bf16).expect("the amx tier includes avx512bf16").scalar_twin();
    let sweep = [0, 1, 3, 7, 15, 17, 31, 33, 63, 65, 127, 129];
    let shapes = sweep
        .iter()
        .map(|&rows| (rows, 35, 97))
        .chain(sweep.iter().map(|&n| (33, n, 65)))
        .chain(sweep.iter().chain(&[255, 257, 768, 1031]).map(|&k| (19, 33, k)));
    for (index, (rows, n, k)) in shapes.enumerate() {
        let seed = 2000 + index as u64;
        let x = values(rows * k, seed);
        let w = values(n * k, seed + 1);
        let packed = PackedMatrix::from_f32_as(WeightFormat::BF16, &w, n, k);
        let mut got = vec![f32::NAN; rows * n];
        let mut twin = vec![f32::NAN; rows * n];
        amx.linear(&x, rows, &packed, Epilogue::default(), &mut got);
        vdpbf16ps_twin.linear(&x, rows, &packed, Epilogue::default(), &mut twin);
        for r in 0..rows {
            for c in 0..n {
                let magnitude: f64 = (0..k).map(|kk| (x[r * k + kk] as f64 * packed.get(c, kk) as f64).abs()).sum();
                let tolerance = 2.0 * sum_tolerance(k, magnitude);
                let (value, want) = (got[r * n + c] as f64, twin[r * n + c] as f64);
                assert!(
                    (value - want).abs() <= tolerance,
                    "{rows}×{n}×{k} y[{r}][{c}] = {value}, vdpbf16ps twin {want} ± {tolerance}"
                );
            }
        }
    }
}
