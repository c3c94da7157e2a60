//! int8 matmul of every tier against the scalar twin, an exact integer
//! reference and the f32 product; the int8 packed layout and the quantiser.

// Index loops over several arrays with one index read clearer in numeric code.
#![allow(clippy::needless_range_loop)]

mod common;

use std::sync::Arc;

use common::*;
use jclip_kernels::{
    Activation, CpuFeatures, Epilogue, INT8_MAX_K, Isa, Kernels, PACKED_ALIGN, PackedMatrix, WeightFormat, quantize_row,
};

/// Reduction lengths and row counts of the sweeps: 0, 1, primes, and the
/// tails of 4-byte groups, register tiles and 16-lane panels.
const SIZES: [usize; 12] = [0, 1, 3, 7, 15, 17, 31, 33, 63, 65, 127, 129];

/// One linear call to check.
#[derive(Clone, Copy, Debug)]
struct Case {
    rows: usize,
    n: usize,
    k: usize,
    bias: bool,
    activation: Activation,
    residual: bool,
    offset: usize,
}

impl Case {
    fn plain(rows: usize, n: usize, k: usize) -> Case {
        Case { rows, n, k, bias: false, activation: Activation::Identity, residual: false, offset: 0 }
    }
}

/// Inputs of a case: x, W, bias, residual.
struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    residual: Vec<f32>,
}

fn inputs(case: &Case, seed: u64) -> Inputs {
    Inputs {
        x: values(case.rows * case.k, seed),
        w: values(case.n * case.k, seed + 1),
        bias: values(case.n, seed + 2),
        residual: values(case.rows * case.n, seed + 3),
    }
}

/// Runs `linear` with every input and the output at `case.offset` inside
/// NaN-filled buffers, checks that nothing outside the output changed, and
/// returns the output.
fn run_linear(kernels: &Kernels, case: &Case, inputs: &Inputs, packed: &PackedMatrix) -> Vec<f32> {
    let offset = case.offset;
    let x = placed(&inputs.x, offset);
    let bias = placed(&inputs.bias, offset);
    let residual = placed(&inputs.residual, offset);
    let len = case.rows * case.n;
    let mut y = vec![f32::NAN; offset + len + 5];
    let epilogue = Epilogue {
        bias: case.bias.then(|| &bias[offset..offset + case.n]),
        activation: case.activation,
        residual: case.residual.then(|| &residual[offset..offset + len]),
    };
    kernels.linear(&x[offset..offset + inputs.x.len()], case.rows, packed, epilogue, &mut y[offset..offset + len]);
    assert!(y[..offset].iter().chain(&y[offset + len..]).all(|v| v.is_nan()), "{case:?}: wrote outside the output");
    y[offset..offset + len].to_vec()
}

/// Returns the result of an identity-activation case computed from the
/// quantised integers exactly as the kernels specify it:
/// `(Σ qx·qw) as f32 · (x_scale · w_scale) + bias + residual`.
fn exact_identity(case: &Case, inputs: &Inputs, packed: &PackedMatrix) -> Vec<f32> {
    let (rows, n, k) = (case.rows, case.n, case.k);
    let mut result = Vec::with_capacity(rows * n);
    let mut quantized = vec![0i8; k];
    for r in 0..rows {
        let x_scale = quantize_row(&inputs.x[r * k..(r + 1) * k], &mut quantized);
        for c in 0..n {
            let sum: i32 = (0..k).map(|kk| i32::from(quantized[kk]) * i32::from(packed.get_quantized(c, kk))).sum();
            let mut value = sum as f32 * (x_scale * packed.int8_scales()[c]);
            if case.bias {
                value += inputs.bias[c];
            }
            if case.residual {
                value += inputs.residual[r * n + c];
            }
            result.push(value);
        }
    }
    result
}

