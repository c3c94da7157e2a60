//! Vector kernels of every tier against the scalar twin and float64 references.

mod common;

use common::*;
use jclip_kernels::Kernels;

/// Dimensions of rows: every tail, and the model's widths.
const DIMS: [usize; 17] = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 768, 3072];

fn assert_within(got: f32, want: f64, tolerance: f64, context: &str) {
    assert!((got as f64 - want).abs() <= tolerance, "{context}: {got}, expected {want} ± {tolerance}");
}

#[test]
fn layer_norm_matches_reference() {
    for kernels in all_tiers() {
        for (index, &dim) in DIMS.iter().enumerate() {
            let rows = 3;
            // Offset values with a large mean test the two-pass variance.
            let x: Vec<f32> = values(rows * dim, index as u64).iter().map(|v| v * 4.0 + 20.0).collect();
            let gamma = values(dim, 50 + index as u64);
            let beta = values(dim, 100 + index as u64);
            let offset = OFFSETS[index % OFFSETS.len()];
            let input = placed(&x, offset);
            let mut out = vec![f32::NAN; offset + x.len() + 1];
            let (gamma_buffer, beta_buffer) = (placed(&gamma, offset), placed(&beta, offset));
            kernels.layer_norm_into(
                &input[offset..offset + x.len()],
                &mut out[offset..offset + x.len()],
                &gamma_buffer[offset..offset + dim],
                &beta_buffer[offset..offset + dim],
                1e-5,
            );
            assert!(out[..offset].iter().all(|v| v.is_nan()) && out[offset + x.len()].is_nan());
            for (r, row) in x.chunks(dim).enumerate() {
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
                let variance = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
                let inverse_std = 1.0 / (variance + 1e-5).sqrt();
                for c in 0..dim {
                    let normalised = (row[c] as f64 - mean) * inverse_std;
                    let want = normalised * gamma[c] as f64 + beta[c] as f64;
                    // The mean and deviations carry ε·|x|/σ of error each.
                    let tolerance = 8.0 * f32::EPSILON as f64 * (1.0 + 24.0 * inverse_std) * (1.0 + normalised.abs());
                    let got = out[offset + r * dim + c];
                    assert_within(got, want, tolerance, &format!("{} LayerNorm dim {dim} [{r}][{c}]", kernels.isa()));
                }
            }
        }
    }
}

#[test]
fn softmax_matches_reference() {
    for kernels in all_tiers() {
        for (index, &dim) in DIMS.iter().enumerate() {
            let x: Vec<f32> = values(2 * dim, 200 + index as u64).iter().map(|v| v * 30.0).collect();
            let offset = OFFSETS[index % OFFSETS.len()];
            let mut buffer = placed(&x, offset);
            kernels.softmax(&mut buffer[offset..offset + x.len()], dim);
            assert!(buffer[..offset].iter().all(|v| v.is_nan()));
            for (r, row) in x.chunks(dim).enumerate() {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let total: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
                for c in 0..dim {
                    let want = (row[c] as f64 - max).exp() / total;
                    // Rounding x − max in f32 moves exp(x − max) by ε·|x − max| relative.
                    let tolerance = f32::EPSILON as f64 * want * (8.0 + (row[c] as f64 - max).abs()) + 1e-30;
                    let got = buffer[offset + r * dim + c];
                    assert_within(got, want, tolerance, &format!("{} softmax dim {dim} [{r}][{c}]", kernels.isa()));
                }
            }
        }
    }
}

/// Applies `f` of `kernels` to `x` at every offset and checks the untouched surroundings.
fn apply_placed(x: &[f32], offset: usize, f: impl Fn(&mut [f32])) -> Vec<f32> {
    let mut buffer = placed(x, offset);
    f(&mut buffer[offset..offset + x.len()]);
    assert!(buffer[..offset].iter().chain(&buffer[offset + x.len()..]).all(|v| v.is_nan()), "wrote outside");
    buffer[offset..offset + x.len()].to_vec()
}

#[test]
fn erf_accurate_on_dense_grid() {
    // Steps of 1e-4 over [−6, 6], plus lengths that end in every tail.
    let grid: Vec<f32> = (-60_000..=60_000).map(|i| i as f32 * 1e-4).collect();
    for kernels in all_tiers() {
        for (index, &len) in [grid.len(), 1, 3, 17, 33].iter().enumerate() {
            let x = &grid[grid.len() - len..];
            let got = apply_placed(x, OFFSETS[index % OFFSETS.len()], |v| kernels.erf(v));
            let mut max_error = 0.0f64;
            for (&value, &input) in got.iter().zip(x) {
                max_error = max_error.max((value as f64 - erf_f64(input as f64)).abs());
            }
            assert!(max_error <= ERF_TOLERANCE, "{} erf error {max_error} over {len} values", kernels.isa());
        }
    }
}