/// Returns the f64 product of the unquantised inputs, with the worst-case
/// error of the int8 result: each x is within x_scale/2 of its quantised
/// value and each weight within w_scale/2, plus f32 rounding.
fn float_reference(case: &Case, inputs: &Inputs, packed: &PackedMatrix) -> Vec<(f64, f64)> {
    let (rows, n, k) = (case.rows, case.n, case.k);
    let mut quantized = vec![0i8; k];
    let mut result = Vec::with_capacity(rows * n);
    for r in 0..rows {
        let x = &inputs.x[r * k..(r + 1) * k];
        let x_scale = quantize_row(x, &mut quantized) as f64;
        for c in 0..n {
            let w_scale = packed.int8_scales()[c] as f64;
            let (mut sum, mut error, mut magnitude) = (0.0f64, 0.0f64, 0.0f64);
            for kk in 0..k {
                let (xv, wv) = (x[kk] as f64, inputs.w[c * k + kk] as f64);
                sum += xv * wv;
                magnitude += (xv * wv).abs();
                error += xv.abs() * w_scale / 2.0 + wv.abs() * x_scale / 2.0 + x_scale * w_scale / 4.0;
            }
            let mut tolerance = error + sum_tolerance(k, magnitude + error);
            if case.bias {
                sum += inputs.bias[c] as f64;
                tolerance += f32::EPSILON as f64 * sum.abs();
            }
            if case.residual {
                sum += inputs.residual[r * n + c] as f64;
                tolerance += f32::EPSILON as f64 * sum.abs();
            }
            result.push((sum, tolerance));
        }
    }
    result
}

/// Checks every tier on an identity-activation case: bitwise against the
/// exact integer result, and against the f32 product within the
/// quantisation error.
fn check_identity_case(case: Case, seed: u64) {
    let inputs = inputs(&case, seed);
    let packed = PackedMatrix::from_f32_as(WeightFormat::Int8, &inputs.w, case.n, case.k);
    let exact = exact_identity(&case, &inputs, &packed);
    let reference = float_reference(&case, &inputs, &packed);
    for kernels in all_tiers() {
        let got = run_linear(&kernels, &case, &inputs, &packed);
        let name = kernels.int8_kernel_name();
        for (i, &value) in got.iter().enumerate() {
            let (row, col) = (i / case.n, i % case.n);
            assert_eq!(
                value.to_bits(),
                exact[i].to_bits(),
                "{name} {case:?} y[{row}][{col}] = {value}, exact integer result {}",
                exact[i]
            );
            let (want, tolerance) = reference[i];
            assert!(
                (value as f64 - want).abs() <= tolerance,
                "{name} {case:?} y[{row}][{col}] = {value}, f32 product {want} ± {tolerance}"
            );
        }
    }
}

#[test]
fn int8_sweeps_rows() {
    for (index, &rows) in SIZES.iter().chain(&[8, 9, 16, 24, 25]).enumerate() {
        let case = Case { offset: OFFSETS[index % OFFSETS.len()], ..Case::plain(rows, 33, 65) };
        check_identity_case(case, index as u64);
    }
}

#[test]
fn int8_sweeps_outputs() {
    for (index, &n) in SIZES.iter().chain(&[16, 47, 48, 49, 64]).enumerate() {
        let case = Case { offset: OFFSETS[index % OFFSETS.len()], ..Case::plain(17, n, 63) };
        check_identity_case(case, 100 + index as u64);
    }
}

#[test]
fn int8_sweeps_reduction() {
    for (index, &k) in SIZES.iter().chain(&[2, 4, 5, 1023, 1024, 1025, 2100]).enumerate() {
        let case = Case { offset: OFFSETS[index % OFFSETS.len()], ..Case::plain(9, 35, k) };
        check_identity_case(case, 200 + index as u64);
    }
}

#[test]
fn int8_sweeps_all_dimensions() {
    let mut index = 0;
    for &rows in &[1, 7, 17, 65] {
        for &n in &[1, 15, 33, 129] {
            for &k in &[3, 31, 127] {
                let case = Case {
                    bias: index % 2 == 0,
                    residual: index % 3 == 0,
                    offset: OFFSETS[index % OFFSETS.len()],
                    ..Case::plain(rows, n, k)
                };
                check_identity_case(case, 300 + index as u64);
                index += 1;
            }
        }
    }
}

#[test]
fn int8_model_sized_shapes() {
    // One image through a 768 → 768 layer, and a row count that spans
    // several tiles with k spanning several reduction blocks.
    check_identity_case(Case { bias: true, residual: true, ..Case::plain(197, 64, 768) }, 400);
    check_identity_case(Case { bias: true, ..Case::plain(130, 40, 2500) }, 401);
}