#[test]
fn erf_special_values() {
    for kernels in all_tiers() {
        let mut x = [0.0f32, -0.0, 10.0, -10.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 4.0, -4.0];
        kernels.erf(&mut x);
        assert_eq!(&x[..6], &[0.0, -0.0, 1.0, -1.0, 1.0, -1.0], "{}", kernels.isa());
        assert!(x[6].is_nan(), "{}: erf(NaN) = {}", kernels.isa(), x[6]);
        assert_eq!(x[7..], [1.0, -1.0], "{}", kernels.isa());
    }
}

#[test]
fn gelu_and_silu_match_reference() {
    let x: Vec<f32> = values(4099, 300).iter().map(|v| v * 12.0).collect();
    for kernels in all_tiers() {
        for (index, &len) in [x.len(), 1, 15, 17, 31].iter().enumerate() {
            let input = &x[..len];
            let offset = OFFSETS[index % OFFSETS.len()];
            let gelu = apply_placed(input, offset, |v| kernels.gelu(v));
            let silu = apply_placed(input, offset, |v| kernels.silu(v));
            for ((&v, &g), &s) in input.iter().zip(&gelu).zip(&silu) {
                let v64 = v as f64;
                let want_gelu = 0.5 * v64 * (1.0 + erf_f64(v64 / std::f64::consts::SQRT_2));
                let want_silu = v64 / (1.0 + (-v64).exp());
                let context = format!("{} at {v}", kernels.isa());
                assert_within(g, want_gelu, 1e-6 * v64.abs().max(1.0), &format!("GELU {context}"));
                assert_within(s, want_silu, 4.0 * f32::EPSILON as f64 * v64.abs().max(1.0), &format!("SiLU {context}"));
            }
        }
    }
}

#[test]
fn silu_extremes() {
    for kernels in all_tiers() {
        let mut x = [-200.0f32, -90.0, 90.0, 200.0, f32::INFINITY];
        kernels.silu(&mut x);
        assert_eq!(x[0], 0.0, "{}: SiLU(-200)", kernels.isa());
        assert!(x[1].abs() < 1e-30, "{}: SiLU(-90) = {}", kernels.isa(), x[1]);
        assert_eq!(x[2..], [90.0, 200.0, f32::INFINITY], "{}", kernels.isa());
    }
}

#[test]
fn rope_matches_scalar_twin() {
    let scalar = Kernels::scalar();
    for kernels in simd_tiers() {
        for (index, &head_dim) in [2usize, 4, 6, 8, 14, 16, 18, 32, 34, 64, 66].iter().enumerate() {
            let (tokens, heads) = (5, 3);
            let stride = heads * head_dim + 2 * index + 1;
            let x = values(tokens * stride, 400 + index as u64);
            let angles = values(tokens * head_dim, 450 + index as u64);
            let cos: Vec<f32> = angles.iter().map(|a| (a * 3.0).cos()).collect();
            let sin: Vec<f32> = angles.iter().map(|a| (a * 3.0).sin()).collect();
            let mut expected = x.clone();
            let mut got = x.clone();
            scalar.rope_interleaved(&mut expected, stride, tokens, heads, head_dim, &cos, &sin);
            kernels.rope_interleaved(&mut got, stride, tokens, heads, head_dim, &cos, &sin);
            for (i, (&a, &b)) in got.iter().zip(&expected).enumerate() {
                // Two products of values ≤ 1 and one addition.
                assert_within(
                    a,
                    b as f64,
                    4.0 * f32::EPSILON as f64,
                    &format!("{} rope {head_dim} [{i}]", kernels.isa()),
                );
            }
        }
    }
}