#[test]
fn int8_activations_match_scalar() {
    let activations = [Activation::Gelu, Activation::Silu];
    for (index, &(rows, n, k)) in [(1, 7, 3), (17, 33, 65), (31, 65, 300), (8, 48, 256), (65, 17, 0)].iter().enumerate()
    {
        for (a, &activation) in activations.iter().enumerate() {
            for residual in [false, true] {
                let case = Case {
                    bias: true,
                    activation,
                    residual,
                    offset: OFFSETS[(index + a) % OFFSETS.len()],
                    ..Case::plain(rows, n, k)
                };
                let inputs = inputs(&case, 500 + index as u64);
                let packed = PackedMatrix::from_f32_as(WeightFormat::Int8, &inputs.w, n, k);
                // The sum before the activation is bitwise the same on every
                // tier, so only the activation's own error remains.
                let identity = Case { activation: Activation::Identity, residual: false, ..case };
                let sums = run_linear(&Kernels::scalar(), &identity, &inputs, &packed);
                let scalar = run_linear(&Kernels::scalar(), &case, &inputs, &packed);
                for kernels in all_tiers() {
                    let got = run_linear(&kernels, &case, &inputs, &packed);
                    for i in 0..got.len() {
                        let residual_value = if residual { inputs.residual[i].abs() as f64 } else { 0.0 };
                        let tolerance =
                            2e-6 * (sums[i].abs() as f64).max(1.0) + 2.0 * f32::EPSILON as f64 * residual_value;
                        assert!(
                            (got[i] as f64 - scalar[i] as f64).abs() <= tolerance,
                            "{} {case:?} y[{}] = {}, scalar twin {} ± {tolerance}",
                            kernels.int8_kernel_name(),
                            i,
                            got[i],
                            scalar[i]
                        );
                    }
                }
            }
        }
    }
}

/// Runs `linear_gated` at `offset` inside NaN-filled buffers.
#[allow(clippy::too_many_arguments)]
fn run_gated(
    kernels: &Kernels,
    x: &[f32],
    rows: usize,
    gate: &PackedMatrix,
    value: &PackedMatrix,
    biases: (&[f32], &[f32]),
    activation: Activation,
    offset: usize,
) -> Vec<f32> {
    let len = rows * gate.n();
    let x = placed(x, offset);
    let mut y = vec![f32::NAN; offset + len + 2];
    let input = &x[offset..offset + rows * gate.k()];
    let output = &mut y[offset..offset + len];
    kernels.linear_gated(input, rows, gate, Some(biases.0), value, Some(biases.1), activation, output);
    assert!(y[..offset].iter().chain(&y[offset + len..]).all(|v| v.is_nan()), "wrote outside the output");
    y[offset..offset + len].to_vec()
}

#[test]
fn int8_gated_matches_halves() {
    let shapes = [(1, 1, 1), (3, 17, 7), (17, 33, 65), (65, 16, 300), (7, 65, 0), (129, 31, 33), (20, 50, 1100)];
    for (index, &(rows, n, k)) in shapes.iter().enumerate() {
        for activation in [Activation::Gelu, Activation::Silu] {
            let seed = 600 + index as u64;
            let x = values(rows * k, seed);
            let gate = PackedMatrix::from_f32_as(WeightFormat::Int8, &values(n * k, seed + 1), n, k);
            let value = PackedMatrix::from_f32_as(WeightFormat::Int8, &values(n * k, seed + 2), n, k);
            let (gate_bias, value_bias) = (values(n, seed + 3), values(n, seed + 4));
            let offset = OFFSETS[index % OFFSETS.len()];
            let biases = (&gate_bias[..], &value_bias[..]);
            for kernels in all_tiers() {
                let name = kernels.int8_kernel_name();
                // The two halves as separate linear calls, bitwise the same sums.
                let mut gate_out = vec![f32::NAN; rows * n];
                let mut value_out = vec![f32::NAN; rows * n];
                let gate_epilogue = Epilogue { bias: Some(&gate_bias), activation, residual: None };
                kernels.linear(&x, rows, &gate, gate_epilogue, &mut gate_out);
                kernels.linear(&x, rows, &value, Epilogue::bias(Some(&value_bias)), &mut value_out);
                let got = run_gated(&kernels, &x, rows, &gate, &value, biases, activation, offset);
                for i in 0..rows * n {
                    let want = gate_out[i] * value_out[i];
                    assert_eq!(
                        got[i].to_bits(),
                        want.to_bits(),
                        "{name} gated {rows}×{n}×{k} y[{i}] = {}, product of the halves {want}",
                        got[i]
                    );
                }
                let scalar = run_gated(&Kernels::scalar(), &x, rows, &gate, &value, biases, activation, offset);
                for i in 0..rows * n {
                    let tolerance = 4e-6 * (value_out[i].abs() as f64).max(1.0) * (gate_out[i].abs() as f64).max(1.0);
                    assert!(
                        (got[i] as f64 - scalar[i] as f64).abs() <= tolerance,
                        "{name} gated {rows}×{n}×{k} y[{i}] = {}, scalar twin {}",
                        got[i],
                        scalar[i]
                    );
                }
            }
        }
    }
}