#[test]
fn dot_and_l2_match_reference() {
    for kernels in all_tiers() {
        for (index, &len) in SWEEP.iter().chain(&[255, 256, 257, 768, 1000]).enumerate() {
            let a = values(len, 500 + index as u64);
            let b = values(len, 550 + index as u64);
            let offset = OFFSETS[index % OFFSETS.len()];
            let (pa, pb) = (placed(&a, offset), placed(&b, offset));
            let got = kernels.dot(&pa[offset..offset + len], &pb[offset..offset + len]);
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let magnitude: f64 = a.iter().zip(&b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
            assert_within(got, want, sum_tolerance(len, magnitude), &format!("{} dot of {len}", kernels.isa()));

            let normalised = apply_placed(&a, offset, |v| kernels.l2_normalize(v));
            let norm = a.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt().max(1e-12);
            for (i, (&got, &value)) in normalised.iter().zip(&a).enumerate() {
                let want = value as f64 / norm;
                let tolerance = 4.0 * f32::EPSILON as f64 * want.abs().max(1e-30);
                assert_within(got, want, tolerance, &format!("{} l2 of {len} [{i}]", kernels.isa()));
            }
        }
        let mut zeros = vec![0.0f32; 19];
        kernels.l2_normalize(&mut zeros);
        assert!(zeros.iter().all(|&v| v == 0.0), "{}: zero vector changed", kernels.isa());
    }
}

#[test]
fn f16_conversion_exact_for_every_bit_pattern() {
    let patterns: Vec<u16> = (0..=u16::MAX).collect();
    let bytes: Vec<u8> = patterns.iter().flat_map(|p| p.to_le_bytes()).collect();
    for kernels in all_tiers() {
        // An odd byte offset: 16-bit values at any alignment.
        let mut shifted = vec![0u8; 1];
        shifted.extend_from_slice(&bytes);
        let mut widened = vec![f32::NAN; patterns.len()];
        kernels.f16_to_f32(&shifted[1..], &mut widened);
        for (&bits, &value) in patterns.iter().zip(&widened) {
            let want = half::f16::from_bits(bits).to_f32();
            assert!(
                value.to_bits() == want.to_bits() || (want.is_nan() && value.is_nan()),
                "{} f16 {bits:#06x}: {value}",
                kernels.isa()
            );
        }
        let finite: Vec<f32> = widened.iter().copied().filter(|v| !v.is_nan()).collect();
        let mut narrowed = vec![0u8; 2 * finite.len() + 1];
        kernels.f32_to_f16(&finite, &mut narrowed[1..]);
        for (i, &value) in finite.iter().enumerate() {
            let bits = u16::from_le_bytes([narrowed[1 + 2 * i], narrowed[2 + 2 * i]]);
            assert_eq!(bits, half::f16::from_f32(value).to_bits(), "{} f16 round trip of {value}", kernels.isa());
        }
    }
}

#[test]
fn half_narrowing_rounds_to_nearest_even() {
    // Values between representable halves and bfloat16s, ties, subnormals,
    // overflow and NaN.
    let mut x: Vec<f32> = values(1001, 600).iter().map(|v| v * 70_000.0).collect();
    x.extend([
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
        1.0 + 1.0 / 256.0,
        1.0 + 3.0 / 256.0,
        5.96e-8,
        1e-6,
        65_520.0,
        1e30,
        -1e30,
        f32::from_bits(0x0000_0001),
        f32::from_bits(0x7f7f_ffff),
        f32::INFINITY,
        f32::NAN,
    ]);
    for kernels in all_tiers() {
        let mut f16_bytes = vec![0u8; 2 * x.len()];
        let mut bf16_bytes = vec![0u8; 2 * x.len()];
        kernels.f32_to_f16(&x, &mut f16_bytes);
        kernels.f32_to_bf16(&x, &mut bf16_bytes);
        for (i, &value) in x.iter().enumerate() {
            let f16_bits = u16::from_le_bytes([f16_bytes[2 * i], f16_bytes[2 * i + 1]]);
            let bf16_bits = u16::from_le_bytes([bf16_bytes[2 * i], bf16_bytes[2 * i + 1]]);
            if value.is_nan() {
                assert!(half::f16::from_bits(f16_bits).is_nan(), "{} f16 of NaN: {f16_bits:#06x}", kernels.isa());
                assert!(half::bf16::from_bits(bf16_bits).is_nan(), "{} bf16 of NaN: {bf16_bits:#06x}", kernels.isa());
            } else {
                assert_eq!(f16_bits, half::f16::from_f32(value).to_bits(), "{} f16 of {value:e}", kernels.isa());
                assert_eq!(bf16_bits, half::bf16::from_f32(value).to_bits(), "{} bf16 of {value:e}", kernels.isa());
            }
        }
        let mut widened = vec![f32::NAN; x.len()];
        kernels.bf16_to_f32(&bf16_bytes, &mut widened);
        for (i, &value) in widened.iter().enumerate() {
            let want = half::bf16::from_bits(u16::from_le_bytes([bf16_bytes[2 * i], bf16_bytes[2 * i + 1]])).to_f32();
            assert!(
                value.to_bits() == want.to_bits() || value.is_nan() && want.is_nan(),
                "{} bf16 widening",
                kernels.isa()
            );
        }
    }
}