#[test]
fn int8_independent_of_threads_and_batch() {
    // k spans several reduction blocks; rows and panels span several tiles.
    let (rows, n, k) = (300, 70, 2100);
    let x = values(rows * k, 700);
    let bias = values(n, 703);
    let residual = values(rows * n, 704);
    let packed = PackedMatrix::from_f32_as(WeightFormat::Int8, &values(n * k, 701), n, k);
    let value = PackedMatrix::from_f32_as(WeightFormat::Int8, &values(n * k, 702), n, k);
    let epilogue = Epilogue { bias: Some(&bias), activation: Activation::Gelu, residual: Some(&residual) };
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    for kernels in all_tiers() {
        let name = kernels.int8_kernel_name();
        let run = |threads: usize| {
            let mut linear = vec![f32::NAN; rows * n];
            let mut gated = vec![f32::NAN; rows * n];
            pool(threads).install(|| {
                kernels.linear(&x, rows, &packed, epilogue, &mut linear);
                kernels.linear_gated(&x, rows, &packed, Some(&bias), &value, None, Activation::Silu, &mut gated);
            });
            (linear, gated)
        };
        let (linear, gated) = run(1);
        for threads in [2, 3] {
            let (other_linear, other_gated) = run(threads);
            assert!(same(&linear, &other_linear), "{name}: linear differs on {threads} threads");
            assert!(same(&gated, &other_gated), "{name}: gated differs on {threads} threads");
        }
        for row in [0, 1, 5, 8, 64, 95, 96, 97, 202, 255, 256, 257, 299] {
            let mut alone = vec![f32::NAN; n];
            let single_epilogue = Epilogue { residual: Some(&residual[row * n..(row + 1) * n]), ..epilogue };
            kernels.linear(&x[row * k..(row + 1) * k], 1, &packed, single_epilogue, &mut alone);
            assert!(same(&alone, &linear[row * n..(row + 1) * n]), "{name}: row {row} alone differs from the batch");
        }
    }
}

#[test]
fn int8_layout_matches_documentation() {
    let (n, k) = (37, 11);
    let w = values(n * k, 800);
    let packed = PackedMatrix::from_f32_as(WeightFormat::Int8, &w, n, k);
    let panels = n.div_ceil(16);
    let panel_bytes = k.div_ceil(4) * 64;
    assert_eq!(WeightFormat::Int8.k_group(), 4);
    assert_eq!(WeightFormat::Int8.panel_bytes(k), panel_bytes);
    assert_eq!(WeightFormat::Int8.packed_bytes(n, k), panels * (panel_bytes + 16 * 8));
    assert_eq!(packed.storage_bytes(), WeightFormat::Int8.packed_bytes(n, k));

    let bytes = packed.as_bytes();
    let trailer = panels * panel_bytes;
    assert!(trailer.is_multiple_of(PACKED_ALIGN), "trailer starts at byte {trailer}");
    let mut quantized = vec![0i8; k];
    for row in 0..panels * 16 {
        let (scale, sum) = if row < n {
            let scale = quantize_row(&w[row * k..(row + 1) * k], &mut quantized);
            (scale, quantized.iter().map(|&q| i32::from(q)).sum::<i32>())
        } else {
            quantized.fill(0);
            (0.0, 0)
        };
        for col in 0..k.next_multiple_of(4) {
            let at = (row / 16) * panel_bytes + (col / 4) * 64 + (row % 16) * 4 + col % 4;
            let want = if col < k { quantized[col] } else { 0 };
            assert_eq!(bytes[at] as i8, want, "q[{row}][{col}] at byte {at}");
        }

        let scale_at = trailer + 4 * row;
        assert_eq!(bytes[scale_at..scale_at + 4], scale.to_le_bytes(), "scale of row {row}");
        let sum_at = trailer + 4 * (panels * 16 + row);
        assert_eq!(bytes[sum_at..sum_at + 4], sum.to_le_bytes(), "row sum of row {row}");
        if row < n {
            for col in 0..k {
                assert_eq!(packed.get(row, col), f32::from(quantized[col]) * scale, "W[{row}][{col}]");
            }
        }
    }
}

/// `bytes` copied into an allocation at `shift` bytes past a 64-byte boundary.
fn shared_at(bytes: &[u8], shift: usize) -> (Arc<Vec<u8>>, usize) {
    let mut storage = vec![0u8; bytes.len() + 2 * PACKED_ALIGN];
    let start = storage.as_ptr().align_offset(PACKED_ALIGN) + shift;
    storage[start..start + bytes.len()].copy_from_slice(bytes);
    (Arc::new(storage), start)
}

#[test]
fn int8_shared_storage_round_trips() {
    let (rows, n, k) = (5, 40, 33);
    let x = values(rows * k, 900);
    let owned = PackedMatrix::from_f32_as(WeightFormat::Int8, &values(n * k, 901), n, k);
    for shift in [0, 1, 2, 4] {
        let (storage, offset) = shared_at(owned.as_bytes(), shift);
        let shared = PackedMatrix::from_shared(storage, offset, WeightFormat::Int8, n, k).expect("in bounds");
        assert_eq!(shared.is_shared(), shift == 0, "shifted by {shift} bytes");
        assert_eq!(shared.as_bytes(), owned.as_bytes());
        assert_eq!(shared.int8_scales(), owned.int8_scales());
        assert_eq!(shared.int8_row_sums(), owned.int8_row_sums());
        for kernels in all_tiers() {
            let mut expected = vec![f32::NAN; rows * n];
            let mut got = vec![f32::NAN; rows * n];
            kernels.linear(&x, rows, &owned, Epilogue::default(), &mut expected);
            kernels.linear(&x, rows, &shared, Epilogue::default(), &mut got);
            assert!(
                expected.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{} shifted by {shift}",
                kernels.int8_kernel_name()
            );
        }
    }
}

#[test]
fn quantizer_handles_extreme_rows() {
    let mut q = [0i8; 5];
    assert_eq!(quantize_row(&[0.0, -0.0, 0.0, 0.0, 0.0], &mut q), 0.0);
    assert_eq!(q, [0; 5]);

    let scale = quantize_row(&[f32::MAX, -f32::MAX, 1e30, 0.0, -3e38], &mut q);
    assert_eq!(scale, f32::MAX / 127.0);
    assert_eq!(q, [127, -127, 0, 0, -112]);

    // Every value far below the smallest scale: scale 0 and zeros, not NaN.
    assert_eq!(quantize_row(&[1e-44, -1e-44, 0.0, 0.0, 0.0], &mut q), 0.0);
    assert_eq!(q, [0; 5]);

    let scale = quantize_row(&[1.0, -0.5, 0.25, 1.0 / 254.0, 3.0 / 254.0], &mut q);
    assert_eq!(scale, 1.0 / 127.0);
    // 0.5·127 = 63.5 and 1.5 round to even.
    assert_eq!(q, [127, -64, 32, 0, 2]);

    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN] {
        let scale = quantize_row(&[1.0, bad, 0.0, 0.0, 0.0], &mut q);
        assert!(scale.is_nan(), "{bad} gave scale {scale}");
        assert_eq!(q, [0; 5]);
    }
}

#[test]
fn quantizer_long_rows() {
    // Rows longer than any vector, with the largest or the non-finite
    // value at the start, in the middle and in the tail.
    let len = 1003;
    let row: Vec<f32> = (0..len).map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5).collect();
    let mut q = vec![0i8; len];
    for position in [0, 500, len - 1] {
        let mut peaked = row.clone();
        peaked[position] = -2.0;
        assert_eq!(quantize_row(&peaked, &mut q), 2.0 / 127.0, "peak at {position}");
        assert_eq!(q[position], -127, "peak at {position}");

        for bad in [f32::INFINITY, f32::NAN] {
            let mut broken = row.clone();
            broken[position] = bad;
            let scale = quantize_row(&broken, &mut q);
            assert!(scale.is_nan(), "{bad} at {position} gave scale {scale}");
            assert!(q.iter().all(|&v| v == 0), "{bad} at {position} left non-zero values");
        }
    }
}

#[test]
fn quantizer_rounds_half_to_even() {
    // With 127 in the row the scale is 1, so q is the rounded value itself.
    let halves: Vec<f32> = (-254..=254).map(|twice| twice as f32 / 2.0).collect();
    let row: Vec<f32> = std::iter::once(127.0).chain(halves.iter().copied()).collect();
    let mut q = vec![0i8; row.len()];
    assert_eq!(quantize_row(&row, &mut q), 1.0);
    for (&value, &got) in halves.iter().zip(&q[1..]) {
        let want = value.round_ties_even().clamp(-127.0, 127.0) as i8;
        assert_eq!(got, want, "{value} quantised to {got}");
    }
}

#[test]
fn int8_extreme_weights_and_inputs() {
    let (n, k) = (4, 9);
    let mut w = vec![0.0f32; n * k];
    // Row 0 zeros, row 1 huge, row 2 tiny, row 3 ordinary.
    for kk in 0..k {
        w[k + kk] = if kk % 2 == 0 { 1e30 } else { -3e29 };
        w[2 * k + kk] = 1e-44;
        w[3 * k + kk] = kk as f32 - 4.0;
    }
    let packed = PackedMatrix::from_f32_as(WeightFormat::Int8, &w, n, k);
    for row in 0..n {
        for col in 0..k {
            assert!(packed.get(row, col).is_finite(), "W[{row}][{col}] = {}", packed.get(row, col));
        }
    }
    assert_eq!(packed.int8_scales()[..n], [0.0, 1e30 / 127.0, 0.0, 4.0 / 127.0]);

    // Row 0 of X is zeros, row 1 small.
    let mut x = vec![0.0f32; 2 * k];
    for kk in 0..k {
        x[k + kk] = 1e-3 * (kk as f32 + 1.0);
    }
    let bias = [0.5f32, -0.5, 0.25, 1.0];
    for kernels in all_tiers() {
        let mut y = vec![f32::NAN; 2 * n];
        kernels.linear(&x, 2, &packed, Epilogue::bias(Some(&bias)), &mut y);
        let name = kernels.int8_kernel_name();
        assert_eq!(y[..n], bias, "{name}: a row of zero inputs gives the bias");
        assert!(y.iter().all(|v| v.is_finite()), "{name}: {y:?}");
        assert_eq!(y[n], bias[0], "{name}: a zero weight row gives the bias");
        assert_eq!(y[n + 2], bias[2], "{name}: a tiny weight row gives the bias");
        let huge: f64 = (0..k).map(|kk| x[k + kk] as f64 * w[k + kk] as f64).sum();
        assert!((y[n + 1] as f64 - huge).abs() <= 0.02 * huge.abs(), "{name}: {} vs {huge}", y[n + 1]);
    }
}

#[test]
fn int8_kernel_names_follow_features() {
    let features = CpuFeatures::detect();
    assert_eq!(Kernels::scalar().int8_kernel_name(), "scalar");
    for kernels in all_tiers() {
        let expected = match kernels.isa() {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Amx if features.amx_int8 => "amx",
            Isa::Avx512 | Isa::Avx512Bf16 | Isa::Amx if features.avx512vnni => "avx512-vnni",
            Isa::Avx512 | Isa::Avx512Bf16 | Isa::Amx => "avx2",
            Isa::Neon if features.i8mm => "neon-i8mm",
            Isa::Neon if features.dotprod => "neon-dotprod",
            Isa::Neon => "neon",
        };
        assert_eq!(kernels.int8_kernel_name(), expected, "{} tier", kernels.isa());
    }
}

#[test]
#[should_panic(expected = "at most 131072")]
fn int8_rejects_long_reduction() {
    let k = INT8_MAX_K + 4;
    let packed = PackedMatrix::from_f32_as(WeightFormat::Int8, &vec![0.0; k], 1, k);
    let mut y = [0.0f32];
    Kernels::scalar().linear(&vec![0.0; k], 1, &packed, Epilogue::default(), &mut y);
}
